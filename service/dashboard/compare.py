"""JSON for the compare page: several studies' median maps on ONE colour scale, and the same arm's
difference between two studies cell by cell.

Each study's medians come from its own ``/heatmaps`` (cached per study progress); here they are only
recoloured on a scale shared by every compared map of the same metric, so equal colours mean equal
scores across studies. A difference map needs the same grid (lrs and β_inits) in both studies;
otherwise it says why there is none.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from sqlalchemy.engine import Engine

from studies.vocab import Split

from .. import heatmap_grids as grids
from ..api.deps import EngineDep
from ..api.responses import errors
from ..errors import InvalidInput
from .models import CompareMapsPublic

router = APIRouter(prefix="/compare", tags=["dashboard"], responses=errors(404))
MAX_STUDIES = 12


def compare_maps(engine: Engine, study_ids: list[str], *, arm: str | None, split: Split) -> dict[str, Any]:
    """Every compared study's arms (or ``arm``) on one colour scale per metric, and each later study's
    difference from the first for every arm they share on the same grid."""
    from matplotlib import colormaps

    bodies = [grids.heatmaps(engine, study_id, metric=None, split=split) for study_id in study_ids]
    names = sorted({one["arm"] for body in bodies for one in body["arms"]})
    if arm is not None and arm not in names:  # a typo is an error, not an empty page
        raise InvalidInput("arm", f"no compared study has arm {arm!r}; valid choices: {', '.join(names)}")
    maps = [
        {"study_id": body["study_id"], "metric": body["metric"], "percent": body["percent"], **one}
        for body in bodies
        for one in body["arms"]
        if arm is None or one["arm"] == arm
    ]
    cmap = colormaps[grids.SCORE_CMAP]
    scales: dict[str, Any] = {}
    for metric in sorted({m["metric"] for m in maps}):
        same = [m for m in maps if m["metric"] == metric]
        finite = [float(v) for m in same for row in m["values"] for v in row if v is not None]
        norm = grids.colour_norm(finite, all(m["percent"] for m in same))
        for m in same:
            values = np.array([[np.nan if v is None else v for v in row] for row in m["values"]], dtype=float)
            m["colours"] = grids.cell_colours(cmap, norm(np.ma.masked_invalid(values)), values)
        scales[metric] = {
            "min": min(finite) if finite else None,
            "max": max(finite) if finite else None,
            "log": type(norm).__name__ == "LogNorm",
            "legend": [
                {"value": v, "colour": grids.hex_colour(cmap(float(norm(v))))}
                for v in grids.legend_values(norm, finite)
            ],
        }
    return {
        "split": split,
        "studies": [{"study_id": b["study_id"], "lrs": b["lrs"], "betas": b["betas"]} for b in bodies],
        "scales": scales,
        "maps": [_map_public(m) for m in maps],
        "differences": _differences(bodies, arm),
    }


def _map_public(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("study_id", "metric", "percent", "arm", "values", "colours", "n", "diverged")
    return {k: m[k] for k in keys}


def _differences(bodies: list[dict[str, Any]], arm: str | None) -> dict[str, Any]:
    """Each later study minus the first, per shared arm, on one symmetric diverging scale."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    if len(bodies) < 2:
        return {"legend": [], "max_abs": None, "pairs": [], "notes": []}
    first, found, notes = bodies[0], [], []
    for other in bodies[1:]:
        if (other["lrs"], other["betas"], other["metric"]) != (first["lrs"], first["betas"], first["metric"]):
            notes.append(f"{other['study_id']} − {first['study_id']}: not the same grid and metric, no difference map")
            continue
        for one in other["arms"]:
            base = next((a for a in first["arms"] if a["arm"] == one["arm"]), None)
            if base is None or (arm is not None and one["arm"] != arm):
                continue
            b = np.array([[np.nan if v is None else v for v in row] for row in one["values"]], dtype=float)
            a = np.array([[np.nan if v is None else v for v in row] for row in base["values"]], dtype=float)
            found.append({"arm": one["arm"], "study_a": other["study_id"], "study_b": first["study_id"], "d": b - a})
    finite = [abs(float(v)) for f in found for v in f["d"].ravel() if math.isfinite(v)]
    bound = max(finite) if finite and max(finite) > 0 else 1.0
    norm, cmap = Normalize(-bound, bound), colormaps[grids.DIFFERENCE_CMAP]
    return {
        "max_abs": max(finite) if finite else None,
        "legend": [
            {"value": float(v), "colour": grids.hex_colour(cmap(norm(v)))} for v in np.linspace(-bound, bound, 9)
        ],
        "pairs": [
            {
                "arm": f["arm"],
                "study_a": f["study_a"],
                "study_b": f["study_b"],
                "values": grids.matrix(f["d"]),
                "colours": grids.cell_colours(cmap, norm(f["d"]), f["d"]),
            }
            for f in found
        ],
        "notes": notes,
    }


@router.get("/heatmaps", response_model=CompareMapsPublic, responses=errors(409))
def get_compare_maps(
    engine: EngineDep,
    studies: str = Query(max_length=400, description="comma-separated study ids (up to 12)"),
    arm: str | None = None,
    split: Split = "test",
) -> dict[str, Any]:
    """The compared studies' median maps on one colour scale per metric, and each later study's
    difference from the first (raw units: below 0 the later study's score is lower)."""
    ids = [s.strip() for s in studies.split(",") if s.strip()]
    if not ids:
        raise InvalidInput("studies", "give at least one study id")
    if len(ids) > MAX_STUDIES:
        raise InvalidInput("studies", f"at most {MAX_STUDIES} studies (got {len(ids)})")
    return compare_maps(engine, ids, arm=arm, split=split)
