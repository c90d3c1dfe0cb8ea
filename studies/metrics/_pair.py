"""Comparisons of two arms on the same grid and seeds (METRICS.md "Per pair of arms").

Each arm is bootstrapped on its own (seeds resampled within cells, from the arm's own fixed random
stream), so one arm's replicates serve every pair it is in: Δ replicates are differences of the
two arms' replicate vectors. The validation and analysis-split medians of a cell are resampled
independently of each other (a seed's two scores are not kept paired), which keeps the bootstrap
proportional to cells rather than trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
from studies.metrics._cells import arm_rng, bootstrap_medians
from studies.metrics._exceptions import ComparisonError, MetricsError
from studies.metrics._grid import (
    ORIENTATION,
    ArmGrid,
    FloatArray,
    GridAxes,
    Split,
    build_grids,
    check_split,
    neg,
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

DEFAULT_PAIR_BOOT = 500

# Summary metrics compared between arms: name → (higher is better, in score units).
_SUMMARY: dict[str, tuple[bool, bool]] = {
    "peak": (True, True),
    "good_fraction": (True, False),
    "good_lr_width_mean": (True, False),
    "good_lr_width_all_betas": (True, False),
    "expected_best": (True, True),
    "lr_sensitivity": (False, False),
}


@dataclass(frozen=True)
class Delta:
    """Δ = metric(a) − metric(b) with a 95% percentile-bootstrap interval and P(Δ > 0), P(Δ < 0).

    ``higher_is_better`` says which sign favours arm a (False for lr sensitivity, a gap). For
    score-valued metrics (peak, q(k)) to_dict adds ``raw_*``: the same Δ in raw units (raw_a − raw_b).
    """

    metric: str
    status: str
    higher_is_better: bool
    score_valued: bool
    k: int | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_positive: float | None = None
    p_negative: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "k": self.k,
            "status": self.status,
            "higher_is_better": self.higher_is_better,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_positive": self.p_positive,
            "p_negative": self.p_negative,
        }
        if self.score_valued:
            out |= {
                "raw_estimate": neg(self.estimate),
                "raw_ci_low": neg(self.ci_high),
                "raw_ci_high": neg(self.ci_low),
            }
        return out


@dataclass(frozen=True)
class WinProbability:
    """P(a's pick beats b's) when each arm draws k cells at random (without replacement), keeps
    its best by validation and the two are compared on the analysis split; a tie counts ½.
    Exact (no Monte Carlo), with ties in validation broken uniformly at random."""

    status: str
    ks: tuple[int, ...] = ()
    a_wins: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "ks": list(self.ks), "a_wins": list(self.a_wins)}


@dataclass(frozen=True)
class ProbabilityOfImprovement:
    """P(X > Y) + ½·P(X = Y) for X a cell median of arm a, Y of arm b (analysis split, oriented).

    ``matched``: over the cells both arms have (X, Y from the same cell); ``distributions``: over
    every pair of cells, the Mann–Whitney U / (n_a·n_b).
    """

    matched: float | None
    n_matched: int
    distributions: float | None
    n_a: int
    n_b: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "n_matched": self.n_matched,
            "distributions": self.distributions,
            "n_a": self.n_a,
            "n_b": self.n_b,
        }


@dataclass(frozen=True)
class PairMetrics:
    """Arm a against arm b; every Δ is a − b of oriented (higher-is-better) metrics."""

    arm_a: str
    arm_b: str
    split: Split
    eps: float
    relative: bool
    n_boot: int
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
            "split": self.split,
            "eps": self.eps,
            "relative": self.relative,
            "n_boot": self.n_boot,
            "deltas": [d.to_dict() for d in self.deltas],
            "win_probability": self.win_probability.to_dict(),
            "probability_of_improvement": self.improvement.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class ArmSummary:
    """An arm's summary metrics: point estimates (1, M) and bootstrap replicates (n_boot, M)."""

    grid: ArmGrid
    complete: bool
    v: FloatArray
    t: FloatArray
    names: tuple[tuple[str, int | None], ...]
    point: FloatArray
    boot: FloatArray
    picks: FloatArray | None  # (len(ks), I·J): each cell's chance to be the best-of-k by validation


