"""The whole sensitivity report of a study, and the aggregation of arm metrics across studies."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from studies.metrics._arm import DEFAULT_KS, check_eps, metrics_from_grid
from studies.metrics._exceptions import ComparisonError, MetricsError
from studies.metrics._grid import ORIENTATION, GridAxes, build_grids, check_split
from studies.metrics._pair import (
    DEFAULT_PAIR_BOOT,
    ArmSummary,
    check_boot,
    check_comparable,
    compare,
    summarise,
    usable_ks,
)

DEMON_PREFIX = "demon_"


def default_pairs(arms: Iterable[str]) -> list[tuple[str, str]]:
    """Every arm named ``demon_*`` against every arm that is not, in sorted order."""
    names = sorted(arms)
    return [(a, b) for a in names if a.startswith(DEMON_PREFIX) for b in names if not b.startswith(DEMON_PREFIX)]


def sensitivity_report(
    scores: pd.DataFrame,
    axes: GridAxes,
    y_fail: float,
    eps: float | None = None,
    relative: bool = False,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    ks: tuple[int, ...] = DEFAULT_KS,
    split: str = "test",
    n_boot: int = DEFAULT_PAIR_BOOT,
) -> dict[str, Any]:
    """Every arm's metrics and every pair's comparison, as one JSON-able dict (no NaN).

    Scores are oriented higher-is-better (y = −value); ``raw_*`` fields are in the workload's
    units. ``pairs`` defaults to ``default_pairs`` of the arms present; an explicitly requested
    pair on different grids raises ``ComparisonError``, a default one reports its ``error``.
    """
    checked = check_split(split)
    eps_value = check_eps(eps)
    n_boot = check_boot(n_boot)
    grids = build_grids(scores, axes, y_fail)
    arms = {arm: metrics_from_grid(grid, eps_value, relative, ks, checked).to_dict() for arm, grid in grids.items()}
    requested = pairs is not None
    ks_used = usable_ks(ks, axes)
    summaries: dict[str, ArmSummary] = {}
    reports: list[dict[str, Any]] = []
    for arm_a, arm_b in default_pairs(grids) if pairs is None else pairs:
        unknown = [arm for arm in (arm_a, arm_b) if arm not in grids]
        if unknown or arm_a == arm_b:
            raise MetricsError(f"cannot compare {arm_a!r} with {arm_b!r}; arms with trials: {sorted(grids)}")
        try:
            check_comparable(grids[arm_a], grids[arm_b])
        except ComparisonError as exc:
            if requested:
                raise
            reports.append({"arm_a": arm_a, "arm_b": arm_b, "error": str(exc)})
            continue
        for arm in (arm_a, arm_b):
            if arm not in summaries:
                summaries[arm] = summarise(grids[arm], checked, eps_value, relative, ks_used, n_boot)
        pair = compare(summaries[arm_a], summaries[arm_b], checked, eps_value, relative, ks_used, n_boot)
        reports.append(pair.to_dict())
    return {
        "orientation": ORIENTATION,
        "selected_on": "val",
        "split": checked,
        "y_fail": float(y_fail),
        "eps": eps_value,
        "relative": relative,
        "grid": axes.to_dict(),
        "arms": arms,
        "pairs": reports,
    }


def aggregate_robustness(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarise arm metrics across studies: mean, min, max and count per metric and group.

    Each entry is either ``{"key": {...}, "metrics": ArmMetrics.to_dict()}`` (one arm of one
    study) or ``{"key": {...}, "arms": {arm: ArmMetrics.to_dict(), ...}}`` (a study's arms, as in
    ``sensitivity_report(...)["arms"]``); an optional ``"study_id"`` is listed in its group.
    ``key`` names what makes studies comparable (METRICS.md: workload, arm, epochs, lr range,
    β set, seeds, metric, split); entries group by it plus whichever of arm, split, eps and
    relative it does not hold (taken from the metrics). Metrics a study could not compute
    (incomplete grids) are left out of the counts. Scores are oriented higher-is-better;
    ``raw_*`` are in the workload's units.
    """
    groups: dict[str, tuple[dict[str, Any], list[Mapping[str, Any]], list[Any]]] = {}
    for n, entry in enumerate(reports):
        for metrics in _entry_metrics(n, entry):
            key = dict(entry.get("key") or {})
            key.setdefault("arm", metrics.get("arm"))
            key.setdefault("split", metrics.get("split"))
            key.setdefault("eps", metrics["good_fraction"]["eps"])
            key.setdefault("relative", metrics["good_fraction"]["relative"])
            canonical = json.dumps(key, sort_keys=True, default=str)
            _, items, studies = groups.setdefault(canonical, (key, [], []))
            items.append(metrics)
            if "study_id" in entry:
                studies.append(entry["study_id"])
    return {
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
        "good_fraction": _stats(pick(("good_fraction", "fraction"))),
        "good_lr_width_mean_decades": _stats(pick(("good_lr_width", "mean_decades"))),
        "good_lr_width_all_betas_decades": _stats(pick(("good_lr_width", "all_betas", "decades"))),
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
