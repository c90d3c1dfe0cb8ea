"""Per-cell statistics over seeds and the cell table (docs/metrics.md "Per arm", 1).

A cell's interval is the distribution-free order-statistic interval of its median over seeds:
[x_(r), x_(n+1−r)] of the n sorted seed results covers the cell's true median with probability
1 − 2·P(Bin(n, ½) ≤ r − 1) whatever the score distribution (at least that with ties, e.g. diverged
seeds at y_fail). We take the largest r that reaches the requested confidence (0.95), which is the
interval ``scipy.stats.quantile_test(x, p=0.5).confidence_interval`` returns. With 2–5 seeds no
order-statistic interval reaches 95%: we report [min, max] at the level it really has
(1 − 2^(1−n): 50%, 75%, 87.5%, 93.75%) with ``status: "reduced_level"``; with one seed there is no
interval (``status: "too_few_seeds"``). The level is in every interval, never implied.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binom

from studies.errors import MetricsError
from studies.metrics._grid import (
    ORIENTATION,
    ArmGrid,
    FloatArray,
    GridAxes,
    IntArray,
    build_grids,
    check_split,
    finite,
    neg,
)
from studies.vocab import Split

DEFAULT_CONFIDENCE = 0.95
CELL_INTERVAL_METHOD = "order statistics of the seeds' results (distribution-free median interval)"
OK, REDUCED_LEVEL, TOO_FEW_SEEDS, NO_RESULTS = "ok", "reduced_level", "too_few_seeds", "no_results"


def cell_medians(x: FloatArray, n: IntArray) -> FloatArray:
    """Median over the last axis of seed-sorted, NaN-last ``x`` with ``n`` results per cell."""
    lo = (np.maximum(n, 1) - 1) // 2
    hi = np.maximum(n, 1) // 2
    a = np.take_along_axis(x, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(x, hi[..., None], axis=-1)[..., 0]
    return np.where(n > 0, (a + b) / 2, np.nan)


def cell_moments(x: FloatArray, n: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean, sample standard deviation and sample variance (both ddof 1, unbiased) per cell."""
    missing = np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(missing, 0.0, x).sum(axis=-1) / n
        dev = np.where(missing, 0.0, x - mean[..., None])
        ss = (dev * dev).sum(axis=-1)
        var1 = np.where(n >= 2, ss / np.maximum(n - 1, 1), np.nan)
    return np.where(n > 0, mean, np.nan), np.sqrt(var1), var1


