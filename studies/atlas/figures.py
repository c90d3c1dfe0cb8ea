"""The atlas's figures: a forest plot per comparison (one row per workload, the pooled row last) and
an overview of every comparison's pooled Δ. Heatmaps and divergence maps are ``studies.heatmaps``'s.

Drawn with matplotlib's object API (a ``Figure`` saved through its own canvas, never pyplot), as
``studies.heatmaps`` does, so a server can render concurrently. PNG or SVG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from .models import ComparisonSummary, WorkloadRow

FORMATS = ("png", "svg")
DPI = 130
ROW_IN = 0.32
OUTCOME_COLOURS = {
    "a_less_sensitive": "#1a7f37",
    "b_less_sensitive": "#c0392b",
    "no_detectable_difference": "#555555",
    "inconclusive_too_few_seeds": "#b7950b",
    "never_trained": "#7d3c98",
    "flatter_but_worse": "#a04000",
}
OUTCOME_WORDS = {
    "a_less_sensitive": "Demon less sensitive",
    "b_less_sensitive": "Demon more sensitive",
    "no_detectable_difference": "no detectable difference",
    "inconclusive_too_few_seeds": "inconclusive",
    "never_trained": "an arm never trained",
    "flatter_but_worse": "flatter arm worse at its best",
}
POOLED_COLOUR = "#1f3a93"


def forest_plot(summary: ComparisonSummary, fmt: str = "png") -> bytes:
    """One comparison: each workload's Δ with its study's interval, then the pooled Δ (a diamond)."""
    rows: list[tuple[str, float | None, float | None, float | None, str, str]] = [
        (r.label, r.delta, r.low, r.high, OUTCOME_COLOURS.get(r.outcome or "", "#999999"), _row_note(r))
        for r in summary.rows
    ]
    pooled = summary.pooled
    note = f"k={pooled.k}, τ={pooled.tau:.2g}" if pooled.status == "ok" and pooled.tau is not None else pooled.status
    rows.append(("pooled (random effects)", pooled.estimate, pooled.low, pooled.high, POOLED_COLOUR, note))
    title = f"{summary.demon} vs {summary.baseline}: Δ {summary.figure or 'primary figure'}"
    return _forest(rows, title, xlabel=f"Δ (> 0: {summary.demon} less sensitive)", pooled_last=True, fmt=fmt)


def overview_plot(summaries: Sequence[ComparisonSummary], fmt: str = "png") -> bytes:
    """Every comparison's pooled Δ with its interval, one row each."""
    rows = [
        (
            f"{s.demon} vs {s.baseline}",
            s.pooled.estimate,
            s.pooled.low,
            s.pooled.high,
            POOLED_COLOUR,
            f"k={s.pooled.k}",
        )
        for s in summaries
    ]
    figure_name = next((s.figure for s in summaries if s.figure), "primary figure")
    return _forest(rows, f"Pooled Δ {figure_name} across workloads", xlabel="Δ (> 0: Demon less sensitive)", fmt=fmt)


def _row_note(row: WorkloadRow) -> str:
    if row.outcome is None:
        return "running"
    words = OUTCOME_WORDS.get(row.outcome, row.outcome)
    return words if row.low is not None else f"{words}; no interval"


def _forest(
    rows: list[tuple[str, float | None, float | None, float | None, str, str]],
    title: str,
    *,
    xlabel: str,
    pooled_last: bool = False,
    fmt: str,
) -> bytes:
    from matplotlib.figure import Figure

    if fmt not in FORMATS:
        raise ValueError(f"fmt: unknown format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    height = 1.05 + ROW_IN * max(1, len(rows))
    figure = Figure(figsize=(10.0, height), dpi=DPI)
    # inches: 2.4 for the row labels, 4 for the plot, 3.6 for each row's numbers and words
    ax = figure.add_axes((0.24, 0.6 / height, 0.40, 1 - 1.0 / height))
    n = len(rows)
    for index, (_label, value, low, high, colour, _note) in enumerate(rows):
        y = n - 1 - index
        pooled = pooled_last and index == n - 1
        if low is not None and high is not None:
            ax.plot([low, high], [y, y], color=colour, linewidth=2.2 if pooled else 1.6, solid_capstyle="butt")
        if value is not None:
            marker = "D" if pooled else "s"
            ax.plot([value], [y], marker=marker, color=colour, markersize=8 if pooled else 6, linestyle="none")
    if pooled_last and n > 1:
        ax.axhline(0.5, color="#bbbbbb", linewidth=0.8)
    ax.axvline(0.0, color="black", linewidth=0.9, linestyle="--")
    ax.set_yticks(range(n))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=8.5)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(xlabel, fontsize=8.5)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(title, fontsize=9.5, loc="left")
    for index, row in enumerate(rows):
        ax.annotate(
            _interval_text(row[1], row[2], row[3]) + ("  " + row[5] if row[5] else ""),
            xy=(1.02, n - 1 - index),
            xycoords=("axes fraction", "data"),
            fontsize=7.5,
            va="center",
            color=row[4],
        )
    return _save(figure, fmt)


def _interval_text(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "—"
    if low is None or high is None:
        return f"{value:+.3f}"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"


def _save(figure: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "svg":
        from matplotlib import rc_context

        with rc_context({"svg.fonttype": "none", "svg.hashsalt": "demonlab-atlas"}):
            figure.savefig(buffer, format="svg")
    else:
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
