"""Per-arm figures (``docs/metrics.md`` "Per arm") as the report's ``ArmReport``.

The landscape figures are seed-wise (``_seedwise``): computed on each seed's grid and averaged over
seeds, with t intervals. The peak is the one figure chosen across seeds (on validation medians),
with its cell's order-statistic interval; the variance decomposition describes the cell means.
An arm none of whose runs trained gets ``never_trained`` instead of figures: a broken optimizer
is not "robust" because every cell fails alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TypeVar

import numpy as np

from studies.metrics._cells import DEFAULT_CONFIDENCE, cell_medians, cell_moments, median_interval
from studies.metrics._grid import ArmGrid, FloatArray, GridAxes, finite, neg
from studies.metrics._landscape import anova_shares
from studies.metrics._seedwise import ArmSeeds, SeedMean, trained
from studies.metrics.models import (
    AnovaShares,
    ArmReport,
    BetaShare,
    Coverage,
    Estimate,
    ExpectedBest,
    FanovaImportance,
    FigureStatus,
    GridAxesModel,
    Interval,
    IntervalStatus,
    KEstimate,
    LrBeta,
    LrSensitivity,
    Peak,
    Success,
    Variance,
)
from studies.vocab import Split

ArrayT = TypeVar("ArrayT", bound=np.ndarray)  # a float or a bool grid

# Fewer seeds than this: no interval. The coverage battery (tests/studies/test_metrics_coverage.py)
# asserts every interval at >= 93% at 8 and 10 seeds on six landscapes (docs/statistics.md).
MIN_INTERVAL_SEEDS = 8
T_INTERVAL = "t interval over seeds (jackknife standard error; docs/statistics.md)"
PEAK_INTERVAL = "order statistics of the chosen cell's seeds (at least 95% for a fixed cell; docs/statistics.md)"


def grid_model(axes: GridAxes) -> GridAxesModel:
    return GridAxesModel(lrs=list(axes.lrs), betas=list(axes.betas), seeds=list(axes.seeds))


def seed_major(by_seed: ArrayT) -> ArrayT:
    """(I, J, S) in seed order → (S, I, J), the seed-wise kernels' layout."""
    return np.moveaxis(by_seed, -1, 0)


def estimate(
    m: SeedMean, index: tuple[int, ...] = (), *, score: bool = False, min_seeds: int = MIN_INTERVAL_SEEDS
) -> Estimate:
    """The mean at ``index`` of ``m`` as an ``Estimate``; its interval only from ``min_seeds`` seeds."""
    value = finite(m.estimate[index])
    n = int(m.n[index])
    if value is None:
        return Estimate(interval=Interval(status="undefined", method=T_INTERVAL), n_seeds=n)
    low, high = finite(m.low[index]), finite(m.high[index])
    status: IntervalStatus = "ok"
    if n < min_seeds:
        status = "too_few_seeds"
    elif low is None or high is None:
        status = "undefined"
    if status != "ok":
        low = high = None
    interval = Interval(
        low=low,
        high=high,
        raw_low=neg(high) if score else None,
        raw_high=neg(low) if score else None,
        level=m.level if status == "ok" else None,
        status=status,
        method=T_INTERVAL,
    )
    return Estimate(value=value, raw_value=neg(value) if score else None, interval=interval, n_seeds=n)


def missing_figure(status: IntervalStatus) -> Estimate:
    return Estimate(interval=Interval(status=status, method=T_INTERVAL))


