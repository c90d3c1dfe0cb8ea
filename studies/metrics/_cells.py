"""Per-cell statistics over seeds, their bootstrap, and the cell table (METRICS.md "Per arm", 1).

The bootstrap of a cell median needs only the ranks of the resampled seeds, not their values: a
resample of n seeds is a multiset of ranks, and its median is the mean of two order statistics of
the cell. So one pool of rank patterns per seed count serves every cell with that count, and a
bootstrap costs O(resamples × cells) instead of O(resamples × trials).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from studies.metrics._grid import (
    ORIENTATION,
    ArmGrid,
    FloatArray,
    GridAxes,
    IntArray,
    Split,
    build_grids,
    check_split,
    finite,
    neg,
)

BOOT_SEED = 20_191_017  # fixed: the same scores always give the same intervals
DEFAULT_CELL_BOOT = 1000


def cell_medians(x: FloatArray, n: IntArray) -> FloatArray:
    """Median over the last axis of seed-sorted, NaN-last ``x`` with ``n`` results per cell."""
    lo = (np.maximum(n, 1) - 1) // 2
    hi = np.maximum(n, 1) // 2
    a = np.take_along_axis(x, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(x, hi[..., None], axis=-1)[..., 0]
    return np.where(n > 0, (a + b) / 2, np.nan)


def cell_moments(x: FloatArray, n: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean, sample standard deviation (ddof 1) and population variance (ddof 0) per cell."""
    missing = np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(missing, 0.0, x).sum(axis=-1) / n
        dev = np.where(missing, 0.0, x - mean[..., None])
        ss = (dev * dev).sum(axis=-1)
        std = np.where(n >= 2, np.sqrt(ss / np.maximum(n - 1, 1)), np.nan)
        var0 = np.where(n >= 1, ss / np.maximum(n, 1), np.nan)
    return np.where(n > 0, mean, np.nan), std, var0


