"""The dashboard's "is it keeping up?" chart, drawn as server-side SVG (no script, no CDN) from
`sync.activity`: changes in and out and failures per minute, and what was waiting."""

from __future__ import annotations

from dataclasses import dataclass

from sync.activity import Activity, ActivityMinute

WIDTH = 600
HEIGHT = 120


@dataclass(frozen=True)
class ChartLine:
    key: str
    label: str
    colour: str  # a Bootstrap colour name, as the status chart's
    points: str  # an SVG polyline's points
    total: int
    latest: int


def _points(values: list[int | None], ceiling: int) -> str:
    """Polyline points across the chart's width; a minute without a value (no sample) is
    skipped, not drawn as zero."""
    step = WIDTH / max(1, len(values) - 1)
    return " ".join(
        f"{index * step:.1f},{HEIGHT - HEIGHT * value / ceiling:.1f}"
        for index, value in enumerate(values)
        if value is not None
    )


def _line(key: str, label: str, colour: str, values: list[int | None], ceiling: int) -> ChartLine:
    known = [value for value in values if value is not None]
    return ChartLine(
        key=key,
        label=label,
        colour=colour,
        points=_points(values, ceiling),
        total=sum(known),
        latest=known[-1] if known else 0,
    )


def activity_chart(activity: Activity) -> dict:
    """Template context of `console/_activity.html`."""
    minutes: list[ActivityMinute] = activity.minutes
    flows = {
        "outward": [minute.outward for minute in minutes],
        "inward": [minute.inward for minute in minutes],
        "failures": [minute.failures for minute in minutes],
    }
    flow_ceiling = max([1, *(value for values in flows.values() for value in values)])
    waiting = [minute.waiting for minute in minutes]
    waiting_ceiling = max([1, *(value for value in waiting if value is not None)])
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "flow_lines": [
            _line("outward", "Sent out", "primary", flows["outward"], flow_ceiling),
            _line("inward", "Applied here", "success", flows["inward"], flow_ceiling),
            _line("failures", "Failed", "danger", flows["failures"], flow_ceiling),
        ],
        "flow_ceiling": flow_ceiling,
        "waiting_line": _line("waiting", "Waiting (lag + outbox)", "warning", waiting, waiting_ceiling),
        "waiting_ceiling": waiting_ceiling,
        "first_minute": minutes[0].start if minutes else None,
        "last_minute": minutes[-1].start if minutes else None,
        "activity": activity,
    }
