"""Packed execution against one trial at a time: the same study four ways, in one run.

What it measures, for the first N trials of a spec (default ``studies/examples/digits.yaml``, all
150 trials of 10 epochs):

1. per trial, in process (``InProcessExecutor``): today's reference path, one trial after another;
2. per trial on Ray Tune (``RayTuneExecutor``, a local Ray on ``--num-cpus`` CPUs, one trial per
   Tune trial, ``reuse_actors``), ``ray.init`` excluded and reported on its own line;
3. packed, in process (``PackedExecutor``): all trials in one pack on one torch thread; then one
   pack per CPU in ``--num-cpus`` forked processes (``PackedExecutor(workers=...)``, CPU only);
4. packed on Ray: one pack per CPU (``RayPackExecutor``, what a packed study runs on Ray), one torch thread each.

Each path runs once, warmed up (one trial, or a 2-member pack, runs first untimed, so data loading
and first-call costs such as torch's lazy imports are not counted for any). It prints wall time,
trials/s, the first result's arrival, the speed-up over path 1, and how the packed results compare
with path 1's: identical statuses, bit-equal final test errors, and the largest difference.
Goal (issue 10): packed on 2 CPU cores ≥ 10× path 1.

``--device cuda`` runs paths 1 and 3 on the GPU, and path 2 with ``--gpu`` (a fraction) per trial.

What it is not: a test (exit 0 unless ``--check`` and the goal is missed). On a shared machine the
figures move by tens of percent between runs. Usage:

    python bench/packed.py [--spec PATH] [--limit N] [--num-cpus 2] [--device cpu|cuda] [--gpu 0.25]
        [--skip-ray] [--check]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch

from studies.executors import InProcessExecutor, PackedExecutor, RayTuneExecutor, Work, ensure_ray, shutdown_ray
from studies.executors.base import RunSummary, Sink
from studies.executors.ray_packs import RayPackExecutor
from studies.packed import run_pack
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.runner import run_trial
from studies.spec import expand_trials, load_spec
from studies.training import TrialPlan

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "studies" / "examples" / "digits.yaml"
GOAL = 10.0


@dataclass
class Timed:
    """One path's run: wall seconds, the first result's arrival, and the results by key."""

    name: str
    wall_s: float
    first_s: float
    results: dict[TrialKey, TrialResult]


def timed(name: str, run: Callable[[Sink], RunSummary]) -> Timed:
    results: dict[TrialKey, TrialResult] = {}
    first: list[float] = []
    started = time.perf_counter()

    def sink(result: TrialResult) -> None:
        if not first:
            first.append(time.perf_counter() - started)
        results[result.key] = result

    summary = run(sink)
    wall = time.perf_counter() - started
    if summary.errors:
        print(f"  {name}: {len(summary.errors)} errors, first: {summary.errors[0]}")
    return Timed(name, wall, first[0] if first else wall, results)


def compare(reference: dict[TrialKey, TrialResult], other: dict[TrialKey, TrialResult]) -> str:
    """Statuses that agree, final test errors bit-equal, and the largest test-error difference."""
    same_status = sum(1 for k, r in reference.items() if k in other and other[k].status is r.status)
    both = [
        (r.test_metric, other[k].test_metric)
        for k, r in reference.items()
        if k in other and r.status is TrialStatus.COMPLETED and other[k].status is TrialStatus.COMPLETED
    ]
    equal = sum(1 for a, b in both if a == b)
    worst = max((abs((a or 0.0) - (b or 0.0)) for a, b in both), default=0.0)
    return (
        f"status {same_status}/{len(reference)} same; test error bit-equal {equal}/{len(both)}, "
        f"largest difference {worst:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="study spec (default: digits example)")
    parser.add_argument("--limit", type=int, default=None, help="the first N trials of the spec (default: all)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (paths 1 and 3; Ray uses --gpu)")
    parser.add_argument("--gpu", type=float, default=0.0, help="GPU fraction per Ray trial (default 0)")
    parser.add_argument("--skip-ray", action="store_true", help="only the in-process paths")
    parser.add_argument("--check", action="store_true", help="exit 1 when packed misses the goal")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    spec = load_spec(args.spec)
    keys = expand_trials(spec)[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="dl-bench-"))  # short: Ray's socket paths live under it
    plan = TrialPlan.from_spec(spec, work / "datasets")
    n = len(keys)
    device = None if args.device == "cpu" else args.device
    print(f"{spec.name}: {n} trials of {spec.epochs} epochs on {spec.workload}, device {args.device}")

    runs: list[Timed] = []
    try:
        run_trial(plan, keys[0], device=device)  # warm-up: data, torch's lazy imports, first calls
        run_pack(plan, keys[:2], device=device)
        every = Work(plan, keys)
        runs.append(timed("per trial, in process", lambda sink: InProcessExecutor(device).run(every, sink)))
        runs.append(timed("packed, in process (1 pack)", lambda sink: PackedExecutor(n, device).run(every, sink)))
        if device is None:
            forked = PackedExecutor("auto", workers=args.num_cpus)
            runs.append(timed(f"packed, {args.num_cpus} forked processes", lambda sink: forked.run(every, sink)))
        if not args.skip_ray:
            started = time.perf_counter()
            ensure_ray(data_dir=work, num_cpus=args.num_cpus)
            print(f"Ray start-up (ray.init): {time.perf_counter() - started:.2f} s (excluded below)")
            per_trial = RayTuneExecutor(cpu=1, gpu=args.gpu, storage_dir=work, experiment_name="per-trial")
            runs.append(timed("per trial, Ray", lambda sink: per_trial.run(every, sink)))
            size = math.ceil(n / args.num_cpus)
            packed = RayPackExecutor(cpu=1, gpu=args.gpu, pack_size=size, storage_dir=work)
            runs.append(timed(f"packed, Ray ({args.num_cpus} packs)", lambda sink: packed.run(every, sink)))
    finally:
        shutdown_ray()
        shutil.rmtree(work, ignore_errors=True)

    reference = runs[0]
    print(f"{'path':32} {'wall s':>8} {'trials/s':>9} {'first s':>8} {'× per trial':>12}")
    for run in runs:
        ratio = reference.wall_s / run.wall_s
        print(f"{run.name:32} {run.wall_s:8.2f} {n / run.wall_s:9.2f} {run.first_s:8.2f} {ratio:12.2f}")
    for run in runs[1:]:
        print(f"{run.name} vs per trial: {compare(reference.results, run.results)}")
    best = max(reference.wall_s / r.wall_s for r in runs if r.name.startswith("packed"))
    print(f"goal: packed >= {GOAL:.0f}x per trial in process: {'met' if best >= GOAL else 'NOT met'} ({best:.1f}x)")
    return 1 if args.check and best < GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
