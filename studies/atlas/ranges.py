"""How an atlas chooses each workload's learning-rate range: a pilot sweep and one stated rule.

A grid only says how sensitive an optimizer is if its good region lies inside it: cut off at the
top, the divergence cliff is never seen; cut off at the bottom, "sensitivity" becomes "how slowly
does a tiny lr train". So the ranges of ``studies.atlas.suites`` come from a pilot, not from taste:

1. **Pilot** (``pilot_spec``): per workload and optimizer family, the Demon arm and the baseline
   without a schedule at β_init = 0.9, ``PILOT_LRS`` (25 log-spaced lrs from 1e-5 to 10), 2 seeds
   of its own (``PILOT_SEEDS``, none of the atlas's), the atlas's own epochs and batch size.
   ``bench/atlas_ranges.py`` runs it and prints the ranges.
2. **Rule** (``choose_range``): per arm, its median validation error per lr; *trainable* where that
   error is at most half-way from the arm's best to chance (``TRAINABLE_SHARE``); each arm's
   contiguous trainable run around its best lr, and the range from the lowest run's start to the
   highest run's end (so both arms' good regions fit), widened by ``MARGIN_DECADES`` on each side
   (so each edge shows where training stops working), rounded outwards to quarter decades, at least
   ``MIN_DECADES`` wide (widened about its centre) and at most ``MAX_DECADES`` (narrowed about the
   better arm's best lr).

The rule is a prior: the report's heatmaps show, per arm and β_init, where the good region really
lies in the grid the rule chose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PILOT_LRS = tuple(float(f"{v:.6g}") for v in np.geomspace(1e-5, 10.0, 25))
PILOT_BETA = 0.9
PILOT_SEEDS = (1000, 1001)  # not the atlas's seeds (0, 1, ...): the range is chosen on other runs
TRAINABLE_SHARE = 0.5
MARGIN_DECADES = 0.5
MIN_DECADES = 2.0
MAX_DECADES = 4.0
QUANTUM_DECADES = 0.25


@dataclass(frozen=True)
class LrRange:
    """A log-spaced lr range: ``min`` to ``max``, and what the pilot saw (best lr, trainable run)."""

    min: float
    max: float
    best_lr: float
    trainable: tuple[float, float]

    @property
    def decades(self) -> float:
        """Width in decades."""
        return math.log10(self.max / self.min)


def choose_range(lrs: Sequence[float], errors: Sequence[Sequence[float]], chance: float) -> LrRange:
    """The rule of the module docstring. ``errors[a][i]``: arm a's median validation error at ``lrs[i]``
    (NaN where nothing trained, counted as chance); ``chance``: the error of a diverged trial."""
    grid = np.asarray(lrs, dtype=float)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0) or np.any(grid <= 0):
        raise ValueError("lrs must be at least two ascending positive learning rates")
    table = np.asarray(errors, dtype=float).reshape(-1, grid.size)
    table = np.where(np.isnan(table), chance, np.minimum(table, chance))
    runs = [_trainable_run(curve, chance) for curve in table]
    low, high = min(r[0] for r in runs), max(r[1] for r in runs)
    best_index = int(np.argmin(table.min(axis=0)))
    log_low = _outward(math.log10(grid[low]) - MARGIN_DECADES, math.floor)
    log_high = _outward(math.log10(grid[high]) + MARGIN_DECADES, math.ceil)
    if log_high - log_low < MIN_DECADES:
        centre = (log_low + log_high) / 2
        log_low = _outward(centre - MIN_DECADES / 2, math.floor)
        log_high = log_low + MIN_DECADES
    if log_high - log_low > MAX_DECADES:
        centre = math.log10(grid[best_index])
        log_low = _outward(centre - MAX_DECADES / 2, math.floor)
        log_high = log_low + MAX_DECADES
    return LrRange(
        min=float(f"{10**log_low:.6g}"),
        max=float(f"{10**log_high:.6g}"),
        best_lr=float(grid[best_index]),
        trainable=(float(grid[low]), float(grid[high])),
    )


def _trainable_run(curve: np.ndarray[Any, Any], chance: float) -> tuple[int, int]:
    """First and last index of the contiguous run around the curve's best where it is trainable."""
    best = int(np.argmin(curve))
    threshold = curve[best] + TRAINABLE_SHARE * (chance - curve[best])
    low, high = best, best
    while low > 0 and curve[low - 1] <= threshold:
        low -= 1
    while high < curve.size - 1 and curve[high + 1] <= threshold:
        high += 1
    return low, high


def _outward(value: float, rounding: Any) -> float:
    return float(rounding(round(value / QUANTUM_DECADES, 9)) * QUANTUM_DECADES)


def pilot_spec(
    workload: str,
    params: dict[str, Any],
    arms: tuple[str, str],
    *,
    epochs: int,
    batch_size: int,
) -> dict[str, Any]:
    """The pilot study of one workload and optimizer family (``arms``: Demon, then the baseline)."""
    return {
        "name": f"atlas pilot · {workload} · {arms[0]} vs {arms[1]}",
        "workload": workload,
        "workload_params": dict(params),
        "arms": list(arms),
        "lr": list(PILOT_LRS),
        "beta_init": [PILOT_BETA],
        "seeds": list(PILOT_SEEDS),
        "epochs": epochs,
        "batch_size": batch_size,
        "metric": "error",
        "split": "test",
        "execution": {"mode": "packed"},
    }
