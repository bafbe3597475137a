"""The Kafka task layer on a real broker: delivery, commit-after-handling, retries, dead letters."""

from __future__ import annotations

import io
import json
import time
import uuid

import pytest
from sync import kafka as sync_kafka
from sync.dead_letters import dead_letter_record, dead_letter_replay
from sync.audit import SyncResult
from sync.models import DeadLetter, OutboxMessage, SyncEvent
from sync.relay import prune_published, relay_batch
from sync.tasks import PermanentTaskError, RetryLater, TaskMessage, dead_letter_topic, get_task, retry_topic, task
from sync.worker import Worker, retry_delay

from .helpers import read_topic, run_worker, wait_until

# Workers run in autocommit, as the real processes do (a worker closes connections it finds in a
# transaction, which a test transaction would be).
pytestmark = pytest.mark.django_db(transaction=True)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def make_task(handler, *, key: str | None = "item_id", max_attempts: int | None = None):
    return task(name=unique("test_task"), topic=unique("test_topic"), key=key, max_attempts=max_attempts)(handler)


def test_message_round_trips_and_rejects_garbage():
    message = TaskMessage(task="t", kwargs={"a": 1})
    assert TaskMessage.decode(message.encode()) == message
    for raw in [b"not json", b"[]", b'{"kwargs": {}}']:
        with pytest.raises(ValueError):
            TaskMessage.decode(raw)


def test_retry_delay_grows_exponentially_and_is_capped(settings):
    settings.SYNC_RETRY_BACKOFF_SECONDS = 1.0
    settings.SYNC_RETRY_BACKOFF_MAX_SECONDS = 30.0
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (9, 30.0)]:
        delays = [retry_delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))


def test_registering_two_handlers_under_one_name_is_refused():
    name = unique("dup")
    task(name=name, topic="t")(lambda: None)
    with pytest.raises(ValueError):
        task(name=name, topic="t")(lambda: None)
    assert get_task(name).topic == "t"


def test_delay_goes_through_the_outbox_and_the_worker_runs_the_handler(kafka):
    seen: list[dict] = []
    job = make_task(lambda **kwargs: seen.append(kwargs))
    for item_id in range(5):
        job.delay(item_id=item_id, note="hello")
    assert OutboxMessage.objects.filter(topic=job.topic, published_at__isnull=True).count() == 5

    assert relay_batch() == 5
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()
    assert relay_batch() == 0

    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=5)
    assert sorted(kw["item_id"] for kw in seen) == [0, 1, 2, 3, 4]
    assert all(kw["note"] == "hello" for kw in seen)


def test_each_operation_is_recorded_in_the_audit_trail(kafka):
    job = task(name=unique("audited"), topic=unique("t"), key="item_id", direction="outward", integration="acme")(
        lambda *, item_id: SyncResult(action="created", item_id=item_id, external_id=f"ext_{item_id}")
    )
    message_id = job.send(item_id=3)
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=1)
    event = SyncEvent.objects.get(task=job.name)
    assert (event.direction, event.integration, event.item_id, event.action, event.outcome, event.external_id) == (
        "outward",
        "acme",
        3,
        "created",
        "succeeded",
        "ext_3",
    )
    assert event.message_id == message_id and event.duration_ms >= 0


def test_one_keys_messages_keep_their_order(kafka):
    seen: list[int] = []
    job = make_task(lambda *, item_id, seq: seen.append(seq) if item_id == 7 else None)
    for seq in range(30):
        job.delay(item_id=7, seq=seq)
        job.delay(item_id=1000 + seq, seq=-1)
    relay_batch()
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=60)
    assert seen == list(range(30))


