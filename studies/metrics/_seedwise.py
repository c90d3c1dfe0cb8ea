"""Seed-wise figures: every landscape figure computed on each seed's grid, then averaged over seeds.

Why per seed. The paper judged robustness from one run per configuration. Its figures — how many
configurations reach a target error, how wide the good lr range is, the best of k tries — are
figures of a *single-run grid*. With S seeds a study holds S such grids (seed s fixes the
initialisation and data order of every cell and every arm), so each figure is computed on each
seed's grid and the study reports the mean over seeds: an unbiased estimate of what one run per
configuration gives, in expectation (``docs/statistics.md``, "Estimands"). No anchor or best cell
is chosen across seeds, so there is no winner's curse to correct: a selection made inside a seed's
grid is part of the figure's definition, and the mean over seeds estimates it without bias.

Why a t interval. The seeds are the independent replicates (a seed's grid is one draw of the
whole landscape), so a figure's interval is a t interval over the per-seed values, and a pair's
Δ is a paired t interval over the per-seed differences (a seed effect shared by both arms cancels).
When a figure depends on the default target, which is itself estimated from the pooled seeds,
the standard error is the delete-one-seed jackknife's, recomputing the target without the seed
(for a plain mean it *is* the t interval's standard error). ``tests/studies/test_metrics_coverage.py``
measures the coverage on six landscapes.

Arrays: scores are oriented (y = −value, higher is better), shaped (..., S, I, J) with any leading
axes (one study: none; the coverage battery: thousands of studies at once), seeds in
``GridAxes.seeds`` order, NaN where a trial is missing. A diverged trial holds −y_fail.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import t as student_t

from studies.metrics._grid import BoolArray, FloatArray
from studies.metrics._landscape import expected_best, longest_run_decades, lr_sensitivity, pick_probabilities

# The default target: the lower quartile (raw units) of the validation scores of every trial that
# trained, pooled over the study's arms — in oriented units, the upper quartile.
TARGET_QUANTILE = 0.25
# A trial "trained" when its score beats the failure score by more than float rounding.
_TRAINED_MARGIN = 1e-9


def trained(scores: FloatArray, y_fail: float) -> BoolArray:
    """Trials (or cell medians) that trained: a finite score better than the failure score."""
    with np.errstate(invalid="ignore"):
        out: BoolArray = np.greater(scores, -y_fail + _TRAINED_MARGIN * max(1.0, abs(y_fail)))
    return out


def _quantile_last(x: FloatArray, q: float) -> FloatArray:
    """The q-quantile (numpy's default, linear) over the last axis, ignoring NaN; NaN if none."""
    ordered = np.sort(x, axis=-1)  # NaN last
    n = np.isfinite(ordered).sum(axis=-1)
    h = np.maximum(n - 1, 0) * q
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    a = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
    return np.where(n > 0, a + (h - lo) * (b - a), np.nan)


def default_threshold(pool: FloatArray, y_fail: float, jackknife: bool = True) -> tuple[FloatArray, FloatArray | None]:
    """The default oriented threshold θ̂ and its delete-one-seed values θ̂₍₋ₛ₎.

    ``pool`` is (..., S, P): per seed, the validation scores of every arm's cells (P = arms × cells).
    Only trials that trained count. θ̂ is the upper quartile (oriented) of the pool: a trial
    succeeds when it reaches the error that a quarter of the trained runs reach. Returns θ̂ (...,)
    and θ̂₍₋ₛ₎ (..., S) (None without ``jackknife``); NaN where nothing trained.
    """
    x = np.where(trained(pool, y_fail), pool, np.nan)
    n_seeds = x.shape[-2]
    theta = _quantile_last(x.reshape(*x.shape[:-2], -1), 1 - TARGET_QUANTILE)
    if not jackknife:
        return theta, None
    drop = np.eye(n_seeds, dtype=bool)[..., None]  # (S_out, S, 1): seed s_out left out
    left_out = np.where(drop, np.nan, x[..., None, :, :])  # (..., S_out, S, P)
    theta_jk = _quantile_last(left_out.reshape(*left_out.shape[:-2], -1), 1 - TARGET_QUANTILE)
    return theta, theta_jk


def success(test: FloatArray, theta: FloatArray) -> FloatArray:
    """1.0 where a trial reaches the threshold θ (raw: error at most the target), 0.0 where not (a
    diverged trial never does), NaN where missing. ``theta`` broadcasts against (..., S, I, J)
    from its leading axes: shape (...,) → one θ per study."""
    th = np.asarray(theta, dtype=np.float64)[..., None, None, None]
    # "at most the target", up to float rounding: on a metric of a few hundred test samples many
    # runs share the target's exact value, and they reach it
    tolerance = _TRAINED_MARGIN * np.maximum(1.0, np.abs(th))
    with np.errstate(invalid="ignore"):
        out = np.where(np.isnan(test), np.nan, (test >= th - tolerance).astype(np.float64))
    return out


def share(ok: FloatArray) -> FloatArray:
    """Per seed, the share of the seed's cells that succeed: (..., S, I, J) → (..., S). NaN for a
    seed whose grid lacks a cell's result (failed, cancelled or not run yet), as for every seed-wise
    figure: a share over the cells that happen to have results would favour the arm whose bad
    cells failed or have not run over the arm whose bad cells diverged."""
    out: FloatArray = ok.mean(axis=(-2, -1))  # NaN wherever a cell lacks a result
    return out


def share_per_beta(ok: FloatArray) -> FloatArray:
    """Per seed and β_init column, the share of the column's cells that succeed: (..., S, J); NaN
    for a column that lacks a cell's result."""
    out: FloatArray = ok.mean(axis=-2)
    return out


def _complete(x: FloatArray) -> BoolArray:
    """Per seed: its whole grid has results, (..., S, I, J) → (..., S)."""
    return np.asarray(np.isfinite(x).all(axis=(-2, -1)))


def lr_width(ok: FloatArray, bounds: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per seed: the longest run of succeeding cells along lr, in decades, averaged over β_init,
    and whether a succeeding cell sits at the lowest or highest lr (1.0/0.0). NaN for a seed
    whose grid lacks a cell, and where the grid has one lr. (..., S, I, J) → two (..., S)."""
    whole = _complete(ok)
    lead = ok.shape[:-2]
    if ok.shape[-2] < 2:
        nan = np.full(lead, np.nan)
        return nan, nan
    good = np.nan_to_num(ok).reshape(-1, *ok.shape[-2:]) > 0.5
    widths = longest_run_decades(good, bounds).mean(axis=1).reshape(lead)
    edge = (good[:, 0, :].any(axis=1) | good[:, -1, :].any(axis=1)).reshape(lead).astype(np.float64)
    return np.where(whole, widths, np.nan), np.where(whole, edge, np.nan)


def best_of_k(val: FloatArray, test: FloatArray, ks: tuple[int, ...]) -> FloatArray:
    """Per seed, q(k): the expected ``test`` score of the best-by-``val`` cell among k cells drawn at
    random from the seed's grid (ties on validation: uniform, as for the peak). (..., S, K)."""
    lead = val.shape[:-2]
    whole = _complete(val) & _complete(test)
    v = np.nan_to_num(val).reshape(-1, *val.shape[-2:])
    t = np.nan_to_num(test).reshape(-1, *test.shape[-2:])
    q = expected_best(v, t, ks, replacement=False).reshape(*lead, len(ks))
    return np.where(whole[..., None], q, np.nan)


def lr_gap(test: FloatArray, y_fail: float | None = None) -> FloatArray:
    """Per seed, lr sensitivity (Wortsman et al. 2023): the mean gap of a cell to the best lr of
    its β_init column, in score units (lower is more robust). (..., S). With ``y_fail``, a column
    with no trained cell is measured from the seed's best cell, and a seed with no trained cell has
    no lr sensitivity (NaN): failure is never flatness (``lr_sensitivity``)."""
    lead = test.shape[:-2]
    t = np.nan_to_num(test).reshape(-1, *test.shape[-2:])
    floor = None if y_fail is None else -y_fail
    pooled = lr_sensitivity(t, floor)[1].reshape(lead)
    trained = np.ones(lead, bool) if floor is None else (t.max(axis=(1, 2)) > floor).reshape(lead)
    several = test.shape[-2] >= 2  # one lr: no other lr to be sensitive to (0 would claim a perfect score)
    return np.where(_complete(test) & trained & several, pooled, np.nan)


def win_share(va: FloatArray, ta: FloatArray, vb: FloatArray, tb: FloatArray, ks: tuple[int, ...]) -> FloatArray:
    """Per seed, P(a's pick beats b's): each arm draws k of the seed's cells, keeps its best by
    validation, and the two picks are compared on the analysis split (a tie counts ½). (..., S, K)."""
    lead = va.shape[:-2]
    whole = _complete(va) & _complete(ta) & _complete(vb) & _complete(tb)
    flat = [np.nan_to_num(x).reshape(-1, x.shape[-2] * x.shape[-1]) for x in (va, ta, vb, tb)]
    pa = pick_probabilities(flat[0], ks, replacement=False)  # (K, R, N)
    pb = pick_probabilities(flat[2], ks, replacement=False)
    beats = _half_sign(flat[1][:, :, None] - flat[3][:, None, :])  # (R, N, N)
    wins = np.einsum("kri,rij,krj->rk", pa, beats, pb).reshape(*lead, len(ks))
    return np.where(whole[..., None], wins, np.nan)


def _half_sign(d: FloatArray) -> FloatArray:
    """1 where d > 0, ½ where d = 0, 0 where d < 0 (NaN stays NaN)."""
    return np.where(np.isnan(d), np.nan, (np.sign(d) + 1) / 2)


def improvement(ta: FloatArray, tb: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per seed, the probability of improvement over runs: (matched) the share of cells where a's
    run beats b's run of the same cell and seed; (any) the share of all (a cell, b cell) pairs of
    the seed's grid where a's run beats b's — P(X > Y) + ½·P(X = Y). Two (..., S)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        matched = np.nanmean(_half_sign(ta - tb), axis=(-2, -1))
        a = ta.reshape(*ta.shape[:-2], -1)
        b = tb.reshape(*tb.shape[:-2], -1)
        anywhere = np.nanmean(_half_sign(a[..., :, None] - b[..., None, :]), axis=(-2, -1))
    return matched, anywhere


@dataclass(frozen=True, eq=False)
class SeedMean:
    """The mean over seeds of a per-seed figure, with its t interval (arrays over leading axes).

    ``se`` is the jackknife standard error over the seeds that have a value (``n``); ``low``/``high``
    bound the mean at ``level`` with t quantiles on n − 1 degrees of freedom; ``p_value`` tests
    mean = ``null`` (two-sided t test with the same standard error).
    """

    estimate: FloatArray
    se: FloatArray
    n: FloatArray
    low: FloatArray
    high: FloatArray
    p_value: FloatArray
    level: float


def seed_mean(x: FloatArray, x_jk: FloatArray | None = None, level: float = 0.95, null: float = 0.0) -> SeedMean:
    """Mean over the last axis (seeds) of ``x`` (..., S) with its interval.

    ``x_jk`` (..., S_out, S) are the per-seed values recomputed with seed ``S_out`` left out of
    whatever the figure estimated from all seeds (the default target); without it the figure is a
    plain mean and the jackknife standard error equals the t interval's sd/√n.

    A per-seed value within float rounding of ``null`` (1e-12, relative above 1) is ``null``: two
    arms whose best cells both score 0.3 differ by 0 in every seed, not by the -6e-17 that summing
    tied cells in another order leaves, which gave a zero-width interval beside 0 and a "winner".
    """
    x = _snapped(x, null)
    x_jk = None if x_jk is None else _snapped(x_jk, null)
    valid = np.isfinite(x)
    n = valid.sum(axis=-1).astype(np.float64)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        estimate = np.nanmean(x, axis=-1)
        if x_jk is None:
            se = np.nanstd(x, axis=-1, ddof=1) / np.sqrt(n)
        else:
            keep = valid[..., None, :] & ~np.eye(x.shape[-1], dtype=bool)
            loo = np.where(keep, x_jk, 0.0).sum(axis=-1) / keep.sum(axis=-1)  # (..., S_out)
            loo = np.where(valid, loo, np.nan)
            dev = loo - np.nanmean(loo, axis=-1, keepdims=True)
            se = np.sqrt((n - 1) / n * np.nansum(dev * dev, axis=-1))
        se = np.where(n >= 2, se, np.nan)
        quantile = student_t.ppf(0.5 + level / 2, np.maximum(n - 1, 1))
        low, high = estimate - quantile * se, estimate + quantile * se
        stat = (estimate - null) / se
        p = 2 * student_t.sf(np.abs(stat), np.maximum(n - 1, 1))
    # A zero standard error (every seed gave the same value) is an exact result: p is 0 unless the
    # mean is the null itself. Differences below float rounding count as zero.
    tiny = 1e-12 * np.maximum(1.0, np.abs(estimate))
    exact = np.isfinite(se) & (se <= tiny)
    p = np.where(exact, np.where(np.abs(estimate - null) <= tiny, 1.0, 0.0), p)
    low, high = np.where(exact, estimate, low), np.where(exact, estimate, high)  # as the p-value: exact
    return SeedMean(estimate=estimate, se=se, n=n, low=low, high=high, p_value=p, level=level)


def _snapped(x: FloatArray, null: float) -> FloatArray:
    """``x`` with every value within float rounding of ``null`` set to ``null`` (NaN stays NaN)."""
    with np.errstate(invalid="ignore"):
        near = np.abs(x - null) <= 1e-12 * np.maximum(1.0, np.abs(x))
    out: FloatArray = np.where(near, null, x)
    return out


# --- floors for figures made of a few binary outcomes ---------------------------------------------
# A share of succeeding cells moves in steps of 1/cells, and with a few seeds every seed can give
# the same share (say 1 of 15 cells, the arm's one good cell): the seeds' spread is then 0 although
# the share is not known exactly. The standard error is therefore never taken below what
# independent cells with Jeffreys-smoothed success rates, (successes + ½) / (seeds + 1), would give.

FLOOR_DRAWS = 256  # synthetic seed grids behind the width's floor
_FLOOR_SEED = 20_191_017  # fixed: the same scores always give the same intervals


def _jeffreys(ok: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per cell: the Jeffreys-smoothed success rate over seeds and the number of seeds with a result
    ((..., S, I, J) → two (..., I, J))."""
    n = np.isfinite(ok).sum(axis=-3)
    x = np.nansum(ok, axis=-3)
    return (x + 0.5) / (n + 1.0), n.astype(np.float64)


def share_floor(ok: FloatArray, axis: tuple[int, ...] = (-2, -1)) -> FloatArray:
    """The floor of the standard error of a mean over cells (``axis``: the whole grid, or (-2,)
    for each β_init column) of per-cell success rates: sqrt(Σ p(1−p)/n) / cells."""
    p, n = _jeffreys(ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(n > 0, p * (1 - p) / np.maximum(n, 1), 0.0)
        cells = (n > 0).sum(axis=axis)
        return np.where(cells > 0, np.sqrt(var.sum(axis=axis)) / np.maximum(cells, 1), np.nan)


def width_spread(ok: FloatArray, bounds: FloatArray) -> FloatArray:
    """The spread (sd) of one seed's lr width over synthetic seed grids whose cells succeed
    independently at their Jeffreys-smoothed rates; over √n_seeds it floors the mean width's
    standard error. NaN where the grid has one lr."""
    if ok.shape[-2] < 2:
        return np.full(ok.shape[:-3], np.nan)
    p, _ = _jeffreys(ok)
    lead = p.shape[:-2]
    rng = np.random.default_rng(_FLOOR_SEED)
    draws = rng.random((*lead, FLOOR_DRAWS, *p.shape[-2:])) < p[..., None, :, :]
    widths = longest_run_decades(draws.reshape(-1, *p.shape[-2:]), bounds).mean(axis=1)
    sd: FloatArray = widths.reshape(*lead, FLOOR_DRAWS).std(axis=-1, ddof=1)
    return sd


def _over_root(sd: FloatArray, n: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = sd / np.sqrt(n)
    return out


def clipped(m: SeedMean, low: float, high: float) -> SeedMean:
    """``m`` with its interval cut to the figure's range (a share lies in [0, 1]): the truth lies
    there, so cutting never lowers the coverage."""
    return replace(m, low=np.clip(m.low, low, high), high=np.clip(m.high, low, high))


def with_floor(m: SeedMean, floor: FloatArray, null: float = 0.0) -> SeedMean:
    """``m`` with its standard error raised to ``floor`` where it is lower (interval and p-value follow)."""
    se = np.where(np.isfinite(m.se), np.fmax(m.se, floor), m.se)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantile = student_t.ppf(0.5 + m.level / 2, np.maximum(m.n - 1, 1))
        p = 2 * student_t.sf(np.abs((m.estimate - null) / se), np.maximum(m.n - 1, 1))
    tiny = 1e-12 * np.maximum(1.0, np.abs(m.estimate))
    exact = np.isfinite(se) & (se <= tiny)
    p = np.where(exact, np.where(np.abs(m.estimate - null) <= tiny, 1.0, 0.0), p)
    return SeedMean(
        estimate=m.estimate,
        se=se,
        n=m.n,
        low=m.estimate - quantile * se,
        high=m.estimate + quantile * se,
        p_value=p,
        level=m.level,
    )


# --- every seed-wise figure of an arm and of a pair ----------------------------------------------


@dataclass(frozen=True, eq=False)
class ArmSeeds:
    """One arm's seed-wise figures over leading axes (...): the per-seed values that pair Δs
    subtract (``*_values`` (..., S), ``*_jk`` (..., S_out, S) when the target was estimated) and
    their means with intervals. ``q_values`` is (..., S, K); ``per_beta`` and ``q`` hold one mean
    per β_init column and per k on their last axis."""

    ok: FloatArray
    share_values: FloatArray
    share_jk: FloatArray | None
    share: SeedMean
    per_beta: SeedMean
    width_values: FloatArray
    width_jk: FloatArray | None
    width_sd: FloatArray
    width: SeedMean
    edge: FloatArray
    q_values: FloatArray
    q: SeedMean
    gap_values: FloatArray
    gap: SeedMean
    divergence_se: FloatArray


def arm_seeds(
    val: FloatArray,
    test: FloatArray,
    theta: FloatArray,
    theta_jk: FloatArray | None,
    bounds: FloatArray,
    ks: tuple[int, ...],
    level: float,
    y_fail: float | None = None,
    failed: BoolArray | None = None,
) -> ArmSeeds:
    """Every seed-wise figure of one arm: ``val``/``test`` (..., S, I, J) oriented scores, ``theta``
    (...,) the oriented threshold and ``theta_jk`` (..., S) its delete-one-seed values (None for a
    given target); ``y_fail`` the failure score (``lr_gap``); ``failed`` (..., S, I, J) the trials
    that ran and failed: they never succeed (``docs/metrics.md``), where a trial not run (pending,
    cancelled) leaves its seed without a share or width."""
    ok = success(test, theta)
    ok_jk = None if theta_jk is None else success(test[..., None, :, :, :], theta_jk)
    if failed is not None:
        ok = np.where(failed, 0.0, ok)
        ok_jk = None if ok_jk is None else np.where(failed[..., None, :, :, :], 0.0, ok_jk)
    share_values = share(ok)
    share_jk = None if ok_jk is None else share(ok_jk)
    beta_values = np.moveaxis(share_per_beta(ok), -1, -2)  # (..., J, S)
    beta_jk = None if ok_jk is None else np.moveaxis(share_per_beta(ok_jk), -1, -3)  # (..., J, S_out, S)
    width_values, edge = lr_width(ok, bounds)
    width_jk = None if ok_jk is None else lr_width(ok_jk, bounds)[0]
    width = seed_mean(width_values, width_jk, level)
    width_sd = width_spread(ok, bounds)
    q_values = best_of_k(val, test, ks)
    gap_values = lr_gap(test, y_fail)
    decades = float(bounds[-1] - bounds[0])
    return ArmSeeds(
        ok=ok,
        share_values=share_values,
        share_jk=share_jk,
        share=clipped(with_floor(seed_mean(share_values, share_jk, level), share_floor(ok)), 0.0, 1.0),
        per_beta=clipped(with_floor(seed_mean(beta_values, beta_jk, level), share_floor(ok, axis=(-2,))), 0.0, 1.0),
        width_values=width_values,
        width_jk=width_jk,
        width_sd=width_sd,
        width=clipped(with_floor(width, _over_root(width_sd, width.n)), 0.0, decades),
        edge=edge,
        q_values=q_values,
        q=seed_mean(np.moveaxis(q_values, -1, -2), None, level),
        gap_values=gap_values,
        gap=clipped(seed_mean(gap_values, None, level), 0.0, np.inf),
        divergence_se=divergence_floor(test, y_fail),
    )


def divergence_floor(test: FloatArray, y_fail: float | None) -> FloatArray:
    """The floor of the standard error of a score figure (q(k), the lr gap) where every seed gave the
    same value: what one cell's chance of diverging, unseen or not, would move a seed's figure.

    A score figure is a weighted mean of cell scores (weights summing to 1), so its variance is at
    most the largest cell's. A cell diverges at its Jeffreys-smoothed rate (diverged + ½) / (seeds + 1)
    and then scores y_fail instead of its median trained score (the arm's best where none trained):
    sqrt(p(1 − p) / seeds) · |score − y_fail|, the largest over cells. Only a degenerate spread takes
    it (``pair_seeds``): a cell that failed in 15% of seeds, unseen in 8, gave the other arm a "win"
    with a zero-width interval and p = 0 in 57 of 200 simulated studies. NaN without ``y_fail``."""
    lead = test.shape[:-3]
    if y_fail is None:
        return np.full(lead, np.nan)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ran = np.isfinite(test)
        ok = trained(test, y_fail) & ran
        n = ran.sum(axis=-3).astype(np.float64)
        p = ((ran & ~ok).sum(axis=-3) + 0.5) / (n + 1.0)
        scores = np.nanmedian(np.where(ok, test, np.nan), axis=-3)  # (..., I, J)
        best = np.nanmax(np.where(ok, test, np.nan), axis=(-3, -2, -1))
        scores = np.where(np.isfinite(scores), scores, best[..., None, None])
        spread = np.sqrt(p * (1 - p) / np.maximum(n, 1)) * np.abs(scores + y_fail)  # oriented: y_fail is -y_fail
        spread = np.where((n > 0) & np.isfinite(spread), spread, np.nan)
        out: FloatArray = np.nanmax(spread.reshape(*lead, -1), axis=-1)
    return out


def _if_degenerate(m: SeedMean, floor: FloatArray) -> FloatArray:
    """``floor`` where every seed gave the same value (a spread of 0), else 0: no floor."""
    degenerate = np.isfinite(m.se) & (m.se <= 1e-12 * np.maximum(1.0, np.abs(m.estimate)))  # as ``seed_mean``
    out: FloatArray = np.where(degenerate, floor, 0.0)
    return out


def _diff(x: FloatArray | None, y: FloatArray | None) -> FloatArray | None:
    return None if x is None or y is None else x - y


def pair_seeds(
    a: ArmSeeds,
    b: ArmSeeds,
    grids: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    ks: tuple[int, ...],
    win_ks: tuple[int, ...],
    level: float,
) -> dict[tuple[str, int | None], SeedMean]:
    """Every compared figure of arm a against arm b, keyed (figure, k): Δs oriented so that > 0
    means a is better (paired per seed), and a's probabilities of being better (null ½).
    ``grids`` is (val a, test a, val b, test b), each (..., S, I, J)."""
    va, ta, vb, tb = grids
    # Every seed giving the same Δ (a spread of 0) is not an exact Δ: neither share is known exactly.
    # There, and only there, the arms' floors carried to their difference (independent cells: variances
    # add) stand in: zero-width intervals with p = 0 covered 80% in a one-cell landscape without it,
    # and a floor everywhere would have halved the battery's power (29% -> 15% at 8 seeds).
    # The same holds for the lr width (one cell deciding gave zero-width intervals covering 76%).
    share_delta = seed_mean(a.share_values - b.share_values, _diff(a.share_jk, b.share_jk), level)
    share_delta = with_floor(share_delta, _if_degenerate(share_delta, np.hypot(share_floor(a.ok), share_floor(b.ok))))
    width_delta = seed_mean(a.width_values - b.width_values, _diff(a.width_jk, b.width_jk), level)
    width_sd = np.hypot(a.width_sd, b.width_sd)
    width_delta = with_floor(width_delta, _if_degenerate(width_delta, _over_root(width_sd, width_delta.n)))
    out: dict[tuple[str, int | None], SeedMean] = {
        ("success_share", None): clipped(share_delta, -1.0, 1.0),
        ("success_lr_width", None): width_delta,
    }
    # The score figures take a floor in the same case: what a cell's unseen chance to diverge allows.
    score_floor = np.hypot(a.divergence_se, b.divergence_se)
    for n, k in enumerate(ks):
        best = seed_mean(a.q_values[..., n] - b.q_values[..., n], None, level)
        out[("expected_best", k)] = with_floor(best, _if_degenerate(best, score_floor))
    gap = seed_mean(b.gap_values - a.gap_values, None, level)
    out[("lr_sensitivity", None)] = with_floor(gap, _if_degenerate(gap, score_floor))
    wins = win_share(va, ta, vb, tb, win_ks)
    for n, k in enumerate(win_ks):
        out[("win_probability", k)] = clipped(seed_mean(wins[..., n], None, level, null=0.5), 0.0, 1.0)
    matched, anywhere = improvement(ta, tb)
    halves = _half_sign(ta - tb)
    floored = with_floor(seed_mean(matched, None, level, null=0.5), share_floor(halves), null=0.5)
    out[("improvement_matched", None)] = clipped(floored, 0.0, 1.0)
    out[("improvement_any", None)] = clipped(seed_mean(anywhere, None, level, null=0.5), 0.0, 1.0)
    return out
