"""The grid of a study and the per-seed scores scattered onto it, oriented higher-is-better.

This is the only place where raw workload values (lower is better) become scores y = −value (the
failure score and missing trials by ``studies.vocab.impute_scores``, the rule every place uses). Everything
downstream works on the dense arrays built here: one (I, J, S) array per arm and split, the seeds
of each cell sorted ascending with the missing ones (NaN) last.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from studies.errors import GridError, MetricsError
from studies.vocab import SPLITS, Split, TrialStatus, impute_scores

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

ORIENTATION = "higher is better (y = -value)"
STATUSES = frozenset(TrialStatus)
COLUMNS = ("arm", "lr", "beta_init", "seed", "status", "val", "test")


@dataclass(frozen=True)
class GridAxes:
    """The full grid a study asked for, so that missing cells and seeds can be counted.

    ``lrs`` ascending and positive (log-spaced as a rule, evenly or not), ``betas`` ascending,
    ``seeds`` distinct. Values are matched to score rows with a relative tolerance of 1e-9.
    """

    lrs: tuple[float, ...]
    betas: tuple[float, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        lrs = tuple(float(v) for v in self.lrs)
        betas = tuple(float(v) for v in self.betas)
        seeds = tuple(int(v) for v in self.seeds)
        if not lrs or not all(math.isfinite(v) and v > 0 for v in lrs):
            raise GridError(f"Invalid lrs: {self.lrs} (need positive, finite values)")
        if any(b <= a for a, b in itertools.pairwise(lrs)):
            raise GridError(f"Invalid lrs: {self.lrs} (need strictly ascending values)")
        if not betas or not all(math.isfinite(v) for v in betas):
            raise GridError(f"Invalid betas: {self.betas} (need finite values)")
        if any(b <= a for a, b in itertools.pairwise(betas)):
            raise GridError(f"Invalid betas: {self.betas} (need strictly ascending values)")
        if not seeds or len(set(seeds)) != len(seeds):
            raise GridError(f"Invalid seeds: {self.seeds} (need distinct values)")
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "seeds", seeds)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(I, J, S): lrs, betas, seeds."""
        return len(self.lrs), len(self.betas), len(self.seeds)

    @property
    def n_cells(self) -> int:
        return len(self.lrs) * len(self.betas)

    def lr_bounds(self) -> FloatArray:
        """The log10-lr interval each lr cell owns, as I + 1 boundaries.

        A cell reaches halfway to each neighbour; an edge cell reaches as far outward as inward.
        On an evenly log-spaced grid every cell spans one step, so a run of n cells spans n steps.
        """
        g = np.log10(np.asarray(self.lrs, dtype=np.float64))
        if g.size == 1:
            return np.array([g[0], g[0]])
        mids = (g[1:] + g[:-1]) / 2
        first = g[0] - (g[1] - g[0]) / 2
        last = g[-1] + (g[-1] - g[-2]) / 2
        return np.concatenate([[first], mids, [last]])

    def to_dict(self) -> dict[str, Any]:
        return {"lrs": list(self.lrs), "betas": list(self.betas), "seeds": list(self.seeds)}


@dataclass(frozen=True, eq=False)
class ArmGrid:
    """One arm's oriented scores on the full grid (internal; built by ``build_grids``).

    ``val``/``test`` are (I, J, S): per cell the seeds' scores sorted ascending, missing (NaN) last,
    so the first ``n_val[i, j]`` (``n_test``) entries are the results. ``val_by_seed``/``test_by_seed``
    hold the same scores in the order of ``axes.seeds`` (what the seed-wise figures read:
    seed s is the same seed in every cell, on both splits and in every arm). The ``*_seen`` masks say
    which axis values occur in this arm's rows of any status (what a comparison of grids looks at).
    ``failed_by_seed`` (I, J, S) marks the trials that ran and failed (no result, but an ending: such
    a run never reaches the target; a pending or cancelled one is merely missing).
    """

    arm: str
    axes: GridAxes
    y_fail: float
    val: FloatArray
    test: FloatArray
    val_by_seed: FloatArray
    test_by_seed: FloatArray
    failed_by_seed: BoolArray
    n_val: IntArray
    n_test: IntArray
    n_diverged: IntArray
    lr_seen: BoolArray
    beta_seen: BoolArray
    seed_seen: BoolArray

    def scores(self, split: Split) -> FloatArray:
        return self.val if split == "val" else self.test

    def by_seed(self, split: Split) -> FloatArray:
        return self.val_by_seed if split == "val" else self.test_by_seed

    def counts(self, split: Split) -> IntArray:
        return self.n_val if split == "val" else self.n_test

    @property
    def complete(self) -> bool:
        """Every cell has at least one result (completed or diverged) on both splits."""
        return bool((self.n_val > 0).all() and (self.n_test > 0).all())


