"""One reduced Fig. 2 panel end to end, per trial against packed: the figures a GPU session records.

What it runs: a stand-in of one panel of the paper's Fig. 2 (``--paper``, default fig2-vgg): the
panel's arms (Demon and its baselines, ``studies.replicate.PANELS``) on its exact lr × β_init grid
(66 or 78 cells, ``--seeds`` each) at its batch size, on the synthetic workload with the panel's
input and output shapes (an MLP: the real models, with BatchNorm and augmentation, do not pack):
CIFAR-10/100's 3,072 inputs and 10/100 classes; STL-10's 27,648 inputs are capped at the synthetic
workload's 4,096. Then:

1. per trial, in process, on ``--device``: the first ``--per-trial`` trials (a timed sample: the
   whole grid one at a time would not fit the check's five minutes);
2. packed, in process, on ``--device``: every trial, in packs of ``pack_size: auto``;
3. the sample compared (statuses, final test errors);
4. ``studies.replicate`` on the packed results: the panel's report (a stand-in: shapes only).

It prints each path's wall time and trials/s, packed ÷ per-trial trials/s (the speed-up), the peak
GPU memory of each path (``torch.cuda.max_memory_allocated``), and the report's verdict lines. One
warm-up trial and one 2-member pack run first, untimed. ``--dry-run`` shrinks everything (a tiny
MLP, 128 samples, one epoch) so the whole path runs on a CPU in seconds: it checks that the script
starts and finishes, not any speed. Not a test: it exits 0 unless a path fails. Usage:

    python bench/fig2_panel.py [--paper fig2-vgg] [--device cuda] [--seeds 1] [--per-trial 18] [--dry-run]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch

from studies.executors import InProcessExecutor, PackedExecutor, Work
from studies.executors.base import RunSummary, Sink
from studies.packed import run_pack
from studies.replicate import PANELS, StudyInfo, replication_report, report_text
from studies.report import results_frame
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.runner import run_trial
from studies.spec import StudySpec, expand_trials
from studies.training import TrialPlan

SHAPES = {"fig2-wrn": (4096, 10), "fig2-vgg": (3072, 100), "fig2-rn20": (3072, 10)}  # (inputs, classes)


def panel_spec(paper: str, seeds: int, dry_run: bool) -> StudySpec:
    """The reduced panel: its arms, grid and batch size on the synthetic workload of its shapes."""
    chosen = PANELS[paper]
    features, classes = SHAPES[paper]
    size = {"hidden": 16, "n_train": 128} if dry_run else {"hidden": 512, "n_train": 10_000}
    return StudySpec.model_validate(
        {
            "name": f"gpu-check-{paper}",
            "workload": "synthetic",
            "workload_params": {"features": features, "classes": classes, **size},
            "arms": [chosen.demon_arm, *chosen.baselines],
            "lr": list(chosen.lrs),
            "beta_init": [0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
            "seeds": seeds,
            "epochs": 1 if dry_run else 3,
            "batch_size": chosen.batch_size,
        }
    )


def timed(run: Callable[[Sink], RunSummary], device: torch.device) -> tuple[float, dict[TrialKey, TrialResult], int]:
    """(wall seconds, results by key, peak GPU bytes or 0) of one path."""
    results: dict[TrialKey, TrialResult] = {}
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    summary = run(lambda result: results.__setitem__(result.key, result))
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    if summary.errors:
        raise RuntimeError(f"{len(summary.errors)} errors, first: {summary.errors[0]}")
    return wall, results, torch.cuda.max_memory_allocated() if device.type == "cuda" else 0


def agreement(sample: dict[TrialKey, TrialResult], packed: dict[TrialKey, TrialResult]) -> str:
    same = sum(1 for k, r in sample.items() if packed[k].status is r.status)
    both = [(r.test_metric, packed[k].test_metric) for k, r in sample.items() if r.status is TrialStatus.COMPLETED]
    equal = sum(1 for a, b in both if a == b)
    worst = max((abs((a or 0.0) - (b or 0.0)) for a, b in both), default=0.0)
    return f"status {same}/{len(sample)} same, test error equal {equal}/{len(both)}, largest difference {worst:.2e}"


def memory(peak: int, device: torch.device) -> str:
    return f"{peak / 2**30:.2f} GiB" if device.type == "cuda" else "n/a (cpu)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", default="fig2-vgg", choices=list(PANELS), help="the panel (default fig2-vgg)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per cell (default 1)")
    parser.add_argument("--per-trial", type=int, default=18, help="trials timed one at a time (default 18)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, so the whole path runs on a CPU")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    device = torch.device(args.device)
    spec = panel_spec(args.paper, args.seeds, args.dry_run)
    keys = expand_trials(spec)
    sample = keys[:: max(1, len(keys) // args.per_trial)][: args.per_trial]  # spread over arms and cells
    work = Path(tempfile.mkdtemp(prefix="dl-fig2-"))
    plan = TrialPlan.from_spec(spec, work / "datasets")
    name = None if device.type == "cpu" else args.device
    params: dict[str, Any] = spec.workload_params
    print(
        f"{spec.name}: {len(keys)} trials ({len(spec.arms)} arms x {len(spec.lr_values)} lr x "
        f"{len(spec.beta_init)} beta_init x {args.seeds} seed), synthetic {params['features']} -> "
        f"{params['hidden']} -> {params['classes']}, {params['n_train']} samples, {spec.epochs} epochs, "
        f"batch {spec.batch_size}, device {device}{' (dry run)' if args.dry_run else ''}"
    )
    try:
        run_trial(plan, keys[0], device=name)  # warm-up: data, lazy imports, first kernels
        run_pack(plan, keys[:2], device=name)
        single_s, singles, single_peak = timed(lambda s: InProcessExecutor(name).run(Work(plan, sample), s), device)
        packed_s, packed, packed_peak = timed(lambda s: PackedExecutor("auto", name).run(Work(plan, keys), s), device)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    single_rate, packed_rate = len(sample) / single_s, len(keys) / packed_s
    print(f"{'path':28} {'trials':>7} {'wall s':>8} {'trials/s':>9} {'GPU memory':>12}")
    for path, n, wall, peak in (
        ("per trial, in process", len(sample), single_s, single_peak),
        ("packed, in process", len(keys), packed_s, packed_peak),
    ):
        print(f"{path:28} {n:7d} {wall:8.2f} {n / wall:9.2f} {memory(peak, device):>12}")
    print(f"packed vs per trial: {packed_rate / single_rate:.1f}x trials/s; sample: {agreement(singles, packed)}")
    print(f"the whole panel per trial would take about {len(keys) / single_rate:.0f} s; packed took {packed_s:.1f} s")
    study = StudyInfo(id="gpu-check", name=spec.name, workload=spec.workload, status="completed", epochs=spec.epochs)
    report = replication_report(results_frame(packed.values()), study, paper=args.paper)
    verdicts = [line for line in report_text(report).splitlines() if line.startswith(("claim", "  verdict"))]
    print(
        "replication report (a synthetic stand-in: shapes only):",
        *(verdicts or ["  no claim for this panel"]),
        sep="\n",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
