"""Heatmaps of a study's grid: one panel per arm, lr down the rows and β_init across (as the
paper's Fig. 2), each cell annotated with its median raw value over seeds; one colour scale shared
by every arm; under each arm its divergence-rate map ("where does training blow up?").

What it is not: a metric. Numbers come from ``studies.metrics.cell_tables``. Drawing uses
matplotlib's object API (a ``Figure`` saved through the Agg/SVG canvases), never pyplot, so the
service can render concurrently; matplotlib is imported inside the functions.

Marks: a cell whose every result diverged shows "×" over hatching; a cell where some diverged notes
"d/n✗" under its value; a cell missing some seeds notes "n=r/S"; a cell without results is grey.
"""

from __future__ import annotations

import io
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from studies.metrics import CellTable, GridAxes, cell_tables
from studies.units import is_percent

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar
    from matplotlib.colors import Colormap, Normalize
    from matplotlib.figure import Figure

FORMATS = ("png", "svg")
DPI = 130
# Layout in inches, fixed rather than computed (constrained layout costs more than the drawing).
CELL_WIDTH_IN = 0.62
CELL_HEIGHT_IN = 0.3
MIN_PANEL_IN = (1.8, 1.8)
LEFT_IN = 0.8  # lr tick labels and the axis label
GAP_IN = 0.2  # between two arms' panels
RIGHT_IN = 1.35  # the colour bars and their labels
TOP_IN = 0.95  # the figure title (two lines) and the first row's panel titles
TITLE_LINE_IN = 0.17  # one line of the 10-pt title
MIDDLE_IN = 0.8  # x labels of the first row, panel titles of the second
BOTTOM_IN = 0.5
DIVERGED_MARK = "×"
PARTIAL_MARK = "✗"
MISSING_COLOUR = "#d9d9d9"

# SVG text is written as <text> (searchable, small) only while rcParams say so; rcParams are global,
# so SVG saves take turns.
_SVG_LOCK = threading.Lock()


def panel_size(n_lrs: int, n_betas: int) -> tuple[float, float]:
    """Width and height in inches of one arm's panel (small grids get bigger cells)."""
    return max(n_betas * CELL_WIDTH_IN, MIN_PANEL_IN[0]), max(n_lrs * CELL_HEIGHT_IN, MIN_PANEL_IN[1])


def figure_size(n_arms: int, n_lrs: int, n_betas: int) -> tuple[float, float]:
    """Width and height in inches of the figure for this many arms, lrs and β_inits."""
    panel_w, panel_h = panel_size(n_lrs, n_betas)
    width = LEFT_IN + n_arms * panel_w + (n_arms - 1) * GAP_IN + RIGHT_IN
    height = TOP_IN + 2 * panel_h + MIDDLE_IN + BOTTOM_IN
    return width, height


def render_heatmap(
    scores: pd.DataFrame,
    axes: GridAxes,
    y_fail: float,
    arms: Sequence[str] | None = None,
    split: str = "test",
    metric_label: str = "error",
    fmt: str = "png",
    note: str | None = None,
    value_range: tuple[float, float] | None = None,
) -> bytes:
    """The heatmaps of ``arms`` (default: every arm with trials, sorted) as PNG or SVG bytes.

    Values are raw (lower is better) medians over seeds on ``split``; error rates in [0, 1] are
    shown in percent. ``scores`` and ``y_fail`` are as for ``studies.metrics``. ``note`` is added
    to the caption (e.g. the success shares with the target they used). ``value_range`` (raw units) fixes
    the colour scale, so that several figures share one (the atlas: one scale per workload).
    """
    if fmt not in FORMATS:
        raise ValueError(f"Invalid fmt: {fmt!r} (expected one of {FORMATS})")
    figure = build_figure(
        scores, axes, y_fail, arms=arms, split=split, metric_label=metric_label, note=note, value_range=value_range
    )
    return figure_bytes(figure, fmt)


