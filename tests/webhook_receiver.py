"""Another system, for the end-to-end tests: a Standard Webhooks receiver in a process of its own.

The hub delivers signed messages (headers webhook-id, webhook-timestamp, webhook-signature;
body {"type", "timestamp", "data"}) to `POST /hook`; this process verifies them with the
`standardwebhooks` library, answers as the current mode says (ok, fail, stall, slow, fail_times)
and records what it accepted. It also plays the system's side of a change: `POST /_send` signs a
message the same way and POSTs it to the hub's inbound endpoint. Tests drive it through a small
JSON control API (`tests/helpers.py`'s `Receiver`): POST /_mode, GET /_received, GET /_stats,
POST /_reset, POST /_secret, POST /_send, GET /_health.

    python -m tests.webhook_receiver --port P --secret whsec_... [--secret ...] [--log FILE]

Stdlib and standardwebhooks only (no Django): it stands for a system that knows nothing of ours.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks import Webhook

MODES = ("ok", "fail", "stall", "slow", "fail_times")
KEPT_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent")


class State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, secrets: list[str], log_path: Path | None) -> None:
        self.lock = threading.Lock()
        self.log_path = log_path
        self.set_secrets(secrets)
        self.reset()

    def reset(self) -> None:
        """Forget messages and counts, back to mode ok with the default delays; keeps the secrets."""
        with self.lock:
            self.received: list[dict[str, Any]] = []
            self.attempts_by_id: dict[str, int] = {}
            self.counts = {"received": 0, "failed": 0, "rejected": 0, "stalled": 0, "attempts": 0}
            self.mode, self.fail_left, self.slow_seconds, self.stall_seconds = "ok", 0, 2.0, 30.0

    def set_secrets(self, secrets: list[str]) -> None:
        hooks = [Webhook(secret) for secret in secrets]  # raises on an empty or malformed secret
        if not hooks:
            raise ValueError("no secret")
        with self.lock:
            self.secrets, self.hooks = list(secrets), hooks

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        """Whether any current secret accepts the message. The library raises on every failure:
        missing headers, a timestamp over 5 minutes off, no matching signature, malformed values."""
        with self.lock:
            hooks = list(self.hooks)
        for hook in hooks:
            try:
                hook.verify(body, headers, json_parse=False)
                return True
            except Exception:  # noqa: BLE001, S112 - malformed values raise ValueError, binascii.Error
                continue
        return False

    def decide(self, msg_id: str) -> tuple[str, int]:
        """The action for a verified attempt (fail_times counts down here) and its attempt number."""
        with self.lock:
            self.attempts_by_id[msg_id] = attempt = self.attempts_by_id.get(msg_id, 0) + 1
            if self.mode == "fail_times":
                if self.fail_left > 0:
                    self.fail_left -= 1
                    return "fail", attempt
                self.mode = "ok"
            return self.mode, attempt

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["duplicate"] = any(seen["id"] == entry["id"] for seen in self.received)
            self.received.append(entry)
            self.counts["received"] += 1
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    server: Server
    status: int | str = "-"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # do_POST writes the one line per request, with the outcome

    def do_POST(self) -> None:
        started = time.monotonic()
        try:
            route = ROUTES.get((self.command, urlsplit(self.path).path))
            if route is None:
                self._reply(404, {"error": f"no route {self.command} {self.path}"})
            else:
                route(self)
        except Exception as exc:  # noqa: BLE001 - a test stand-in answers with the error
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})
        finally:
            elapsed = (time.monotonic() - started) * 1000
            self.log_message('"%s %s" %s mode=%s %.0f ms', self.command, self.path, self.status,
                             self.server.state.mode, elapsed)

    do_GET = do_POST

    def _json(self) -> Any:
        return json.loads(self._body() or b"{}")

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, payload: Any = None) -> None:
        self.status = status
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_state(self, read: Callable[[State], Any]) -> None:
        with self.server.state.lock:
            payload = read(self.server.state)
        self._reply(200, payload)

    def hook(self) -> None:
        """A delivery from the hub: verify, then answer as the mode says."""
        state, body = self.server.state, self._body()
        headers = {key.lower(): value for key, value in self.headers.items()}
        state.count("attempts")
        if not state.verify(body, headers):
            state.count("rejected")
            return self._reply(401, {"error": "signature verification failed"})
        try:
            message = json.loads(body)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            state.count("rejected")
            return self._reply(400, {"error": "body is not a JSON object"})
        action, attempt = state.decide(headers["webhook-id"])
        if action == "fail":
            state.count("failed")
            return self._reply(500, {"error": "failing on purpose"})
        if action == "stall":
            state.count("stalled")
            self.status, self.close_connection = "stalled", True
            time.sleep(state.stall_seconds)
            return None  # the server closes the connection without an answer
        if action == "slow":
            time.sleep(state.slow_seconds)
        state.record({
            "id": headers["webhook-id"], "timestamp": message.get("timestamp"), "type": message.get("type"),
            "data": message.get("data"), "received_at": time.time(), "attempt": attempt,
            "webhook_timestamp": int(headers["webhook-timestamp"]),
            "attempt_headers": {key: headers[key] for key in KEPT_HEADERS if key in headers},
        })
        return self._reply(200, {"ok": True})

    def set_mode(self) -> None:
        request, state = self._json(), self.server.state
        if request.get("mode") not in MODES:
            return self._reply(400, {"error": f"mode must be one of {MODES}"})
        with state.lock:
            state.mode = request["mode"]
            state.fail_left = int(request.get("n") or 0)
            state.slow_seconds = float(request.get("slow_seconds", state.slow_seconds))
            state.stall_seconds = float(request.get("stall_seconds", state.stall_seconds))
        return self._read_state(lambda s: {"mode": s.mode, "n": s.fail_left, "slow_seconds": s.slow_seconds,
                                           "stall_seconds": s.stall_seconds})

    def set_secret(self) -> None:
        request = self._json()
        secrets = request["secrets"] if "secrets" in request else [request["secret"]]
        try:
            self.server.state.set_secrets(secrets)
        except Exception as exc:  # noqa: BLE001 - empty or not base64
            return self._reply(400, {"error": f"bad secret: {exc}"})
        return self._reply(200, {"secrets": len(secrets)})

    def reset(self) -> None:
        self.server.state.reset()
        self._reply(200, {"ok": True})

    def send(self) -> None:
        """Sign a message as a peer of the hub does and POST it to `url` (the hub's inbound endpoint)."""
        request, state = self._json(), self.server.state
        secret = request.get("secret") or state.secrets[0]
        msg_id = request.get("id") or f"msg_{uuid.uuid4().hex}"
        timestamp = int(request.get("timestamp") or time.time())
        moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)  # sign() reads the datetime as UTC
        body = json.dumps({"type": request["type"], "timestamp": moment.isoformat().replace("+00:00", "Z"),
                           "data": request.get("data", {})})
        headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": Webhook(secret).sign(msg_id, moment, body), **request.get("headers", {})}
        outbound = urllib.request.Request(request["url"], data=body.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(outbound, timeout=10) as response:  # noqa: S310 - a test's URL
                result = {"status": response.status, "body": response.read().decode(errors="replace")}
        except urllib.error.HTTPError as exc:
            result = {"status": exc.code, "body": exc.read().decode(errors="replace")}
        except OSError as exc:  # refused, timed out: no status
            result = {"status": None, "body": "", "error": f"{type(exc).__name__}: {exc}"}
        self._reply(200, {**result, "id": msg_id})


ROUTES: dict[tuple[str, str], Callable[[Handler], None]] = {
    ("POST", "/hook"): Handler.hook,
    ("POST", "/_mode"): Handler.set_mode,
    ("GET", "/_received"): lambda handler: handler._read_state(lambda s: list(s.received)),
    ("GET", "/_stats"): lambda handler: handler._read_state(
        lambda s: {**s.counts, "mode": s.mode, "fail_left": s.fail_left}),
    ("POST", "/_reset"): Handler.reset,
    ("POST", "/_secret"): Handler.set_secret,
    ("POST", "/_send"): Handler.send,
    ("GET", "/_health"): lambda handler: handler._reply(200, {"ok": True}),
}


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a stalled answer never holds up the exit

    def __init__(self, address: tuple[str, int], state: State) -> None:
        super().__init__(address, Handler)
        self.state = state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A Standard Webhooks receiver for the end-to-end tests.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret", action="append", required=True, help="whsec_...; repeat to accept several")
    parser.add_argument("--log", type=Path, help="a JSON line per received message")
    args = parser.parse_args(argv)
    server = Server((args.host, args.port), State(args.secret, args.log))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # exits serve_forever at once
    print(f"webhook receiver on http://{args.host}:{args.port}/hook", file=sys.stderr, flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