@functools.lru_cache(maxsize=64)
def _median_rank_pool(n_seeds: int, n_boot: int) -> tuple[IntArray, IntArray]:
    """For ``n_boot`` resamples (with replacement) of ``n_seeds`` ranks: each median's two ranks."""
    rng = np.random.default_rng([BOOT_SEED, n_seeds, n_boot])
    ranks = np.sort(rng.integers(0, n_seeds, size=(n_boot, n_seeds)), axis=1)
    lo, hi = ranks[:, (n_seeds - 1) // 2].copy(), ranks[:, n_seeds // 2].copy()
    lo.flags.writeable = hi.flags.writeable = False
    return lo, hi


def median_interval(x: FloatArray, n: IntArray, n_boot: int) -> tuple[FloatArray, FloatArray]:
    """95% percentile-bootstrap interval of each cell's median over its seeds.

    ``x`` is (C, S), seed-sorted, NaN-last; ``n`` (C,) results per cell. Resamples depend only on
    the seed count, so a cell's interval never depends on which other cells were asked for.
    """
    low = np.full(n.shape, np.nan)
    high = np.full(n.shape, np.nan)
    for size in np.unique(n[n > 0]).tolist():
        cells = np.flatnonzero(n == size)
        lo, hi = _median_rank_pool(int(size), n_boot)
        xc = x[cells]
        meds = (xc[:, lo] + xc[:, hi]) / 2  # (cells, n_boot)
        low[cells], high[cells] = np.quantile(meds, [0.025, 0.975], axis=1)
    return low, high


def arm_rng(arm: str) -> np.random.Generator:
    """An arm's own fixed stream, so two arms compared are resampled independently."""
    return np.random.default_rng([BOOT_SEED, zlib.crc32(arm.encode())])


def bootstrap_medians(x: FloatArray, n: IntArray, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """``n_boot`` joint replicates of every cell median, cells resampled independently: (n_boot, C).

    Each cell draws, per replicate, one resample from its seed count's pool of rank patterns.
    """
    out = np.full((n_boot, n.size), np.nan)
    for size in np.unique(n[n > 0]).tolist():
        cells = np.flatnonzero(n == size)
        lo, hi = _median_rank_pool(int(size), n_boot)
        pick = rng.integers(0, n_boot, size=(n_boot, cells.size))
        xc = x[cells]
        col = np.arange(cells.size)
        out[:, cells] = (xc[col, lo[pick]] + xc[col, hi[pick]]) / 2
    return out


@dataclass(frozen=True, eq=False)
class CellTable:
    """Per (lr, β_init) cell statistics over seeds of one arm on one split.

    Arrays are (I, J): rows follow ``axes.lrs``, columns ``axes.betas``. ``mean``, ``median``,
    ``ci_low``, ``ci_high`` are oriented scores (higher is better, y = −value); the ``raw_*``
    properties give the same in the workload's own units (lower is better), with
    ``raw_ci_low = −ci_high``. ``std`` (ddof 1) is the same in both. The interval is a 95%
    percentile bootstrap of the median over seeds. Cells without results hold NaN
    (``None`` in ``to_dict``). Per split, ``n_completed`` counts completed trials with a value on
    that split, ``n_diverged`` diverged trials, ``n_missing`` the rest of ``axes.seeds``.
    """

    arm: str
    split: Split
    axes: GridAxes
    y_fail: float
    mean: FloatArray
    median: FloatArray
    std: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
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
    def raw_ci_low(self) -> FloatArray:
        return -self.ci_high

    @property
    def raw_ci_high(self) -> FloatArray:
        return -self.ci_low

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: one record per cell, row-major (lr outer, β_init inner); no NaN."""
        rate = self.divergence_rate
        cells = []
        for i, lr in enumerate(self.axes.lrs):
            for j, beta in enumerate(self.axes.betas):
                mean, median = finite(self.mean[i, j]), finite(self.median[i, j])
                low, high = finite(self.ci_low[i, j]), finite(self.ci_high[i, j])
                cells.append(
                    {
                        "lr": lr,
                        "beta_init": beta,
                        "mean": mean,
                        "median": median,
                        "std": finite(self.std[i, j]),
                        "ci_low": low,
                        "ci_high": high,
                        "raw_mean": neg(mean),
                        "raw_median": neg(median),
                        "raw_ci_low": neg(high),
                        "raw_ci_high": neg(low),
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


def table_from_grid(grid: ArmGrid, split: Split, n_boot: int) -> CellTable:
    x, n = grid.scores(split), grid.counts(split)
    mean, std, _ = cell_moments(x, n)
    if n_boot > 0:
        low, high = median_interval(x.reshape(-1, x.shape[-1]), n.ravel(), n_boot)
        low, high = low.reshape(n.shape), high.reshape(n.shape)
    else:
        low = high = np.full(n.shape, np.nan)
    return CellTable(
        arm=grid.arm,
        split=split,
        axes=grid.axes,
        y_fail=grid.y_fail,
        mean=mean,
        median=cell_medians(x, n),
        std=std,
        ci_low=low,
        ci_high=high,
        n_completed=n - grid.n_diverged,
        n_diverged=grid.n_diverged,
        n_missing=len(grid.axes.seeds) - n,
    )


def cell_table(
    scores: pd.DataFrame,
    axes: GridAxes,
    arm: str,
    y_fail: float,
    *,
    split: str = "test",
    n_boot: int = DEFAULT_CELL_BOOT,
) -> CellTable:
    """The cell table of one arm on ``split`` (oriented higher-is-better; raw_* lower-is-better).

    ``n_boot`` resamples for the median's interval (0 skips the bootstrap: intervals are NaN).
    """
    return cell_tables(scores, axes, y_fail, [arm], split=split, n_boot=n_boot)[arm]


def cell_tables(
    scores: pd.DataFrame,
    axes: GridAxes,
    y_fail: float,
    arms: list[str] | None = None,
    *,
    split: str = "test",
    n_boot: int = DEFAULT_CELL_BOOT,
) -> dict[str, CellTable]:
    """``cell_table`` for several arms (default: every arm with trials, sorted) in one pass."""
    checked = check_split(split)
    grids = build_grids(scores, axes, y_fail, arms)
    return {arm: table_from_grid(grid, checked, n_boot) for arm, grid in grids.items()}
