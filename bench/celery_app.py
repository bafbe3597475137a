"""Celery 5 on the local Redis, for scenario 4 only (a benchmark dependency, bench/requirements.txt).

    celery -A bench.celery_app worker
"""

import os

from celery import Celery

from .counter import REDIS_URL, count_done

QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "synchub-bench")

app = Celery("synchub_bench", broker=os.environ.get("BENCH_CELERY_BROKER", REDIS_URL))
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(*, run: str, n: int, payload: str) -> None:
    count_done(run)