def write_heatmaps(
    scores: pd.DataFrame,
    axes: GridAxes,
    y_fail: float,
    out_dir: str | Path,
    stem: str = "heatmap",
    arms: Sequence[str] | None = None,
    split: str = "test",
    metric_label: str = "error",
    note: str | None = None,
) -> list[Path]:
    """Draw once, write ``<stem>.png`` and ``<stem>.svg`` under ``out_dir``; return their paths."""
    figure = build_figure(scores, axes, y_fail, arms=arms, split=split, metric_label=metric_label, note=note)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = directory / f"{stem}.{fmt}"
        path.write_bytes(figure_bytes(figure, fmt))
        paths.append(path)
    return paths


def build_figure(
    scores: pd.DataFrame,
    axes: GridAxes,
    y_fail: float,
    *,
    arms: Sequence[str] | None = None,
    split: str = "test",
    metric_label: str = "error",
    note: str | None = None,
    value_range: tuple[float, float] | None = None,
) -> Figure:
    """The matplotlib ``Figure`` behind ``render_heatmap`` (row 1: medians, row 2: divergence)."""
    from matplotlib.figure import Figure

    tables = cell_tables(scores, axes, y_fail, None if arms is None else list(arms), split=split)
    if not tables:
        raise ValueError("no trials to draw")
    medians = np.stack([t.raw_median for t in tables.values()])
    percent = is_percent(metric_label, medians, y_fail)
    scale = 100.0 if percent else 1.0
    unit = " (%)" if percent else ""
    norm = _norm(medians * scale if value_range is None else np.asarray(value_range, dtype=float) * scale)
    cmap = _colormap("viridis_r")
    rate_cmap = _colormap("Reds")

    n_lr, n_beta, _ = axes.shape
    width, height = figure_size(len(tables), n_lr, n_beta)
    title = f"median {split} {metric_label} over {len(axes.seeds)} seeds, lower is better: {', '.join(tables)}"
    if note:
        title += f"; {note}"
    chars = max(int(width * 11), 30)  # about what fits at 9–10 pt
    title = textwrap.fill(title, chars)
    lines = title.count("\n") + 1
    height += max(0, lines - 2) * TITLE_LINE_IN  # TOP_IN holds two lines; a longer note gets room
    figure = Figure(figsize=(width, height), dpi=DPI)
    panel_w, panel_h = panel_size(n_lr, n_beta)
    rows_y = (BOTTOM_IN + panel_h + MIDDLE_IN, BOTTOM_IN)  # lower edges, in inches

    def box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
        return (x / width, y / height, w / width, h / height)

    for column, (arm, table) in enumerate(tables.items()):
        x = LEFT_IN + column * (panel_w + GAP_IN)
        top = figure.add_axes(box(x, rows_y[0], panel_w, panel_h))
        bottom = figure.add_axes(box(x, rows_y[1], panel_w, panel_h))
        image = top.imshow(np.ma.masked_invalid(table.raw_median * scale), cmap=cmap, norm=norm, aspect="auto")
        _annotate_values(top, table, scale, cmap, norm)
        top.set_title(arm, fontsize=10, fontweight="bold")
        rates = bottom.imshow(
            np.ma.masked_invalid(table.divergence_rate), cmap=rate_cmap, vmin=0.0, vmax=1.0, aspect="auto"
        )
        _annotate_divergence(bottom, table, rate_cmap)
        bottom.set_title(f"{arm}: divergence rate", fontsize=9)
        for ax in (top, bottom):
            _style_axes(ax, axes, first=column == 0)
    bar_x = width - RIGHT_IN + 0.2
    bar = figure.colorbar(
        image,
        cax=figure.add_axes(box(bar_x, rows_y[0], 0.16, panel_h)),
    )
    bar.set_label(f"median {metric_label}{unit}", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    _plain_ticks(bar, norm)
    rate_bar = figure.colorbar(rates, cax=figure.add_axes(box(bar_x, rows_y[1], 0.16, panel_h)))
    rate_bar.set_label("diverged / results", fontsize=8)
    rate_bar.ax.tick_params(labelsize=7)
    legend = (
        f"{DIVERGED_MARK} all seeds diverged · d/n{PARTIAL_MARK} d of n diverged · n=r/S r of S seeds · grey: no result"
    )
    figure.text(0.5, 1 - 0.08 / height, title, ha="center", va="top", fontsize=10)
    below = 0.08 + max(lines, 2) * TITLE_LINE_IN + 0.02  # the legend under the title's last line
    figure.text(0.5, 1 - below / height, textwrap.fill(legend, int(chars * 1.2)), ha="center", va="top", fontsize=8)
    return figure


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """``figure`` as PNG or SVG bytes, the same for the same figure (no date, a fixed SVG id salt)."""
    buffer = io.BytesIO()
    if fmt == "svg":
        import matplotlib

        with _SVG_LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "demonlab"}):
            figure.savefig(buffer, format="svg", metadata={"Date": None})
    else:
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _norm(values: np.ndarray[Any, Any]) -> Normalize:
    from matplotlib.colors import LogNorm, Normalize

    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    # A log scale keeps the good region readable when the diverged corner is 10× worse.
    return LogNorm(low, high) if low > 0 and high / low >= 10 else Normalize(low, high)


