"""Health checks: the database and Kafka here; integrations register their own (Stripe)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connections

from . import kafka

HealthCheck = Callable[[float], None]  # raises when unhealthy; the argument is a timeout in seconds

_checks: dict[str, HealthCheck] = {}


def register_health_check(name: str, check: HealthCheck) -> None:
    _checks[name] = check


def _database(timeout: float) -> None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connections.close_all()  # the check runs in a pool thread: leave no connection behind


def _kafka(timeout: float) -> None:
    kafka.broker_reachable(timeout_seconds=timeout)


register_health_check("database", _database)
register_health_check("kafka", _kafka)


def _run(check: HealthCheck, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        check(timeout)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "ms": _ms(started)}
    return {"ok": True, "ms": _ms(started)}


def _ms(started: float) -> float:
    return round(1000 * (time.monotonic() - started), 1)


def run_health_checks(*, timeout: float) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check at once, each bounded by `timeout`; (all ok, results by name).

    Each check runs in a daemon thread: one stuck past its timeout is reported as such and can
    neither hold the answer nor keep the process from exiting.
    """
    results: dict[str, dict[str, Any]] = {}

    def run(name: str, check: HealthCheck) -> None:
        results[name] = _run(check, timeout)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in _checks.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    answered = {name: results.get(name) or {"ok": False, "error": f"no answer within {timeout} s"} for name in _checks}
    return all(result["ok"] for result in answered.values()), answered
