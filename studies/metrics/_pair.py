"""Comparisons of two arms on the same grid and seeds (METRICS.md "Per pair of arms").

Every Δ is oriented so that **Δ > 0 means arm a (the first arm) is better**: for score-valued
figures (peak, q(k)) and for the ε-good fraction and widths Δ = a − b; for lr sensitivity (a gap,
lower is more robust) Δ = b − a. For a score-valued Δ, Δ = raw_b − raw_a: by how much a's error or
loss is lower.

Intervals come from the paired seed bootstrap of ``_resample`` (resampling: seeds, paired across
cells, splits and arms): one set of replicates serves every pair of a report, so the Δs of a
report are consistent with each other. They are 95% percentile intervals reported with
``min_level`` 0.95: they cover at least that often, often more (98–100% for Δ peak and the
ε-good figures in the simulation), so their level is a bound, never an exact "95%". Beside each
interval we report the share of replicates with Δ > 0, Δ = 0 (``bootstrap_share_ties``) and
Δ < 0. These shares describe the bootstrap distribution; they are **not** the probability that
arm a is better. The probabilities we do report are defined where they are reported: the win
probability against a budget of k random cells, and the probability of improvement
P(X > Y) + ½·P(X = Y) (Mann–Whitney U / (n·m)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from studies.errors import ComparisonError, MetricsError
from studies.metrics._arm import (
    DEFAULT_KS,
    INCOMPLETE,
    OK,
    UNDEFINED,
    check_eps,
    check_ks,
    is_complete,
    medians,
)
from studies.metrics._grid import (
    ORIENTATION,
    ArmGrid,
    BoolArray,
    FloatArray,
    GridAxes,
    IntArray,
    build_grids,
    check_split,
    finite,
)
from studies.metrics._landscape import (
    expected_best,
    good_mask,
    longest_run_decades,
    lr_sensitivity,
    peak_index,
    pick_probabilities,
    take_flat,
)
from studies.metrics._resample import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    INTERVAL_METHOD,
    MIN_BOOTSTRAP_SEEDS,
    RESAMPLING,
    PairedBootstrap,
    check_resamples,
    paired_bootstrap,
    resampled_medians,
)
from studies.vocab import Split

DEFAULT_PAIR_RESAMPLES = DEFAULT_RESAMPLES
TOO_FEW_SEEDS = "too_few_seeds"
POSITIVE_MEANS = "arm_a is better"
WIN_DEFINITION = (
    "P(arm a's pick beats arm b's): each arm draws k cells at random without replacement, keeps its "
    "best by validation median, and the two are compared by their median on the analysis split; a "
    "tie counts 1/2. Exact on the cell medians; the interval is from the paired seed bootstrap."
)
IMPROVEMENT_DEFINITION = (
    "P(X > Y) + 1/2 P(X = Y) for X a cell median of arm a and Y of arm b on the analysis split "
    "(oriented): 'matched' over cells both arms have (X, Y from the same cell), 'distributions' over "
    "every pair of cells (Mann-Whitney U / (n_a n_b)). A point estimate on the cell medians, without "
    "an interval."
)

# Summary metrics compared between arms: name → (higher is better, in score units).
_SUMMARY: dict[str, tuple[bool, bool]] = {
    "peak": (True, True),
    "eps_good_fraction": (True, False),
    "eps_good_lr_width_mean": (True, False),
    "eps_good_lr_width_all_betas": (True, False),
    "expected_best": (True, True),
    "lr_sensitivity": (False, False),
}


def interval_record(low: float | None, high: float | None, level: float | None, status: str) -> dict[str, Any]:
    """A bootstrap interval as JSON: bounds, ``min_level``, status and method.

    ``min_level`` (metrics v3; v2 called it ``level``) is a lower bound on the coverage, not an
    exact level: these percentile intervals are conservative (see ``_resample``).
    """
    usable = status == OK and low is not None and high is not None
    return {
        "low": low if usable else None,
        "high": high if usable else None,
        "min_level": level if usable else None,
        "status": status,
        "method": INTERVAL_METHOD,
    }


@dataclass(frozen=True)
class Delta:
    """Δ of one figure between the arms, oriented so that Δ > 0 means arm a is better.

    ``interval_status`` is "ok", "too_few_seeds" (fewer than ``MIN_BOOTSTRAP_SEEDS`` seeds: no
    interval) or "undefined" (some replicates have no value, e.g. a cell without results).
    ``bootstrap_share_*`` are the shares of replicates with Δ > 0, = 0 and < 0.
    """

    metric: str
    status: str
    score_valued: bool
    k: int | None = None
    delta: float | None = None
    interval_low: float | None = None
    interval_high: float | None = None
    level: float | None = None
    interval_status: str = UNDEFINED
    bootstrap_share_positive: float | None = None
    bootstrap_share_ties: float | None = None
    bootstrap_share_negative: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "k": self.k,
            "status": self.status,
            "positive_means": POSITIVE_MEANS,
            "score_valued": self.score_valued,
            "delta": self.delta,
            "interval": interval_record(self.interval_low, self.interval_high, self.level, self.interval_status),
            "bootstrap_share_positive": self.bootstrap_share_positive,
            "bootstrap_share_ties": self.bootstrap_share_ties,
            "bootstrap_share_negative": self.bootstrap_share_negative,
        }


@dataclass(frozen=True)
class WinProbability:
    """P(a's pick beats b's) against a budget of k random cells (see ``WIN_DEFINITION``), with
    paired-bootstrap intervals (``low``/``high``, None where ``interval_status`` is not "ok")."""

    status: str
    ks: tuple[int, ...] = ()
    a_wins: tuple[float, ...] = ()
    low: tuple[float | None, ...] = ()
    high: tuple[float | None, ...] = ()
    level: float | None = None
    interval_status: str = UNDEFINED

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "definition": WIN_DEFINITION,
            "ks": list(self.ks),
            "a_wins": list(self.a_wins),
            "intervals": [
                {"k": k, **interval_record(lo, hi, self.level, self.interval_status)}
                for k, lo, hi in zip(self.ks, self.low, self.high, strict=True)
            ],
        }


@dataclass(frozen=True)
class ProbabilityOfImprovement:
    """P(X > Y) + ½·P(X = Y) for X a cell median of arm a, Y of arm b (see ``IMPROVEMENT_DEFINITION``)."""

    matched: float | None
    n_matched: int
    distributions: float | None
    n_a: int
    n_b: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": IMPROVEMENT_DEFINITION,
            "matched": self.matched,
            "n_matched": self.n_matched,
            "distributions": self.distributions,
            "n_a": self.n_a,
            "n_b": self.n_b,
        }


@dataclass(frozen=True)
class PairMetrics:
    """Arm a against arm b; every Δ is oriented so that Δ > 0 means arm a is better."""

    arm_a: str
    arm_b: str
    split: Split
    eps: float
    relative: bool
    n_resamples: int
    level: float
    deltas: tuple[Delta, ...]
    win_probability: WinProbability
    improvement: ProbabilityOfImprovement

    def delta(self, metric: str, k: int | None = None) -> Delta:
        """The Δ of ``metric`` (and ``k`` for "expected_best")."""
        for d in self.deltas:
            if d.metric == metric and d.k == k:
                return d
        raise KeyError((metric, k))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (no NaN or inf: ``None``)."""
        return {
            "arm_a": self.arm_a,
            "arm_b": self.arm_b,
            "orientation": ORIENTATION,
            "positive_means": POSITIVE_MEANS,
            "split": self.split,
            "eps": self.eps,
            "relative": self.relative,
            "resampling": RESAMPLING,
            "n_resamples": self.n_resamples,
            "min_level": self.level,
            "deltas": [d.to_dict() for d in self.deltas],
            "win_probability": self.win_probability.to_dict(),
            "probability_of_improvement": self.improvement.to_dict(),
        }


