"""Per-arm sensitivity metrics (METRICS.md "Per arm", 2–7) and their result types."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from studies.errors import MetricsError
from studies.metrics._cells import DEFAULT_CONFIDENCE, cell_medians, cell_moments, interval_dict, median_interval
from studies.metrics._grid import (
    ORIENTATION,
    ArmGrid,
    BoolArray,
    FloatArray,
    GridAxes,
    build_grid,
    check_split,
    finite,
    neg,
)
from studies.metrics._landscape import (
    anova_shares,
    expected_best,
    good_mask,
    longest_runs,
    lr_sensitivity,
    peak_index,
)
from studies.vocab import Split

DEFAULT_EPS = 0.01  # one percentage point of error rate
DEFAULT_KS = (1, 2, 4, 8, 16)

OK, INCOMPLETE, UNDEFINED = "ok", "incomplete", "undefined"
ANCHOR_RULE = "best cell median on the analysis split"


@dataclass(frozen=True)
class GridCoverage:
    """How much of the grid has results. A cell is present with at least one result (completed
    or diverged) on both the validation and the analysis split; counts are on the analysis split."""

    n_cells: int
    n_cells_present: int
    n_trials_expected: int
    n_completed: int
    n_diverged: int
    n_missing: int
    missing_cells: tuple[tuple[float, float], ...]

    @property
    def complete(self) -> bool:
        return self.n_cells_present == self.n_cells

    def to_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "n_cells": self.n_cells,
            "n_cells_present": self.n_cells_present,
            "n_trials_expected": self.n_trials_expected,
            "n_completed": self.n_completed,
            "n_diverged": self.n_diverged,
            "n_missing": self.n_missing,
            "missing_cells": [{"lr": lr, "beta_init": beta} for lr, beta in self.missing_cells],
        }


@dataclass(frozen=True)
class Peak:
    """The best cell by validation median, reported with its median on the analysis split
    (``score``) and that median's order-statistic interval over seeds at the level it really has
    (``interval_level``; see ``studies.metrics._cells``). Oriented; ``raw_*`` in to_dict."""

    status: str
    lr: float | None = None
    beta_init: float | None = None
    val: float | None = None
    score: float | None = None
    interval_low: float | None = None
    interval_high: float | None = None
    interval_level: float = 0.0
    interval_status: str = "no_results"
    n_seeds: int = 0
    divergence_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "lr": self.lr,
            "beta_init": self.beta_init,
            "val": self.val,
            "score": self.score,
            "raw_val": neg(self.val),
            "raw_score": neg(self.score),
            "score_interval": interval_dict(
                self.interval_low, self.interval_high, self.interval_level, self.interval_status
            ),
            "n_seeds": self.n_seeds,
            "divergence_rate": self.divergence_rate,
        }


@dataclass(frozen=True)
class GoodFraction:
    """F_ε: the share of cells whose median on the analysis split is within ``margin`` of y*, the
    best cell median on that same split (``anchor``). The anchor is deliberately not the
    analysis-split score of the cell chosen on validation: an arm whose chosen peak generalises
    worse would get a lower anchor, a looser threshold and look more robust for being worse.

    ``margin`` is ε (absolute) or ε·|y*| (relative), in score units; ``threshold`` = y* − margin
    is oriented (``raw_threshold`` in to_dict: the worst raw value still good). ``eps_source``
    says where ε came from (given, a workload default, or the seed spread at the peaks).
    """

    status: str
    eps: float
    relative: bool
    eps_source: str = "given"
    anchor: float | None = None
    margin: float | None = None
    threshold: float | None = None
    n_good: int | None = None
    n_cells: int = 0
    fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "eps": self.eps,
            "relative": self.relative,
            "eps_source": self.eps_source,
            "anchor_rule": ANCHOR_RULE,
            "anchor": self.anchor,
            "raw_anchor": neg(self.anchor),
            "margin": self.margin,
            "threshold": self.threshold,
            "raw_threshold": neg(self.threshold),
            "n_good": self.n_good,
            "n_cells": self.n_cells,
            "fraction": self.fraction,
        }


@dataclass(frozen=True)
class LrRun:
    """The longest contiguous run of good cells along lr, for one β_init (or all: ``None``)."""

    beta_init: float | None
    decades: float
    lr_low: float | None
    lr_high: float | None
    n_cells: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "beta_init": self.beta_init,
            "decades": self.decades,
            "lr_low": self.lr_low,
            "lr_high": self.lr_high,
            "n_cells": self.n_cells,
        }


@dataclass(frozen=True)
class GoodLrWidth:
    """Good-lr width in decades per β_init, the lr range good for every β_init, and edge flags.

    A run of cells spans, in log10 lr, from halfway to the lr below its first cell to halfway to
    the lr above its last (an edge cell reaches as far outward as inward): n cells × the step on
    an evenly log-spaced grid. ``edge`` is True when a good cell sits at the lowest or highest lr
    (the optimum may lie outside the range swept); ``edge_sides`` names every grid side touched.
    """

    status: str
    per_beta: tuple[LrRun, ...] = ()
    mean_decades: float | None = None
    all_betas: LrRun | None = None
    edge: bool | None = None
    edge_sides: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "per_beta": [run.to_dict() for run in self.per_beta],
            "mean_decades": self.mean_decades,
            "all_betas": None if self.all_betas is None else self.all_betas.to_dict(),
            "edge": self.edge,
            "edge_sides": list(self.edge_sides),
        }


@dataclass(frozen=True)
class ExpectedBest:
    """q(k): the expected score of the best-by-validation cell among k cells drawn at random.

    ``without_replacement`` is Sivaprasad et al.'s unbiased estimator; ``with_replacement`` Dodge
    et al.'s variant. Oriented; ``raw_*`` in to_dict. ks above the number of cells are dropped.
    """

    status: str
    ks: tuple[int, ...] = ()
    without_replacement: tuple[float, ...] = ()
    with_replacement: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ks": list(self.ks),
            "without_replacement": list(self.without_replacement),
            "with_replacement": list(self.with_replacement),
            "raw_without_replacement": [neg(q) for q in self.without_replacement],
            "raw_with_replacement": [neg(q) for q in self.with_replacement],
        }


@dataclass(frozen=True)
class LrSensitivity:
    """Wortsman et al. 2023: mean gap (≥ 0, score units; lower is more robust) to the best lr.

    ``per_beta``: per β_init column; ``pooled``: every cell to its column's best;
    ``joint``: every cell to the grid's best.
    """

    status: str
    per_beta: tuple[float, ...] = ()
    pooled: float | None = None
    joint: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "per_beta": list(self.per_beta),
            "pooled": self.pooled,
            "joint": self.joint,
        }


@dataclass(frozen=True)
class VarianceShares:
    """What drives the variation of the landscape, by one of two methods that are never mixed.

    ``method`` "anova" (complete grid): an exact two-way ANOVA of the cell means, with shares of
    variance due to lr, β_init, their interaction and seed noise (``seed``: the mean within-cell
    sample variance, ddof 1, an unbiased estimate of the seed variance; None when no cell has two
    seeds); the shares sum to 1 over those given. ``method`` "optuna_fanova" (incomplete grid):
    Optuna's fANOVA importance over the cells present, main effects only, normalised by Optuna to
    sum to 1 over the two parameters; these are not variance shares of the same decomposition, so
    they have their own fields (``fanova_importance``) and the ANOVA shares are None.
    """

    status: str
    method: str | None = None
    lr: float | None = None
    beta_init: float | None = None
    interaction: float | None = None
    seed: float | None = None
    total_variance: float | None = None
    fanova_lr: float | None = None
    fanova_beta_init: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "method": self.method,
            "anova_shares": {
                "lr": self.lr,
                "beta_init": self.beta_init,
                "interaction": self.interaction,
                "seed": self.seed,
            },
            "total_variance": self.total_variance,
            "fanova_importance": {"log10_lr": self.fanova_lr, "beta_init": self.fanova_beta_init},
            "note": self.note,
        }


@dataclass(frozen=True)
class ArmMetrics:
    """Every per-arm metric of METRICS.md for one arm, oriented higher-is-better."""

    arm: str
    split: Split
    y_fail: float
    axes: GridAxes
    coverage: GridCoverage
    peak: Peak
    good_fraction: GoodFraction
    good_lr_width: GoodLrWidth
    expected_best: ExpectedBest
    lr_sensitivity: LrSensitivity
    variance: VarianceShares

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (no NaN or inf: ``None``)."""
        return {
            "arm": self.arm,
            "orientation": ORIENTATION,
            "selected_on": "val",
            "split": self.split,
            "y_fail": self.y_fail,
            "grid": self.axes.to_dict(),
            "coverage": self.coverage.to_dict(),
            "peak": self.peak.to_dict(),
            "eps_good": self.good_fraction.to_dict(),
            "eps_good_lr_width": self.good_lr_width.to_dict(),
            "expected_best": self.expected_best.to_dict(),
            "lr_sensitivity": self.lr_sensitivity.to_dict(),
            "variance": self.variance.to_dict(),
        }


