"""Comparisons of two arms on the same grid and seeds (``docs/metrics.md`` "Per pair of arms").

Every Δ is paired by seed (the two arms ran the same seeds, which fix initialisation and data order)
and oriented so that **Δ > 0 means arm a is better**: a − b for shares, widths and scores, b − a for
lr sensitivity (a gap). The probabilities (win probability, probability of improvement) are a's
chance of being better, against a null of ½. One figure is primary (the spec's ``verdict.primary``)
and decides the verdict; the rest are exploratory, with Holm-adjusted p-values.
"""

from __future__ import annotations

import math

import numpy as np

from studies.errors import ComparisonError
from studies.metrics._arm import MIN_INTERVAL_SEEDS, T_INTERVAL
from studies.metrics._grid import ArmGrid, FloatArray, finite
from studies.metrics._seedwise import ArmSeeds, SeedMean, pair_seeds, seed_mean
from studies.metrics._verdict import family_statement, holm, verdict
from studies.metrics.models import (
    ArmReport,
    Delta,
    FigureStatus,
    Interval,
    IntervalStatus,
    PairFigure,
    PairReport,
    Role,
    VerdictSpec,
)
from studies.units import Units

PROBABILITIES = ("win_probability", "improvement_matched", "improvement_any")
ALPHA = 0.05


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


def win_ks(ks: tuple[int, ...], n_cells: int) -> tuple[int, ...]:
    """Budgets for the win probability: from 2 (at k = 1 it is ``improvement_any``) up to a quarter
    of the grid. Beyond, a seed's pick is nearly one comparison and the t interval of a mean of a
    few near-binary values under-covers (the coverage battery measured 88% at k = all cells)."""
    return tuple(k for k in ks if k >= 2 and 4 * k <= n_cells)


CHOOSING = ("expected_best", "win_probability")  # figures that choose cells on validation
ACROSS_LRS = ("lr_sensitivity", "success_lr_width")  # figures that compare learning rates


def _delta(
    figure: PairFigure,
    k: int | None,
    m: SeedMean,
    primary: bool,
    never: bool,
    min_seeds: int,
    chooses: bool = True,
    lrs: int = 2,
) -> Delta:
    """One Δ. Without a value it is ``undefined`` where the grid cannot have it (a figure that
    chooses cells without a validation split; one that compares lrs on a grid of one lr), else
    ``incomplete`` (a cell lacks a result, or no cell trained in a seed)."""
    null = 0.5 if figure in PROBABILITIES else 0.0
    role: Role = "primary" if primary else "exploratory"
    if never:
        return Delta(
            figure=figure,
            k=k,
            role=role,
            status="never_trained",
            null=null,
            interval=Interval(status="never_trained", method=T_INTERVAL),
        )
    value, n = finite(m.estimate), int(m.n)
    if value is None:
        undefined = (figure in CHOOSING and not chooses) or (figure in ACROSS_LRS and lrs < 2)
        status: FigureStatus = "undefined" if undefined else "incomplete"
        return Delta(
            figure=figure,
            k=k,
            role=role,
            status=status,
            null=null,
            n_seeds=n,
            interval=Interval(status=status, method=T_INTERVAL),
        )
    low, high = finite(m.low), finite(m.high)
    interval_status: IntervalStatus = "ok"
    if n < min_seeds:
        interval_status = "too_few_seeds"
    elif low is None or high is None:
        interval_status = "undefined"
    ok = interval_status == "ok"
    return Delta(
        figure=figure,
        k=k,
        role=role,
        status="ok",
        null=null,
        value=value,
        interval=Interval(
            low=low if ok else None,
            high=high if ok else None,
            level=m.level if ok else None,
            status=interval_status,
            method=T_INTERVAL,
        ),
        n_seeds=n,
        p_value=finite(m.p_value) if ok else None,
        significant=(
            bool(low is not None and high is not None and (low > null or high < null)) if ok and primary else None
        ),
    )