def summary_vector(
    axes: GridAxes,
    v: FloatArray,
    t: FloatArray,
    eps: float,
    relative: bool,
    ks: tuple[int, ...],
    complete: bool,
) -> tuple[tuple[tuple[str, int | None], ...], FloatArray]:
    """The compared figures of one arm for R replicates of its cell medians (R, I, J): (R, M).

    Grid figures of a replicate with a cell without a median are NaN. The ε-good threshold is
    anchored on the best cell median on the analysis split (``t``), as in ``arm_metrics``.
    """
    n_rep = v.shape[0]
    peak = take_flat(t, peak_index(v))
    nan = np.full(n_rep, np.nan)
    columns: dict[tuple[str, int | None], FloatArray] = {("peak", None): peak}
    fraction = width_mean = width_all = pooled = nan
    q = np.full((n_rep, len(ks)), np.nan)
    if complete:
        whole: BoolArray = np.logical_not(np.isnan(v).any(axis=(1, 2)) | np.isnan(t).any(axis=(1, 2)))
        vv, tt = np.where(np.isnan(v), 0.0, v), np.where(np.isnan(t), 0.0, t)
        good, _ = good_mask(tt, tt.max(axis=(1, 2)), eps, relative)
        fraction = np.where(whole, good.mean(axis=(1, 2)), np.nan)
        if len(axes.lrs) >= 2:
            bounds = axes.lr_bounds()
            width_mean = np.where(whole, longest_run_decades(good, bounds).mean(axis=1), np.nan)
            width_all = np.where(whole, longest_run_decades(np.all(good, axis=2, keepdims=True), bounds)[:, 0], np.nan)
        q = np.where(whole[:, None], expected_best(vv, tt, ks, replacement=False), np.nan)
        pooled = np.where(whole, lr_sensitivity(tt)[1], np.nan)
    columns[("eps_good_fraction", None)] = fraction
    columns[("eps_good_lr_width_mean", None)] = width_mean
    columns[("eps_good_lr_width_all_betas", None)] = width_all
    for n, k in enumerate(ks):
        columns[("expected_best", k)] = q[:, n]
    columns[("lr_sensitivity", None)] = pooled
    return tuple(columns), np.stack(list(columns.values()), axis=1)


