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

    def row(self, scenario: str, figure: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(scenario, figure, target, met))
        say(f"  -> {scenario}: {figure}" + (f"  (target {target}: {'met' if met else 'MISSED'})" if target else ""))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def extend(self, other: Result) -> None:
        self.rows.extend(other.rows)
        self.notes.extend(other.notes)


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
