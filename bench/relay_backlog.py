"""Scenario 8: how fast the outbox relay drains a backlog (e.g. after the broker or the relay was
down for a while): `rows` unpublished task messages already waiting when the relay starts."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
from django.db import connection

from .common import Result, say, settle
from .drain import scalar, wait_until
from .hub import Hub, cpu_seconds, rss_kb

TARGET_ROWS_PER_SECOND = 1_200


def insert_backlog(rows: int, *, run: str, payload: str) -> tuple[int, int]:
    """Insert `rows` unpublished outbox rows of the bench's no-op task in one statement; return
    the (first, last) id. Each row is what `noop.delay(run=run, n=n, payload=payload)` writes:
    the template comes from the task layer itself, so a change of TaskMessage's fields shows up
    here, and only the per-message fields (id, enqueue time, arguments) vary by row."""
    from sync.models import OutboxMessage

    from .noop import noop

    template = noop.message(run=run, n=0, payload=payload)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH inserted AS (
                INSERT INTO {connection.ops.quote_name(OutboxMessage._meta.db_table)} (topic, key, payload, created_at)
                SELECT %s, %s, %s::jsonb || jsonb_build_object(
                    'id', replace(gen_random_uuid()::text, '-', ''),
                    'enqueued_at', extract(epoch FROM clock_timestamp()),
                    'kwargs', jsonb_build_object('run', %s::text, 'n', n, 'payload', %s::text)
                ), now()
                FROM generate_series(0, %s - 1) AS n
                RETURNING id
            )
            SELECT min(id), max(id), count(*) FROM inserted
            """,
            [noop.topic, noop.message_key(template), json.dumps(template.__dict__), run, payload, rows],
        )
        first, last, count = cursor.fetchone()
    if count != rows:
        raise RuntimeError(f"inserted {count} outbox rows, expected {rows}")
    return first, last


def arrived(topic: str, *, run: str, rows: int, timeout: float) -> tuple[int, int]:
    """Read the topic from the start: (distinct messages of `run` on it, records of `run`).
    By reading, not by end offsets: Tansu's ListOffsets answered up to a fifth fewer than the
    records a consumer then read back (2,000 published: 1,650-1,963 by offsets, 2,000 read)."""
    from kafka import KafkaConsumer, TopicPartition

    from sync import kafka

    consumer = KafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **kafka.client_config())
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen: set[int] = set()
        records = 0
        deadline = time.monotonic() + timeout
        while len(seen) < rows and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=5_000).values():
                for record in batch:
                    kwargs = json.loads(record.value)["kwargs"]
                    if kwargs["run"] == run:
                        seen.add(kwargs["n"])
                        records += 1
        return len(seen), records
    finally:
        consumer.close()


def run(hub: Hub, *, rows: int = 100_000) -> Result:
    """Drain rate of the outbox relay over a backlog of `rows` messages, from the relay's start
    until every row is marked published (which it does only after Kafka acknowledged them).

    The caller has started Tansu and the stand-in (`hub.start_services()`) but not the relay: the
    backlog must be complete before the relay starts, or we would time the insert.
    """
    from sync.models import OutboxMessage

    from .noop import noop

    table = OutboxMessage._meta.db_table
    # Rows left unpublished by earlier scenarios would be drained first (id order) and skew the rate.
    leftover = scalar(hub, f"SELECT COUNT(*) FROM {table} WHERE published_at IS NULL")
    if "relay" in hub.processes or leftover:
        raise RuntimeError(f"relay already running or {leftover} outbox rows waiting: the backlog must be ours alone")
    tag = uuid.uuid4().hex[:10]
    started = time.monotonic()
    first, last = insert_backlog(rows, run=tag, payload="x" * 100)
    say(f"relay backlog: {rows:,} outbox rows inserted in {time.monotonic() - started:.1f} s")
    settle()

    # Probe the first and last row by primary key rather than COUNT the range: the relay marks in
    # id order, so the last row marked means all are, and a count over 100,000 rows ten times a
    # second would load the database the relay is measured on. The count runs once at the end.
    probe = f"SELECT (SELECT published_at FROM {table} WHERE id = %s), (SELECT published_at FROM {table} WHERE id = %s)"
    peak_kb = 0
    first_published: float | None = None

    def drained() -> bool:
        nonlocal peak_kb, first_published
        if relay.poll() is not None:
            raise RuntimeError(f"the relay exited with {relay.returncode}; see {hub.log('relay')}")
        peak_kb = max(peak_kb, sum(rss_kb(pid) for pid in hub.pids("relay")))
        with psycopg.connect(hub.db.dsn) as db:
            head, tail = db.execute(probe, (first, last)).fetchone()
        if first_published is None and head is not None:
            first_published = time.monotonic()
        return tail is not None

    relay_started = time.monotonic()
    relay = hub.start("relay")
    try:
        wait_until(drained, timeout=max(300.0, rows / 100), interval=0.05, what=f"{rows:,} outbox rows published")
        seconds = time.monotonic() - relay_started
        # Read before the stop: /proc forgets a process's CPU time once it is gone.
        cpu = sum(cpu_seconds(pid) for pid in hub.pids("relay"))
    finally:
        hub.stop("relay")
    unpublished = f"SELECT COUNT(*) FROM {table} WHERE published_at IS NULL AND id BETWEEN %s AND %s"
    left = scalar(hub, unpublished, (first, last))
    on_kafka, records = arrived(noop.topic, run=tag, rows=rows, timeout=max(60.0, rows / 1_000))
    if left or on_kafka < rows:
        raise RuntimeError(f"{left:,} rows unpublished, {on_kafka:,} of {rows:,} read back from {noop.topic}")

    rate, ms_per_row, mb = rows / seconds, 1000 * cpu / rows, peak_kb / 1024
    startup = (first_published or relay_started) - relay_started
    result = Result()
    result.row(
        f"8. Outbox relay drain, backlog of {rows:,} rows",
        f"{rate:,.0f} rows/s ({seconds:.1f} s; relay CPU {ms_per_row:.3f} ms per row, peak RSS {mb:.0f} MB)",
        f">= {TARGET_ROWS_PER_SECOND:,} rows/s",
        rate >= TARGET_ROWS_PER_SECOND,
    )
    result.note(
        f"Relay backlog: {rows:,} unpublished outbox rows of the no-op task of scenario 4 (same topic, key and "
        "task-message payload as `.delay()` writes, 100-byte argument), inserted in one statement while the relay "
        "was stopped; then one relay process started and timed from its start (Python and Django start-up and the "
        f"first batch, {startup:.1f} s until the first row was marked, included; {rows / (seconds - startup):,.0f} "
        "rows/s after it) until every row had `published_at`, which it sets only after Kafka acknowledged the batch "
        f"(acks=all), polled every 50 ms. Read back from the topic afterwards: all {rows:,} messages "
        f"({records - rows:,} duplicates read). Relay CPU: user + system time of the process over the whole run, "
        "start-up included; peak RSS: sampled at each poll."
    )
    return result
