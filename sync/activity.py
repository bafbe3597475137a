"""Is it keeping up? The last hour of sync work, minute by minute, from the audit trail and the
backlog samples the hub keeps (no metrics server needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from .backlog import backlogs_latest
from .integrations import INWARD, OUTWARD
from .models import BacklogSample, SyncEvent

FAILED = (SyncEvent.Outcome.RETRYING, SyncEvent.Outcome.DEAD_LETTERED)


@dataclass
class ActivityMinute:
    start: datetime
    inward: int = 0  # changes applied here
    outward: int = 0  # changes sent out
    failures: int = 0  # operations that failed (retried or dead-lettered)
    waiting: int | None = None  # the largest backlog (lag + outbox) sampled in the minute; None: no sample


@dataclass
class Activity:
    minutes: list[ActivityMinute]
    sampled_at: datetime | None
    backlogs: list[BacklogSample] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return {
            "inward": sum(minute.inward for minute in self.minutes),
            "outward": sum(minute.outward for minute in self.minutes),
            "failures": sum(minute.failures for minute in self.minutes),
        }

    @property
    def outbox_backlog(self) -> int | None:
        return next((row.size for row in self.backlogs if row.source == BacklogSample.OUTBOX), None)

    @property
    def consumer_lags(self) -> list[BacklogSample]:
        return [row for row in self.backlogs if row.source != BacklogSample.OUTBOX]


def sync_activity(*, minutes: int = 60, now: datetime | None = None) -> Activity:
    """The last `minutes` whole minutes (the current one last), in three queries whatever the
    size of the trail: the audit rows of the window are counted by minute, direction and
    outcome (index sync_event_outcome ... created_at), the samples summed by minute."""
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    starts = [start + timedelta(minutes=index) for index in range(minutes)]
    by_minute = {minute: ActivityMinute(start=minute) for minute in starts}
    counted = (
        SyncEvent.objects.filter(created_at__gte=start)
        .annotate(minute=TruncMinute("created_at"))
        .values("minute", "direction", "outcome")
        .annotate(count=Count("id"))
        .order_by()
    )
    for row in counted:
        minute = by_minute.get(row["minute"])
        if minute is None:
            continue
        if row["outcome"] in FAILED:
            minute.failures += row["count"]
        elif row["direction"] == INWARD:
            minute.inward += row["count"]
        elif row["direction"] == OUTWARD:
            minute.outward += row["count"]
    _add_waiting(by_minute, start)
    sampled_at, backlogs = backlogs_latest()
    return Activity(minutes=list(by_minute.values()), sampled_at=sampled_at, backlogs=backlogs)


def _add_waiting(by_minute: dict[datetime, ActivityMinute], start: datetime) -> None:
    """Per minute, the largest total waiting (outbox plus every group's lag) of its samples."""
    totals = (
        BacklogSample.objects.filter(measured_at__gte=start)
        .values_list("measured_at")
        .annotate(total=Sum("size"))
        .order_by()
    )
    for measured_at, total in totals:
        minute = by_minute.get(measured_at.replace(second=0, microsecond=0))
        if minute is not None:
            minute.waiting = max(minute.waiting or 0, total)