def win_probabilities(
    va: FloatArray, ta: FloatArray, vb: FloatArray, tb: FloatArray, ks: tuple[int, ...]
) -> FloatArray:
    """P(a's best-of-k by validation beats b's on the analysis split), per replicate: (R, K).

    Inputs are (R, N) cell medians of complete grids; ties on the analysis split count ½.
    """
    pa = pick_probabilities(va, ks, replacement=False)  # (K, R, N)
    pb = pick_probabilities(vb, ks, replacement=False)
    n_rep, n = ta.shape
    # For each of a's cells, b's pick probability below it and at most it: sort a's and b's
    # scores together (ties: b's first for "at most", a's first for "below") and accumulate b's
    # weights. O(R·N log N) instead of comparing every pair of cells.
    values = np.concatenate([ta, tb], axis=1)  # (R, 2N): a's cells, then b's
    weights = np.concatenate([np.zeros_like(pb), pb], axis=2)  # (K, R, 2N)
    is_a = np.concatenate([np.ones((n_rep, n)), np.zeros((n_rep, n))], axis=1)
    halves = []
    for a_first in (True, False):
        order = np.lexsort((is_a if not a_first else 1 - is_a, values), axis=-1)
        sorted_w = np.take_along_axis(weights, np.broadcast_to(order, weights.shape), axis=2)
        before = np.cumsum(sorted_w, axis=2) - sorted_w  # b's weight strictly before each position
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(2 * n)[None, :].repeat(n_rep, axis=0), axis=1)
        halves.append(np.take_along_axis(before, np.broadcast_to(rank[:, :n], (len(ks), n_rep, n)), axis=2))
    below_or_tied = (halves[0] + halves[1]) / 2  # P(b's pick < x) + ½·P(b's pick = x), per a cell x
    return np.einsum("kri,kri->rk", pa, below_or_tied)


def check_comparable(a: ArmGrid, b: ArmGrid) -> None:
    """Refuse two arms whose rows cover different lrs, β_inits or seeds."""
    problems = []
    for axis, values, seen_a, seen_b in (
        ("lr", a.axes.lrs, a.lr_seen, b.lr_seen),
        ("beta_init", a.axes.betas, a.beta_seen, b.beta_seen),
        ("seed", a.axes.seeds, a.seed_seen, b.seed_seen),
    ):
        only_a = [values[i] for i in np.flatnonzero(seen_a & ~seen_b)]
        only_b = [values[i] for i in np.flatnonzero(seen_b & ~seen_a)]
        if only_a or only_b:
            problems.append(f"{axis} values only in {a.arm!r}: {only_a}, only in {b.arm!r}: {only_b}")
    if problems:
        raise ComparisonError(
            f"arms {a.arm!r} and {b.arm!r} were not run on the same grid and seeds, so their grid "
            f"metrics are not comparable: {'; '.join(problems)}"
        )


