"""One item's sync story, newest first: every operation of the audit trail in both directions,
the conflicts met (both values, the one kept, staff's resolution) and its tombstones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .models import DeadLetter, SyncConflict, SyncEvent, Tombstone

TIMELINE_LIMIT = 100


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "operation", "conflict" or "tombstone"
    event: SyncEvent | None = None
    conflict: SyncConflict | None = None
    tombstone: Tombstone | None = None
    # The dead letter an operation ended in (to replay it from the timeline), if any.
    dead_letter: DeadLetter | None = None


def item_timeline(*, item_id: int, external_ids: Sequence[str] = (), limit: int = TIMELINE_LIMIT) -> list[TimelineEntry]:
    """The newest `limit` entries of the item `item_id` (which may be deleted: the trail keeps
    it), with the operations about its `external_ids` that failed before they could name it (a
    webhook that could not be applied); five queries at most whatever the length of its history
    (indexes sync_event_item and sync_event_unplaced)."""
    events = list(SyncEvent.objects.filter(item_id=item_id).order_by("-id")[:limit])
    if external_ids:
        unplaced = SyncEvent.objects.filter(item_id__isnull=True, external_id__in=list(external_ids))
        events = sorted([*events, *unplaced.order_by("-id")[:limit]], key=lambda event: event.pk, reverse=True)[:limit]
    conflicts = list(SyncConflict.objects.filter(catalog_item_id=item_id).order_by("-id")[:limit])
    tombstones = list(Tombstone.objects.filter(item_id=item_id).order_by("-id")[:limit])
    dead_message_ids = [event.message_id for event in events if event.outcome == SyncEvent.Outcome.DEAD_LETTERED]
    letters = (
        {letter.message_id: letter for letter in DeadLetter.objects.filter(message_id__in=dead_message_ids)}
        if dead_message_ids
        else {}
    )
    entries = [
        TimelineEntry(
            at=event.created_at,
            kind="operation",
            event=event,
            # Every attempt of a message shares its id: the letter belongs to the last one.
            dead_letter=letters.get(event.message_id) if event.outcome == SyncEvent.Outcome.DEAD_LETTERED else None,
        )
        for event in events
    ]
    entries += [TimelineEntry(at=conflict.created_at, kind="conflict", conflict=conflict) for conflict in conflicts]
    entries += [TimelineEntry(at=tombstone.deleted_at, kind="tombstone", tombstone=tombstone) for tombstone in tombstones]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:limit]
