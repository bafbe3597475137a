"""The audit trail of sync operations: what ran, on which item, with what outcome."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from .models import SyncEvent
from .tasks import Task, TaskMessage

if TYPE_CHECKING:
    from .inbox import IncomingEvent


@dataclass(frozen=True)
class SyncResult:
    """What a handler did, as it wants it recorded; handlers may return one."""

    action: str
    item_id: int | None = None
    external_id: str = ""
    external_event_id: str = ""
    # The fields sent or applied, by local name.
    fields: tuple[str, ...] = ()


def event_result(
    *, event: IncomingEvent, action: str, item_id: int | None = None, fields: Iterable[str] = ()
) -> SyncResult:
    """What handling the external `event` did, for the audit trail: the external object and
    event it was about, with `action` on the local item `item_id` and the `fields` written."""
    return SyncResult(
        action=action,
        item_id=item_id,
        external_id=event.object_id,
        external_event_id=event.event_id,
        fields=tuple(fields),
    )


def sync_event_build(
    *,
    task: Task,
    message: TaskMessage,
    outcome: str,
    duration_ms: float,
    result: SyncResult | None = None,
    error: str = "",
) -> SyncEvent:
    """The audit row of one handled message, unsaved: the worker saves a poll's rows at once."""
    kwargs = message.kwargs
    item_id = result.item_id if result and result.item_id is not None else kwargs.get("item_id")
    return SyncEvent(
        direction=task.direction,
        integration=task.integration,
        task=task.name,
        item_id=item_id if isinstance(item_id, int) else None,
        action=result.action if result else str(kwargs.get("action") or kwargs.get("event_type") or ""),
        outcome=outcome,
        error=error[:4000],
        duration_ms=round(duration_ms, 3),
        attempt=message.attempt,
        message_id=message.id,
        external_id=(result.external_id if result else "") or str(kwargs.get("external_id") or ""),
        external_event_id=(result.external_event_id if result else "") or str(kwargs.get("event_id") or ""),
        fields=sorted(result.fields) if result else [],
        origin=message.origin,
    )


def sync_events_record(events: list[SyncEvent]) -> None:
    SyncEvent.objects.bulk_create(events)


def sync_events_prune(*, older_than_days: float | None = None) -> int:
    days = settings.SYNC_EVENT_RETENTION_DAYS if older_than_days is None else older_than_days
    deleted, _ = SyncEvent.objects.filter(created_at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted
