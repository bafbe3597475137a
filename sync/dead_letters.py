"""Dead letters: recorded when a task gives up, listed and replayed by staff and operators."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import DeadLetter
from .tasks import Task, TaskMessage, get_task


def dead_letter_record(*, task: Task, message: TaskMessage) -> DeadLetter:
    letter, _ = DeadLetter.objects.update_or_create(
        message_id=message.id,
        defaults={
            "task": task.name,
            "topic": task.topic,
            "key": task.message_key(message),
            "kwargs": message.kwargs,
            "attempts": message.attempt,
            "error": message.last_error,
            "replayed_at": None,
        },
    )
    return letter


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
