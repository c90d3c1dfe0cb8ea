"""JSON the dashboard draws from: every arm's heatmap cells on one shared colour scale.

The server sends grids, never every trial: one ``/grid`` per arm (cached per study progress by
``service.analysis``), coloured here with matplotlib's colour maps (``viridis_r`` for scores, as the
PNG heatmaps; ``Reds`` for divergence rates), so the page only paints rectangles.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.engine import Engine

from .. import analysis
from ..api.deps import EngineDep
from ..db import dal
from ..db.engine import session_scope

router = APIRouter(prefix="/studies/{study_id}", tags=["dashboard"])

CELL_INTERVAL_LEVEL = 0.95  # /grid's ci_low/ci_high: the 95% percentile bootstrap of the median
SCORE_CMAP = "viridis_r"  # as studies.heatmaps: bright is good (low raw values)
RATE_CMAP = "Reds"
MISSING = "#d9d9d9"


def _hex(rgba: Any) -> str:
    r, g, b = (round(float(c) * 255) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _norm(values: list[float]) -> Any:
    """The PNG heatmaps' rule: a log scale when the values are positive and span 10× or more."""
    from matplotlib.colors import LogNorm, Normalize

    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return LogNorm(low, high) if low > 0 and high / low >= 10 else Normalize(low, high)


def heatmaps(engine: Engine, study_id: str, *, metric: str | None, split: str) -> dict[str, Any]:
    """Every arm's median grid, coloured on one scale, and its divergence-rate map."""
    from matplotlib import colormaps

    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
    arms = [a["name"] for a in study.spec.get("arms", [])]
    grids = [analysis.grid(engine, study_id, arm=arm, metric=metric, split=split, stat="median") for arm in arms]
    finite = [v for g in grids for row in g["values"] for v in row if v is not None and math.isfinite(v)]
    norm = _norm(finite)
    scores, rates = colormaps[SCORE_CMAP], colormaps[RATE_CMAP]
    body_arms = []
    for g in grids:
        colours, rate_colours, rate_values = [], [], []
        for i, row in enumerate(g["values"]):
            colours.append([MISSING if v is None else _hex(scores(float(norm(v)))) for v in row])
            rate_row = [(g["diverged"][i][j] / n) if (n := g["n"][i][j]) else None for j in range(len(row))]
            rate_values.append(rate_row)
            rate_colours.append([MISSING if r is None else _hex(rates(r)) for r in rate_row])
        body_arms.append(
            {
                "arm": g["arm"],
                "values": g["values"],
                "colours": colours,
                "n": g["n"],
                "diverged": g["diverged"],
                "missing": g["missing"],
                "ci_low": g["ci_low"],
                "ci_high": g["ci_high"],
                "divergence_rate": rate_values,
                "divergence_colours": rate_colours,
            }
        )
    legend_values = _legend(norm, finite)
    return {
        "study_id": study_id,
        "status": study.status.value,
        "metric": grids[0]["metric"] if grids else metric,
        "split": split,
        "stat": "median",
        "lower_is_better": True,
        "interval_level": CELL_INTERVAL_LEVEL,
        "seeds": len(_seeds(study.spec)),
        "lrs": grids[0]["lrs"] if grids else [],
        "betas": grids[0]["betas"] if grids else [],
        "scale": {
            "min": min(finite) if finite else None,
            "max": max(finite) if finite else None,
            "log": type(norm).__name__ == "LogNorm",
            "legend": [{"value": v, "colour": _hex(scores(float(norm(v))))} for v in legend_values],
        },
        "arms": body_arms,
    }


def _legend(norm: Any, finite: list[float], steps: int = 6) -> list[float]:
    if not finite:
        return []
    return [float(norm.inverse(i / (steps - 1))) for i in range(steps)]


def _seeds(spec: dict[str, Any]) -> list[Any]:
    seeds = spec.get("seeds", [])
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds or [])


@router.get("/heatmaps")
def get_heatmaps(
    study_id: str,
    engine: EngineDep,
    metric: str | None = None,
    split: Annotated[str, Query(description="val or test")] = "test",
) -> dict[str, Any]:
    """Every arm's lr × β_init median grid on one shared colour scale (raw values, lower is better),
    with per-cell seed counts, diverged counts, the median's interval and its level, and the
    divergence-rate map: what the dashboard's heatmaps draw."""
    return heatmaps(engine, study_id, metric=metric, split=split)
