"""A small Celery-style task layer over Kafka.

    @task(name="stripe.push_customer", topic="stripe_customer_outward", key="item_id")
    def push_customer(*, item_id: int, action: str) -> None: ...

    push_customer.delay(item_id=1, action="upsert")  # in the caller's transaction, via the outbox
    push_customer.send(item_id=1, action="upsert")   # now, once Kafka acknowledged it

A worker (`sync.worker.Worker`) runs the handler and commits the offset only after it finished;
failures go to `<topic>_retry` with exponential backoff and, after the last attempt, to
`<topic>_dlq`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from kafka.errors import KafkaError

from . import kafka
from .models import OutboxMessage
from .origin import change_origin_label

logger = logging.getLogger(__name__)

RETRY_SUFFIX = "_retry"
DEAD_LETTER_SUFFIX = "_dlq"


class PermanentTaskError(Exception):
    """Raised by a handler when retrying cannot help: the message goes straight to dead letters."""


class RetryLater(Exception):
    """Raised by a handler whose message cannot run yet because of something else still under
    way (an invoice whose customer has not reached the external system): the message is retried
    after a delay that grows with its age, without using up an attempt, for up to
    `SYNC_WAIT_MAX_SECONDS` after it was first enqueued; after that it fails like any error."""


class TaskNotRegistered(LookupError):
    pass


def retry_topic(topic: str) -> str:
    return topic + RETRY_SUFFIX


def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


@dataclass
class TaskMessage:
    """What travels on Kafka: which task to run, with which arguments, and its retry history."""

    task: str
    kwargs: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempt: int = 1
    not_before: float = 0.0
    enqueued_at: float = field(default_factory=time.time)
    last_error: str = ""
    # Who or what caused it (`sync.origin`), for the audit trail; kept across retries.
    origin: str = ""

    def encode(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":"), default=str).encode()

    @classmethod
    def decode(cls, raw: bytes) -> TaskMessage:
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("task"), str):
            raise ValueError("not a task message")
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


@dataclass
class Task:
    name: str
    topic: str
    func: Callable[..., Any]
    key: str | None = None
    max_attempts: int | None = None
    # For the audit trail: "outward" (to an external system) or "inward", and which system.
    direction: str = ""
    integration: str = ""
    on_dead_letter: Callable[[TaskMessage], None] | None = None
    # How a replayed dead letter's arguments differ from the original's (e.g. a fresh event id,
    # so an external idempotency key does not return the old failure); unchanged by default.
    replay_kwargs: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # Runs many messages' arguments at once (fewer round trips per message) and returns, in
    # order, each one's result or the exception it failed with. Optional; the worker uses it for
    # every message of the task when set, so there is one code path.
    batch_func: Callable[[list[dict[str, Any]]], list[Any]] | None = None

    def __call__(self, **kwargs: Any) -> Any:
        return self.func(**kwargs)

    def message(self, **kwargs: Any) -> TaskMessage:
        return TaskMessage(task=self.name, kwargs=kwargs, origin=change_origin_label())

    def message_key(self, message: TaskMessage) -> str:
        """Messages with one key go to one partition, so they are handled in order."""
        return str(message.kwargs.get(self.key, "")) if self.key else ""

    def delay(self, **kwargs: Any) -> str:
        """Enqueue through the outbox: committed with the caller's transaction or not at all."""
        message = self.message(**kwargs)
        self._store_in_outbox(message)
        return message.id

    def send(self, **kwargs: Any) -> str:
        """Publish now and return once Kafka acknowledged it.

        When Kafka cannot take it, the message is kept in the outbox instead (the relay publishes
        it later), so an accepted message is never lost; database errors propagate.
        """
        message = self.message(**kwargs)
        try:
            kafka.publish([(self.topic, self.message_key(message), message.encode())])
        except KafkaError:
            logger.warning("Kafka unavailable; task %s %s kept in the outbox", self.name, message.id, exc_info=True)
            kafka.reset_producer()
            with transaction.atomic():
                self._store_in_outbox(message)
        return message.id

    def _store_in_outbox(self, message: TaskMessage) -> None:
        OutboxMessage.objects.append(topic=self.topic, key=self.message_key(message), payload=message.__dict__)

    def on_dead_letter_hook(self, on_dead_letter: Callable[[TaskMessage], None]) -> Callable[[TaskMessage], None]:
        """Decorator: run `on_dead_letter(message)` when a message of this task is dead-lettered."""
        self.on_dead_letter = on_dead_letter
        return on_dead_letter

    def batch_hook(
        self, batch_func: Callable[[list[dict[str, Any]]], list[Any]]
    ) -> Callable[[list[dict[str, Any]]], list[Any]]:
        """Decorator: handle a batch of this task's messages (distinct keys) in one call."""
        self.batch_func = batch_func
        return batch_func

    def run_batch(self, batch: list[dict[str, Any]]) -> list[Any]:
        """Each argument set's result or exception, through `batch_func` when there is one."""
        if self.batch_func is not None:
            outcomes = self.batch_func(batch)
            if len(outcomes) != len(batch):
                raise RuntimeError(f"batch handler of {self.name} returned {len(outcomes)} outcomes for {len(batch)}")
            return outcomes
        outcomes = []
        for kwargs in batch:
            try:
                outcomes.append(self.func(**kwargs))
            except Exception as exc:  # noqa: BLE001 - reported per message, like the batch handler's
                outcomes.append(exc)
        return outcomes

    def replay_kwargs_hook(
        self, replay_kwargs: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """Decorator: map a dead letter's arguments to those of its replay."""
        self.replay_kwargs = replay_kwargs
        return replay_kwargs


_registry: dict[str, Task] = {}


def task(
    *,
    name: str,
    topic: str,
    key: str | None = None,
    max_attempts: int | None = None,
    direction: str = "",
    integration: str = "",
) -> Callable[[Callable[..., Any]], Task]:
    """Register the decorated function as the handler of task `name`, delivered on `topic`."""

    def register(func: Callable[..., Any]) -> Task:
        if name in _registry and _registry[name].func is not func:
            raise ValueError(f"task {name!r} is already registered")
        _registry[name] = Task(
            name=name,
            topic=topic,
            func=func,
            key=key,
            max_attempts=max_attempts,
            direction=direction,
            integration=integration,
        )
        return _registry[name]

    return register


def get_task(name: str) -> Task:
    try:
        return _registry[name]
    except KeyError:
        raise TaskNotRegistered(name) from None


def registered_tasks() -> list[Task]:
    return list(_registry.values())