def test_batch_handler_gets_distinct_keys_in_order_and_failures_stay_per_message(kafka):
    """A batch handler sees each key at most once per call (so one item's changes keep their
    order); one failing message is retried alone while the rest of its batch succeeds."""
    batches: list[list[tuple[int, int]]] = []
    failed_once: set[int] = set()

    def handle_batch(batch: list[dict]) -> list:
        batches.append([(kwargs["item_id"], kwargs["seq"]) for kwargs in batch])
        outcomes: list = []
        for kwargs in batch:
            if kwargs["item_id"] == 3 and kwargs["seq"] == 0 and 3 not in failed_once:
                failed_once.add(3)
                outcomes.append(RuntimeError("item 3 failed once"))
            else:
                outcomes.append(SyncResult(action="done", item_id=kwargs["item_id"]))
        return outcomes

    job = task(name=unique("batched"), topic=unique("t"), key="item_id")(lambda **kwargs: None)
    job.batch_hook(handle_batch)
    for seq in range(3):
        for item_id in range(10):
            job.delay(item_id=item_id, seq=seq)
    relay_batch()
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=31)

    handled = [pair for batch in batches for pair in batch]
    assert len(handled) == 31  # 30 messages, item 3's first one twice
    assert max(len(batch) for batch in batches) > 1  # batched, not one by one
    for batch in batches:
        keys = [item_id for item_id, _ in batch]
        assert len(keys) == len(set(keys)), batch
    for item_id in range(10):
        if item_id != 3:
            assert [seq for key, seq in handled if key == item_id] == [0, 1, 2]
    trail = SyncEvent.objects.filter(task=job.name)
    assert trail.filter(outcome="succeeded").count() == 30
    assert list(trail.filter(outcome="retrying").values_list("item_id", "error")) == [
        (3, "RuntimeError: item 3 failed once")
    ]


def test_a_batch_handler_that_raises_retries_every_message_of_the_batch(kafka):
    calls: list[int] = []

    def handle_batch(batch: list[dict]) -> list:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return [None] * len(batch)

    job = task(name=unique("batched"), topic=unique("t"), key="item_id", max_attempts=2)(lambda **kwargs: None)
    job.batch_hook(handle_batch)
    for item_id in range(4):
        job.delay(item_id=item_id)
    relay_batch()
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=8)
    outcomes = list(SyncEvent.objects.filter(task=job.name).values_list("outcome", flat=True))
    assert sorted(outcomes) == ["retrying"] * 4 + ["succeeded"] * 4


def test_published_outbox_rows_are_pruned_after_retention(kafka):
    job = make_task(lambda **_: None)
    job.delay(item_id=1)
    relay_batch()
    assert prune_published(older_than_seconds=3600) == 0
    assert prune_published(older_than_seconds=0) == 1
    assert not OutboxMessage.objects.exists()


def test_send_publishes_at_once_and_falls_back_to_the_outbox_when_kafka_is_down(kafka, settings):
    seen: list[int] = []
    job = make_task(lambda *, item_id: seen.append(item_id))
    job.send(item_id=1)
    assert not OutboxMessage.objects.exists()

    publish_timeout = settings.KAFKA_PUBLISH_TIMEOUT_SECONDS
    settings.KAFKA_BOOTSTRAP_SERVERS = ["127.0.0.1:9"]  # nothing listens there
    settings.KAFKA_PUBLISH_TIMEOUT_SECONDS = 1.0
    sync_kafka.reset_producer()
    job.send(item_id=2)
    assert OutboxMessage.objects.filter(topic=job.topic).count() == 1

    # The relay's fresh producer has to connect first: a loaded machine needs the usual timeout.
    settings.KAFKA_PUBLISH_TIMEOUT_SECONDS = publish_timeout
    settings.KAFKA_BOOTSTRAP_SERVERS = [kafka]
    sync_kafka.reset_producer()
    assert relay_batch() == 1
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=2)
    assert sorted(seen) == [1, 2]


