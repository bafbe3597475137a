"""Dead letters: recorded when a task gives up, listed and replayed by staff and operators."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import DeadLetter
from .origin import change_origin
from .tasks import Task, TaskMessage, TaskNotRegistered, get_task, registered_tasks

logger = logging.getLogger(__name__)

REPLAY_CHUNK = 500


def dead_letter_record(*, task: Task, message: TaskMessage) -> DeadLetter:
    return _letter_save(message, topic=task.topic, key=task.message_key(message))


def _letter_save(message: TaskMessage, *, topic: str, key: str) -> DeadLetter:
    defaults = {
        "task": message.task,
        "topic": topic,
        "key": key,
        "kwargs": message.kwargs,
        "attempts": message.attempt,
        "error": message.last_error,
        "replayed_at": None,
    }
    letter, _ = DeadLetter.objects.update_or_create(message_id=message.id, defaults=defaults)
    return letter


def dead_letter_record_unpublishable(*, topic: str, key: str, payload: dict[str, Any], reason: str) -> DeadLetter:
    """Record an outbox row that Kafka refused for good (e.g. too large), so the relay can move
    on past it; its task's `on_dead_letter` hook runs as for any dead letter."""
    message = TaskMessage(
        task=str(payload.get("task", "")),
        kwargs=payload.get("kwargs") if isinstance(payload.get("kwargs"), dict) else {},
        id=str(payload.get("id") or TaskMessage(task="", kwargs={}).id),
        attempt=int(payload.get("attempt") or 1),
        last_error=f"not publishable: {reason}",
    )
    letter = _letter_save(message, topic=topic, key=key)
    logger.error("outbox message %s of %s dead-lettered: %s", message.id, message.task or topic, reason)
    try:
        task = get_task(message.task)
    except TaskNotRegistered:
        return letter
    dead_letter_notify(task=task, message=message)
    return letter


def dead_letter_notify(*, task: Task, message: TaskMessage) -> None:
    """Run the task's `on_dead_letter` hook (e.g. mark the item's mapping failed)."""
    if task.on_dead_letter is None:
        return
    try:
        task.on_dead_letter(message)
    except Exception:  # noqa: BLE001 - the dead letter is already recorded; the hook only adds status
        logger.exception("on_dead_letter hook of %s failed", task.name)


def dead_letters_pending() -> QuerySet[DeadLetter]:
    return DeadLetter.objects.filter(replayed_at__isnull=True)


@transaction.atomic
def dead_letter_replay(*, letter: DeadLetter) -> str:
    """Enqueue the dead letter's task again, from attempt 1; return the new message id."""
    task = get_task(letter.task)
    kwargs = task.replay_kwargs(dict(letter.kwargs)) if task.replay_kwargs else dict(letter.kwargs)
    message_id = task.delay(**kwargs)
    letter.replayed_at = timezone.now()
    letter.save(update_fields=["replayed_at"])
    return message_id


def dead_letters_filter(
    *, status: str = "", integration: str = "", task: str = "", error: str = "", item_id: int | None = None
) -> QuerySet[DeadLetter]:
    """Dead letters, newest first: `status` "pending" or "replayed" (empty: both); `integration`
    (its tasks' names), `task`, a fragment of the `error`, or the item they were about."""
    letters = DeadLetter.objects.order_by("-id")
    if status == "pending":
        letters = letters.filter(replayed_at__isnull=True)
    elif status == "replayed":
        letters = letters.filter(replayed_at__isnull=False)
    if integration:
        letters = letters.filter(task__in=[each.name for each in registered_tasks() if each.integration == integration])
    if task:
        letters = letters.filter(task=task)
    if error:
        letters = letters.filter(error__icontains=error)
    if item_id is not None:
        letters = letters.filter(kwargs__item_id=item_id)
    return letters


def dead_letters_replay(*, letters: QuerySet[DeadLetter], replayed_by: str) -> int:
    """Replay every pending letter of `letters` (each from attempt 1) for the user `replayed_by`
    (the audit trail's origin of the new attempts: "replay · <user>"), `REPLAY_CHUNK` per
    transaction so that a replay of thousands neither holds one long transaction nor loses what
    was already enqueued when one letter fails; returns how many were enqueued. A letter whose
    task no longer exists is left pending."""
    replayed = 0
    pending = letters.filter(replayed_at__isnull=True).order_by("id")
    last_id = 0
    with change_origin(f"replay · {replayed_by}"):
        while True:
            chunk = list(pending.filter(id__gt=last_id)[:REPLAY_CHUNK])
            if not chunk:
                return replayed
            last_id = chunk[-1].pk
            with transaction.atomic():
                for letter in chunk:
                    try:
                        dead_letter_replay(letter=letter)
                    except TaskNotRegistered:
                        logger.warning("dead letter %s: task %s is not registered; left pending", letter.pk, letter.task)
                        continue
                    replayed += 1


def dead_letter_integration(letter: DeadLetter) -> str:
    """The integration of the letter's task ("" when the task is gone)."""
    try:
        return get_task(letter.task).integration
    except TaskNotRegistered:
        return ""
