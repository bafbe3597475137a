"""The Standard Webhooks receiver (tests/webhook_receiver.py) on its own, without the hub: it is
what the end-to-end tests trust to say what the hub delivered, so it is checked first."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.helpers import Receiver, running_receiver


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


SECRET = new_secret()


@pytest.fixture(scope="module")
def receiver(tmp_path_factory) -> Iterator[Receiver]:
    with running_receiver(SECRET, tmp_path_factory.mktemp("receiver") / "receiver.log") as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(receiver):
    receiver.reset()
    receiver.set_secrets([SECRET])


def deliver(
    url: str, event_type: str, data: dict[str, Any], *, secret: str = SECRET, msg_id: str | None = None,
    timeout: float = 10.0,
) -> int:
    """POST a Standard Webhooks message as the hub does; the answer's status."""
    msg_id = msg_id or f"msg_{time.time_ns()}"
    now = datetime.now(tz=timezone.utc)
    body = json.dumps({"type": event_type, "timestamp": now.isoformat(), "data": data})
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_signed_message_is_accepted_and_recorded(receiver):
    assert deliver(receiver.url, "customer.created", {"id": "c1", "name": "Ada"}, msg_id="msg_ok") == 200

    [message] = receiver.received()
    assert (message["id"], message["type"], message["data"]) == ("msg_ok", "customer.created", {"id": "c1", "name": "Ada"})
    assert message["attempt_headers"]["webhook-signature"].startswith("v1,")
    assert receiver.stats()["received"] == 1
    assert json.loads(receiver.messages_path.read_text().splitlines()[-1])["id"] == "msg_ok"


def test_a_wrong_signature_is_rejected(receiver):
    assert deliver(receiver.url, "customer.created", {"id": "c1"}, secret=new_secret()) == 401

    assert receiver.received() == []
    assert receiver.stats()["rejected"] == 1


def test_mode_fail_answers_500_and_records_nothing(receiver):
    receiver.mode("fail")

    assert deliver(receiver.url, "customer.updated", {"id": "c1"}) == 500
    assert receiver.received() == []
    assert receiver.stats()["failed"] == 1


def test_fail_times_fails_that_many_attempts_then_accepts(receiver):
    receiver.mode("fail_times", n=2)

    statuses = [deliver(receiver.url, "customer.updated", {"id": "c1"}, msg_id="msg_retried") for _ in range(3)]

    assert statuses == [500, 500, 200]
    [message] = receiver.received()
    assert message["attempt"] == 3
    stats = receiver.stats()
    assert (stats["failed"], stats["received"], stats["attempts"], stats["mode"]) == (2, 1, 3, "ok")


def test_mode_slow_answers_after_the_delay(receiver):
    receiver.mode("slow", slow_seconds=0.6)

    started = time.monotonic()
    assert deliver(receiver.url, "customer.updated", {"id": "c1"}) == 200
    assert time.monotonic() - started >= 0.6
    assert len(receiver.received()) == 1


def test_mode_stall_never_answers_and_sigterm_still_exits_promptly(tmp_path):
    with running_receiver(SECRET, tmp_path / "stalling.log") as stalling:
        stalling.mode("stall", stall_seconds=30)
        with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
            deliver(stalling.url, "customer.updated", {"id": "c1"}, timeout=0.5)
        assert stalling.stats()["stalled"] == 1
        assert stalling.received() == []

        started = time.monotonic()
        stalling.close()
        assert time.monotonic() - started < 3
        assert stalling.process.returncode == 0


def test_any_of_the_current_secrets_verifies(receiver):
    old, new = SECRET, new_secret()
    receiver.set_secrets([new, old])

    assert deliver(receiver.url, "customer.updated", {"id": "c1"}, secret=old) == 200
    assert deliver(receiver.url, "customer.updated", {"id": "c1"}, secret=new) == 200
    assert deliver(receiver.url, "customer.updated", {"id": "c1"}, secret=new_secret()) == 401


class Capture(BaseHTTPRequestHandler):
    """A stand-in for the hub's inbound endpoint: keeps what it is sent, answers 202."""

    captured: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.captured.append((dict(self.headers.items()), body))
        self.send_response(202)
        self.send_header("Content-Length", "8")
        self.end_headers()
        self.wfile.write(b"accepted")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hub_stand_in():
    Capture.captured = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/inbound/7"
    server.shutdown()
    server.server_close()


def test_send_signs_a_message_the_library_verifies(receiver, hub_stand_in):
    status, body = receiver.send(hub_stand_in, "customer.updated", {"id": "c1", "email": "a@example.com"})

    assert (status, body) == (202, "accepted")
    [(headers, raw)] = Capture.captured
    assert {key.lower(): value for key, value in headers.items()}["content-type"] == "application/json"
    message = Webhook(SECRET).verify(raw, headers)
    assert message["type"] == "customer.updated"
    assert message["data"] == {"id": "c1", "email": "a@example.com"}
    assert datetime.fromisoformat(message["timestamp"]).tzinfo is not None


def test_send_takes_an_id_a_timestamp_and_another_secret(receiver, hub_stand_in):
    other, timestamp = new_secret(), int(time.time()) - 60
    receiver.send(hub_stand_in, "customer.deleted", {"id": "c1"}, id="msg_given", timestamp=timestamp, secret=other)

    [(headers, raw)] = Capture.captured
    lowered = {key.lower(): value for key, value in headers.items()}
    assert (lowered["webhook-id"], lowered["webhook-timestamp"]) == ("msg_given", str(timestamp))
    assert Webhook(other).verify(raw, headers)["type"] == "customer.deleted"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(SECRET).verify(raw, headers)
