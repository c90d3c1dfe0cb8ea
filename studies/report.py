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


def default_eps(metric_name: str) -> tuple[float, bool]:
    """(ε, relative) for "good" cells: one percentage point for error rates; 1% of the peak for
    anything else (a loss, a perplexity, an NLL), whose scale no absolute ε fits."""
    return (0.01, False) if metric_name == "error" else (0.01, True)


def write_outputs(spec: StudySpec, results: Iterable[TrialResult], out_dir: Path, y_fail: float) -> dict[str, Any]:
    """Write trials.csv, trials.parquet, metrics.json and the heatmaps; return the metrics report (with
    the ``environment`` the trials ran on, ``studies.environment``)."""
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
    report = sensitivity_report(scores, axes, y_fail, eps=eps, relative=relative, split="test")
    report["study"] = {
        "name": spec.name,
        "workload": spec.workload,
        "metric": spec.metric_name,
        "split": spec.split,
    }
    report["environment"] = study_environment(spec, nodes_used((r.node, r.device, r.extra) for r in results))
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, allow_nan=False))
    paths = write_heatmaps(scores, axes, y_fail, out_dir, stem="heatmap", metric_label=spec.metric_name)
    report["files"] = [
        str(p) for p in [out_dir / "trials.csv", out_dir / "trials.parquet", out_dir / "metrics.json", *paths]
    ]
    return report


def summary_table(report: dict[str, Any]) -> str:
    """A plain-text table, one row per arm, in the workload's units (lower is better): the test
    score of the cell picked on validation, F_ε, mean good-lr width, q(1), and the diverged share."""
    lines = [f"{'arm':<16} {'best test':>10} {'F_eps':>10} {'width(dec)':>10} {'E[best@1]':>10} {'diverged':>10}"]
    for arm, metrics in report.get("arms", {}).items():
        coverage = metrics.get("coverage", {})
        ran = coverage.get("n_completed", 0) + coverage.get("n_diverged", 0)
        diverged = coverage.get("n_diverged", 0) / ran if ran else None
        lines.append(
            f"{arm:<16} {_fmt(_dig(metrics, 'peak', 'raw_score'))} {_fmt(_dig(metrics, 'good_fraction', 'fraction'))}"
            f" {_fmt(_dig(metrics, 'good_lr_width', 'mean_decades'))}"
            f" {_fmt(_dig(metrics, 'expected_best', 'raw_without_replacement', 0))} {_fmt(diverged)}"
        )
    return "\n".join([*lines, *SUMMARY_LEGEND])


SUMMARY_LEGEND = (
    "best test: test score of the cell picked on validation (workload units, lower is better);",
    "F_eps: share of (lr, β_init) cells within ε of the best; width(dec): mean width, in decades of lr, of the",
    "good lr range per β_init; E[best@1]: expected score of one cell drawn at random; diverged: share of runs",
    "that blew up.",
)


def _dig(data: Any, *path: str | int) -> Any:
    for part in path:
        in_list = isinstance(part, int) and isinstance(data, list) and -len(data) <= part < len(data)
        in_dict = isinstance(part, str) and isinstance(data, dict) and part in data
        if not (in_list or in_dict):
            return None
        data = data[part]
    return data


def _fmt(value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"{value:>10.4g}"
    return f"{'-':>10}"
