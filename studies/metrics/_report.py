"""The whole sensitivity report of a study, and the aggregation of arm metrics across studies."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from studies.errors import ComparisonError, MetricsError
from studies.metrics._arm import DEFAULT_EPS, DEFAULT_KS, check_eps, metrics_from_grid, peak_seed_spread
from studies.metrics._grid import ORIENTATION, GridAxes, build_grids, check_split
from studies.metrics._pair import DEFAULT_PAIR_RESAMPLES, POSITIVE_MEANS, check_comparable, compare_pairs
from studies.metrics._resample import DEFAULT_LEVEL, MIN_BOOTSTRAP_SEEDS, RESAMPLING
from studies.vocab import arm

# Bumped whenever a field's meaning changes (and the field is renamed): 2 = paired seed bootstrap,
# order-statistic cell intervals with their level, Δ > 0 = arm a better, ε anchored on the split;
# 3 = pair intervals state the coverage they guarantee as a bound (``min_level``, was ``level``).
METRICS_VERSION = 3
SEED_SPREAD = "seed_spread"
# ε when the seed spread cannot be measured (one seed at every peak): 1% of |y*|.
SEED_SPREAD_FALLBACK = (0.01, True)


def default_pairs(arms: Iterable[str]) -> list[tuple[str, str]]:
    """Every Demon arm (``studies.vocab`` arm registry) against every arm that is not, in sorted order."""
    names = sorted(arms)
    return [(a, b) for a in names if _is_demon(a) for b in names if not _is_demon(b)]


def _is_demon(name: str) -> bool:
    try:  # a labelled arm (``demon_sgdm@delay0.25``) is Demon when its registered arm is
        return arm(name).demon
    except ValueError:
        return False


def sensitivity_report(
    scores: pd.DataFrame,
    axes: GridAxes,
    y_fail: float,
    eps: float | str | None = None,
    relative: bool = False,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    ks: tuple[int, ...] = DEFAULT_KS,
    split: str = "test",
    n_resamples: int = DEFAULT_PAIR_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    eps_source: str | None = None,
) -> dict[str, Any]:
    """Every arm's metrics and every pair's comparison, as one JSON-able dict (no NaN).

    Scores are oriented higher-is-better (y = −value); ``raw_*`` fields are in the workload's
    units; every Δ is positive when the first arm is better. ``eps``: a number (absolute, or
    relative with ``relative``), None for ``DEFAULT_EPS``, or "seed_spread" for the pooled seed
    standard deviation at the arms' peaks on ``split`` (``peak_seed_spread``; 1% of |y*| when no
    peak has two results). ``pairs`` defaults to ``default_pairs`` of the arms present; an
    explicitly requested pair on different grids raises ``ComparisonError``, a default one
    reports its ``error``. All pairs share one paired seed bootstrap of ``n_resamples``.
    ``eps_source`` describes a numeric ``eps`` chosen by the caller (e.g. a workload default);
    without it a number is reported as "given".
    """
    checked = check_split(split)
    grids = build_grids(scores, axes, y_fail)
    eps_value, relative, source = resolve_eps(eps, relative, [grids[a] for a in sorted(grids)], checked)
    if eps_source is not None and not isinstance(eps, str):
        source = eps_source
    arms = {
        arm: metrics_from_grid(grid, eps_value, relative, ks, checked, source).to_dict() for arm, grid in grids.items()
    }
    requested = pairs is not None
    comparable: list[tuple[str, str]] = []
    errors: dict[tuple[str, str], str] = {}
    wanted = default_pairs(grids) if pairs is None else [tuple(p) for p in pairs]
    for arm_a, arm_b in wanted:
        unknown = [arm for arm in (arm_a, arm_b) if arm not in grids]
        if unknown or arm_a == arm_b:
            raise MetricsError(f"cannot compare {arm_a!r} with {arm_b!r}; arms with trials: {sorted(grids)}")
        try:
            check_comparable(grids[arm_a], grids[arm_b])
        except ComparisonError as exc:
            if requested:
                raise
            errors[(arm_a, arm_b)] = str(exc)
            continue
        comparable.append((arm_a, arm_b))
    compared = iter(compare_pairs(grids, comparable, checked, eps_value, relative, ks, n_resamples, level))
    reports: list[dict[str, Any]] = []
    for arm_a, arm_b in wanted:
        if (arm_a, arm_b) in errors:
            reports.append({"arm_a": arm_a, "arm_b": arm_b, "error": errors[(arm_a, arm_b)]})
        else:
            reports.append(next(compared).to_dict())
    return {
        "metrics_version": METRICS_VERSION,
        "orientation": ORIENTATION,
        "selected_on": "val",
        "split": checked,
        "y_fail": float(y_fail),
        "eps": eps_value,
        "relative": relative,
        "eps_source": source,
        "resampling": RESAMPLING,
        "n_resamples": n_resamples,
        "min_level": level,
        "min_bootstrap_seeds": MIN_BOOTSTRAP_SEEDS,
        "positive_means": POSITIVE_MEANS,
        "grid": axes.to_dict(),
        "arms": arms,
        "pairs": reports,
    }


def resolve_eps(eps: float | str | None, relative: bool, grids: list[Any], split: Any) -> tuple[float, bool, str]:
    """(ε, relative, where ε came from) for a report; see ``sensitivity_report``."""
    if eps is None:
        return DEFAULT_EPS, relative, f"default: {DEFAULT_EPS:g}" + (" of |y*|" if relative else " absolute")
    if isinstance(eps, str):
        if eps != SEED_SPREAD:
            raise MetricsError(f"Invalid eps value: {eps!r} (a number >= 0 or {SEED_SPREAD!r})")
        spread = peak_seed_spread(grids, split)
        if spread is None:
            value, rel = SEED_SPREAD_FALLBACK
            return value, rel, f"seed spread unmeasurable (one seed at every peak): {value:g} of |y*|"
        return spread, False, f"seed spread: pooled seed std (ddof 1) at the arms' peak cells on {split}"
    return check_eps(eps), relative, "given"


def aggregate_robustness(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarise arm metrics across studies: mean, min, max and count per metric and group.

    Each entry is either ``{"key": {...}, "metrics": ArmMetrics.to_dict()}`` (one arm of one
    study) or ``{"key": {...}, "arms": {arm: ArmMetrics.to_dict(), ...}}`` (a study's arms, as in
    ``sensitivity_report(...)["arms"]``); an optional ``"study_id"`` is listed in its group.
    ``key`` names what makes studies comparable (METRICS.md: workload, arm, epochs, lr range,
    β set, seeds, metric, split); entries group by it plus whichever of arm, split, eps and
    relative it does not hold (taken from the metrics; a seed-spread ε groups as "seed_spread").
    Metrics a study could not compute (incomplete grids) are left out of the counts. Scores are
    oriented higher-is-better; ``raw_*`` are in the workload's units.
    """
    groups: dict[str, tuple[dict[str, Any], list[Mapping[str, Any]], list[Any]]] = {}
    for n, entry in enumerate(reports):
        for metrics in _entry_metrics(n, entry):
            key = dict(entry.get("key") or {})
            key.setdefault("arm", metrics.get("arm"))
            key.setdefault("split", metrics.get("split"))
            good = metrics["eps_good"]
            # a seed-spread ε differs per study by design: group by the rule, not the number
            by_rule = str(good.get("eps_source", "")).startswith("seed spread:")
            key.setdefault("eps", SEED_SPREAD if by_rule else good["eps"])
            key.setdefault("relative", metrics["eps_good"]["relative"])
            canonical = json.dumps(key, sort_keys=True, default=str)
            _, items, studies = groups.setdefault(canonical, (key, [], []))
            items.append(metrics)
            if "study_id" in entry:
                studies.append(entry["study_id"])
    return {
        "metrics_version": METRICS_VERSION,
        "orientation": ORIENTATION,
        "groups": [_summarise_group(key, items, studies) for key, items, studies in groups.values()],
    }