def pair_report(
    reports: tuple[ArmReport, ArmReport],
    seeds: tuple[ArmSeeds, ArmSeeds],
    grids: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    spec: VerdictSpec,
    ks: tuple[int, ...],
    raw_target: float | None,
    min_seeds: int = MIN_INTERVAL_SEEDS,
    *,
    chooses: bool = True,
    units: Units = Units(),
) -> PairReport:
    """Arm a (``reports[0]``) against arm b: every compared figure, the verdict (its numbers worded
    in ``units``) and the family. Without a validation split (``chooses`` false) the figures that
    choose cells are undefined."""
    a, b = reports
    n_cells = len(a.grid.lrs) * len(a.grid.betas)
    level = seeds[0].share.level
    figures = pair_seeds(seeds[0], seeds[1], grids, ks, win_ks(ks, n_cells), level)
    if spec.primary != "success_share" and (spec.primary, spec.primary_k) not in figures:
        raise ComparisonError(f"verdict.primary {spec.primary!r} k={spec.primary_k} is not a figure of this grid")
    never = [r.arm for r in reports if r.status == "never_trained"]
    empty = [r.arm for r in reports if r.status == "no_results"]  # nothing to judge yet: not "never trained"
    key = (spec.primary, spec.primary_k)
    lrs = grids[0].shape[-2]
    primary = _delta(spec.primary, spec.primary_k, figures[key], True, bool(never), min_seeds, chooses, lrs)
    exploratory = [
        _delta(figure, k, m, False, bool(never), min_seeds, chooses, lrs)  # type: ignore[arg-type]
        for (figure, k), m in figures.items()
        if (figure, k) != key
    ]
    adjusted = holm([d.p_value for d in exploratory])
    exploratory = [
        d if p is None else d.model_copy(update={"holm_p_value": p, "significant": p < ALPHA})
        for d, p in zip(exploratory, adjusted, strict=True)
    ]
    shares = {r.success.share.value for r in reports}
    separates_none = None  # a target every run reaches, or none: a share Δ of 0 whatever the seeds
    if spec.primary in ("success_share", "success_lr_width") and len(shares) == 1 and shares <= {0.0, 1.0}:
        separates_none = "every run of both arms reaches the target" if shares == {1.0} else "no run reaches the target"
    best = next((d for d in (primary, *exploratory) if d.figure == "expected_best" and d.k == n_cells), None)
    if not chooses:  # no validation split: q(N) is undefined, but "worse at its best" still guards the verdict
        best = _delta("expected_best", n_cells, best_on_the_split(grids, level), False, bool(never), min_seeds)
    share = next((d for d in (primary, *exploratory) if d.figure == "success_share"), None)
    return PairReport(
        arm_a=a.arm,
        arm_b=b.arm,
        split=a.split,
        raw_target=raw_target,
        verdict=verdict(
            a.arm,
            b.arm,
            primary,
            spec,
            never,
            _planning_se(figures[key], seeds, spec),
            min_seeds,
            units,
            best,
            share,
            empty=empty,
            seeds_total=len(a.grid.seeds),
            separates_none=separates_none,
        ),
        primary=primary,
        exploratory=exploratory,
        family=family_statement(primary, exploratory),
    )


def best_on_the_split(grids: tuple[FloatArray, FloatArray, FloatArray, FloatArray], level: float) -> SeedMean:
    """Δ of each seed's best score on the split (a better), for a study without a validation split
    (full_train), where nothing chooses a cell: what q(N) is when validation is the split. A seed
    whose grid lacks a cell has none, as for q(N)."""
    _, ta, _, tb = grids
    with np.errstate(invalid="ignore"):
        best_a, best_b = ta.max(axis=(-2, -1)), tb.max(axis=(-2, -1))  # NaN wherever a cell lacks a result
    return seed_mean(best_a - best_b, None, level)


def _planning_se(m: SeedMean, seeds: tuple[ArmSeeds, ArmSeeds], spec: VerdictSpec) -> float:
    """The primary Δ's standard error for planning. When every seed gave the same Δ (a spread of
    0, common for shares of a few cells), the arms' floored standard errors stand in for it, so a
    plan never promises that two seeds settle anything."""
    se = finite(m.se)
    if se is not None and se > 0:
        return se
    if spec.primary == "success_share":
        pair = (seeds[0].share.se, seeds[1].share.se)
    elif spec.primary == "success_lr_width":
        pair = (seeds[0].width.se, seeds[1].width.se)
    else:
        return se if se is not None else math.nan
    values = [finite(x) or 0.0 for x in pair]
    return math.hypot(*values) or (se if se is not None else math.nan)