def summarise(grid: ArmGrid, split: Split, eps: float, relative: bool, ks: tuple[int, ...], n_boot: int) -> ArmSummary:
    """Point and bootstrap values of the compared metrics of one arm (``ks`` already ≤ cells)."""
    v, t = medians(grid, split)
    complete = is_complete(grid, split)
    n_lr, n_beta, n_seed = grid.axes.shape
    rng = arm_rng(grid.arm)
    v_boot = bootstrap_medians(grid.val.reshape(-1, n_seed), grid.n_val.ravel(), n_boot, rng)
    t_boot = (
        v_boot if split == "val" else bootstrap_medians(grid.test.reshape(-1, n_seed), grid.n_test.ravel(), n_boot, rng)
    )
    shape = (n_boot, n_lr, n_beta)
    names, point = _summary_vector(grid.axes, v[None], t[None], eps, relative, ks, complete)
    _, boot = _summary_vector(grid.axes, v_boot.reshape(shape), t_boot.reshape(shape), eps, relative, ks, complete)
    picks = pick_probabilities(v.reshape(1, -1), ks, replacement=False)[:, 0] if complete else None
    return ArmSummary(grid=grid, complete=complete, v=v, t=t, names=names, point=point, boot=boot, picks=picks)


def _summary_vector(
    axes: GridAxes,
    v: FloatArray,
    t: FloatArray,
    eps: float,
    relative: bool,
    ks: tuple[int, ...],
    complete: bool,
) -> tuple[tuple[tuple[str, int | None], ...], FloatArray]:
    n_rep = v.shape[0]
    peak = take_flat(t, peak_index(v))
    nan = np.full(n_rep, np.nan)
    columns: dict[tuple[str, int | None], FloatArray] = {("peak", None): peak}
    fraction = width_mean = width_all = pooled = nan
    q = np.full((n_rep, len(ks)), np.nan)
    if complete:
        good, _ = good_mask(t, peak, eps, relative)
        fraction = good.mean(axis=(1, 2))
        if len(axes.lrs) >= 2:
            bounds = axes.lr_bounds()
            width_mean = longest_run_decades(good, bounds).mean(axis=1)
            width_all = longest_run_decades(np.all(good, axis=2, keepdims=True), bounds)[:, 0]
        q = expected_best(v, t, ks, replacement=False)
        pooled = lr_sensitivity(t)[1]
    columns[("good_fraction", None)] = fraction
    columns[("good_lr_width_mean", None)] = width_mean
    columns[("good_lr_width_all_betas", None)] = width_all
    for n, k in enumerate(ks):
        columns[("expected_best", k)] = q[:, n]
    columns[("lr_sensitivity", None)] = pooled
    return tuple(columns), np.stack(list(columns.values()), axis=1)


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
    n_boot: int = DEFAULT_PAIR_BOOT,
    *,
    relative: bool = False,
    split: str = "test",
) -> PairMetrics:
    """Compare arm a with arm b: Δ (a − b) of peak, F_ε, widths, q(k) and lr sensitivity with
    bootstrap intervals, win probability against budget k, probability of improvement.

    Raises ``ComparisonError`` when the arms' rows cover different lrs, β_inits or seeds.
    """
    if arm_a == arm_b:
        raise MetricsError(f"cannot compare arm {arm_a!r} with itself")
    checked = check_split(split)
    grids = build_grids(scores, axes, y_fail, [arm_a, arm_b])
    check_comparable(grids[arm_a], grids[arm_b])
    eps_value, ks_used = check_eps(eps), usable_ks(ks, axes)
    n_boot = check_boot(n_boot)
    a, b = (summarise(grids[arm], checked, eps_value, relative, ks_used, n_boot) for arm in (arm_a, arm_b))
    return compare(a, b, checked, eps_value, relative, ks_used, n_boot)


def usable_ks(ks: tuple[int, ...], axes: GridAxes) -> tuple[int, ...]:
    return tuple(k for k in check_ks(ks) if k <= axes.n_cells)


def check_boot(n_boot: int) -> int:
    if int(n_boot) != n_boot or n_boot < 1:
        raise MetricsError(f"Invalid n_boot value: {n_boot}")
    return int(n_boot)