def coverage(grid: ArmGrid, split: Split, chooses: bool = True) -> Coverage:
    """``chooses``: the study has a validation split (a cell is present with a result on both)."""
    n = grid.counts(split)
    present = ((grid.n_val > 0) | (not chooses)) & (n > 0)
    lrs, betas = grid.axes.lrs, grid.axes.betas
    return Coverage(
        complete=bool(present.all()),
        n_cells=grid.axes.n_cells,
        n_cells_present=int(present.sum()),
        n_cells_trained=int(trained(cell_medians(grid.scores(split), n), grid.y_fail).sum()),
        n_runs_trained=int(trained(grid.scores(split), grid.y_fail).sum()),
        n_trials_expected=grid.axes.n_cells * len(grid.axes.seeds),
        n_completed=int((n - grid.n_diverged).sum()),
        n_diverged=int(grid.n_diverged.sum()),
        n_missing=int((len(grid.axes.seeds) - n).sum()),
        missing_cells=[LrBeta(lr=lrs[i], beta_init=betas[j]) for i, j in np.argwhere(~present).tolist()],
    )


def peak(grid: ArmGrid, split: Split, min_seeds: int = MIN_INTERVAL_SEEDS) -> Peak:
    """The best cell by validation median; cells tied on it count as one random choice (their mean
    split median), as in q(k). Its interval: the chosen cell's order-statistic interval."""
    v = cell_medians(grid.val, grid.n_val)
    t = cell_medians(grid.scores(split), grid.counts(split))
    if np.isnan(v).all():
        return Peak(status="no_results")
    best = np.nanmax(v)
    tied = np.argwhere(v == best)
    i, j = (int(x) for x in tied[0])
    scores = [t[a, b] for a, b in tied.tolist() if np.isfinite(t[a, b])]
    score = float(np.mean(scores)) if scores else None
    n_seeds = int(grid.counts(split)[i, j])
    interval = Interval(status="tied", method=PEAK_INTERVAL)
    if len(tied) == 1:
        x, n = grid.scores(split)[i, j][None], grid.counts(split)[i, j][None]
        low, high, _, _ = median_interval(x, n, DEFAULT_CONFIDENCE)
        lo, hi = finite(low[0]), finite(high[0])
        ok = n_seeds >= min_seeds and lo is not None and hi is not None
        interval = Interval(
            low=lo if ok else None,
            high=hi if ok else None,
            raw_low=neg(hi) if ok else None,
            raw_high=neg(lo) if ok else None,
            level=DEFAULT_CONFIDENCE if ok else None,
            status="ok" if ok else "too_few_seeds",
            method=PEAK_INTERVAL,
        )
    return Peak(
        status="ok",
        lr=grid.axes.lrs[i],
        beta_init=grid.axes.betas[j],
        n_tied=len(tied),
        val=finite(best),
        score=score,
        raw_val=neg(finite(best)),
        raw_score=neg(score),
        score_interval=interval,
        n_seeds=n_seeds,
        divergence_rate=float(grid.n_diverged[i, j] / n_seeds) if n_seeds else None,
    )


def success_figures(grid: ArmGrid, seeds: ArmSeeds, raw_target: float | None, min_seeds: int) -> Success:
    """Share of succeeding cells (whole grid and per β_init column) and the lr width, per seed."""
    width = estimate(seeds.width, min_seeds=min_seeds)
    if len(grid.axes.lrs) < 2:
        width = missing_figure("undefined")
    elif width.value is None:
        width = missing_figure("incomplete")
    edge = seeds.edge[np.isfinite(seeds.edge)]
    return Success(
        status="ok",
        raw_target=raw_target,
        share=estimate(seeds.share, min_seeds=min_seeds),
        per_beta=[
            BetaShare(beta_init=beta, share=estimate(seeds.per_beta, (j,), min_seeds=min_seeds))
            for j, beta in enumerate(grid.axes.betas)
        ],
        lr_width=width,
        n_seeds_touching_lr_edge=int(edge.sum()) if edge.size else None,
    )


def expected_best_figure(seeds: ArmSeeds, ks: tuple[int, ...], min_seeds: int) -> ExpectedBest:
    values = [
        KEstimate(k=k, estimate=estimate(seeds.q, (n,), score=True, min_seeds=min_seeds)) for n, k in enumerate(ks)
    ]
    if not values or values[0].estimate.value is None:
        return ExpectedBest(status="incomplete")
    return ExpectedBest(status="ok", values=values)


