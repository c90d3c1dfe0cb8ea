"""From trial results to tables and files: the outputs of ``demonlab run``.

``results_frame`` flattens results for CSV/Parquet; ``scores_frame`` picks the study's metric for
``studies.metrics``; ``write_outputs`` writes trials, metrics and heatmaps into one directory, all
at once. The printed summary of the report (verdicts, table, pairs) is ``studies.report_text``, apart
from this module so that printing a report the API served imports no pandas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from .outputs import prepare_out_dir, staged_outputs
from .report_text import heatmap_note
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


def verdict_spec(spec: StudySpec, metric_name: str | None = None) -> Any:
    """The spec's verdict choices for ``metric_name`` (default: the study's metric). A target is in
    the study's metric's units, so another metric (a study of error rates asked about its loss) takes
    the default target rule."""
    from .metrics import VerdictSpec

    chosen = spec.verdict or VerdictSpec()
    if metric_name is not None and metric_name != spec.metric_name and chosen.target is not None:
        chosen = chosen.model_copy(update={"target": None})
    return chosen


def write_outputs(
    spec: StudySpec,
    results: Iterable[TrialResult],
    out_dir: Path,
    y_fail: float,
    on_published: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Write trials.csv, trials.parquet, metrics.json and the heatmaps; return metrics.json's content
    (the report, the ``study`` it describes and the ``environment`` the trials ran on) with ``files``.

    The files are written into a hidden folder inside ``out_dir`` and moved in together once all are
    complete (``staged_outputs``, which calls ``on_published`` then): an interrupt or an error on the
    way leaves ``out_dir`` as it was. The figures and heatmaps are on ``spec.split`` (cells are chosen
    on validation; a ``full_train`` study has no validation split, so none is chosen)."""
    from .environment import nodes_used, study_environment
    from .heatmaps import FORMATS, build_figure, figure_bytes
    from .metrics import sensitivity_report

    prepare_out_dir(out_dir)
    results = list(results)
    frame = results_frame(results)
    with staged_outputs(out_dir, on_published) as staging:
        staging.write("trials.csv", lambda path: frame.to_csv(path, index=False))
        staging.write("trials.parquet", lambda path: frame.to_parquet(path, index=False))
        scores = scores_frame(frame, spec.metric_kind)
        axes = grid_axes(spec, frame)
        typed = sensitivity_report(
            scores,
            axes,
            y_fail,
            verdict=verdict_spec(spec),
            split=spec.split,
            metric=spec.metric_name,
            sampled=isinstance(spec.search, OptunaSearchSpec),
        )
        report: dict[str, Any] = typed.model_dump(mode="json")
        report["study"] = {
            "name": spec.name,
            "workload": spec.workload,
            "metric": spec.metric_name,
            "split": spec.split,  # the split every figure is on; cells are chosen on "val"
            **({"protocol": spec.protocol_note} if spec.full_train else {}),  # no validation split, no cell chosen
        }
        report["environment"] = study_environment(spec, nodes_used((r.node, r.device, r.extra) for r in results))
        staging.write("metrics.json", json.dumps(report, indent=2, allow_nan=False).encode())
        figure = build_figure(
            scores, axes, y_fail, split=spec.split, metric_label=spec.metric_name, note=heatmap_note(typed)
        )
        for fmt in FORMATS:
            staging.write(f"heatmap.{fmt}", figure_bytes(figure, fmt))
    report["files"] = [str(out_dir / name) for name in staging.names]
    return report