def _entry_metrics(n: int, entry: Any) -> list[Mapping[str, Any]]:
    if isinstance(entry, Mapping) and isinstance(entry.get("metrics"), Mapping):
        return [entry["metrics"]]
    if isinstance(entry, Mapping) and isinstance(entry.get("arms"), Mapping):
        arms = entry["arms"]
        if all(isinstance(m, Mapping) for m in arms.values()):
            return [{"arm": arm, **metrics} for arm, metrics in arms.items()]
    raise MetricsError(
        f"entry {n} is neither {{'key': ..., 'metrics': ArmMetrics.to_dict()}} "
        "nor {'key': ..., 'arms': {arm: ArmMetrics.to_dict()}}"
    )


def _summarise_group(key: dict[str, Any], items: list[Mapping[str, Any]], studies: list[Any]) -> dict[str, Any]:
    def pick(path: Sequence[str]) -> list[Any]:
        values = []
        for metrics in items:
            value: Any = metrics
            for part in path:
                value = value.get(part) if isinstance(value, Mapping) else None
            values.append(value)
        return values

    ks = sorted({k for metrics in items for k in metrics["expected_best"]["ks"]})
    best: dict[int, list[Any]] = {k: [] for k in ks}
    for metrics in items:
        expected = metrics["expected_best"]
        for k, q in zip(expected["ks"], expected["without_replacement"], strict=True):
            best[k].append(q)
    return {
        "key": key,
        "n_studies": len(items),
        "study_ids": studies,
        "peak_score": _stats(pick(("peak", "score"))),
        "raw_peak_score": _stats(pick(("peak", "raw_score"))),
        "eps_good_fraction": _stats(pick(("eps_good", "fraction"))),
        "eps_good_lr_width_mean_decades": _stats(pick(("eps_good_lr_width", "mean_decades"))),
        "eps_good_lr_width_all_betas_decades": _stats(pick(("eps_good_lr_width", "all_betas", "decades"))),
        "lr_sensitivity_pooled": _stats(pick(("lr_sensitivity", "pooled"))),
        "expected_best": [{"k": k, **_stats(best[k])} for k in ks],
        "raw_expected_best": [{"k": k, **_stats([None if q is None else 0.0 - q for q in best[k]])} for k in ks],
    }


def _stats(values: list[Any]) -> dict[str, Any]:
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers:
        return {"mean": None, "min": None, "max": None, "count": 0}
    return {
        "mean": sum(numbers) / len(numbers),
        "min": min(numbers),
        "max": max(numbers),
        "count": len(numbers),
    }
