"""Array kernels of the landscape figures, vectorised over a leading axis of grids.

Every kernel takes cell scores shaped (R, I, J) — R grids: one per seed, or per seed and study in
the coverage battery — oriented higher-is-better, complete (no NaN) unless it says otherwise. They
are written to match the definitions of docs/metrics.md; ``_seedwise`` applies them to each
seed's grid.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from studies.metrics._grid import BoolArray, FloatArray, IntArray


def longest_run_decades(good: BoolArray, bounds: FloatArray) -> FloatArray:
    """Per grid and column, the longest run of True along axis 1 (lr), in decades: (R, K).

    ``good`` is (R, I, K); ``bounds`` the I + 1 log10-lr cell boundaries (``GridAxes.lr_bounds``).
    """
    spans = np.broadcast_to(np.diff(bounds)[None, :, None], good.shape)
    return _running_sums(good, spans).max(axis=1)


def _running_sums(good: BoolArray, weights: FloatArray) -> FloatArray:
    """Sum of ``weights`` over the run of True ending at each position along axis 1 (0 if False)."""
    total = np.cumsum(np.where(good, weights, 0.0), axis=1)
    # ``total`` never decreases, so its running max over the False positions is its value at the
    # last False position: what to subtract to restart the sum after every break.
    base = np.maximum.accumulate(np.where(good, 0.0, total), axis=1)
    return total - base


@functools.lru_cache(maxsize=256)
def pick_weights(n: int, k: int, replacement: bool) -> FloatArray:
    """P(the best of k random cells is the i-th worst), i = 1..n, cells in ascending order.

    Without replacement: C(i−1, k−1) / C(n, k) (Sivaprasad et al. 2020); with replacement:
    (i/n)^k − ((i−1)/n)^k (Dodge et al. 2019).
    """
    i = np.arange(1, n + 1, dtype=np.float64)
    if replacement:
        return _frozen((i / n) ** k - ((i - 1) / n) ** k)
    # C(i−1, k−1) for i = k..n by the ratio C(i, k−1) / C(i−1, k−1) = i / (i − k + 1); the
    # hockey-stick identity makes their sum C(n, k), so normalising is the division.
    counts = np.zeros(n)
    counts[k - 1 :] = np.cumprod(np.concatenate([[1.0], i[k - 1 : n - 1] / (i[k - 1 : n - 1] - k + 1)]))
    return _frozen(counts / counts.sum())


def _frozen(array: FloatArray) -> FloatArray:
    array.flags.writeable = False  # cached: shared by every caller
    return array


def pick_probabilities(v: FloatArray, ks: tuple[int, ...], replacement: bool) -> FloatArray:
    """P(cell c is the one chosen) when k cells are drawn at random and the best by ``v`` is kept.

    ``v`` is (R, N); the result (len(ks), R, N). Ties in ``v`` are broken uniformly at random,
    which by symmetry spreads a tie group's probability evenly over its cells.
    """
    n_rep, n = v.shape
    if not ks:
        return np.zeros((0, n_rep, n))
    order, first, last = _tie_groups(v)
    weights = np.stack([pick_weights(n, k, replacement) for k in ks])
    cumulative = np.concatenate([np.zeros((len(ks), 1)), np.cumsum(weights, axis=1)], axis=1)
    share = (cumulative[:, last + 1] - cumulative[:, first]) / (last - first + 1)
    probs = np.empty_like(share)
    probs[:, np.arange(n_rep)[:, None], order] = share
    return probs


def expected_best(v: FloatArray, t: FloatArray, ks: tuple[int, ...], replacement: bool) -> FloatArray:
    """Expected ``t`` of the cell chosen by ``v`` among k random cells: (R, len(ks)).

    q(k) = Σ_i w_i(k) · t_(i) with cells in ascending ``v`` order, where within a tie group of
    ``v`` each t is replaced by the group's mean (the uniform tie-break of ``pick_probabilities``).
    """
    vv = v.reshape(v.shape[0], -1)
    tt = t.reshape(t.shape[0], -1)
    n = vv.shape[1]
    if not ks:
        return np.zeros((vv.shape[0], 0))
    order, first, last = _tie_groups(vv)
    ranked_t = np.take_along_axis(tt, order, axis=1)
    cumulative = np.concatenate([np.zeros((tt.shape[0], 1)), np.cumsum(ranked_t, axis=1)], axis=1)
    group_mean = (np.take_along_axis(cumulative, last + 1, axis=1) - np.take_along_axis(cumulative, first, axis=1)) / (
        last - first + 1
    )
    weights = np.stack([pick_weights(n, k, replacement) for k in ks])
    return group_mean @ weights.T


def _tie_groups(v: FloatArray) -> tuple[IntArray, IntArray, IntArray]:
    """Ascending order of each row of ``v`` (R, N), and per sorted position the first and last
    sorted position of its group of equal values."""
    n_rep, n = v.shape
    order = np.argsort(v, axis=1, kind="stable")
    ranked = np.take_along_axis(v, order, axis=1)
    starts = np.ones((n_rep, n), dtype=bool)
    starts[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    ends = np.ones((n_rep, n), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    position = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    return order, first, last


def lr_sensitivity(t: FloatArray, floor: float | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Wortsman et al. 2023: per β_j the mean over lr of the gap to that column's best lr.

    With ``floor`` (the oriented failure score, −y_fail), a column none of whose cells beats it takes
    the grid's best as its reference instead: a column that fails throughout has no best lr, and a gap
    of 0 to its own failure would make failing everywhere the flattest landscape there is.

    Returns (per_beta (R, J), pooled (R,): the mean gap over every cell to its column's best,
    joint (R,): the mean gap over every cell to the grid's best).
    """
    best = t.max(axis=1, keepdims=True)
    if floor is not None:
        best = np.where(best > floor, best, t.max(axis=(1, 2))[:, None, None])
    gap = best - t
    per_beta = gap.mean(axis=1)
    joint = (t.max(axis=(1, 2))[:, None, None] - t).mean(axis=(1, 2))
    return per_beta, gap.mean(axis=(1, 2)), joint


def anova_shares(means: FloatArray, within: FloatArray | None) -> tuple[dict[str, float], float]:
    """Two-way ANOVA of the (I, J) cell means, every cell weighted equally (fANOVA on a grid).

    Variances: lr = mean_i(row effect²), β = mean_j(column effect²), interaction = mean of the
    residuals², seed = mean over cells of the within-cell sample variance (ddof 1: unbiased for
    the seed variance; cells with one seed give NaN and are skipped) when ``within`` is given. The
    shares are each over the sum of the parts. Returns (shares, total variance).
    """
    grand = means.mean()
    rows = means.mean(axis=1) - grand
    cols = means.mean(axis=0) - grand
    residual = means - grand - rows[:, None] - cols[None, :]
    parts = {
        "lr": float((rows**2).mean()),
        "beta_init": float((cols**2).mean()),
        "interaction": float((residual**2).mean()),
    }
    if within is not None:
        parts["seed"] = float(np.nanmean(within))
    total = sum(parts.values())
    if not math.isfinite(total) or math.sqrt(total) <= 1e-12 * max(1.0, abs(float(grand))):
        return {}, 0.0  # constant up to float rounding (compared as a spread: the square overflowed at 1e180)
    return {name: value / total for name, value in parts.items()}, total