def test_offset_is_committed_only_after_the_handler_finished(kafka):
    """A handler interrupted mid-way (BaseException, as a crash) leaves its message uncommitted:
    the next member of the group gets it again. Finished messages are not redelivered."""
    seen: list[int] = []
    crash_on = {2}

    def handler(*, item_id: int, partition_key: str) -> None:
        if item_id in crash_on:
            crash_on.clear()
            raise KeyboardInterrupt
        seen.append(item_id)

    job = make_task(handler, key="partition_key")  # one key: one partition, in order
    for item_id in range(1, 5):
        job.send(item_id=item_id, partition_key="same")
    group = unique("g")
    with pytest.raises(KeyboardInterrupt):
        run_worker(Worker(tasks=[job], group_id=group), max_messages=4)
    assert seen == [1]
    run_worker(Worker(tasks=[job], group_id=group), max_messages=3)
    assert sorted(seen) == [1, 2, 3, 4]
    assert seen.count(1) == 1


def test_failures_retry_with_backoff_then_dead_letter_with_the_error(kafka):
    attempts: list[float] = []
    dead: list[TaskMessage] = []

    def always_fails(*, item_id: int) -> None:
        attempts.append(time.monotonic())
        raise RuntimeError(f"stripe down for {item_id}")

    job = make_task(always_fails, max_attempts=3)
    job.on_dead_letter_hook(dead.append)
    job.send(item_id=42)
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=3)

    assert len(attempts) == 3
    assert len(dead) == 1 and dead[0].attempt == 3
    assert dead[0].last_error == "RuntimeError: stripe down for 42"
    letters = read_topic(dead_letter_topic(job.topic), expected=1)
    assert len(letters) == 1
    letter = TaskMessage.decode(letters[0].value)
    assert letter.kwargs == {"item_id": 42} and letter.attempt == 3 and "stripe down" in letter.last_error
    assert len(read_topic(retry_topic(job.topic), expected=2)) == 2
    trail = list(SyncEvent.objects.filter(task=job.name).order_by("id").values_list("outcome", "attempt", "item_id"))
    assert trail == [("retrying", 1, 42), ("retrying", 2, 42), ("dead_lettered", 3, 42)]
    recorded = DeadLetter.objects.get(message_id=letter.id)
    assert (recorded.task, recorded.key, recorded.attempts) == (job.name, "42", 3)
    assert "stripe down for 42" in recorded.error


def test_replaying_a_dead_letter_enqueues_it_again_from_attempt_one():
    job = make_task(lambda **_: None)
    job.replay_kwargs_hook(lambda kwargs: {**kwargs, "event_id": "fresh"})
    letter = dead_letter_record(
        task=job, message=TaskMessage(task=job.name, kwargs={"item_id": 5, "event_id": "old"}, attempt=6)
    )
    dead_letter_replay(letter=letter)
    letter.refresh_from_db()
    assert letter.replayed_at is not None
    [row] = OutboxMessage.objects.filter(topic=job.topic)
    assert row.payload["kwargs"] == {"item_id": 5, "event_id": "fresh"} and row.payload["attempt"] == 1
    assert row.key == "5"


def test_sync_dlq_lists_shows_and_replays():
    from django.core.management import CommandError, call_command

    job = make_task(lambda **_: None)
    letter = dead_letter_record(
        task=job, message=TaskMessage(task=job.name, kwargs={"item_id": 9}, attempt=3, last_error="Boom: bad")
    )
    out = io.StringIO()
    call_command("sync_dlq", "list", stdout=out)
    assert job.name[:24] in out.getvalue() and "Boom: bad" in out.getvalue() and "1 dead letter(s)" in out.getvalue()
    out = io.StringIO()
    call_command("sync_dlq", "show", str(letter.pk), stdout=out)
    assert json.loads(out.getvalue())["kwargs"] == {"item_id": 9}
    out = io.StringIO()
    call_command("sync_dlq", "replay", str(letter.pk), stdout=out)
    assert "1 dead letter(s) replayed" in out.getvalue()
    out = io.StringIO()
    call_command("sync_dlq", "list", stdout=out)
    assert "0 dead letter(s)" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("sync_dlq", "show", "999999")
    with pytest.raises(CommandError):
        call_command("sync_dlq", "replay")


