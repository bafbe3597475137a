"""The inbox: which incoming external events to apply, and which to skip, for a batch at once.

External systems deliver at least once and in any order. Each event is applied once (its id is
recorded), an event older than one already applied for the same object is stale, news of an
object deleted on either side (a tombstone, or an earlier delete event) is ignored, and an event
whose payload may be older than the object's state (the same second as a newer one, or as our
own last push) is ambiguous: its integration reads the object's current state instead.

Everything is read in a few statements per batch (`Inbox.load`), not per event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, F, Max, OuterRef, Q, Subquery, When
from django.utils import timezone

from .models import InboxEvent, Tombstone
from .tombstones import tombstone_ignored, tombstones_alive


@dataclass(frozen=True)
class IncomingEvent:
    event_id: str
    event_type: str
    object_id: str  # the external object the event is about
    occurred_at: datetime | None  # when the external system says it happened
    deletes: bool = False  # the event reports the object's deletion
    local_id: int | None = None  # the local item the object names as its own, if any


@dataclass(frozen=True)
class _Earlier:
    latest: datetime | None = None
    deleted: bool = False


def inbox_skip_reason(
    event: IncomingEvent,
    *,
    seen: bool,
    tombstoned: str | None,
    latest: datetime | None,
    deleted_earlier: bool,
    source: str,
) -> str | None:
    """The inbox's decision, pure: why `event` is not to be applied (the audit trail's action),
    or None to apply it. `seen`: its id was handled before; `tombstoned`: why a live tombstone
    of its object ignores it; `latest`: when the newest event handled for its object happened;
    `deleted_earlier`: a delete of its object was handled."""
    if seen:
        return "duplicate"
    if tombstoned is not None:
        return tombstoned
    if deleted_earlier and not event.deletes:
        return f"ignored: deleted in {source.title()}"
    if event.occurred_at is not None and latest is not None and event.occurred_at < latest:
        return "ignored: stale"
    return None


def payload_ambiguous(
    occurred_at: datetime | None, *, latest: datetime | None, last_pushed_at: datetime | None
) -> bool:
    """Whether a payload of `occurred_at` may be older than its object's state now, pure:
    external timestamps are whole seconds, so an event of the same second as the newest one
    handled (`latest`) or as our own last write there (`last_pushed_at`) may predate them."""
    if occurred_at is None or (latest is not None and occurred_at <= latest):
        return True
    return last_pushed_at is not None and occurred_at <= last_pushed_at


class Inbox:
    """The inbox's state for one batch of events of `source` (distinct objects)."""

    def __init__(self, *, source: str, events: list[IncomingEvent]) -> None:
        self.source = source
        event_ids = [event.event_id for event in events]
        object_ids = {event.object_id for event in events}
        local_ids = {event.local_id for event in events if event.local_id is not None}
        # One statement for the repeats and each object's earlier events (they were two round
        # trips, each of which waits for PostgreSQL's turn on a busy machine): rows are grouped by
        # object and by whether they are one of this batch's events (its id, else NULL).
        rows = (
            InboxEvent.objects.filter(source=source)
            .filter(Q(event_id__in=event_ids) | Q(object_id__in=object_ids))
            .annotate(seen_id=Case(When(event_id__in=event_ids, then="event_id"), default=None))
            .values("object_id", "seen_id")
            .annotate(latest=Max("occurred_at"), deletions=Count("pk", filter=Q(event_type__endswith=".deleted")))
            .values_list("object_id", "seen_id", "latest", "deletions")
        )
        self._seen: set[str] = set()
        self._earlier: dict[str, _Earlier] = {}
        for object_id, seen_id, latest, deletions in rows:
            if seen_id is not None:
                self._seen.add(seen_id)
            else:
                self._earlier[object_id] = _Earlier(latest, bool(deletions))
        tombstones = tombstones_alive(integration_type=source).filter(
            Q(external_id__in=object_ids) | Q(item_id__in=local_ids)
        )
        self._tombstones_by_object: dict[str, Tombstone] = {}
        self._tombstones_by_item: dict[int, Tombstone] = {}
        for tombstone in tombstones.order_by("id"):  # the newest wins
            if tombstone.external_id:
                self._tombstones_by_object[tombstone.external_id] = tombstone
            if tombstone.item_id is not None:
                self._tombstones_by_item[tombstone.item_id] = tombstone
        self._applied: list[IncomingEvent] = []

    def tombstone_of(self, event: IncomingEvent) -> Tombstone | None:
        by_item = self._tombstones_by_item.get(event.local_id) if event.local_id is not None else None
        return self._tombstones_by_object.get(event.object_id) or by_item

    def skip_reason(self, event: IncomingEvent) -> str | None:
        """The audit trail's action when the event is not to be applied, else None."""
        tombstone = self.tombstone_of(event)
        earlier = self._earlier.get(event.object_id, _Earlier())
        return inbox_skip_reason(
            event,
            seen=event.event_id in self._seen,
            tombstoned=tombstone_ignored(tombstone) if tombstone is not None else None,
            latest=earlier.latest,
            deleted_earlier=earlier.deleted,
            source=self.source,
        )

    def is_ambiguous(self, event: IncomingEvent, *, last_pushed_at: datetime | None) -> bool:
        """Whether the payload may be older than the object's state now (`last_pushed_at`: when
        we last wrote the object there)."""
        latest = self._earlier.get(event.object_id, _Earlier()).latest
        return payload_ambiguous(event.occurred_at, latest=latest, last_pushed_at=last_pushed_at)

    def mark_handled(self, event: IncomingEvent) -> None:
        """The event was applied (or deliberately ignored): it must not be applied again."""
        self._applied.append(event)

    def record(self) -> None:
        """Store the handled events, in the caller's transaction (one statement)."""
        InboxEvent.objects.bulk_create(_rows(self.source, self._applied))


def _rows(source: str, events: Iterable[IncomingEvent]) -> list[InboxEvent]:
    return [
        InboxEvent(
            source=source,
            event_id=event.event_id,
            event_type=event.event_type,
            object_id=event.object_id,
            occurred_at=event.occurred_at,
        )
        for event in events
    ]


def inbox_prune() -> int:
    """Forget events handled more than SYNC_INBOX_RETENTION_DAYS ago, except each object's newest
    event and its deletions: staleness and "deleted there" are decided by those, so a late
    redelivery of a forgotten event is still ignored as stale. The inbox then grows with the
    objects, not with every event ever received (each batch reads its objects' history)."""
    cutoff = timezone.now() - timedelta(days=settings.SYNC_INBOX_RETENTION_DAYS)
    newest = (
        InboxEvent.objects.filter(source=OuterRef("source"), object_id=OuterRef("object_id"))
        .order_by(F("occurred_at").desc(nulls_last=True), "-id")
        .values("id")[:1]
    )
    deleted, _ = (
        InboxEvent.objects.filter(processed_at__lt=cutoff)
        .exclude(event_type__endswith=".deleted")
        .exclude(id=Subquery(newest))
        .delete()
    )
    return deleted
