"""Study overhead: what running trials through Ray Tune costs over running them in this process.

What it measures: the first N trials of a spec (default ``studies/examples/digits.yaml``, 60 trials)
run by two executors in one process, ``--repeats`` times (default 3) interleaved, the order
alternating, so that a change in the machine's load hits both; it reports min and median wall times
and the overhead figures of the median runs:

1. in process, one after another (``InProcessExecutor``): the reference. One trial runs first, untimed,
   so the data load and first-call costs are not counted;
2. through Ray Tune (``RayTuneExecutor`` on a local Ray, ``reuse_actors=True`` as the engine sets it),
   with the spec's ``trials_per_task`` unless ``--trials-per-task`` overrides it.

It prints trials per minute for each, Ray's start-up (``ray.init``) on its own line, and Ray's
overhead per trial two ways:

- with worker start-up: (Ray wall − in-process wall) / trials, ``ray.init`` excluded, the time to
  Ray's first result (a worker process starts, imports torch and Ray, loads the data) included;
- after warm-up (the targets): from Ray's first result on, Ray's time per trial minus the in-process
  time per trial, and that as a share of Ray's time per trial;

against the targets ≤ 50 ms per trial and ≤ 20% of wall time after warm-up. Ray runs one trial at a time by
default (``--concurrency 1``) so both sides do the same work on the same number of cores; with more,
parallel speed-up hides overhead and the figures can turn negative. It also checks that both runs
produced identical results.

What it is not: a test (it exits 0 unless ``--check`` is given and a target is missed) or a measure
of a cluster: on a busy machine the numbers move by tens of percent between runs. Usage:

    python bench/study_overhead.py [--spec PATH] [--limit N] [--trials-per-task K] [--concurrency C]
        [--repeats R]
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

from studies.executors import InProcessExecutor, RayTuneExecutor, RunSummary, Sink, Work, ensure_ray, shutdown_ray
from studies.results import TrialKey, TrialResult
from studies.runner import run_trial
from studies.spec import expand_trials, load_spec
from studies.training import TrialPlan

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "studies" / "examples" / "digits.yaml"
TARGET_MS_PER_TRIAL = 50.0
TARGET_SHARE = 0.20


@dataclass
class Timed:
    """One executor's run: wall seconds, when the first result arrived, and the results by key."""

    wall_s: float
    first_result_s: float
    results: dict[TrialKey, TrialResult]


def run_timed(run: Callable[[Work, Sink], RunSummary], plan: TrialPlan, keys: list[TrialKey]) -> Timed:
    """Run ``keys`` with an executor's ``run`` and time it from the call to the last result."""
    results: dict[TrialKey, TrialResult] = {}
    first: list[float] = []
    started = time.perf_counter()

    def sink(result: TrialResult) -> None:
        if not first:
            first.append(time.perf_counter() - started)
        results[result.key] = result

    summary = run(Work(plan, keys), sink)
    wall = time.perf_counter() - started
    if summary.errors:
        print(f"  {len(summary.errors)} errors, first: {summary.errors[0]}")
    return Timed(wall, first[0] if first else wall, results)


def same_results(a: dict[TrialKey, TrialResult], b: dict[TrialKey, TrialResult]) -> int:
    """How many trials computed exactly the same thing in both runs."""

    def computed(r: TrialResult) -> tuple[object, ...]:
        return (r.status, r.epochs, r.val_metric, r.test_metric, r.epochs_done)

    return sum(1 for key, result in a.items() if key in b and computed(result) == computed(b[key]))