def compare(
    a: ArmSummary, b: ArmSummary, split: Split, eps: float, relative: bool, ks: tuple[int, ...], n_boot: int
) -> PairMetrics:
    """The pair metrics from two arms' summaries (``check_comparable`` already passed)."""
    complete = a.complete and b.complete
    estimate = a.point[0] - b.point[0]
    boot = a.boot - b.boot
    low, high = np.full(estimate.shape, np.nan), np.full(estimate.shape, np.nan)
    whole = np.isfinite(boot).all(axis=0)
    if whole.any():
        low[whole], high[whole] = np.quantile(boot[:, whole], [0.025, 0.975], axis=0)
    for n in np.flatnonzero(~whole & np.isfinite(boot).any(axis=0)).tolist():
        low[n], high[n] = np.quantile(boot[np.isfinite(boot[:, n]), n], [0.025, 0.975])
    with np.errstate(invalid="ignore"):
        n_finite = np.isfinite(boot).sum(axis=0)
        positive = (boot > 0).sum(axis=0) / np.maximum(n_finite, 1)
        negative = (boot < 0).sum(axis=0) / np.maximum(n_finite, 1)
    deltas = tuple(
        _delta(name, k, estimate[n], low[n], high[n], positive[n], negative[n], complete)
        for n, (name, k) in enumerate(a.names)
    )
    return PairMetrics(
        arm_a=a.grid.arm,
        arm_b=b.grid.arm,
        split=split,
        eps=eps,
        relative=relative,
        n_boot=n_boot,
        deltas=deltas,
        win_probability=_win_probability(a, b, ks) if complete else WinProbability(status=INCOMPLETE),
        improvement=_improvement(a.t, b.t),
    )


def _delta(
    name: str,
    k: int | None,
    estimate: float,
    low: float,
    high: float,
    positive: float,
    negative: float,
    complete: bool,
) -> Delta:
    higher, score_valued = _SUMMARY[name]
    if not (np.isfinite(estimate) and np.isfinite(low)):
        status = INCOMPLETE if not complete else UNDEFINED
        return Delta(metric=name, k=k, status=status, higher_is_better=higher, score_valued=score_valued)
    return Delta(
        metric=name,
        k=k,
        status=OK,
        higher_is_better=higher,
        score_valued=score_valued,
        estimate=float(estimate),
        ci_low=float(low),
        ci_high=float(high),
        p_positive=float(positive),
        p_negative=float(negative),
    )


def prob_greater(x: FloatArray, px: FloatArray, y: FloatArray, py: FloatArray) -> float:
    """Σ px_i · py_j · (1 if x_i > y_j, ½ if equal, else 0), in O((n + m) log m)."""
    order = np.argsort(y, kind="stable")
    ys = y[order]
    below = np.concatenate([[0.0], np.cumsum(py[order])])
    lo = np.searchsorted(ys, x, side="left")
    hi = np.searchsorted(ys, x, side="right")
    return float((px * (below[lo] + 0.5 * (below[hi] - below[lo]))).sum())


def _win_probability(a: ArmSummary, b: ArmSummary, ks: tuple[int, ...]) -> WinProbability:
    if a.picks is None or b.picks is None:
        return WinProbability(status=INCOMPLETE)
    xa, xb = a.t.ravel(), b.t.ravel()
    wins = tuple(prob_greater(xa, a.picks[m], xb, b.picks[m]) for m in range(len(ks)))
    return WinProbability(status=OK, ks=ks, a_wins=wins)


def _improvement(ta: FloatArray, tb: FloatArray) -> ProbabilityOfImprovement:
    both = ~np.isnan(ta) & ~np.isnan(tb)
    x, y = ta[both], tb[both]
    matched = float((np.sign(x - y) + 1).mean() / 2) if x.size else None
    xa, xb = ta[~np.isnan(ta)], tb[~np.isnan(tb)]
    spread = (
        prob_greater(xa, np.full(xa.size, 1 / xa.size), xb, np.full(xb.size, 1 / xb.size))
        if xa.size and xb.size
        else None
    )
    return ProbabilityOfImprovement(
        matched=matched, n_matched=int(x.size), distributions=spread, n_a=int(xa.size), n_b=int(xb.size)
    )