def arm_metrics(
    scores: pd.DataFrame,
    axes: GridAxes,
    arm: str,
    y_fail: float,
    eps: float | None = None,
    relative: bool = False,
    ks: tuple[int, ...] = DEFAULT_KS,
    *,
    split: str = "test",
) -> ArmMetrics:
    """Peak, F_ε, good-lr widths, q(k), lr sensitivity and variance shares of one arm.

    The peak is chosen on validation and reported on ``split``; every other metric is computed
    from the cell medians on ``split`` (q(k) chooses on validation too), and the ε-good threshold
    is anchored on the best ``split`` median. ``eps`` defaults to ``DEFAULT_EPS`` = 0.01 (one
    percentage point of error rate; with ``relative``, 1% of |y*|). Metrics that need every cell
    say ``status: "incomplete"`` on an incomplete grid.
    """
    return metrics_from_grid(build_grid(scores, axes, arm, y_fail), eps, relative, ks, check_split(split))


def check_eps(eps: float | None) -> float:
    value = DEFAULT_EPS if eps is None else float(eps)
    if not (math.isfinite(value) and value >= 0):
        raise MetricsError(f"Invalid eps value: {eps}")
    return value


def check_ks(ks: tuple[int, ...]) -> tuple[int, ...]:
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise MetricsError(f"Invalid ks: {ks} (need positive integers)")
    return tuple(sorted({int(k) for k in ks}))