def test_permanent_error_goes_straight_to_dead_letters(kafka):
    attempts: list[int] = []

    def rejects(*, item_id: int) -> None:
        attempts.append(item_id)
        raise PermanentTaskError("invalid email")

    job = make_task(rejects)
    job.send(item_id=1)
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=1)
    assert attempts == [1]
    letter = TaskMessage.decode(read_topic(dead_letter_topic(job.topic), expected=1)[0].value)
    assert letter.attempt == 1 and "invalid email" in letter.last_error


def test_a_message_waiting_for_its_retry_does_not_hold_up_others(kafka, settings):
    settings.SYNC_RETRY_BACKOFF_SECONDS = 60.0  # the failed message is due only in 30-60 s
    settings.SYNC_RETRY_BACKOFF_MAX_SECONDS = 60.0
    done: list[int] = []

    def handler(*, item_id: int) -> None:
        if item_id == 0:
            raise RuntimeError("first one fails")
        done.append(item_id)

    job = make_task(handler, key=None)
    job.send(item_id=0)
    for item_id in range(1, 11):
        job.send(item_id=item_id)
    started = time.monotonic()
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=11, timeout=25)
    assert sorted(done) == list(range(1, 11))
    assert time.monotonic() - started < 25


def test_a_task_waiting_for_something_else_is_retried_without_using_up_its_attempts(kafka, settings):
    calls: list[int] = []

    def handler(*, item_id: int) -> None:
        calls.append(item_id)
        if len(calls) < 3:
            raise RetryLater("the thing it needs is still under way")

    job = make_task(handler, max_attempts=1)  # one attempt: any counted failure would dead-letter it
    job.send(item_id=1)
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=3, timeout=30)
    assert calls == [1, 1, 1]
    outcomes = list(SyncEvent.objects.filter(task=job.name).order_by("id").values_list("outcome", "attempt"))
    assert outcomes == [("retrying", 1), ("retrying", 1), ("succeeded", 1)]
    assert not DeadLetter.objects.filter(task=job.name).exists()


def test_a_wait_past_its_limit_counts_as_a_failed_attempt(kafka, settings):
    settings.SYNC_WAIT_MAX_SECONDS = 0

    def handler(*, item_id: int) -> None:
        raise RetryLater("never ready")

    job = make_task(handler, max_attempts=1)
    job.send(item_id=1)
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=1)
    assert DeadLetter.objects.get(task=job.name).error.startswith("RetryLater: never ready")


def test_undecodable_message_is_dead_lettered_not_retried_forever(kafka):
    job = make_task(lambda **_: None)
    sync_kafka.publish([(job.topic, "", b"garbage"), (job.topic, "", TaskMessage(job.name, {"x": 1}).encode())])
    run_worker(Worker(tasks=[job], group_id=unique("g")), max_messages=2)
    assert [r.value for r in read_topic(dead_letter_topic(job.topic), expected=1)] == [b"garbage"]


def test_a_new_member_gets_partitions_after_two_members_left(kafka):
    """Tansu quirk guarded by KAFKA_API_VERSION (see ../shared/NOTES.md): must keep working."""
    seen: list[int] = []
    job = make_task(lambda *, item_id: seen.append(item_id))
    group = unique("g")
    for round_ in range(3):
        job.send(item_id=round_)
        run_worker(Worker(tasks=[job], group_id=group), max_messages=1)
    assert seen == [0, 1, 2]


def test_stop_leaves_the_loop_promptly(kafka):
    job = make_task(lambda **_: None)
    worker = Worker(tasks=[job], group_id=unique("g"))
    worker.stop()
    started = time.monotonic()
    worker.run()
    assert time.monotonic() - started < 10
    assert worker.processed == 0
    wait_until(lambda: True)
    assert json.loads(TaskMessage("t", {}).encode())["attempt"] == 1


def test_worker_exits_non_zero_after_consecutive_errors(tmp_path):
    """Broker unreachable: the worker command gives up with status 3 for its supervisor."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "KAFKA_REQUEST_TIMEOUT_MS": "1000",
        "SYNC_WORKER_MAX_CONSECUTIVE_ERRORS": "2",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "run_stripe_worker"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "too many consecutive errors" in result.stderr
