"""Scenario 4's no-op task on our task layer (the Celery twin is in celery_app.py)."""

from sync.tasks import task

from .counter import count_done

TOPIC = "bench_noop"


@task(name="bench.noop", topic=TOPIC)
def noop(*, run: str, n: int, payload: str) -> None:
    count_done(run)
