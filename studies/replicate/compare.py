"""A study's cells beside the paper's: per-cell differences, the paper's claim recomputed, a verdict.

Our cells come from a study's trials (one row per trial: arm, lr, beta_init, seed, status,
test_metric; the service's export or ``demonlab run``'s trials file). A trial's error is imputed as
everywhere in the project (``studies.vocab.impute_scores``: a diverged trial scores the workload's
chance level, a failed one is missing); a cell's value is the median over its seeds.

**The claim.** The paper counts, in its single-run figure, the cells with test error at or under a
threshold. Each of our seeds gives one such figure (every cell trained once with that seed), so the
count is recomputed per seed, exactly as the paper's statistic (a missing trial is not under), and
the Demon − baseline difference of counts is paired by seed. Its interval is Student's t over seeds
(``scipy.stats.ttest_1samp``, 95%): parametric, wide with 3 seeds, and its real coverage rests on
the seeds' differences being roughly normal. Verdict: *reproduced* when the interval lies above 0
(Demon has more cells under the threshold), *not reproduced* when it lies at or below 0,
*inconclusive* otherwise, with one seed, or when the study lacks some of the paper's cells. On the
paper's side the count carries the read precision: from the cells surely under (error < threshold −
0.005) to those possibly under (≤ threshold + 0.005).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ..vocab import impute_scores
from .paper import READ_PRECISION, Claim, PaperCells

__all__ = ["LEVEL", "ArmCells", "ClaimResult", "arm_cells", "claim_result", "seed_cube"]

LEVEL = 0.95
Verdict = Literal["reproduced", "not_reproduced", "inconclusive"]


class ArmCells(BaseModel):
    """One arm beside its paper heatmap: rows lr, columns β_init, errors as fractions (None: missing)."""

    arm: str
    paper_panel: str
    ours: list[list[float | None]]  # median over seeds
    paper: list[list[float]]
    difference: list[list[float | None]]  # ours − paper
    paper_clipped: list[list[bool]]  # the paper's value sits at an end of its colour bar
    seeds_per_cell: list[list[int]]
    mean_abs_difference: float | None  # over cells with both values, the paper's not clipped


class PaperCount(BaseModel):
    """The paper's count of cells at or under the threshold, and its range given the read precision."""

    per_column: list[int]
    total: int
    read_range: tuple[int, int]


class OurCount(BaseModel):
    """Our count, per seed (one figure each) and its mean over seeds."""

    per_column: list[float]  # mean over seeds
    total: float
    per_seed_totals: list[int]


class ClaimResult(BaseModel):
    """The paper's claim recomputed on its cells and on ours, against one baseline arm."""

    claim: str
    threshold: float
    per_column: bool
    demon_arm: str
    baseline_arm: str
    paper_demon: PaperCount
    paper_baseline: PaperCount
    ours_demon: OurCount
    ours_baseline: OurCount
    seeds: list[int]
    difference_per_seed: list[int]
    difference_mean: float | None
    interval: tuple[float, float] | None
    level: float
    method: str
    verdict: Verdict
    reason: str


def seed_cube(
    trials: pd.DataFrame, arm: str, lrs: Sequence[float], momenta: Sequence[float], seeds: Sequence[int], fail: float
) -> np.ndarray:
    """``errors[i, j, s]`` of ``arm`` at ``lrs[i]`` × ``momenta[j]`` and ``seeds[s]``, imputed (NaN: none)."""
    rows = trials[trials["arm"] == arm]
    cube = np.full((len(lrs), len(momenta), len(seeds)), np.nan)
    scores = impute_scores(rows["test_metric"].to_numpy(dtype=float), rows["status"].to_numpy(), fail)
    keys = rows[["lr", "beta_init", "seed"]].itertuples(index=False)
    for (lr, beta, seed), score in zip(keys, scores, strict=True):
        i, j = _index(lrs, float(lr)), _index(momenta, float(beta))
        if i is not None and j is not None and int(seed) in seeds:
            cube[i, j, list(seeds).index(int(seed))] = score
    return cube


def _index(axis: Sequence[float], value: float) -> int | None:
    for index, point in enumerate(axis):
        if math.isclose(point, value, rel_tol=1e-9, abs_tol=1e-12):
            return index
    return None


def _medians(cube: np.ndarray) -> np.ndarray:
    """The median over seeds of each cell, NaN where no seed has a score."""
    present = ~np.isnan(cube)
    sorted_cube = np.sort(np.where(present, cube, np.inf), axis=2)  # scores first, missing last
    counts = present.sum(axis=2)
    medians = np.full(cube.shape[:2], np.nan)
    for (i, j), n in np.ndenumerate(counts):
        if n:
            medians[i, j] = float(np.median(sorted_cube[i, j, :n]))
    return medians


