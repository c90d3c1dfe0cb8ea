"""From trial results to tables, files and a printed summary: the outputs of ``demonlab run``.

``results_frame`` flattens results for CSV/Parquet; ``scores_frame`` picks the study's metric for
``studies.metrics``; ``write_outputs`` writes trials, metrics and heatmaps into one directory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from .results import TrialResult
from .spec import OptunaSearchSpec, StudySpec

RESULT_COLUMNS = [
    "arm",
    "lr",
    "beta_init",
    "seed",
    "status",
    "val_metric",
    "val_loss",
    "test_metric",
    "test_loss",
    "best_val_metric",
    "epochs_done",
    "wall_seconds",
    "device",
    "node",
    "error",
]


def results_frame(results: Iterable[TrialResult]) -> pd.DataFrame:
    """One row per trial, sorted by key; missing scores are NaN."""
    rows: list[dict[str, Any]] = []
    for r in results:
        rows.append(
            {
                "arm": r.key.arm,
                "lr": r.key.lr,
                "beta_init": r.key.beta_init,
                "seed": r.key.seed,
                "status": r.status.value,
                "val_metric": _num(r.val_metric),
                "val_loss": _num(r.val_loss),
                "test_metric": _num(r.test_metric),
                "test_loss": _num(r.test_loss),
                "best_val_metric": _num(r.best_val_metric),
                "epochs_done": r.epochs_done,
                "wall_seconds": r.wall_seconds,
                "device": r.device,
                "node": r.node,
                "error": r.error or "",
            }
        )
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return frame.sort_values(["arm", "lr", "beta_init", "seed"]).reset_index(drop=True)


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


def scores_frame(frame: pd.DataFrame, metric_kind: str) -> pd.DataFrame:
    """The columns ``studies.metrics`` reads: arm, lr, beta_init, seed, status, val, test."""
    return pd.DataFrame(
        {
            "arm": frame["arm"],
            "lr": frame["lr"],
            "beta_init": frame["beta_init"],
            "seed": frame["seed"],
            "status": frame["status"],
            "val": frame[f"val_{metric_kind}"],
            "test": frame[f"test_{metric_kind}"],
        }
    )


def grid_axes(spec: StudySpec, frame: pd.DataFrame | None = None) -> Any:
    """The full grid the spec asked for (search studies: the points that were sampled)."""
    from .metrics import GridAxes

    if isinstance(spec.search, OptunaSearchSpec):
        assert frame is not None
        return GridAxes(
            lrs=tuple(sorted(frame["lr"].unique())),
            betas=tuple(sorted(frame["beta_init"].unique())),
            seeds=tuple(spec.seed_values),
        )
    return GridAxes(lrs=tuple(spec.lr_values), betas=tuple(spec.beta_init), seeds=tuple(spec.seed_values))


def default_eps(metric_name: str) -> tuple[float | str, bool]:
    """(ε, relative) for "good" cells: one percentage point for error rates; for anything else (a
    loss, a perplexity, an NLL), whose scale no fixed ε fits, ``"seed_spread"``: the pooled seed
    standard deviation at the arms' peak cells, so a cell is good when it is within the difference
    seeds alone make (1% of the best score when every peak has a single seed)."""
    from .metrics import SEED_SPREAD

    return (0.01, False) if metric_name == "error" else (SEED_SPREAD, False)


ERROR_EPS_SOURCE = "default for error rates: 0.01 (one percentage point)"


def default_eps_source(metric_name: str) -> str | None:
    """How a report names the default ε of ``default_eps`` (None: the metric code names it)."""
    return ERROR_EPS_SOURCE if metric_name == "error" else None


def write_outputs(spec: StudySpec, results: Iterable[TrialResult], out_dir: Path, y_fail: float) -> dict[str, Any]:
    """Write trials.csv, trials.parquet, metrics.json and the heatmaps; return the metrics report (with
    the ``environment`` the trials ran on, ``studies.environment``).

    The figures and heatmaps are on ``spec.split`` (cells are chosen on validation; a ``full_train``
    study has no validation split, so none is chosen)."""
    from .environment import nodes_used, study_environment
    from .heatmaps import write_heatmaps
    from .metrics import sensitivity_report

    out_dir.mkdir(parents=True, exist_ok=True)
    results = list(results)
    frame = results_frame(results)
    frame.to_csv(out_dir / "trials.csv", index=False)
    frame.to_parquet(out_dir / "trials.parquet", index=False)
    scores = scores_frame(frame, spec.metric_kind)
    axes = grid_axes(spec, frame)
    eps, relative = default_eps(spec.metric_name)
    report = sensitivity_report(
        scores,
        axes,
        y_fail,
        eps=eps,
        relative=relative,
        split=spec.split,
        eps_source=default_eps_source(spec.metric_name),
    )
    report["study"] = {
        "name": spec.name,
        "workload": spec.workload,
        "metric": spec.metric_name,
        "split": spec.split,  # the split every figure is on; cells are chosen on "val"
        **({"protocol": spec.protocol_note} if spec.full_train else {}),  # no validation split, no cell chosen
    }
    report["environment"] = study_environment(spec, nodes_used((r.node, r.device, r.extra) for r in results))
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, allow_nan=False))
    paths = write_heatmaps(
        scores,
        axes,
        y_fail,
        out_dir,
        stem="heatmap",
        metric_label=spec.metric_name,
        split=spec.split,
        note=heatmap_note(report),
    )
    report["files"] = [
        str(p) for p in [out_dir / "trials.csv", out_dir / "trials.parquet", out_dir / "metrics.json", *paths]
    ]
    return report


def eps_caption(report: dict[str, Any]) -> str:
    """The ε of a report in words, for every place that prints an ε-figure."""
    eps, relative = report.get("eps"), report.get("relative")
    if not isinstance(eps, (int, float)):
        return "eps = ?"
    text = f"eps = {eps:.3g}" + (" x |best|" if relative else "")
    source = str(report.get("eps_source") or "")
    if source.startswith("seed spread:"):
        text += " (seed spread at the peaks)"
    elif source.startswith("seed spread unmeasurable"):
        text += " (seed spread unmeasurable: 1% of the best)"
    return text


def heatmap_note(report: dict[str, Any]) -> str:
    """The heatmap caption's ε-figure: each arm's ε-good fraction, with the ε it used (and, for a
    full-train study, that no cell was chosen)."""
    fractions = ", ".join(
        f"{arm} {_short(_dig(metrics, 'eps_good', 'fraction'))}" for arm, metrics in report.get("arms", {}).items()
    )
    full_train = _dig(report, "study", "protocol") is not None
    prefix = "full-train replication: no validation split, no cell chosen. " if full_train else ""
    return prefix + f"share of cells within {eps_caption(report)} of the best: {fractions}"


def summary_table(report: dict[str, Any]) -> str:
    """A plain-text table, one row per arm, in the workload's units (lower is better): the test
    score of the cell picked on validation with its seed interval and that interval's level, the
    ε-good fraction F_ε (ε printed above the table), the mean ε-good lr width, q(1) and the
    diverged share."""
    split = report.get("split", "test")
    protocol = _dig(report, "study", "protocol")
    chosen = "no cell chosen: no validation split" if protocol else "cells chosen on val"
    lines = [
        *([str(protocol)] if protocol else []),
        f"figures on {split} ({chosen}); good = within {eps_caption(report)} of the best cell on {split}",
        f"{'arm':<16} {'best ' + split:>10} {'interval':>19} {'level':>6} {'F_eps':>7} {'width(dec)':>10}"
        f" {'E[best@1]':>10} {'diverged':>9}",
    ]
    for arm, metrics in report.get("arms", {}).items():
        coverage = metrics.get("coverage", {})
        ran = coverage.get("n_completed", 0) + coverage.get("n_diverged", 0)
        diverged = coverage.get("n_diverged", 0) / ran if ran else None
        interval = _dig(metrics, "peak", "score_interval") or {}
        low, high = interval.get("raw_low"), interval.get("raw_high")
        span = f"[{_short(low)}, {_short(high)}]" if low is not None and high is not None else "-"
        level = interval.get("level")
        lines.append(
            f"{arm:<16} {_fmt(_dig(metrics, 'peak', 'raw_score'))} {span:>19}"
            f" {(f'{level:.1%}' if isinstance(level, (int, float)) else '-'):>6}"
            f" {_fmt(_dig(metrics, 'eps_good', 'fraction'), 7)}"
            f" {_fmt(_dig(metrics, 'eps_good_lr_width', 'mean_decades'))}"
            f" {_fmt(_dig(metrics, 'expected_best', 'raw_without_replacement', 0))} {_fmt(diverged, 9)}"
        )
    return "\n".join([*lines, *SUMMARY_LEGEND])


SUMMARY_LEGEND = (
    "best: score (workload units, lower is better) of the cell picked on validation; interval, level: the",
    "seed interval of that score and the confidence it really has (an order-statistic interval);",
    "F_eps: share of (lr, β_init) cells within ε of the best cell; width(dec): mean width, in decades of lr,",
    "of the good lr range per β_init; E[best@1]: expected score of one cell drawn at random; diverged: share",
    "of runs that blew up.",
)


def pair_lines(report: dict[str, Any]) -> list[str]:
    """One line per pair: Δ of the ε-good fraction (positive: the first arm better) with its
    interval and the coverage it guarantees (">= 95%"), the bootstrap shares, and the probability
    of improvement, all named."""
    lines = []
    for pair in report.get("pairs", []):
        a, b = pair.get("arm_a"), pair.get("arm_b")
        if "error" in pair:
            lines.append(f"{a} vs {b}: {pair['error']}")
            continue
        poi = pair.get("probability_of_improvement", {})
        delta: dict[str, Any] = next((d for d in pair.get("deltas", []) if d.get("metric") == "eps_good_fraction"), {})
        interval = delta.get("interval") or {}
        if interval.get("status") == "ok":
            bound = f"(>= {interval.get('min_level', 0):.0%})"
            span = f"[{_short(interval.get('low'))}, {_short(interval.get('high'))}] {bound}"
            shares = (
                f", share of bootstrap replicates > 0: {_short(delta.get('bootstrap_share_positive'))}"
                f", tied: {_short(delta.get('bootstrap_share_ties'))}"
            )
        else:
            span, shares = f"(no interval: {interval.get('status', '-')})", ""
        improvement = _short(poi.get("distributions"))
        lines.append(
            f"{a} vs {b}: ΔF_ε ({eps_caption(pair)}; > 0 = {a} better) = {_short(delta.get('delta'))} {span}"
            f"{shares}; P({a} cell beats {b} cell) = {improvement}, matched cells {_short(poi.get('matched'))}"
        )
    return lines


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _dig(data: Any, *path: str | int) -> Any:
    for part in path:
        in_list = isinstance(part, int) and isinstance(data, list) and -len(data) <= part < len(data)
        in_dict = isinstance(part, str) and isinstance(data, dict) and part in data
        if not (in_list or in_dict):
            return None
        data = data[part]
    return data


def _fmt(value: Any, width: int = 10) -> str:
    if isinstance(value, (int, float)):
        return f"{value:>{width}.4g}"
    return f"{'-':>{width}}"
