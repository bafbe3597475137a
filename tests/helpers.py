"""Helpers shared by the tests: polling with a deadline, Stripe signatures, a task-worker runner."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
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