def medians(grid: ArmGrid, split: Split) -> tuple[FloatArray, FloatArray]:
    """(validation, analysis-split) cell medians, (I, J), NaN where a cell has no result."""
    return cell_medians(grid.val, grid.n_val), cell_medians(grid.scores(split), grid.counts(split))


def is_complete(grid: ArmGrid, split: Split) -> bool:
    return bool((grid.n_val > 0).all() and (grid.counts(split) > 0).all())


def peak_seed_spread(grids: list[ArmGrid], split: Split) -> float | None:
    """The pooled seed standard deviation (ddof 1) at the arms' peak cells on ``split``:
    sqrt(mean over arms of the peak cell's sample variance); None when no peak has two results.

    A default ε for metrics without a natural unit (losses, perplexities): a cell is "good" when
    it is within one seed-to-seed standard deviation of the best, a difference the seeds
    themselves make. Pooled over the arms so that every arm of a study is judged with one ε.
    """
    variances = []
    for grid in grids:
        v, _ = medians(grid, split)
        if np.isnan(v).all():
            continue
        i, j = divmod(int(peak_index(v[None])[0]), len(grid.axes.betas))
        x, n = grid.scores(split)[i, j], int(grid.counts(split)[i, j])
        if n >= 2:
            variances.append(float(np.var(x[:n], ddof=1)))
    return math.sqrt(sum(variances) / len(variances)) if variances else None


