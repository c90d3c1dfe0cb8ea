"""The whole sensitivity report of a study, and the aggregation of arm figures across studies."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from studies.errors import ComparisonError, MetricsError
from studies.metrics._arm import MIN_INTERVAL_SEEDS, T_INTERVAL, arm_report, grid_model, seed_major
from studies.metrics._grid import ArmGrid, FloatArray, GridAxes, build_grids, check_split, finite
from studies.metrics._pair import check_comparable, pair_report
from studies.metrics._seedwise import TARGET_QUANTILE, arm_seeds, default_threshold
from studies.metrics.models import (
    DEFAULT_KS,
    LEVEL,
    AcrossStudies,
    ArmReport,
    Estimate,
    PairError,
    PairReport,
    RobustnessGroup,
    RobustnessReport,
    SensitivityReport,
    StudyValue,
    Target,
    VerdictSpec,
    budgets,
)
from studies.units import Units, is_percent
from studies.vocab import Split, arm

DEFAULT_TARGET = (
    f"default: the lower quartile ({TARGET_QUANTILE:g} quantile) of the validation scores of every run that "
    "trained, pooled over the study's arms"
)
ESTIMAND = (
    "each landscape figure is computed on every seed's grid (one run per configuration, the paper's "
    "protocol) and averaged over seeds; pair figures are paired by seed"
)


def default_pairs(arms: Iterable[str]) -> list[tuple[str, str]]:
    """Every Demon arm (``studies.vocab`` arm registry) against every arm that is not, in sorted order."""
    names = sorted(arms)
    return [(a, b) for a in names if _is_demon(a) for b in names if not _is_demon(b)]


def _is_demon(name: str) -> bool:
    try:  # a labelled arm (``demon_sgdm@delay0.25``) is Demon when its registered arm is
        return arm(name).demon
    except ValueError:
        return False


def check_ks(ks: tuple[int, ...], n_cells: int) -> tuple[int, ...]:
    """The budgets k of q(k): those asked for up to the grid's size, and the whole grid (the peak)."""
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise MetricsError(f"Invalid ks: {ks} (need positive integers)")
    return budgets(n_cells, ks)


def resolve_target(
    grids: Mapping[str, ArmGrid], raw_target: float | None, y_fail: float, split: Split = "test"
) -> tuple[FloatArray, FloatArray | None, Target]:
    """The oriented threshold θ, its delete-one-seed values (None for a given target) and the
    report's ``Target``. The default is taken on validation, or on ``split`` when no arm has a
    validation score (a full_train study)."""
    if raw_target is not None:
        value = float(raw_target)
        if not (math.isfinite(value) and value < y_fail):
            raise MetricsError(
                f"Invalid target value: {raw_target} (need a finite value below the failure score {y_fail:g})"
            )
        target = Target(raw_value=value, value=0.0 - value, source="given", chosen_on="given")
        return np.asarray(-value), None, target
    on: Split = "val" if has_validation(grids) else split
    by_seed = [g.by_seed(on) for g in grids.values()]
    pool = np.concatenate([seed_major(x).reshape(x.shape[-1], -1) for x in by_seed], axis=1)
    theta, theta_jk = default_threshold(pool, y_fail)
    found = finite(theta)
    source = DEFAULT_TARGET if on == "val" else DEFAULT_TARGET.replace("validation scores", f"{on} scores")
    target = Target(raw_value=None if found is None else 0.0 - found, value=found, source=source, chosen_on=on)
    return theta, theta_jk, target


def has_validation(grids: Mapping[str, ArmGrid]) -> bool:
    """Whether the study has a validation split (a full_train study has none: nothing is chosen),
    read from its completed runs: a diverged run scores y_fail on every split, so it says nothing, and
    with no completed run yet (all failed or diverged) the split is taken to exist. (Reading any
    validation score called a full_train study with a diverged run "chosen on validation", and a
    study whose runs all failed one "without a validation split".)"""
    completed_val = sum(int((g.n_val - g.n_diverged).sum()) for g in grids.values())
    completed_test = sum(int((g.n_test - g.n_diverged).sum()) for g in grids.values())
    return completed_val > 0 or completed_test == 0