def _plain_ticks(bar: Colorbar, norm: Normalize) -> None:
    """1, 2, 5, 10, 20 … on a log colour bar, rather than 2×10¹."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if isinstance(norm, LogNorm):
        bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())


def _colormap(name: str) -> Colormap:
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=MISSING_COLOUR)


def _text_colour(rgba: tuple[float, float, float, float]) -> str:
    luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return "black" if luminance > 0.5 else "white"


def _format_value(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.1f}" if value < 99.95 else f"{value:.0f}"
    return f"{value:.3g}"


def _annotate_values(ax: Axes, table: CellTable, scale: float, cmap: Colormap, norm: Normalize) -> None:
    from matplotlib.patches import Rectangle

    n_seeds = len(table.axes.seeds)
    results, diverged = table.n_results, table.n_diverged
    for i, j in np.ndindex(results.shape):
        n, d = int(results[i, j]), int(diverged[i, j])
        if n == 0:
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="#555555")
            continue
        value = float(table.raw_median[i, j]) * scale
        colour = _text_colour(cmap(norm(value)))
        if d == n:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx", edgecolor="#888888", linewidth=0))
            ax.text(j, i, DIVERGED_MARK, ha="center", va="center", fontsize=11, color=colour, fontweight="bold")
            continue
        notes = []
        if d:
            notes.append(f"{d}/{n}{PARTIAL_MARK}")
        if n < n_seeds:
            notes.append(f"n={n}/{n_seeds}")
        main_y = i - 0.12 if notes else i
        ax.text(j, main_y, _format_value(value, scale != 1.0), ha="center", va="center", fontsize=7, color=colour)
        if notes:
            ax.text(j, i + 0.27, " ".join(notes), ha="center", va="center", fontsize=5.5, color=colour)


def _annotate_divergence(ax: Axes, table: CellTable, cmap: Colormap) -> None:
    rates, results, diverged = table.divergence_rate, table.n_results, table.n_diverged
    for i, j in np.ndindex(results.shape):
        if results[i, j] == 0:
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="#555555")
        elif diverged[i, j] > 0:
            colour = _text_colour(cmap(float(rates[i, j])))
            ax.text(j, i, f"{diverged[i, j]}/{results[i, j]}", ha="center", va="center", fontsize=6, color=colour)


def _style_axes(ax: Axes, axes: GridAxes, *, first: bool) -> None:
    ax.set_xticks(range(len(axes.betas)), [f"{b:g}" for b in axes.betas], fontsize=7)
    ax.set_xlabel("β_init", fontsize=8)
    ax.set_yticks(range(len(axes.lrs)), [_lr_label(lr) for lr in axes.lrs], fontsize=7)
    if first:
        ax.set_ylabel("learning rate", fontsize=8)
    else:
        ax.tick_params(labelleft=False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _lr_label(lr: float) -> str:
    """1e-3, 3.2e-3: short labels for log-spaced learning rates."""
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
