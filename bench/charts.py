"""Charts of a benchmark run, drawn by matplotlib as SVG files next to docs/benchmarks.md.

SVG, so that they are text in the repository (diffs stay small) and scale on any screen; the
file carries no date and a fixed id salt, so a chart of the same figures is the same file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here; must come before pyplot

import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "synchub-bench", "svg.fonttype": "none", "font.size": 10})

OURS = "#1f6feb"
PEER = "#9a6700"
OTHER = "#8c959f"


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)
    return path


def bar_chart(path: Path, *, title: str, unit: str, bars: list[tuple[str, float, bool]], log: bool = False) -> Path:
    """Horizontal bars (label, value, ours?), the value written at each bar's end."""
    figure, axes = plt.subplots(figsize=(7.5, 0.55 * len(bars) + 1.3))
    labels = [label for label, _, _ in bars][::-1]
    values = [value for _, value, _ in bars][::-1]
    colours = [OURS if ours else PEER for _, _, ours in bars][::-1]
    axes.barh(labels, values, color=colours)
    for y, value in enumerate(values):
        axes.text(value, y, f" {value:,.0f}", va="center")
    if log:
        axes.set_xscale("log")
    axes.set_xlabel(unit)
    axes.set_title(title)
    axes.margins(x=0.18)
    axes.spines[["top", "right"]].set_visible(False)
    return _save(figure, path)


def line_chart(
    path: Path,
    *,
    title: str,
    x_label: str,
    y_label: str,
    series: dict[str, list[tuple[float, float]]],
    log_x: bool = False,
    target: float | None = None,
    target_label: str = "target",
    y_from_zero: bool = True,
) -> Path:
    """One line per series of (x, y) points, with an optional horizontal target line."""
    figure, axes = plt.subplots(figsize=(7.5, 3.6))
    for name, points in series.items():
        xs = [x for x, _ in points]
        ys = [y for _, y in points]
        axes.plot(xs, ys, marker="o" if len(points) <= 12 else None, markersize=4, label=name)
    if target is not None:
        axes.axhline(target, color=OTHER, linestyle="--", linewidth=1, label=target_label)
    if log_x:
        axes.set_xscale("log")
    if y_from_zero:
        axes.set_ylim(bottom=0)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=9)
    axes.spines[["top", "right"]].set_visible(False)
    return _save(figure, path)