@functools.lru_cache(maxsize=1024)
def median_rank(n: int, confidence: float) -> tuple[int, float]:
    """(r, level): the order-statistic interval [x_(r), x_(n+1−r)] of a median from n results.

    r is the largest rank whose exact coverage 1 − 2·P(Bin(n, ½) ≤ r − 1) reaches ``confidence``;
    when even [min, max] falls short, r = 1 and level is its real coverage (0 for n = 1).
    """
    if n < 1:
        return 0, 0.0
    ranks = np.arange(1, (n + 1) // 2 + 1)  # r ≤ (n + 1) / 2
    levels = 1.0 - 2.0 * binom.cdf(ranks - 1, n, 0.5)
    reach = np.flatnonzero(levels >= confidence - 1e-12)
    r = int(ranks[reach[-1]]) if reach.size else 1
    return r, float(max(levels[r - 1], 0.0))


def median_interval(
    x: FloatArray, n: IntArray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[FloatArray, FloatArray, FloatArray, list[str]]:
    """Order-statistic interval of each cell's median over its seeds: (low, high, level, status).

    ``x`` is (C, S), seed-sorted, NaN-last; ``n`` (C,) results per cell. Cells with one result or
    none get NaN bounds, their level 0 and status "too_few_seeds" / "no_results".
    """
    low = np.full(n.shape, np.nan)
    high = np.full(n.shape, np.nan)
    level = np.zeros(n.shape)
    status = [NO_RESULTS] * n.size
    for c, size in enumerate(n.tolist()):
        if size < 1:
            continue
        if size == 1:
            status[c] = TOO_FEW_SEEDS
            continue
        r, reached = median_rank(int(size), float(confidence))
        low[c], high[c], level[c] = x[c, r - 1], x[c, size - r], reached
        status[c] = OK if reached >= confidence - 1e-12 else REDUCED_LEVEL
    return low, high, level, status


def interval_dict(low: float | None, high: float | None, level: float, status: str) -> dict[str, Any]:
    """An oriented interval with its raw (lower-is-better) twin, its real level and its status."""
    usable = status in (OK, REDUCED_LEVEL)
    low, high = (finite(low), finite(high)) if usable else (None, None)
    return {
        "low": low,
        "high": high,
        "raw_low": neg(high),
        "raw_high": neg(low),
        "level": float(level) if usable else None,
        "status": status,
        "method": CELL_INTERVAL_METHOD,
    }


@dataclass(frozen=True, eq=False)
class CellTable:
    """Per (lr, β_init) cell statistics over seeds of one arm on one split.

    Arrays are (I, J): rows follow ``axes.lrs``, columns ``axes.betas``. ``mean``, ``median``,
    ``interval_low``, ``interval_high`` are oriented scores (higher is better, y = −value); the
    ``raw_*`` properties give the same in the workload's own units (lower is better), with
    ``raw_interval_low = −interval_high``. ``std`` (ddof 1) is the same in both. The interval is the
    order-statistic interval of the median over seeds at the level in ``interval_level`` (see the
    module docstring); ``interval_status`` says "ok", "reduced_level", "too_few_seeds" or
    "no_results" per cell. Cells without results hold NaN (``None`` in ``to_dict``). Per split,
    ``n_completed`` counts completed trials with a value on that split, ``n_diverged`` diverged
    trials, ``n_missing`` the rest of ``axes.seeds``.
    """

    arm: str
    split: Split
    axes: GridAxes
    y_fail: float
    mean: FloatArray
    median: FloatArray
    std: FloatArray
    interval_low: FloatArray
    interval_high: FloatArray
    interval_level: FloatArray
    interval_status: tuple[tuple[str, ...], ...]
    n_completed: IntArray
    n_diverged: IntArray
    n_missing: IntArray

    @property
    def n_results(self) -> IntArray:
        return self.n_completed + self.n_diverged

    @property
    def divergence_rate(self) -> FloatArray:
        """n_diverged / (n_completed + n_diverged); NaN where a cell has no results."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_results > 0, self.n_diverged / self.n_results, np.nan)

    @property
    def raw_mean(self) -> FloatArray:
        return -self.mean

    @property
    def raw_median(self) -> FloatArray:
        return -self.median

    @property
    def raw_interval_low(self) -> FloatArray:
        return -self.interval_high

    @property
    def raw_interval_high(self) -> FloatArray:
        return -self.interval_low

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: one record per cell, row-major (lr outer, β_init inner); no NaN."""
        rate = self.divergence_rate
        cells = []
        for i, lr in enumerate(self.axes.lrs):
            for j, beta in enumerate(self.axes.betas):
                mean, median = finite(self.mean[i, j]), finite(self.median[i, j])
                interval = interval_dict(
                    self.interval_low[i, j],
                    self.interval_high[i, j],
                    float(self.interval_level[i, j]),
                    self.interval_status[i][j],
                )
                cells.append(
                    {
                        "lr": lr,
                        "beta_init": beta,
                        "mean": mean,
                        "median": median,
                        "std": finite(self.std[i, j]),
                        "median_interval": interval,
                        "raw_mean": neg(mean),
                        "raw_median": neg(median),
                        "n_completed": int(self.n_completed[i, j]),
                        "n_diverged": int(self.n_diverged[i, j]),
                        "n_missing": int(self.n_missing[i, j]),
                        "divergence_rate": finite(rate[i, j]),
                    }
                )
        return {
            "arm": self.arm,
            "split": self.split,
            "orientation": ORIENTATION,
            "y_fail": self.y_fail,
            **self.axes.to_dict(),
            "cells": cells,
        }


def table_from_grid(grid: ArmGrid, split: Split, confidence: float) -> CellTable:
    x, n = grid.scores(split), grid.counts(split)
    mean, std, _ = cell_moments(x, n)
    low, high, level, status = median_interval(x.reshape(-1, x.shape[-1]), n.ravel(), confidence)
    n_betas = n.shape[1]
    return CellTable(
        arm=grid.arm,
        split=split,
        axes=grid.axes,
        y_fail=grid.y_fail,
        mean=mean,
        median=cell_medians(x, n),
        std=std,
        interval_low=low.reshape(n.shape),
        interval_high=high.reshape(n.shape),
        interval_level=level.reshape(n.shape),
        interval_status=tuple(tuple(status[i * n_betas : (i + 1) * n_betas]) for i in range(n.shape[0])),
        n_completed=n - grid.n_diverged,
        n_diverged=grid.n_diverged,
        n_missing=len(grid.axes.seeds) - n,
    )


def check_confidence(confidence: float) -> float:
    if not (0 < float(confidence) < 1):
        raise MetricsError(f"Invalid confidence value: {confidence} (need 0 < confidence < 1)")
    return float(confidence)


def cell_table(
    scores: pd.DataFrame,
    axes: GridAxes,
    arm: str,
    y_fail: float,
    *,
    split: str = "test",
    confidence: float = DEFAULT_CONFIDENCE,
    empty: bool = False,
) -> CellTable:
    """The cell table of one arm on ``split`` (oriented higher-is-better; raw_* lower-is-better),
    with each median's order-statistic interval at ``confidence`` or the level it really reaches.
    ``empty``: an arm without trials is a table of missing cells, not an error (``build_grids``)."""
    return cell_tables(scores, axes, y_fail, [arm], split=split, confidence=confidence, empty=empty)[arm]


def cell_tables(
    scores: pd.DataFrame,
    axes: GridAxes,
    y_fail: float,
    arms: list[str] | None = None,
    *,
    split: str = "test",
    confidence: float = DEFAULT_CONFIDENCE,
    empty: bool = False,
) -> dict[str, CellTable]:
    """``cell_table`` for several arms (default: every arm with trials, sorted) in one pass."""
    checked = check_split(split)
    level = check_confidence(confidence)
    grids = build_grids(scores, axes, y_fail, arms, empty=empty)
    return {arm: table_from_grid(grid, checked, level) for arm, grid in grids.items()}