def check_split(split: str) -> Split:
    if split not in SPLITS:
        raise MetricsError(f"Invalid split: {split!r} (expected 'val' or 'test')")
    return "val" if split == "val" else "test"


def build_grids(
    scores: pd.DataFrame, axes: GridAxes, y_fail: float, arms: Iterable[str] | None = None, *, empty: bool = False
) -> dict[str, ArmGrid]:
    """Scatter the score rows of ``arms`` (default: every arm present) onto ``axes``, oriented.
    An arm asked for without a row is an error (a typo), unless ``empty``: then every cell of it is
    missing (a search study's arm the sampler has not reached yet).

    y = −value; finite y below −y_fail is clipped to −y_fail; a diverged trial takes −y_fail
    whatever it stored; a completed trial without a value on a split (NaN) is missing there;
    failed, cancelled, pending and running trials are missing. Raises ``GridError`` for rows off
    the grid, repeated (arm, lr, beta_init, seed) keys or unknown statuses.
    """
    if not math.isfinite(y_fail):
        raise MetricsError(f"Invalid y_fail value: {y_fail}")
    absent = [c for c in COLUMNS if c not in scores.columns]
    if absent:
        raise GridError(f"scores lacks the columns {absent}; expected {list(COLUMNS)}")
    arm_values = scores["arm"].astype(str).to_numpy()
    wanted = None if arms is None else list(dict.fromkeys(arms))
    if wanted is not None:
        keep = np.isin(arm_values, wanted)
        unknown = sorted(set(wanted) - set(np.unique(arm_values[keep]).tolist()))
        if unknown and not empty:
            known = sorted(set(arm_values.tolist()))
            raise MetricsError(f"no trials for arm(s) {unknown}; arms with trials: {known}")
        frame = scores.loc[keep]
        arm_values = arm_values[keep]
    else:
        frame = scores
    if empty and wanted is not None:  # every arm asked for, those without rows too
        names = np.array(sorted(wanted), dtype=object)
        codes = pd.Categorical(arm_values, categories=names).codes.astype(np.int64)
    else:
        codes, names = pd.factorize(arm_values, sort=True)
    n_arms = len(names)
    n_lr, n_beta, n_seed = axes.shape

    i = _float_index(frame["lr"].to_numpy(dtype=np.float64), axes.lrs, "lr")
    j = _float_index(frame["beta_init"].to_numpy(dtype=np.float64), axes.betas, "beta_init")
    s = _seed_index(frame["seed"].to_numpy(), axes.seeds)
    status = frame["status"].astype(str).to_numpy()
    unknown_status = ~np.isin(status, list(STATUSES))
    if unknown_status.any():
        raise GridError(f"unknown trial status(es): {sorted(set(status[unknown_status].tolist()))}")
    diverged = status == "diverged"
    failed = status == "failed"

    cell = ((codes.astype(np.int64) * n_lr + i) * n_beta + j).astype(np.int64)
    flat = cell * n_seed + s
    n_slots = n_arms * n_lr * n_beta * n_seed
    if flat.size and np.bincount(flat, minlength=n_slots).max() > 1:
        _raise_duplicates(flat, frame)

    cubes: dict[str, FloatArray] = {}
    seeded: dict[str, FloatArray] = {}
    counts: dict[str, IntArray] = {}
    for split in SPLITS:
        y = -impute_scores(frame[split].to_numpy(dtype=np.float64), status, y_fail)
        ok = np.isfinite(y)
        cube = np.full(n_slots, np.nan)
        cube[flat[ok]] = y[ok]
        seeded[split] = cube.reshape(n_arms, n_lr, n_beta, n_seed)
        cubes[split] = np.sort(seeded[split], axis=-1)
        counts[split] = np.bincount(cell[ok], minlength=n_arms * n_lr * n_beta).reshape(n_arms, n_lr, n_beta)
    failed_cube = np.zeros(n_slots, dtype=bool)
    failed_cube[flat[failed]] = True
    failed_seeded = failed_cube.reshape(n_arms, n_lr, n_beta, n_seed)
    n_div = np.bincount(cell[diverged], minlength=n_arms * n_lr * n_beta).reshape(n_arms, n_lr, n_beta)
    lr_seen = np.bincount(codes * n_lr + i, minlength=n_arms * n_lr).reshape(n_arms, n_lr) > 0
    beta_seen = np.bincount(codes * n_beta + j, minlength=n_arms * n_beta).reshape(n_arms, n_beta) > 0
    seed_seen = np.bincount(codes * n_seed + s, minlength=n_arms * n_seed).reshape(n_arms, n_seed) > 0

    grids = {
        str(name): ArmGrid(
            arm=str(name),
            axes=axes,
            y_fail=float(y_fail),
            val=cubes["val"][a],
            test=cubes["test"][a],
            val_by_seed=seeded["val"][a],
            test_by_seed=seeded["test"][a],
            failed_by_seed=failed_seeded[a],
            n_val=counts["val"][a],
            n_test=counts["test"][a],
            n_diverged=n_div[a],
            lr_seen=lr_seen[a],
            beta_seen=beta_seen[a],
            seed_seen=seed_seen[a],
        )
        for a, name in enumerate(names)
    }
    return grids if wanted is None else {arm: grids[arm] for arm in wanted}