def pair_metrics(
    scores: pd.DataFrame,
    axes: GridAxes,
    arm_a: str,
    arm_b: str,
    y_fail: float,
    eps: float | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    n_resamples: int = DEFAULT_PAIR_RESAMPLES,
    *,
    relative: bool = False,
    split: str = "test",
    level: float = DEFAULT_LEVEL,
) -> PairMetrics:
    """Compare arm a with arm b: Δ (positive = a better) of peak, F_ε, widths, q(k) and lr
    sensitivity with paired seed-bootstrap intervals, win probability against budget k with its
    interval, probability of improvement.

    Raises ``ComparisonError`` when the arms' rows cover different lrs, β_inits or seeds.
    """
    if arm_a == arm_b:
        raise MetricsError(f"cannot compare arm {arm_a!r} with itself")
    checked = check_split(split)
    grids = build_grids(scores, axes, y_fail, [arm_a, arm_b])
    check_comparable(grids[arm_a], grids[arm_b])
    return compare_pairs(grids, [(arm_a, arm_b)], checked, check_eps(eps), relative, ks, n_resamples, level)[0]


def usable_ks(ks: tuple[int, ...], axes: GridAxes) -> tuple[int, ...]:
    return tuple(k for k in check_ks(ks) if k <= axes.n_cells)


def check_level(level: float) -> float:
    if not (0 < float(level) < 1):
        raise MetricsError(f"Invalid level value: {level} (need 0 < level < 1)")
    return float(level)


def compare_pairs(
    grids: dict[str, ArmGrid],
    pairs: Sequence[tuple[str, str]],
    split: Split,
    eps: float,
    relative: bool,
    ks: tuple[int, ...],
    n_resamples: int,
    level: float,
) -> list[PairMetrics]:
    """Every pair's metrics from one paired seed bootstrap (``check_comparable`` already passed).

    One replicate draws the seed indices once; every arm of every pair takes those seeds in every
    cell and on both splits.
    """
    if not pairs:
        return []
    n_resamples, level = check_resamples(n_resamples), check_level(level)
    axes = next(iter(grids.values())).axes
    ks = usable_ks(ks, axes)
    arms = list(dict.fromkeys(arm for pair in pairs for arm in pair))
    complete = {arm: is_complete(grids[arm], split) for arm in arms}
    n_lr, n_beta, n_seed = axes.shape
    names, _ = summary_vector(axes, np.zeros((1, n_lr, n_beta)), np.zeros((1, n_lr, n_beta)), eps, relative, ks, True)
    n_fig = len(names) + len(ks)

    def statistic(idx: IntArray) -> FloatArray:
        n_rep = idx.shape[0]
        v = {arm: resampled_medians(grids[arm].val_by_seed, idx) for arm in arms}
        t = v if split == "val" else {arm: resampled_medians(grids[arm].test_by_seed, idx) for arm in arms}
        vec = {arm: summary_vector(axes, v[arm], t[arm], eps, relative, ks, complete[arm])[1] for arm in arms}
        out = np.full((len(pairs), n_fig, n_rep), np.nan)
        for p, (a, b) in enumerate(pairs):
            diff = vec[a] - vec[b]
            out[p, : len(names)] = (diff * _signs(names)).T
            if complete[a] and complete[b] and ks:
                wins = win_probabilities(
                    v[a].reshape(n_rep, -1),
                    t[a].reshape(n_rep, -1),
                    v[b].reshape(n_rep, -1),
                    t[b].reshape(n_rep, -1),
                    ks,
                )
                # a replicate that left some cell without a result has no win probability
                cells = (v[a], t[a], v[b], t[b])
                whole = np.logical_and.reduce([np.isfinite(x).all(axis=(1, 2)) for x in cells])[:, None]
                out[p, len(names) :] = np.where(whole & np.isfinite(wins), wins, np.nan).T
        return out.reshape(len(pairs) * n_fig, n_rep)

    enough = n_seed >= MIN_BOOTSTRAP_SEEDS
    cost = (len(arms) * 2 * n_seed + len(pairs) * 4 * (len(ks) + 1)) * n_lr * n_beta  # floats per replicate
    boot = paired_bootstrap(statistic, n_seed, n_resamples, level, cost) if enough else None
    point = boot.point if boot is not None else statistic(np.arange(n_seed)[None])[:, 0]
    results = []
    for p, (a, b) in enumerate(pairs):
        base = p * n_fig
        both = complete[a] and complete[b]
        deltas = tuple(_delta(name, k, base + m, point, boot, both) for m, (name, k) in enumerate(names))
        wins = _win(ks, base + len(names), point, boot, both)
        results.append(
            PairMetrics(
                arm_a=a,
                arm_b=b,
                split=split,
                eps=eps,
                relative=relative,
                n_resamples=n_resamples,
                level=level,
                deltas=deltas,
                win_probability=wins,
                improvement=_improvement(medians(grids[a], split)[1], medians(grids[b], split)[1]),
            )
        )
    return results