SAMPLED = (
    "A search samples points, not a grid (each arm where its sampler chose): no verdict; run a grid study "
    "on the region it found to compare the arms' sensitivity."
)


def _unjudged(pair: PairReport | PairError) -> PairReport | PairError:
    """A search study's pair: its figures as computed, its verdict ``SAMPLED``."""
    if isinstance(pair, PairError):
        return pair
    update = {"outcome": "inconclusive_too_few_seeds", "statement": SAMPLED, "winner": None, "flatter": None}
    return pair.model_copy(update={"verdict": pair.verdict.model_copy(update=update)})


def sensitivity_report(
    scores: pd.DataFrame,
    axes: GridAxes,
    y_fail: float,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    target: float | None = None,
    verdict: VerdictSpec | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    split: str = "test",
    min_seeds: int = MIN_INTERVAL_SEEDS,
    metric: str | None = None,
    sampled: bool = False,
) -> SensitivityReport:
    """Every arm's figures and every pair's comparison and verdict.

    ``sampled``: the points are a search's (each arm's sampler chose its own), not a grid: the pairs
    keep their figures for reading, but no verdict is given (``SAMPLED``), as the study page says.

    ``metric``: the scores' name (``error``, ``loss``); an error rate's statements are worded in
    percent and percentage points (``studies.units``; the numbers stay fractions). None: raw units.

    ``target``: the raw error (or loss) a run must reach (at most); None takes ``verdict.target``, then the
    default rule (``DEFAULT_TARGET``). ``verdict``: the primary figure, difference of interest and
    power (``VerdictSpec()`` by default). ``pairs`` defaults to ``default_pairs`` of the arms
    present; an explicitly requested pair on different grids raises ``ComparisonError``, a default
    one reports its ``error``.
    """
    checked = check_split(split)
    spec = verdict or VerdictSpec()
    grids = build_grids(scores, axes, y_fail)
    theta, theta_jk, target_model = resolve_target(
        grids, target if target is not None else spec.target, y_fail, checked
    )
    chooses = has_validation(grids)
    shown = scores[checked].to_numpy(dtype=float)
    if not np.isfinite(shown).any():  # every run diverged: the maps show y_fail, and so in its unit
        shown = np.array([y_fail], dtype=float)
    percent = metric is not None and is_percent(metric, shown, y_fail)
    units = Units(percent=percent)
    ks_used = check_ks(ks, axes.n_cells)
    bounds = axes.lr_bounds()
    seeds = {
        arm: arm_seeds(
            *_cubes(grid, checked),
            theta,
            theta_jk,
            bounds,
            ks_used,
            LEVEL,
            grid.y_fail,
            seed_major(grid.failed_by_seed),
        )
        for arm, grid in grids.items()
    }
    arms = {
        arm: arm_report(grid, seeds[arm], checked, ks_used, target_model.raw_value, min_seeds, chooses=chooses)
        for arm, grid in grids.items()
    }
    reports: list[PairReport | PairError] = []
    wanted = default_pairs(grids) if pairs is None else [(str(a), str(b)) for a, b in pairs]
    for arm_a, arm_b in wanted:
        if arm_a not in grids or arm_b not in grids or arm_a == arm_b:
            raise MetricsError(f"cannot compare {arm_a!r} with {arm_b!r}; arms with trials: {sorted(grids)}")
        try:
            check_comparable(grids[arm_a], grids[arm_b])
        except ComparisonError as exc:
            if pairs is not None:
                raise
            reports.append(PairError(arm_a=arm_a, arm_b=arm_b, error=str(exc)))
            continue
        cubes = (*_cubes(grids[arm_a], checked), *_cubes(grids[arm_b], checked))
        pair_seeds_ = (seeds[arm_a], seeds[arm_b])
        reports.append(
            pair_report(
                (arms[arm_a], arms[arm_b]),
                pair_seeds_,
                cubes,
                spec,
                ks_used,
                target_model.raw_value,
                min_seeds,
                chooses=chooses,
                units=units,
            )
        )
    if sampled:
        reports = [_unjudged(r) for r in reports]
    return SensitivityReport(
        selected_on="val" if chooses else None,
        split=checked,
        y_fail=float(y_fail),
        score_unit="percent" if percent else "raw",
        target=target_model,
        min_interval_seeds=min_seeds,
        interval_method=T_INTERVAL,
        estimand=ESTIMAND,
        primary=spec.primary,
        grid=grid_model(axes),
        arms=arms,
        pairs=reports,
    )


