"""The consumer that runs tasks: at-least-once, retries on delayed topics, dead letters."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from django.conf import settings
from django.db import close_old_connections, connections
from django.db.utils import InterfaceError, OperationalError
from kafka import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from . import kafka
from .audit import SyncResult, sync_event_build, sync_events_record
from .dead_letters import dead_letter_notify, dead_letter_record
from .metrics import EVENTS_CONSUMED, TASK_DURATION, task_outcomes_start_at_zero
from .models import SyncEvent
from .tasks import PermanentTaskError, RetryLater, Task, TaskMessage, dead_letter_topic, retry_topic

logger = logging.getLogger(__name__)


# How often the worker checks its database connections (CONN_MAX_AGE, and with
# CONN_HEALTH_CHECKS a "SELECT 1" before the next query). Once per poll, that round trip was one
# of ~13 per batch at 500 events/s; a connection lost in between fails at most this long's
# batches, whose messages are retried on a fresh connection.
CONNECTION_CHECK_SECONDS = 1.0


class TooManyConsecutiveErrors(RuntimeError):
    """The worker gives up so that its supervisor restarts it with fresh connections."""


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: about base * 2^(attempt-1), capped."""
    ceiling = min(settings.SYNC_RETRY_BACKOFF_MAX_SECONDS, settings.SYNC_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class _RebalanceListener(ConsumerRebalanceListener):
    """Forgets the pauses of partitions taken away, and logs the ones handed over (the line an
    operator, or a test, reads to know the worker is consuming)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked) -> None:
        for partition in revoked:
            self.worker._paused_until.pop(partition, None)

    def on_partitions_assigned(self, assigned) -> None:
        if assigned:
            partitions = ", ".join(sorted(f"{p.topic}[{p.partition}]" for p in assigned))
            logger.info("worker %s assigned %s", self.worker.group_id, partitions)


class Worker:
    """Consumes the topics of `tasks` (and their retry topics) as consumer group `group_id`.

    A message's offset is committed only once its handler finished, or once it was handed on to
    the retry or dead-letter topic. A retry message that is not yet due pauses only its own
    retry-topic partition, so the main topic keeps flowing.
    """

    def __init__(self, *, tasks: Sequence[Task], group_id: str) -> None:
        if not tasks:
            raise ValueError("a worker needs at least one task")
        self.tasks = {task.name: task for task in tasks}
        self.group_id = group_id
        self.topics = sorted({task.topic for task in tasks})
        self.retry_topics = {retry_topic(topic): topic for topic in self.topics}
        self._stop = threading.Event()
        self._paused_until: dict[TopicPartition, float] = {}
        self._connections_checked = 0.0
        self.processed = 0
        task_outcomes_start_at_zero(tasks)

    def stop(self) -> None:
        """Ask the loop to stop after the message in hand; safe to call from a signal handler."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, max_messages: int | None = None) -> None:
        consumer = None
        consecutive_errors = 0
        try:
            while not self.stopping and (max_messages is None or self.processed < max_messages):
                try:
                    if consumer is None:  # also when the broker is not reachable yet
                        consumer = self._connect()
                    self._poll_once(consumer)
                    consecutive_errors = 0
                except (KafkaError, OperationalError, InterfaceError) as exc:
                    consecutive_errors += 1
                    logger.warning("worker error %d in a row: %s", consecutive_errors, exc, exc_info=True)
                    if consecutive_errors >= settings.SYNC_WORKER_MAX_CONSECUTIVE_ERRORS:
                        raise TooManyConsecutiveErrors(str(exc)) from exc
                    kafka.reset_producer()
                    time.sleep(min(5.0, 0.2 * consecutive_errors))
        finally:
            if consumer is not None:
                consumer.close()
            logger.info("worker %s stopped after %d messages", self.group_id, self.processed)

    def _connect(self):
        kafka.ensure_topics([*self.topics, *self.retry_topics, *(dead_letter_topic(topic) for topic in self.topics)])
        consumer = kafka.make_consumer(
            group_id=self.group_id,
            topics=[*self.topics, *self.retry_topics],
            listener=_RebalanceListener(self),
        )
        logger.info("worker %s consuming %s", self.group_id, ", ".join(self.topics))
        return consumer

    def _poll_once(self, consumer) -> None:
        self._resume_due(consumer)
        batches = consumer.poll(timeout_ms=200)
        if not batches:
            return
        # Not per batch: with CONN_HEALTH_CHECKS each call costs a "SELECT 1" round trip before
        # the next query (bench/analysis.md). A connection lost mid-batch still fails its
        # handlers, which are retried on a fresh connection.
        if time.monotonic() - self._connections_checked >= CONNECTION_CHECK_SECONDS:
            close_old_connections()
            self._connections_checked = time.monotonic()
        due: list[tuple[TopicPartition, object]] = []
        for partition, records in batches.items():
            for record in records:
                if partition.topic in self.retry_topics and self._pause_if_early(consumer, partition, record):
                    break  # the rest of this partition comes again once the record is due
                due.append((partition, record))
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        audit: list[SyncEvent] = []
        try:
            for task, group in self._groups(due):
                if self.stopping:
                    return
                if task is not None:
                    audit += self.execute_many(task, [message for _, _, message in group])
                for partition, record, _ in group:
                    done[partition] = OffsetAndMetadata(record.offset + 1, "", -1)
                self.processed += len(group)
        except BaseException:
            # Hand the unhandled rest back: the next poll starts again at it.
            for partition, records in batches.items():
                consumer.seek(partition, done[partition].offset if partition in done else records[0].offset)
            raise
        finally:
            # The audit rows before the offsets: a crash in between repeats the messages (and
            # their rows) rather than losing the rows.
            if audit:
                sync_events_record(audit)
            if done:
                consumer.commit(done)

    def _resume_due(self, consumer) -> None:
        now = time.time()
        due = [partition for partition, until in self._paused_until.items() if until <= now]
        for partition in due:
            del self._paused_until[partition]
        if due:
            consumer.resume(*due)

    def _pause_if_early(self, consumer, partition: TopicPartition, record) -> bool:
        try:
            message = TaskMessage.decode(record.value)
        except (ValueError, TypeError):
            return False
        # Another worker's retry (a task this worker does not run) is skipped, never waited for:
        # pausing on it would hold up this worker's own retries behind it.
        if message.task not in self.tasks or message.not_before <= time.time():
            return False
        not_before = message.not_before
        consumer.pause(partition)
        consumer.seek(partition, record.offset)
        self._paused_until[partition] = not_before
        return True

    def _groups(self, due):
        """Split polled records into runs of one task, each key at most once per run, so a
        batch handler never sees two changes of one item and each key keeps its order."""
        group: list = []
        group_task: Task | None = None
        keys: set[str] = set()
        for partition, record in due:
            message, task = self._decode(partition.topic, record.value)
            key = task.message_key(message) if task is not None else ""
            if group and (task is not group_task or key in keys or len(group) >= settings.SYNC_WORKER_BATCH_SIZE):
                yield group_task, group
                group, keys = [], set()
            group_task = task
            group.append((partition, record, message))
            if task is not None and task.key:
                keys.add(key)
        if group:
            yield group_task, group

    def _decode(self, topic: str, raw: bytes) -> tuple[TaskMessage | None, Task | None]:
        """The record's message and task; task None for a record this worker skips: undecodable
        (message None too; dead-lettered as it is) or another worker's task."""
        try:
            message = TaskMessage.decode(raw)
        except (ValueError, TypeError) as exc:
            logger.error("undecodable message on %s dead-lettered: %s", topic, exc)
            base_topic = self.retry_topics.get(topic, topic)
            kafka.publish([(dead_letter_topic(base_topic), "", raw)])
            return None, None
        task = self.tasks.get(message.task)
        if task is None:
            logger.debug("message for task %s is not this worker's; skipped", message.task)
            return message, None
        return message, task

    def execute_many(self, task: Task, messages: list[TaskMessage]) -> list[SyncEvent]:
        """Run the handler on messages of distinct keys, route each failure to a retry or a dead
        letter, and return the operations' audit rows (unsaved)."""
        started = time.monotonic()
        try:
            outcomes = task.run_batch([message.kwargs for message in messages])
        except Exception as exc:  # noqa: BLE001 - the whole batch failed: each message is retried
            outcomes = [exc] * len(messages)
        if any(isinstance(outcome, (OperationalError, InterfaceError)) for outcome in outcomes):
            # The database went away: drop the connections so the retries open fresh ones.
            for connection in connections.all():
                connection.close_if_unusable_or_obsolete()
        duration_ms = 1000 * (time.monotonic() - started) / len(messages)
        return [self._settle(task, message, outcome, duration_ms) for message, outcome in zip(messages, outcomes)]

    def _settle(self, task: Task, message: TaskMessage, outcome: object, duration_ms: float) -> SyncEvent:
        error = outcome if isinstance(outcome, BaseException) else None
        waited = time.time() - message.enqueued_at
        if error is None:
            status = SyncEvent.Outcome.SUCCEEDED
        elif isinstance(error, RetryLater) and waited < settings.SYNC_WAIT_MAX_SECONDS:
            status = SyncEvent.Outcome.RETRYING
            # Not an attempt: the message waits for something else, checked again at a pace that
            # slows as the wait grows (a tenth of its age, between 1 s and a minute).
            self._retry(task, message, error, delay=min(60.0, max(1.0, waited / 10)), attempt=message.attempt)
        elif isinstance(error, PermanentTaskError) or message.attempt >= (
            task.max_attempts or settings.SYNC_TASK_MAX_ATTEMPTS
        ):
            status = SyncEvent.Outcome.DEAD_LETTERED
            self._dead_letter(task, message, error)
        else:
            status = SyncEvent.Outcome.RETRYING
            self._retry(task, message, error)
        EVENTS_CONSUMED.labels(topic=task.topic, task=task.name, outcome=status).inc()
        TASK_DURATION.labels(task=task.name).observe(duration_ms / 1000)
        return sync_event_build(
            task=task,
            message=message,
            outcome=status,
            duration_ms=duration_ms,
            result=outcome if isinstance(outcome, SyncResult) else None,
            error=describe(error) if error else "",
        )

    def _retry(
        self, task: Task, message: TaskMessage, exc: Exception, *, delay: float | None = None, attempt: int | None = None
    ) -> None:
        delay = retry_delay(message.attempt) if delay is None else delay
        attempt = message.attempt + 1 if attempt is None else attempt
        logger.warning(
            "task %s %s attempt %d failed (%s); retry in %.1f s", task.name, message.id, message.attempt, exc, delay
        )
        retry = replace(message, attempt=attempt, not_before=time.time() + delay, last_error=describe(exc))
        kafka.publish([(retry_topic(task.topic), task.message_key(retry), retry.encode())])

    def _dead_letter(self, task: Task, message: TaskMessage, exc: Exception) -> None:
        message.last_error = describe(exc)
        logger.error("task %s %s dead-lettered after %d attempts: %s", task.name, message.id, message.attempt, exc)
        dead_letter_record(task=task, message=message)
        kafka.publish([(dead_letter_topic(task.topic), task.message_key(message), message.encode())])
        dead_letter_notify(task=task, message=message)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
