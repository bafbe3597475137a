"""How sync statuses look on the staff screens (one place for the server and the live updates)."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.models import Customer
from catalog.selectors import CUSTOMER_SYNC_STATUSES
from sync.integrations import integrations_for

STATUS_LABELS: dict[str, str] = dict(CUSTOMER_SYNC_STATUSES)
# Bootstrap colour names: the badge classes and the chart's strokes use the same ones.
STATUS_COLOURS: dict[str, str] = {
    "synced": "success",
    "pending": "warning",
    "failed": "danger",
    "unsynced": "secondary",
}


def customer_integration() -> str:
    """The integration whose sync status the customer screens show: the first registered one
    that syncs customers (`sync.integrations`); empty when none does (every customer unsynced)."""
    registered = integrations_for(Customer)
    return registered[0].name if registered else ""


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def status_badge_class(status: str) -> str:
    return f"text-bg-{STATUS_COLOURS.get(status, 'light')}"


@dataclass(frozen=True)
class ChartSegment:
    status: str
    label: str
    count: int
    percent: float
    colour: str
    # Circle drawn with pathLength=100: the arc's length and where it starts, in percent.
    dasharray: str
    dashoffset: float


def status_chart(counts: dict[str, int]) -> list[ChartSegment]:
    """The donut chart's arcs, one per status, in CUSTOMER_SYNC_STATUSES order."""
    total = sum(counts.get(status, 0) for status, _ in CUSTOMER_SYNC_STATUSES)
    segments = []
    start = 0.0
    for status, label in CUSTOMER_SYNC_STATUSES:
        count = counts.get(status, 0)
        percent = 100.0 * count / total if total else 0.0
        segments.append(
            ChartSegment(
                status=status,
                label=label,
                count=count,
                percent=round(percent, 1),
                colour=STATUS_COLOURS[status],
                dasharray=f"{percent:.3f} {100 - percent:.3f}",
                dashoffset=round(-start, 3),
            )
        )
        start += percent
    return segments