def median_run(runs: list[Timed]) -> Timed:
    """The run with the median wall time (the lower one of the middle two for an even count)."""
    ordered = sorted(runs, key=lambda r: r.wall_s)
    return ordered[(len(ordered) - 1) // 2]


def per_minute(trials: int, seconds: float) -> float:
    return 60.0 * trials / seconds if seconds > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="study spec (default: digits example)")
    parser.add_argument("--limit", type=int, default=60, help="run the first N trials of the spec (default 60)")
    parser.add_argument("--trials-per-task", type=int, default=None, help="trials per Ray task (default: spec's)")
    parser.add_argument("--concurrency", type=int, default=1, help="Ray trials at once (default 1, like in-process)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each executor (default 3)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    spec = load_spec(args.spec)
    keys = expand_trials(spec)[: args.limit]
    if not keys:
        parser.error("the spec has no grid trials (a search spec cannot be benchmarked here)")
    trials_per_task = args.trials_per_task or spec.trials_per_task
    work = Path(tempfile.mkdtemp(prefix="dl-bench-"))  # short: Ray's socket paths live under it
    plan = TrialPlan.from_spec(spec, work / "datasets")
    n = len(keys)
    arms = ", ".join(sorted({k.arm for k in keys}))
    print(f"{spec.name}: {n} trials of {spec.epochs} epochs on {spec.workload} (arms: {arms})")

    inproc_runs: list[Timed] = []
    ray_runs: list[Timed] = []
    try:
        run_trial(plan, keys[0])  # warm-up: data load, first calls
        started = time.perf_counter()
        ensure_ray(data_dir=work, num_cpus=args.num_cpus)
        init_s = time.perf_counter() - started
        for repeat in range(args.repeats):
            # Interleaved, alternating which goes first, so a change in the machine's load hits both.
            executor = RayTuneExecutor(
                cpu=spec.resources.cpu,
                trials_per_task=trials_per_task,
                storage_dir=work,
                experiment_name=f"bench-{repeat}",
                max_concurrent_trials=args.concurrency,
            )
            pair = [(inproc_runs, InProcessExecutor().run), (ray_runs, executor.run)]
            for runs, run in pair if repeat % 2 == 0 else reversed(pair):
                runs.append(run_timed(run, plan, keys))
    finally:
        shutdown_ray()
        shutil.rmtree(work, ignore_errors=True)
    inproc, ray = median_run(inproc_runs), median_run(ray_runs)
    print(
        f"{args.repeats} interleaved repeats, wall s min/median: in-process "
        f"{min(r.wall_s for r in inproc_runs):.2f}/{inproc.wall_s:.2f}, Ray Tune "
        f"{min(r.wall_s for r in ray_runs):.2f}/{ray.wall_s:.2f} (figures below: the median runs)"
    )

    overhead_s = ray.wall_s - inproc.wall_s
    ms_per_trial = 1000.0 * overhead_s / n
    share = overhead_s / ray.wall_s
    # Steady state: Ray's time per trial after its first result (which waits for a worker process to
    # start, import torch and load the data) against the in-process time per trial.
    after_first = n - min(trials_per_task, n)
    ray_steady_s = (ray.wall_s - ray.first_result_s) / after_first if after_first else math.nan
    steady_ms = 1000.0 * (ray_steady_s - inproc.wall_s / n)

    print(f"in-process:  {inproc.wall_s:7.2f} s  {per_minute(n, inproc.wall_s):8.1f} trials/min")
    print(f"Ray start-up (ray.init): {init_s:.2f} s  (excluded below)")
    print(
        f"Ray Tune:    {ray.wall_s:7.2f} s  {per_minute(n, ray.wall_s):8.1f} trials/min"
        f"  ({per_minute(n, ray.wall_s + init_s):.1f} with start-up; trials_per_task={trials_per_task},"
        f" concurrency={args.concurrency}, first result after {ray.first_result_s:.2f} s)"
    )
    steady_share = (steady_ms / 1000.0) / ray_steady_s if after_first else math.nan
    print(f"Ray overhead with worker start-up: {ms_per_trial:.1f} ms per trial, {100 * share:.1f}% of Ray's wall time")
    print(
        f"Ray overhead after warm-up (from the first result): {steady_ms:.1f} ms per trial, "
        f"{100 * steady_share:.1f}% of Ray's time per trial"
    )
    met_ms, met_share = steady_ms <= TARGET_MS_PER_TRIAL, steady_share <= TARGET_SHARE
    print(f"target <= {TARGET_MS_PER_TRIAL:.0f} ms per trial: {'met' if met_ms else 'NOT met'}")
    print(f"target <= {100 * TARGET_SHARE:.0f}% of wall time: {'met' if met_share else 'NOT met'}")
    identical = same_results(inproc.results, ray.results)
    print(f"identical results: {identical}/{n}" + ("" if identical == n == len(ray.results) else "  (MISMATCH)"))
    return 1 if args.check and not (met_ms and met_share) else 0


if __name__ == "__main__":
    sys.exit(main())
