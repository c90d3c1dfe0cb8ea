"""The study's heatmaps as coloured grids: every arm's median cells on one shared colour scale, its
divergence-rate map, and each pair's difference map, as JSON the dashboard paints.

The server sends grids, never every trial, coloured here with matplotlib's colour maps (``viridis_r``
for scores, as the PNG heatmaps; ``Reds`` for divergence rates; ``RdBu_r`` for differences), so the
page only paints rectangles. Arms come in the sensitivity report's order (sorted, as the PNG and the
CLI) and an error metric is shown in percent where the PNG shows it so (``percent``). Computed like
the sensitivity report (``service.analysis``: cached per study progress) and stored with it when a
study finishes (``service.jobs.driver``), so it lives in the service layer, not the dashboard's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from studies.vocab import Split

from . import analysis
from .db import dal
from .db.engine import session_scope

SCORE_CMAP = "viridis_r"  # as studies.heatmaps: bright is good (low raw values)
RATE_CMAP = "Reds"
DIFFERENCE_CMAP = "RdBu_r"  # below 0 (first arm lower, i.e. better) blue, above 0 red, white at 0
MISSING = "#d9d9d9"
LEGEND_STOPS = 17  # colour-bar stops: enough for a smooth gradient on a log scale


def hex_colour(rgba: Any) -> str:
    r, g, b = (round(float(c) * 255) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def colour_norm(values: list[float], percent: bool) -> Any:
    """The PNG heatmaps' rule: a log scale when the values are positive and span 10× or more; one value
    alone is padded by half a unit of what is shown (half a point for a percent: the PNG pads after
    converting to percent, and ±0.5 of a fraction read 16.7 … 117% on the page)."""
    from matplotlib.colors import LogNorm, Normalize

    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high <= low:
        pad = 0.005 if percent else 0.5
        low, high = low - pad, high + pad
    return LogNorm(low, high) if low > 0 and high / low >= 10 else Normalize(low, high)


def heatmaps(engine: Engine, study_id: str, *, metric: str | None, split: Split) -> dict[str, Any]:
    """Every arm's median grid, coloured on one scale, and its divergence-rate map (cached per study
    progress, like every results endpoint)."""
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
    spec = analysis.study_spec(study)
    name, kind = analysis.metric_kind(spec, metric)
    progress = analysis.progress_key(study)
    compute = lambda: _heatmaps(engine, study, spec, name, kind, split, progress)  # noqa: E731
    return dict(analysis.throttled_report("dashboard-heatmaps", study, (name, split), compute, engine=engine))


def _heatmaps(
    engine: Engine, study: Any, spec: Any, name: str, kind: Any, split: str, progress: tuple[Any, ...]
) -> dict[str, Any]:
    from matplotlib import colormaps

    from studies.metrics import cell_tables, default_pairs
    from studies.units import is_percent

    frame = analysis.scores_frame(engine, study.id, kind, progress)  # shared with /sensitivity of the same page
    axes = analysis.study_axes(spec, frame, study)
    arms = sorted(a.name for a in spec.arms)  # the order of the sensitivity report, the PNG and the CLI
    fail = spec.y_fail(kind)
    tables = cell_tables(frame, axes, fail, arms, split=split, empty=True)  # an arm not sampled yet: missing cells
    medians = {arm: np.asarray(tables[arm].raw_median, dtype=float) for arm in arms}
    finite = [float(v) for m in medians.values() for v in m.ravel() if math.isfinite(v)]
    percent = is_percent(name, np.stack(list(medians.values())), fail)
    norm = colour_norm(finite, percent)
    scores, rates = colormaps[SCORE_CMAP], colormaps[RATE_CMAP]
    body_arms = [_arm_body(arm, tables[arm], medians[arm], scores, rates, norm) for arm in arms]
    return {
        "study_id": study.id,
        "status": study.status.value,
        "metric": name,
        "split": split,
        "stat": "median",
        "lower_is_better": True,
        "percent": percent,
        "y_fail": fail,
        "seeds": len(axes.seeds),
        "lrs": [float(v) for v in axes.lrs],
        "betas": [float(v) for v in axes.betas],
        "scale": {
            "min": min(finite) if finite else None,
            "max": max(finite) if finite else None,
            "log": type(norm).__name__ == "LogNorm",
            "legend": [{"value": v, "colour": hex_colour(scores(float(norm(v))))} for v in legend_values(norm, finite)],
        },
        "rate_legend": [{"value": v, "colour": hex_colour(rates(v))} for v in np.linspace(0.0, 1.0, LEGEND_STOPS)],
        "missing_colour": MISSING,
        "arms": body_arms,
        "differences": _differences([(a, b) for a, b in default_pairs(arms)], medians),
    }


def _arm_body(arm: str, table: Any, values: Any, scores: Any, rates: Any, norm: Any) -> dict[str, Any]:
    """One arm's cells: medians and their colours, counts, the median's interval, divergence rates."""
    n = np.asarray(table.n_results, dtype=float)
    rate = np.divide(np.asarray(table.n_diverged, dtype=float), n, out=np.full(n.shape, np.nan), where=n > 0)
    return {
        "arm": arm,
        "values": matrix(values),
        "colours": cell_colours(scores, norm(np.ma.masked_invalid(values)), values),
        "n": np.asarray(table.n_results).astype(int).tolist(),
        "diverged": np.asarray(table.n_diverged).astype(int).tolist(),
        "missing": np.asarray(table.n_missing).astype(int).tolist(),
        "interval_low": matrix(table.raw_interval_low),
        "interval_high": matrix(table.raw_interval_high),
        # the level only where there is an interval (as /grid's median_level): null, not 0
        "interval_level": matrix(
            np.where(
                np.isin(np.asarray(table.interval_status), ("ok", "reduced_level")),
                table.interval_level,
                np.nan,
            )
        ),
        "divergence_rate": matrix(rate),
        "divergence_colours": cell_colours(rates, rate, rate),
    }


def _differences(pairs: list[tuple[str, str]], medians: dict[str, Any]) -> dict[str, Any]:
    """Each default pair's cell-by-cell difference of medians, first arm − second (raw units: below 0 the
    first arm's score is lower, i.e. better), on one symmetric diverging scale for every pair."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    values = {pair: medians[pair[0]] - medians[pair[1]] for pair in pairs}
    finite = [abs(float(v)) for d in values.values() for v in d.ravel() if math.isfinite(v)]
    bound = max(finite) if finite and max(finite) > 0 else 1.0
    norm, cmap = Normalize(-bound, bound), colormaps[DIFFERENCE_CMAP]
    return {
        "max_abs": max(finite) if finite else None,
        "legend": [
            {"value": float(v), "colour": hex_colour(cmap(norm(v)))} for v in np.linspace(-bound, bound, LEGEND_STOPS)
        ],
        "pairs": [
            {"arm_a": a, "arm_b": b, "values": matrix(d), "colours": cell_colours(cmap, norm(d), d)}
            for (a, b), d in values.items()
        ],
    }


def matrix(values: Any) -> list[list[float | None]]:
    """A float matrix as JSON: NaN and infinities as null."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in np.asarray(values, dtype=float)]


def cell_colours(cmap: Any, normed: Any, values: Any) -> list[list[str]]:
    """Hex colours of a matrix (one colour-map call for all cells); grey where the value is missing."""
    rgba = cmap(np.ma.filled(np.ma.asarray(normed, dtype=float), np.nan))
    return [
        [MISSING if math.isnan(values[i][j]) else hex_colour(rgba[i][j]) for j in range(len(values[i]))]
        for i in range(len(values))
    ]


def legend_values(norm: Any, finite: list[float], steps: int = LEGEND_STOPS) -> list[float]:
    if not finite:
        return []
    return [float(norm.inverse(i / (steps - 1))) for i in range(steps)]
