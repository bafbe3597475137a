"""Helpers shared by the tests: polling with a deadline, Stripe signatures, a task-worker runner, a
Standard Webhooks receiver (another system, as a process of its own)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kafka import KafkaConsumer

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1, message: str = "") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.0f} s: {message or predicate} (last value: {last!r})")


def stripe_signature(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header value as Stripe computes it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(
    event_type: str, customer: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> bytes:
    body = {
        "id": event_id or f"evt_{time.time_ns()}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()) if created is None else created,
        "data": {"object": {"object": "customer", "metadata": {}, **customer}},
    }
    return json.dumps(body).encode()


def run_worker(worker, *, max_messages: int, timeout: float = 30.0) -> None:
    """Run `worker` in this thread until it handled `max_messages` or `timeout` passed."""
    timer = threading.Timer(timeout, worker.stop)
    timer.start()
    try:
        worker.run(max_messages=max_messages)
    finally:
        timer.cancel()


def read_topic(topic: str, *, expected: int, timeout: float = 20.0) -> list:
    """Records of `topic` from its start, until `expected` came or `timeout` passed."""
    from sync.kafka import client_config

    consumer = KafkaConsumer(
        topic, auto_offset_reset="earliest", consumer_timeout_ms=500, **client_config()
    )
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


class Receiver:
    """Another system that speaks Standard Webhooks: `tests/webhook_receiver.py` as a real process,
    and its control API. `url` is where the hub delivers; `send` has it sign a change and POST it
    to the hub. `log_path`: the process's output (a line per request); `messages_path`: a JSON
    line per received message (by default beside `log_path`, with the suffix .jsonl)."""

    def __init__(
        self, secrets: str | list[str], *, log_path: Path | None = None, messages_path: Path | None = None
    ) -> None:
        from sandbox.processes import BASE_DIR, free_port, start, wait_for_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "tests.webhook_receiver", "--port", str(self.port)]
        for secret in [secrets] if isinstance(secrets, str) else secrets:
            command += ["--secret", secret]
        self.messages_path = messages_path or (log_path.with_suffix(".jsonl") if log_path else None)
        if self.messages_path:
            command += ["--log", str(self.messages_path)]
        pythonpath = os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH")]))
        self.process = start(command, log_path=log_path, env={**os.environ, "PYTHONPATH": pythonpath})
        try:
            wait_for_port(self.port, process=self.process, timeout=15)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """Where the hub delivers (POST /hook)."""
        return f"{self.base}/hook"

    def _call(self, method: str, path: str, payload: Any = None, *, timeout: float = 10.0) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def mode(
        self, mode: str, *, n: int | None = None, slow_seconds: float | None = None, stall_seconds: float | None = None
    ) -> dict[str, Any]:
        """Mode ok, fail, stall, slow or fail_times (failing `n` attempts); delays stay until changed."""
        settings = {"n": n, "slow_seconds": slow_seconds, "stall_seconds": stall_seconds}
        return self._call("POST", "/_mode", {"mode": mode, **{k: v for k, v in settings.items() if v is not None}})

    def received(self) -> list[dict[str, Any]]:
        """The messages it accepted, in arrival order (redeliveries included, marked `duplicate`)."""
        return self._call("GET", "/_received")

    def stats(self) -> dict[str, Any]:
        """Counts: received, failed, rejected (bad signature or body), stalled, attempts; and the mode."""
        return self._call("GET", "/_stats")

    def reset(self) -> None:
        """Forget messages and counts, back to mode ok; the secrets stay."""
        self._call("POST", "/_reset", {})

    def set_secrets(self, secrets: list[str]) -> None:
        """Accept messages signed with any of `secrets`; `send` signs with the first."""
        self._call("POST", "/_secret", {"secrets": list(secrets)})

    def send(self, url: str, type: str, data: dict[str, Any], **extra: Any) -> tuple[int | None, str]:  # noqa: A002
        """Have it sign `{"type", "timestamp", "data"}` and POST it to `url` (the hub's inbound endpoint);
        the hub's status (None if it could not be reached) and body. `extra`: id, timestamp (unix),
        secret (instead of its own), headers (added or replacing the signed ones)."""
        answer = self._call("POST", "/_send", {"url": url, "type": type, "data": data, **extra}, timeout=20)
        return answer["status"], answer["body"] or answer.get("error", "")

    def close(self) -> None:
        from sandbox.processes import stop

        stop(self.process)


@contextlib.contextmanager
def running_receiver(secret: str | list[str], log_path: Path | None = None) -> Iterator[Receiver]:
    """A `Receiver` for the block, stopped after it."""
    receiver = Receiver(secret, log_path=log_path)
    try:
        yield receiver
    finally:
        receiver.close()
