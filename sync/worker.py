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
from .audit import SyncResult, sync_event_record
from .dead_letters import dead_letter_record
from .metrics import EVENTS_CONSUMED, TASK_DURATION
from .models import SyncEvent
from .tasks import PermanentTaskError, Task, TaskMessage, dead_letter_topic, retry_topic

logger = logging.getLogger(__name__)


class TooManyConsecutiveErrors(RuntimeError):
    """The worker gives up so that its supervisor restarts it with fresh connections."""


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: about base * 2^(attempt-1), capped."""
    ceiling = min(settings.SYNC_RETRY_BACKOFF_MAX_SECONDS, settings.SYNC_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class _ForgetPausedOnRevoke(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked) -> None:
        for partition in revoked:
            self.worker._paused_until.pop(partition, None)

    def on_partitions_assigned(self, assigned) -> None:
        pass


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
        self.processed = 0

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
            listener=_ForgetPausedOnRevoke(self),
        )
        logger.info("worker %s consuming %s", self.group_id, ", ".join(self.topics))
        return consumer

    def _poll_once(self, consumer) -> None:
        self._resume_due(consumer)
        batches = consumer.poll(timeout_ms=200)
        if batches:
            # Once per batch, not per message: with CONN_HEALTH_CHECKS each call costs a
            # "SELECT 1" round trip before the next query (bench/analysis.md). A connection lost
            # mid-batch still fails its handler, which is retried on a fresh connection.
            close_old_connections()
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        try:
            for partition, records in batches.items():
                for record in records:
                    if self.stopping:
                        return
                    if partition.topic in self.retry_topics and self._pause_if_early(consumer, partition, record):
                        break
                    self._handle_record(partition.topic, record.value)
                    done[partition] = OffsetAndMetadata(record.offset + 1, "", -1)
                    self.processed += 1
        except BaseException:
            # Hand the unhandled rest of the batch back: the next poll starts again at it.
            for partition, records in batches.items():
                consumer.seek(partition, done[partition].offset if partition in done else records[0].offset)
            raise
        finally:
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
            not_before = TaskMessage.decode(record.value).not_before
        except ValueError:
            return False
        if not_before <= time.time():
            return False
        consumer.pause(partition)
        consumer.seek(partition, record.offset)
        self._paused_until[partition] = not_before
        return True

    def _handle_record(self, topic: str, raw: bytes) -> None:
        try:
            message = TaskMessage.decode(raw)
        except (ValueError, TypeError) as exc:
            logger.error("undecodable message on %s dead-lettered: %s", topic, exc)
            base_topic = self.retry_topics.get(topic, topic)
            kafka.publish([(dead_letter_topic(base_topic), "", raw)])
            return
        task = self.tasks.get(message.task)
        if task is None:
            logger.debug("message for task %s is not this worker's; skipped", message.task)
            return
        self.execute(task, message)

    def execute(self, task: Task, message: TaskMessage) -> None:
        """Run one message's handler, route a failure to a retry or a dead letter, and record
        the operation in the audit trail."""
        started = time.monotonic()
        result = error = None
        permanent = False
        try:
            result = task.func(**message.kwargs)
        except PermanentTaskError as exc:
            error, permanent = exc, True
        except (OperationalError, InterfaceError) as exc:
            # The database went away: drop the connections so the retry opens fresh ones.
            for connection in connections.all():
                connection.close_if_unusable_or_obsolete()
            error = exc
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, never lost
            error = exc
        duration_ms = 1000 * (time.monotonic() - started)
        if error is None:
            outcome = SyncEvent.Outcome.SUCCEEDED
        elif permanent or message.attempt >= (task.max_attempts or settings.SYNC_TASK_MAX_ATTEMPTS):
            outcome = SyncEvent.Outcome.DEAD_LETTERED
            self._dead_letter(task, message, error)
        else:
            outcome = SyncEvent.Outcome.RETRYING
            self._retry(task, message, error)
        EVENTS_CONSUMED.labels(topic=task.topic, task=task.name, outcome=outcome).inc()
        TASK_DURATION.labels(task=task.name).observe(duration_ms / 1000)
        sync_event_record(
            task=task,
            message=message,
            outcome=outcome,
            duration_ms=duration_ms,
            result=result if isinstance(result, SyncResult) else None,
            error=describe(error) if error else "",
        )

    def _retry(self, task: Task, message: TaskMessage, exc: Exception) -> None:
        delay = retry_delay(message.attempt)
        logger.warning(
            "task %s %s attempt %d failed (%s); retry in %.1f s", task.name, message.id, message.attempt, exc, delay
        )
        retry = replace(message, attempt=message.attempt + 1, not_before=time.time() + delay, last_error=describe(exc))
        kafka.publish([(retry_topic(task.topic), task.message_key(retry), retry.encode())])

    def _dead_letter(self, task: Task, message: TaskMessage, exc: Exception) -> None:
        message.last_error = describe(exc)
        logger.error("task %s %s dead-lettered after %d attempts: %s", task.name, message.id, message.attempt, exc)
        dead_letter_record(task=task, message=message)
        kafka.publish([(dead_letter_topic(task.topic), task.message_key(message), message.encode())])
        if task.on_dead_letter is not None:
            try:
                task.on_dead_letter(message)
            except Exception:  # noqa: BLE001 - the dead letter is already safe on Kafka
                logger.exception("on_dead_letter hook of %s failed", task.name)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
