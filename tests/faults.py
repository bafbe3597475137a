"""Fault injectors for the end-to-end tests, running as threads of the test process.

- `TcpProxy`: sits between the hub's Kafka clients and Tansu; `cut()` drops every connection
  and refuses new ones until `restore()` (Tansu is memory-only: restarting it would wipe it).
- `StripeFaultProxy`: sits in front of localstripe; fails a share of API calls with 500, 429
  (with and without `Stripe-Should-Retry`) or a stall past the client's timeout (the request is
  applied, the answer lost), answers chosen requests with a 400, emulates Stripe's idempotency
  keys (localstripe ignores them) and counts what it forwarded.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox.processes import free_port


class TcpProxy:
    def __init__(self, target_port: int, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.target_port = target_port
        self._cut = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._stopped.set()
        self.cut()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update({client, upstream})
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


FAULTS = ("500", "429-retry", "429", "stall-applied", "stall-lost")


class StripeFaultProxy:
    def __init__(self, target_base: str, *, stall_seconds: float = 2.0, seed: int = 7) -> None:
        self.target_base = target_base.rstrip("/")
        self.fault_rate = 0.0
        # The kinds a fault is drawn from; e.g. ("500",) with fault_rate 1.0: every call fails and
        # none is applied (the default mix includes "stall-applied", which does reach Stripe).
        self.faults: tuple[str, ...] = FAULTS
        self.stall_seconds = stall_seconds
        self.random = random.Random(seed)
        self.reject: Callable[[str, str, bytes], bool] = lambda method, path, body: False
        self.forwarded: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._idempotent: dict[str, tuple[int, bytes]] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_DELETE = do_GET

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()

    def count(self, kind: str) -> int:
        with self._lock:
            return self.forwarded[kind]

    # --- request handling ------------------------------------------------------------------

    @staticmethod
    def kind(method: str, path: str) -> str:
        path = path.split("?")[0]
        if method == "POST" and path == "/v1/customers":
            return "create"
        if method == "POST" and re.fullmatch(r"/v1/customers/[^/]+", path):
            return "update"
        if method == "DELETE":
            return "delete"
        return f"{method.lower()}"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        method, path = request.command, request.path
        fault = None
        if path.startswith("/v1/"):
            if self.reject(method, path, body):
                self._answer(request, 400, {"error": {"type": "invalid_request_error", "message": "Rejected by test"}})
                return
            fault = self._draw_fault()
            if fault in ("500", "429-retry", "429", "stall-lost"):
                with self._lock:
                    self.injected[fault] += 1
                self._inject(request, fault)
                return
        key = request.headers.get("Idempotency-Key") if method == "POST" else None
        status, payload = self._forward_once(method, path, body, request.headers, key)
        if fault == "stall-applied":
            with self._lock:
                self.injected[fault] += 1
            time.sleep(self.stall_seconds)  # applied, but the client gave up waiting
        self._answer_raw(request, status, payload)

    def _draw_fault(self) -> str | None:
        with self._lock:
            if self.random.random() >= self.fault_rate:
                return None
            return self.random.choice(self.faults)

    def _inject(self, request: BaseHTTPRequestHandler, fault: str) -> None:
        if fault == "stall-lost":
            time.sleep(self.stall_seconds)
            self._answer(request, 500, {"error": {"type": "api_error", "message": "stalled"}})
        elif fault == "500":
            self._answer(request, 500, {"error": {"type": "api_error", "message": "Injected failure"}})
        else:
            headers = {"Stripe-Should-Retry": "true"} if fault == "429-retry" else {}
            self._answer(request, 429, {"error": {"type": "rate_limit_error", "message": "Too many"}}, headers)

    def _forward_once(self, method, path, body, headers, key: str | None) -> tuple[int, bytes]:
        if key is None:
            return self._forward(method, path, body, headers)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # like Stripe: one request per key at a time, later ones get its answer
            if key in self._idempotent:
                return self._idempotent[key]
            result = self._forward(method, path, body, headers)
            if result[0] < 500:
                self._idempotent[key] = result
            return result

    def _forward(self, method, path, body, headers) -> tuple[int, bytes]:
        upstream = urllib.request.Request(
            self.target_base + path,
            data=body if method != "GET" else None,
            method=method,
            headers={k: v for k, v in headers.items() if k.lower() in ("authorization", "content-type")},
        )
        with self._lock:
            self.forwarded[self.kind(method, path)] += 1
        try:
            with urllib.request.urlopen(upstream, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _answer(self, request, status: int, payload: dict, headers: dict | None = None) -> None:
        self._answer_raw(request, status, json.dumps(payload).encode(), headers)

    def _answer_raw(self, request, status: int, payload: bytes, headers: dict | None = None) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(payload)
        except OSError:
            pass  # the client timed out and hung up


class WebhookDelayProxy:
    """Stands between localstripe's webhooks and the hub, like a Stripe that delivers late and
    out of order: each webhook is answered 200 at once, held, and delivered with the others of
    its window (`hold_seconds`), newest first. A delivery the hub does not answer 2xx is
    delivered again a second later, as Stripe retries."""

    def __init__(self, target_url: str, *, hold_seconds: float = 4.0) -> None:
        self.target_url = target_url
        self.hold_seconds = hold_seconds
        self.received = 0
        self.delivered: list[tuple[str, int]] = []  # (event type, status) in delivery order
        self._held: list[tuple[bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name: self.headers[name] for name in ("Content-Type", "Stripe-Signature") if self.headers[name]}
                with proxy._lock:
                    proxy._held.append((body, headers))
                    proxy.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._deliver_loop, daemon=True).start()

    def close(self) -> None:
        self._stopped.set()
        self.server.shutdown()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._held)

    def _deliver_loop(self) -> None:
        while not self._stopped.wait(self.hold_seconds):
            with self._lock:
                window, self._held = self._held, []
            for body, headers in reversed(window):
                self._deliver(body, headers)

    def _deliver(self, body: bytes, headers: dict[str, str]) -> None:
        event_type = json.loads(body).get("type", "?")
        for _ in range(10):
            request = urllib.request.Request(self.target_url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            if 200 <= status < 300 or self._stopped.wait(1.0):
                break
        with self._lock:
            self.delivered.append((event_type, status))
