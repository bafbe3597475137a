"""Scenario 4: no-op tasks enqueued and executed per second, our Kafka task layer against Celery 5
on the local Redis, same payloads, same run, each at its default worker setup (ours: one worker
process; Celery: prefork, concurrency = CPU count)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import redis

from .common import Result, median, runs_text, say
from .hub import BASE_DIR, Hub
from .counter import REDIS_URL


def done_count(client: redis.Redis, run: str) -> int:
    return int(client.get(f"synchub-bench:done:{run}") or 0)


def measure(enqueue_all, client: redis.Redis, *, count: int, timeout: float = 300) -> tuple[float, float]:
    """Enqueue `count` tasks; return (tasks/s from first enqueue to last executed, enqueue rate)."""
    run = uuid.uuid4().hex[:10]
    payload = "x" * 100
    started = time.perf_counter()
    enqueue_all(run=run, count=count, payload=payload)
    enqueued = time.perf_counter()
    deadline = time.monotonic() + timeout
    while done_count(client, run) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done_count(client, run)} of {count} tasks ran")
        time.sleep(0.005)
    finished = time.perf_counter()
    client.delete(f"synchub-bench:done:{run}")
    return count / (finished - started), count / (enqueued - started)


def run(hub: Hub, *, runs: int, count: int) -> Result:
    from .celery_app import QUEUE
    from .celery_app import noop as celery_noop
    from .noop import noop

    result = Result()
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    def start_noop_worker(**env: str) -> None:
        hub.processes["noop_worker"] = subprocess.Popen(
            [sys.executable, "-m", "bench.noop_worker"],
            cwd=BASE_DIR,
            env={**hub.env, **env},
            stdout=open(hub.log("noop_worker"), "ab"),
            stderr=subprocess.STDOUT,
        )

    start_noop_worker()
    hub.processes["celery"] = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            QUEUE,
        ],
        cwd=BASE_DIR,
        env={**hub.env, "BENCH_CELERY_QUEUE": QUEUE},
        stdout=open(hub.log("celery"), "ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        # Warm-up: both workers running and connected (ours joins its consumer group).
        measure(one_by_one(noop.send), client, count=50, timeout=120)
        measure(one_by_one(celery_noop.delay), client, count=50, timeout=120)
        ours_send, ours_delay, ours_delay_each, celery = [], [], [], []
        for attempt in range(runs):
            ours_send.append(measure(one_by_one(noop.send), client, count=count))
            celery.append(measure(one_by_one(celery_noop.delay), client, count=count))
            ours_delay.append(measure(delay_in_one_transaction(noop), client, count=count))
            # Autocommit: each `.delay()` commits on its own, as one per web request would.
            ours_delay_each.append(measure(one_by_one(noop.delay), client, count=count))
            say(
                f"tasks run {attempt + 1}: ours .send() {ours_send[-1][0]:,.0f}/s, ours .delay()+relay "
                f"{ours_delay[-1][0]:,.0f}/s (each committed: {ours_delay_each[-1][0]:,.0f}/s), "
                f"Celery {celery[-1][0]:,.0f}/s"
            )
        # Diagnostic: the same worker without its per-task audit-trail row.
        hub.stop("noop_worker")
        start_noop_worker(BENCH_SKIP_AUDIT="1")
        measure(one_by_one(noop.send), client, count=50, timeout=120)
        no_audit = [measure(delay_in_one_transaction(noop), client, count=count)]
        say(f"tasks: ours .delay()+relay without the audit row {no_audit[0][0]:,.0f}/s")
    finally:
        hub.stop("noop_worker")
        hub.stop("celery")
        client.delete(QUEUE)
    send_rate = median(r for r, _ in ours_send)
    delay_rate = median(r for r, _ in ours_delay)
    delay_each_rate = median(r for r, _ in ours_delay_each)
    celery_rate = median(r for r, _ in celery)
    result.row(
        "4. Task layer, `.send()` (enqueued + executed)",
        f"{send_rate:,.0f} tasks/s (runs: {runs_text(r for r, _ in ours_send)}; enqueue alone "
        f"{median(e for _, e in ours_send):,.0f}/s)",
    )
    result.row(
        "4. Task layer, `.delay()` + outbox relay",
        f"{delay_rate:,.0f} tasks/s (runs: {runs_text(r for r, _ in ours_delay)}; enqueue alone "
        f"{median(e for _, e in ours_delay):,.0f}/s)",
    )
    result.row(
        "4. Task layer, `.delay()` each in its own transaction + outbox relay",
        f"{delay_each_rate:,.0f} tasks/s (runs: {runs_text(r for r, _ in ours_delay_each)}; enqueue alone "
        f"{median(e for _, e in ours_delay_each):,.0f}/s)",
    )
    result.row(
        "4. Celery 5.5 on Redis, `.delay()`",
        f"{celery_rate:,.0f} tasks/s (runs: {runs_text(r for r, _ in celery)}; enqueue alone "
        f"{median(e for _, e in celery):,.0f}/s)",
    )
    result.row(
        "4. (diagnostic) `.delay()` + relay, worker without its audit-trail row",
        f"{no_audit[0][0]:,.0f} tasks/s (1 run)",
    )
    # One path, every run: `.delay()` committed on its own, as from separate requests (the way
    # the hub's own changes travel), against the Celery run beside it.
    per_run = [ours / peer for (ours, _), (peer, _) in zip(ours_delay_each, celery)]
    result.row(
        "4. Ours vs Celery, `.delay()` each committed + relay, run by run",
        f"{', '.join(f'{ratio:.1f}x' for ratio in per_run)} (medians: `.send()` {send_rate / celery_rate:.1f}x, "
        f"`.delay()` in one transaction {delay_rate / celery_rate:.1f}x)",
        ">= 3x in every run",
        min(per_run) >= 3,
    )
    result.data["tasks"] = {
        "ours .send()": send_rate,
        "ours .delay() + relay": delay_each_rate,
        "Celery 5.5 .delay()": celery_rate,
    }
    result.note(
        f"Tasks: {count:,} no-op tasks per measurement, enqueued one by one from one thread while the worker "
        "runs; timed from the first enqueue until the last task ran (each task INCRs a Redis counter, the same "
        "work for both). Ours: one `sync.worker.Worker` process (3 partitions); `.send()` returns once Kafka "
        "acknowledged (acks=all); `.delay()` writes outbox rows (all in one transaction, or each committed on its own "
        "as from separate requests) and the relay publishes them. "
        "Celery 5.5 at its defaults: prefork with concurrency = CPU count, Redis broker, results ignored, early "
        "acknowledgement (a task in hand when its worker dies is lost; ours commits after the handler ran)."
    )
    return result


def one_by_one(enqueue):
    def enqueue_all(*, run: str, count: int, payload: str) -> None:
        for n in range(count):
            enqueue(run=run, n=n, payload=payload)

    return enqueue_all


def delay_in_one_transaction(task):
    """`.delay()` each task, all in one transaction: the outbox relay publishes them."""
    from django.db import transaction

    def enqueue_all(*, run: str, count: int, payload: str) -> None:
        with transaction.atomic():
            for n in range(count):
                task.delay(run=run, n=n, payload=payload)

    return enqueue_all