def _cubes(grid: ArmGrid, split: Split) -> tuple[FloatArray, FloatArray]:
    """(validation, split) scores of one arm as (S, I, J) in seed order."""
    return seed_major(grid.val_by_seed), seed_major(grid.by_seed(split))


# --- across studies ---------------------------------------------------------------------------


def aggregate_robustness(entries: list[dict[str, Any]]) -> RobustnessReport:
    """Each arm's figures over the studies that share a key, study by study with their intervals.

    Each entry is ``{"key": {...}, "arms": {arm: ArmReport}, "study_id": ...}`` (``study_id``
    optional). ``key`` names what makes studies comparable (workload, epochs, lr range, β set,
    seeds, metric, split, target rule); entries group by it plus the arm. There is no pooled
    interval: each study
    keeps its own, and the group states the range of the estimates and counts.
    """
    groups: dict[str, tuple[dict[str, Any], list[tuple[Any, ArmReport]]]] = {}
    for n, entry in enumerate(entries):
        arms = entry.get("arms") if isinstance(entry, Mapping) else None
        if not isinstance(arms, Mapping) or not all(isinstance(r, ArmReport) for r in arms.values()):
            raise MetricsError(f"entry {n} is not {{'key': ..., 'arms': {{arm: ArmReport}}}}")
        for name, report in arms.items():
            key = dict(entry.get("key") or {})
            key.setdefault("arm", name)
            key.setdefault("split", report.split)
            canonical = json.dumps(key, sort_keys=True, default=str)
            groups.setdefault(canonical, (key, []))[1].append((entry.get("study_id"), report))
    return RobustnessReport(groups=[_group(key, items) for key, items in groups.values()])


def _group(key: dict[str, Any], items: list[tuple[Any, ArmReport]]) -> RobustnessGroup:
    def across(pick: Callable[[ArmReport], Estimate]) -> AcrossStudies:
        studies = []
        for study_id, report in items:
            est: Estimate = pick(report)
            if est.value is not None:
                studies.append(StudyValue(study_id=study_id, value=est.value, interval=est.interval))
        values = [s.value for s in studies if s.value is not None]
        return AcrossStudies(
            n_studies=len(studies),
            studies=studies,
            range_low=min(values) if values else None,
            range_high=max(values) if values else None,
        )

    def peak(report: ArmReport) -> Estimate:
        p = report.peak
        interval = p.score_interval.model_copy(
            update={
                "low": p.score_interval.raw_low,
                "high": p.score_interval.raw_high,
                "raw_low": None,
                "raw_high": None,
            }
        )
        return Estimate(value=p.raw_score, interval=interval, n_seeds=p.n_seeds)

    return RobustnessGroup(
        key=key,
        n_studies=len(items),
        study_ids=[study_id for study_id, _ in items],
        n_never_trained=sum(1 for _, r in items if r.status == "never_trained"),
        raw_peak_score=across(peak),
        success_share=across(lambda r: r.success.share),
        success_lr_width=across(lambda r: r.success.lr_width),
        lr_sensitivity=across(lambda r: r.lr_sensitivity.pooled),
    )