def metrics_from_grid(
    grid: ArmGrid,
    eps: float | None,
    relative: bool,
    ks: tuple[int, ...],
    split: Split,
    eps_source: str = "given",
) -> ArmMetrics:
    eps_value, ks = check_eps(eps), check_ks(ks)
    v, t = medians(grid, split)
    complete = is_complete(grid, split)
    peak = _peak(grid, v, t, split)
    if complete:
        anchor = np.array([float(np.max(t))])
        good, margin = good_mask(t[None], anchor, eps_value, relative)
        good_fraction = GoodFraction(
            status=OK,
            eps=eps_value,
            relative=relative,
            eps_source=eps_source,
            anchor=float(anchor[0]),
            margin=float(margin[0]),
            threshold=float(anchor[0] - margin[0]),
            n_good=int(good.sum()),
            n_cells=grid.axes.n_cells,
            fraction=float(good.mean()),
        )
        width = _good_lr_width(grid.axes, good[0])
    else:
        good_fraction = GoodFraction(
            status=INCOMPLETE, eps=eps_value, relative=relative, eps_source=eps_source, n_cells=grid.axes.n_cells
        )
        width = GoodLrWidth(status=INCOMPLETE)
    return ArmMetrics(
        arm=grid.arm,
        split=split,
        y_fail=grid.y_fail,
        axes=grid.axes,
        coverage=_coverage(grid, split),
        peak=peak,
        good_fraction=good_fraction,
        good_lr_width=width,
        expected_best=_expected_best(v, t, ks) if complete else ExpectedBest(status=INCOMPLETE),
        lr_sensitivity=_lr_sensitivity(t) if complete else LrSensitivity(status=INCOMPLETE),
        variance=_variance(grid, split, complete),
    )


def _coverage(grid: ArmGrid, split: Split) -> GridCoverage:
    n = grid.counts(split)
    present = (grid.n_val > 0) & (n > 0)
    missing = np.argwhere(~present)
    lrs, betas = grid.axes.lrs, grid.axes.betas
    return GridCoverage(
        n_cells=grid.axes.n_cells,
        n_cells_present=int(present.sum()),
        n_trials_expected=grid.axes.n_cells * len(grid.axes.seeds),
        n_completed=int((n - grid.n_diverged).sum()),
        n_diverged=int(grid.n_diverged.sum()),
        n_missing=int((len(grid.axes.seeds) - n).sum()),
        missing_cells=tuple((lrs[i], betas[j]) for i, j in missing.tolist()),
    )


def _peak(grid: ArmGrid, v: FloatArray, t: FloatArray, split: Split) -> Peak:
    if np.isnan(v).all():
        return Peak(status=UNDEFINED)
    # A cell chosen on validation may lack a result on the analysis split: t is NaN there.
    n_betas = len(grid.axes.betas)
    i, j = divmod(int(peak_index(v[None])[0]), n_betas)
    x, n = grid.scores(split)[i, j][None], grid.counts(split)[i, j][None]
    low, high, level, status = median_interval(x, n, DEFAULT_CONFIDENCE)
    n_results = int(n[0])
    return Peak(
        status=OK,
        lr=grid.axes.lrs[i],
        beta_init=grid.axes.betas[j],
        val=finite(v[i, j]),
        score=finite(t[i, j]),
        interval_low=finite(low[0]),
        interval_high=finite(high[0]),
        interval_level=float(level[0]),
        interval_status=status[0],
        n_seeds=n_results,
        divergence_rate=float(grid.n_diverged[i, j] / n_results) if n_results else None,
    )


def _good_lr_width(axes: GridAxes, good: BoolArray) -> GoodLrWidth:
    if len(axes.lrs) < 2:
        return GoodLrWidth(status=UNDEFINED)
    bounds = axes.lr_bounds()
    decades, first, last = longest_runs(good[None], bounds)
    per_beta = tuple(
        _run(axes, beta, float(decades[0, j]), int(first[0, j]), int(last[0, j])) for j, beta in enumerate(axes.betas)
    )
    all_decades, all_first, all_last = longest_runs(np.all(good, axis=1, keepdims=True)[None], bounds)
    sides = {
        "lr_min": good[0].any(),
        "lr_max": good[-1].any(),
        "beta_min": good[:, 0].any(),
        "beta_max": good[:, -1].any(),
    }
    return GoodLrWidth(
        status=OK,
        per_beta=per_beta,
        mean_decades=float(decades.mean()),
        all_betas=_run(axes, None, float(all_decades[0, 0]), int(all_first[0, 0]), int(all_last[0, 0])),
        edge=bool(sides["lr_min"] or sides["lr_max"]),
        edge_sides=tuple(side for side, touched in sides.items() if touched),
    )


