"""Shared bits of the benchmark scenarios: results, medians, logging."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Row:
    scenario: str
    figure: str
    target: str = ""
    met: bool | None = None  # None: informational, no target


@dataclass
class Result:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Raw figures for the charts (bench/run.py draws them), by chart.
    data: dict[str, object] = field(default_factory=dict)

    def row(self, scenario: str, figure: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(scenario, figure, target, met))
        say(f"  -> {scenario}: {figure}" + (f"  (target {target}: {'met' if met else 'MISSED'})" if target else ""))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def extend(self, other: Result) -> None:
        self.rows.extend(other.rows)
        self.notes.extend(other.notes)
        self.data.update(other.data)


def cpu_busy(seconds: float) -> float:
    """Share of all CPUs busy (not idle or waiting on I/O) over the next `seconds`."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]

    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return 1 - (idle2 - idle) / max(1, total2 - total)


def settle(*, max_wait: float = 60.0) -> None:
    """Start a measurement on a quiet machine: run the database's upkeep after a bulk load
    (vacuum, analyze, checkpoint) now rather than in the middle of the next scenario (that cost
    intake and drain runs a third of their rate), then wait until the CPUs are mostly idle."""
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:  # autocommit: VACUUM cannot run in a transaction
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")
    busy = cpu_busy(1.0)
    while busy > 0.15 and time.monotonic() - started < max_wait:
        busy = cpu_busy(1.0)
    say(f"settled in {time.monotonic() - started:.0f} s (CPUs {100 * busy:.0f}% busy)")


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def median(values) -> float:
    return statistics.median(values)


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a list of numbers."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def runs_text(values, fmt: str = "{:,.0f}") -> str:
    return ", ".join(fmt.format(v) for v in values)
