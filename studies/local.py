"""``demonlab run SPEC --out DIR``: run a spec locally (no service), with a progress bar.

Results are kept in memory and written at the end (trials CSV/Parquet, metrics JSON, heatmaps); each
pair's verdict is printed first, then the summary table per arm. For stored, resumable runs use the
service (``demonlab submit``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .executors import (
    ExecutorName,
    check_executor,
    execute_study,
    execution_mode,
    placement,
    shutdown_ray,
)
from .outputs import prepare_out_dir
from .results import TrialResult
from .spec import StudySpec

_WHERE = {"inprocess": "in process", "ray": "on Ray"}


def run_local(
    spec: StudySpec,
    out_dir: Path,
    *,
    executor: ExecutorName = "auto",
    data_dir: Path = Path(".work"),
    dataset_dir: Path | None = None,
    progress: bool = True,
    on_published: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Run every trial of ``spec`` and write the outputs to ``out_dir``; return the metrics report.
    ``on_published`` is called once they are all in ``out_dir`` (``write_outputs``)."""
    from tqdm import tqdm

    data_dir, dataset_dir = work_dirs(data_dir, dataset_dir)

    check_executor(spec, executor)
    prepare_out_dir(out_dir)  # a bad --out is said before the study trains, not after
    results: dict[Any, TrialResult] = {}
    # A bar on a terminal only: written to a log, each redraw is another line.
    show = progress and sys.stderr.isatty()
    bar = tqdm(total=spec.trial_count, unit="trial", disable=not show, file=sys.stderr, dynamic_ncols=True)

    def sink(result: TrialResult) -> None:
        results[result.key] = result
        bar.update(1)
        bar.set_postfix_str(
            f"last {result.key.arm} lr={result.key.lr:g} β={result.key.beta_init:g}: {result.status.value}"
        )

    try:
        summary = execute_study(
            spec, sink, executor=executor, data_dir=data_dir, dataset_dir=dataset_dir, while_waiting=_import_outputs
        )
    finally:
        bar.close()
        if placement(spec, executor) == "ray":
            shutdown_ray()
    from .report import write_outputs  # imported while the packs trained (``_import_outputs``)

    report = write_outputs(spec, results.values(), out_dir, spec.y_fail(), on_published)
    report["run"] = {
        "execution": f"{execution_mode(spec).replace('_', ' ')}, {_WHERE[placement(spec, executor)]}",
        "completed": summary.completed,
        "diverged": summary.diverged,
        "failed": summary.failed,
        "errors": summary.errors[:20],
    }
    return report


def _import_outputs() -> None:
    """Import what writes the outputs (pandas, pyarrow, scipy, matplotlib: about a second) while the
    trials train in forked packs, rather than after them."""
    import matplotlib.backends.backend_agg
    import matplotlib.backends.backend_svg
    import matplotlib.figure
    import pyarrow.parquet

    from . import heatmaps, metrics, report

    del matplotlib, pyarrow, heatmaps, metrics, report


def work_dirs(data_dir: Path, dataset_dir: Path | None) -> tuple[Path, Path | None]:
    """The work and dataset dirs as absolute paths: Ray Tune runs each trial in a directory of its own,
    where a relative path (``--data-dir .work``, the default) named nothing, so on Ray every dataset
    workload failed with "not found" under the trial's directory."""
    return data_dir.resolve(), None if dataset_dir is None else dataset_dir.resolve()


def print_report(report: dict[str, Any], out_dir: Path) -> None:
    """Each pair's verdict first, then the per-arm summary table, the pairs' figures and where the files are."""
    from .report_text import pair_lines, summary_table, verdict_lines

    for line in verdict_lines(report):
        print(line)
    run = report.get("run", {})
    print(
        f"trials: {run.get('completed', 0)} completed, {run.get('diverged', 0)} diverged, {run.get('failed', 0)} failed"
        f" ({run.get('execution', '?')})"
    )
    for error in run.get("errors", []):
        print(f"  error: {error}")
    print(summary_table(report))
    for line in pair_lines(report):
        print(line)
    print(f"outputs in {out_dir}/: trials.csv, trials.parquet, metrics.json, heatmap.png, heatmap.svg")