def _listed(values: np.ndarray) -> list[list[float | None]]:
    return [[None if math.isnan(v) else float(v) for v in row] for row in values.tolist()]


def arm_cells(arm: str, cube: np.ndarray, paper: PaperCells) -> ArmCells:
    """Our median cells beside the paper's, with their difference."""
    ours = _medians(cube)
    difference = ours - paper.error
    clipped = paper.clipped()
    usable = ~np.isnan(difference) & ~clipped
    return ArmCells(
        arm=arm,
        paper_panel=paper.name,
        ours=_listed(ours),
        paper=paper.error.tolist(),
        difference=_listed(difference),
        paper_clipped=clipped.tolist(),
        seeds_per_cell=(~np.isnan(cube)).sum(axis=2).tolist(),
        mean_abs_difference=float(np.abs(difference[usable]).mean()) if usable.any() else None,
    )


def _paper_count(cells: PaperCells, threshold: float) -> PaperCount:
    under = cells.error <= threshold
    surely = int((cells.error < threshold - READ_PRECISION).sum())
    possibly = int((cells.error <= threshold + READ_PRECISION).sum())
    return PaperCount(per_column=under.sum(axis=0).tolist(), total=int(under.sum()), read_range=(surely, possibly))


def _our_count(cube: np.ndarray, threshold: float) -> OurCount:
    with np.errstate(invalid="ignore"):
        under = cube <= threshold  # NaN (missing) is not under
    per_seed_columns = under.sum(axis=0)  # (columns, seeds)
    return OurCount(
        per_column=per_seed_columns.mean(axis=1).tolist(),
        total=float(per_seed_columns.sum(axis=0).mean()),
        per_seed_totals=per_seed_columns.sum(axis=0).astype(int).tolist(),
    )


def claim_result(
    claim: Claim,
    demon: tuple[str, np.ndarray, PaperCells],
    baseline: tuple[str, np.ndarray, PaperCells],
    seeds: list[int],
) -> ClaimResult:
    """Recompute ``claim`` on the paper's two heatmaps and on our two arms' seed cubes."""
    (demon_arm, demon_cube, demon_paper), (base_arm, base_cube, base_paper) = demon, baseline
    ours_demon, ours_base = _our_count(demon_cube, claim.threshold), _our_count(base_cube, claim.threshold)
    differences = [a - b for a, b in zip(ours_demon.per_seed_totals, ours_base.per_seed_totals, strict=True)]
    missing = int(np.isnan(demon_cube).all(axis=2).sum() + np.isnan(base_cube).all(axis=2).sum())
    interval = _t_interval(differences)
    verdict, reason = _verdict(differences, interval, missing, demon_arm, base_arm, claim.threshold)
    return ClaimResult(
        claim=claim.text,
        threshold=claim.threshold,
        per_column=claim.per_column,
        demon_arm=demon_arm,
        baseline_arm=base_arm,
        paper_demon=_paper_count(demon_paper, claim.threshold),
        paper_baseline=_paper_count(base_paper, claim.threshold),
        ours_demon=ours_demon,
        ours_baseline=ours_base,
        seeds=seeds,
        difference_per_seed=differences,
        difference_mean=float(np.mean(differences)) if differences else None,
        interval=interval,
        level=LEVEL,
        method="Student's t over seeds of the per-seed difference of counts (paired by seed)",
        verdict=verdict,
        reason=reason,
    )


def _t_interval(differences: list[int]) -> tuple[float, float] | None:
    """The 95% t-interval of the mean difference; a point when every seed agrees; None with one seed."""
    if len(differences) < 2:
        return None
    if len(set(differences)) == 1:
        return (float(differences[0]), float(differences[0]))
    from scipy import stats  # lazy: the report's types are served by an app that starts without scipy

    low, high = stats.ttest_1samp(differences, 0.0).confidence_interval(LEVEL)
    return (float(low), float(high))


def _verdict(
    differences: list[int],
    interval: tuple[float, float] | None,
    missing: int,
    demon_arm: str,
    base_arm: str,
    threshold: float,
) -> tuple[Verdict, str]:
    under = f"cells at or under {threshold:.0%} error"
    if missing:
        return "inconclusive", f"the study has no result in {missing} of the paper's cells ({demon_arm}, {base_arm})"
    if interval is None:
        return "inconclusive", f"{len(differences)} seed: no interval (the paper's own protocol: one run per cell)"
    low, high = interval
    span = f"{np.mean(differences):+.1f} {under} ({LEVEL:.0%} interval {low:+.1f} … {high:+.1f})"
    if low > 0:
        return "reproduced", f"{demon_arm} has more {under} than {base_arm}: {span}"
    if high <= 0:
        return "not_reproduced", f"{demon_arm} has no more {under} than {base_arm}: {span}"
    return "inconclusive", f"the interval of the difference includes 0: {span}"