def _signs(names: tuple[tuple[str, int | None], ...]) -> FloatArray:
    return np.array([1.0 if _SUMMARY[name][0] else -1.0 for name, _ in names])


def _interval(m: int, boot: PairedBootstrap | None) -> tuple[float | None, float | None, str]:
    if boot is None:
        return None, None, TOO_FEW_SEEDS
    low, high = finite(boot.low[m]), finite(boot.high[m])
    if low is None or high is None or not np.isfinite(boot.replicates[m]).all():
        return None, None, UNDEFINED
    return low, high, OK


def _delta(name: str, k: int | None, m: int, point: FloatArray, boot: PairedBootstrap | None, complete: bool) -> Delta:
    score_valued = _SUMMARY[name][1]
    estimate = finite(point[m])
    if estimate is None:
        status = INCOMPLETE if not complete else UNDEFINED
        return Delta(metric=name, k=k, status=status, score_valued=score_valued)
    low, high, interval_status = _interval(m, boot)
    positive, ties, negative = (None, None, None) if boot is None else boot.share(m)
    return Delta(
        metric=name,
        k=k,
        status=OK,
        score_valued=score_valued,
        delta=estimate,
        interval_low=low,
        interval_high=high,
        level=None if boot is None else boot.level,
        interval_status=interval_status,
        bootstrap_share_positive=positive,
        bootstrap_share_ties=ties,
        bootstrap_share_negative=negative,
    )


def _win(
    ks: tuple[int, ...], first: int, point: FloatArray, boot: PairedBootstrap | None, complete: bool
) -> WinProbability:
    if not complete:
        return WinProbability(status=INCOMPLETE)
    values = [finite(point[first + n]) for n in range(len(ks))]
    if any(v is None for v in values):
        return WinProbability(status=UNDEFINED)
    bounds = [_interval(first + n, boot) for n in range(len(ks))]
    statuses = {status for _, _, status in bounds}
    interval_status = OK if statuses == {OK} else (TOO_FEW_SEEDS if boot is None else UNDEFINED)
    return WinProbability(
        status=OK,
        ks=ks,
        a_wins=tuple(float(v) for v in values if v is not None),
        low=tuple(lo for lo, _, _ in bounds),
        high=tuple(hi for _, hi, _ in bounds),
        level=None if boot is None else boot.level,
        interval_status=interval_status,
    )


def prob_greater(x: FloatArray, px: FloatArray, y: FloatArray, py: FloatArray) -> float:
    """Σ px_i · py_j · (1 if x_i > y_j, ½ if equal, else 0), in O((n + m) log m)."""
    order = np.argsort(y, kind="stable")
    ys = y[order]
    below = np.concatenate([[0.0], np.cumsum(py[order])])
    lo = np.searchsorted(ys, x, side="left")
    hi = np.searchsorted(ys, x, side="right")
    return float((px * (below[lo] + 0.5 * (below[hi] - below[lo]))).sum())


def _improvement(ta: FloatArray, tb: FloatArray) -> ProbabilityOfImprovement:
    both = ~np.isnan(ta) & ~np.isnan(tb)
    x, y = ta[both], tb[both]
    matched = float((np.sign(x - y) + 1).mean() / 2) if x.size else None
    xa, xb = ta[~np.isnan(ta)], tb[~np.isnan(tb)]
    spread = None
    if xa.size and xb.size:
        spread = float(mannwhitneyu(xa, xb, alternative="greater").statistic / (xa.size * xb.size))
    return ProbabilityOfImprovement(
        matched=matched, n_matched=int(x.size), distributions=spread, n_a=int(xa.size), n_b=int(xb.size)
    )
