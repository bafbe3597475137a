"""The work of scenario 4's no-op task, for both task systems: one Redis INCR per task, so the
benchmark can tell when every task ran. No Django here (the Celery worker does not load it)."""

from __future__ import annotations

import os

import redis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
_redis: redis.Redis | None = None


def count_done(run: str) -> None:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(REDIS_URL)
    _redis.incr(f"synchub-bench:done:{run}")