def _run(axes: GridAxes, beta: float | None, decades: float, first: int, last: int) -> LrRun:
    if first < 0:
        return LrRun(beta_init=beta, decades=0.0, lr_low=None, lr_high=None, n_cells=0)
    return LrRun(
        beta_init=beta,
        decades=decades,
        lr_low=axes.lrs[first],
        lr_high=axes.lrs[last],
        n_cells=last - first + 1,
    )


def _expected_best(v: FloatArray, t: FloatArray, ks: tuple[int, ...]) -> ExpectedBest:
    used = tuple(k for k in ks if k <= v.size)
    without = expected_best(v[None], t[None], used, replacement=False)[0]
    with_ = expected_best(v[None], t[None], used, replacement=True)[0]
    return ExpectedBest(
        status=OK,
        ks=used,
        without_replacement=tuple(float(q) for q in without),
        with_replacement=tuple(float(q) for q in with_),
    )


def _lr_sensitivity(t: FloatArray) -> LrSensitivity:
    per_beta, pooled, joint = lr_sensitivity(t[None])
    return LrSensitivity(
        status=OK,
        per_beta=tuple(float(g) for g in per_beta[0]),
        pooled=float(pooled[0]),
        joint=float(joint[0]),
    )


def _variance(grid: ArmGrid, split: Split, complete: bool) -> VarianceShares:
    x, n = grid.scores(split), grid.counts(split)
    means, _, within = cell_moments(x, n)
    if not complete:
        return _fanova(grid.axes, means)
    shares, total = anova_shares(means, within if int(n.max()) >= 2 else None)
    if not shares:
        return VarianceShares(status=UNDEFINED, method="anova", total_variance=total, note="no variance")
    return VarianceShares(
        status=OK,
        method="anova",
        lr=shares["lr"],
        beta_init=shares["beta_init"],
        interaction=shares["interaction"],
        seed=shares.get("seed"),
        total_variance=total,
    )


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    # create_study logs at INFO; a metric query should not. (Not thread-safe, and harmless.)
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _fanova(axes: GridAxes, means: FloatArray) -> VarianceShares:
    """Optuna's fANOVA over the cells present; diverged seeds are already at y_fail in the means."""
    present = np.argwhere(~np.isnan(means)).tolist()
    if len(present) < 2:
        return VarianceShares(status=UNDEFINED, method="optuna_fanova", note="fewer than two cells with results")
    import optuna
    from optuna.distributions import BaseDistribution, FloatDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import create_trial

    log_lrs = np.log10(np.asarray(axes.lrs))
    distributions: dict[str, BaseDistribution] = {
        "log10_lr": FloatDistribution(float(log_lrs[0]), float(log_lrs[-1])),
        "beta_init": FloatDistribution(axes.betas[0], axes.betas[-1]),
    }
    trials = [
        create_trial(
            params={"log10_lr": float(log_lrs[i]), "beta_init": axes.betas[j]},
            distributions=distributions,
            value=float(means[i, j]),
        )
        for i, j in present
    ]
    try:
        with _quiet_optuna():
            study = optuna.create_study(direction="maximize")
            study.add_trials(trials)
            importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError) as exc:
        return VarianceShares(status=UNDEFINED, method="optuna_fanova", note=str(exc))
    lr_share = finite(importances.get("log10_lr"))
    beta_share = finite(importances.get("beta_init"))
    if lr_share is None and beta_share is None:
        return VarianceShares(status=UNDEFINED, method="optuna_fanova", note="no variance")
    return VarianceShares(
        status=OK,
        method="optuna_fanova",
        fanova_lr=lr_share or 0.0,
        fanova_beta_init=beta_share or 0.0,
        note=f"incomplete grid: fANOVA main effects over {len(present)} of {axes.n_cells} cells",
    )