def _float_index(values: FloatArray, grid: Sequence[float], name: str) -> IntArray:
    g = np.asarray(grid, dtype=np.float64)
    pos = np.searchsorted(g, values)
    lo = np.clip(pos - 1, 0, g.size - 1)
    hi = np.clip(pos, 0, g.size - 1)
    idx = np.where(np.abs(values - g[lo]) <= np.abs(values - g[hi]), lo, hi)
    on_grid = np.isclose(values, g[idx], rtol=1e-9, atol=1e-12)
    if not on_grid.all():
        off = sorted(set(values[~on_grid].tolist()))
        raise GridError(f"{name} values off the grid: {off[:5]}{' …' if len(off) > 5 else ''}; grid: {g.tolist()}")
    return idx.astype(np.int64)


def _seed_index(values: NDArray[Any], seeds: Sequence[int]) -> IntArray:
    if values.size and not np.issubdtype(values.dtype, np.integer):
        as_float = values.astype(np.float64)
        if not np.all(as_float == np.round(as_float)):
            raise GridError("seed values must be integers")
        values = as_float.astype(np.int64)
    order = np.argsort(np.asarray(seeds, dtype=np.int64))
    sorted_seeds = np.asarray(seeds, dtype=np.int64)[order]
    pos = np.clip(np.searchsorted(sorted_seeds, values), 0, sorted_seeds.size - 1)
    on_grid = sorted_seeds[pos] == values
    if not on_grid.all():
        off = sorted(set(values[~on_grid].tolist()))
        raise GridError(f"seed values off the grid: {off[:5]}; grid: {[int(s) for s in seeds]}")
    return order[pos].astype(np.int64)


def _raise_duplicates(flat: IntArray, frame: pd.DataFrame) -> None:
    _, first, counts = np.unique(flat, return_index=True, return_counts=True)
    row = frame.iloc[int(first[np.argmax(counts > 1)])]
    raise GridError(
        "repeated trial key (arm, lr, beta_init, seed) = "
        f"({row['arm']!r}, {row['lr']!r}, {row['beta_init']!r}, {row['seed']!r})"
    )


def finite(value: Any) -> float | None:
    """A JSON-safe float: None for NaN, ±inf and None."""
    if value is None:
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def neg(value: float | None) -> float | None:
    """Raw (lower-is-better) from oriented, keeping None."""
    return None if value is None else 0.0 - value  # 0.0 - x: no "-0.0" in JSON