def arm_report(
    grid: ArmGrid,
    seeds: ArmSeeds,
    split: Split,
    ks: tuple[int, ...],
    raw_target: float | None,
    min_seeds: int = MIN_INTERVAL_SEEDS,
    *,
    chooses: bool = True,
) -> ArmReport:
    """Every figure of one arm; ``seeds`` are its seed-wise figures (``_seedwise.arm_seeds``).
    Without a validation split (``chooses`` false) the figures that choose a cell are undefined."""
    cover = coverage(grid, split, chooses)
    base = ArmReport(
        arm=grid.arm,
        status="ok",
        selected_on="val" if chooses else None,
        split=split,
        y_fail=grid.y_fail,
        grid=grid_model(grid.axes),
        coverage=cover,
        peak=Peak(status="no_results"),
        success=Success(status="no_results", raw_target=raw_target),
        expected_best=ExpectedBest(status="no_results"),
        lr_sensitivity=LrSensitivity(status="no_results"),
        variance=variance(grid, split, cover.complete),
    )
    if cover.n_cells_present == 0:
        return base.model_copy(update={"status": "no_results"})
    if cover.n_runs_trained == 0:  # not one run: an arm that trained in 3 seeds of 8 did train
        never: FigureStatus = "never_trained"
        return base.model_copy(
            update={
                "status": "never_trained",
                "peak": Peak(status=never),
                "success": Success(status=never, raw_target=raw_target),
                "expected_best": ExpectedBest(status=never),
                "lr_sensitivity": LrSensitivity(status=never),
            }
        )
    gap = estimate(seeds.gap, min_seeds=min_seeds)
    return base.model_copy(
        update={
            "peak": peak(grid, split, min_seeds) if chooses else Peak(status="undefined"),
            "success": success_figures(grid, seeds, raw_target, min_seeds),
            "expected_best": expected_best_figure(seeds, ks, min_seeds)
            if chooses
            else ExpectedBest(status="undefined"),
            "lr_sensitivity": LrSensitivity(status="ok", pooled=gap)
            if gap.value is not None
            else LrSensitivity(status="undefined" if len(grid.axes.lrs) < 2 else "incomplete"),
        }
    )


def variance(grid: ArmGrid, split: Split, complete: bool) -> Variance:
    """Two-way ANOVA shares of the cell means (complete grid) or Optuna's fANOVA (incomplete)."""
    x, n = grid.scores(split), grid.counts(split)
    means, _, within = cell_moments(x, n)
    if not complete:
        return _fanova(grid.axes, means)
    shares, total = anova_shares(means, within if int(n.max()) >= 2 else None)
    if not shares:
        return Variance(status="undefined", method="anova", total_variance=total, note="no variance")
    return Variance(
        status="ok",
        method="anova",
        anova_shares=AnovaShares(
            lr=shares["lr"], beta_init=shares["beta_init"], interaction=shares["interaction"], seed=shares.get("seed")
        ),
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


def _fanova(axes: GridAxes, means: FloatArray) -> Variance:
    """Optuna's fANOVA over the cells present; diverged seeds are already at y_fail in the means."""
    present = np.argwhere(~np.isnan(means)).tolist()
    if len(present) < 2:
        return Variance(status="undefined", method="optuna_fanova", note="fewer than two cells with results")
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
        return Variance(status="undefined", method="optuna_fanova", note=str(exc))
    lr_share = finite(importances.get("log10_lr"))
    beta_share = finite(importances.get("beta_init"))
    if lr_share is None and beta_share is None:
        return Variance(status="undefined", method="optuna_fanova", note="no variance")
    return Variance(
        status="ok",
        method="optuna_fanova",
        fanova_importance=FanovaImportance(log10_lr=lr_share or 0.0, beta_init=beta_share or 0.0),
        note=f"incomplete grid: fANOVA main effects over {len(present)} of {axes.n_cells} cells",
    )
