"""The atlas's lr ranges: run each cpu workload's pilot and apply the rule of ``studies.atlas.ranges``.

For every workload of the cpu suite and both optimizer families it runs the pilot study (Demon and
the unscheduled baseline, β_init 0.9, 25 lrs from 1e-5 to 10, 2 seeds, the atlas's epochs and batch
size) packed in this process, and prints per lr the better arm's median validation error, the range
the rule chooses, and the ``lr`` entries to paste into ``studies/atlas/suites.py``'s
``CPU_WORKLOADS``. What it is not: a test. Usage:

    python bench/atlas_ranges.py [--workloads digits_mlp wine_mlp ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="*", default=None, help="cpu-suite labels (default: all)")
    args = parser.parse_args()

    import torch

    from studies.atlas.ranges import PILOT_LRS, choose_range, pilot_spec
    from studies.atlas.suites import CPU_WORKLOADS, FAMILIES
    from studies.executors import execute_study
    from studies.results import TrialResult
    from studies.spec import StudySpec

    torch.set_num_threads(1)
    chosen: dict[str, dict[str, tuple[float, float]]] = {}
    for workload in CPU_WORKLOADS:
        if args.workloads and workload.label not in args.workloads:
            continue
        for family, (demon, baselines) in FAMILIES.items():
            arms = (demon, baselines[0])
            raw = pilot_spec(
                workload.workload, workload.params, arms, epochs=workload.epochs, batch_size=workload.batch_size
            )
            spec = StudySpec.model_validate(raw)
            results: list[TrialResult] = []
            started = time.perf_counter()
            execute_study(spec, results.append, executor="inprocess", data_dir=Path(".work"))
            wall = time.perf_counter() - started
            chance = spec.y_fail()
            errors = [[_median(results, arm, lr, chance) for lr in PILOT_LRS] for arm in arms]
            picked = choose_range(PILOT_LRS, errors, chance)
            chosen.setdefault(workload.label, {})[family] = (picked.min, picked.max)
            print(f"\n{workload.label} · {family}: pilot {len(results)} trials in {wall:.1f}s (chance {chance:.3f})")
            print(f"{'lr':>10} " + " ".join(f"{a:>12}" for a in arms))
            for i, lr in enumerate(PILOT_LRS):
                print(f"{lr:>10.3g} " + " ".join(f"{errors[a][i]:>12.3f}" for a in range(len(arms))))
            print(
                f"best lr {picked.best_lr:g}, trainable {picked.trainable[0]:g}..{picked.trainable[1]:g} "
                f"-> range {picked.min:g}..{picked.max:g} ({picked.decades:.2f} decades)"
            )
    print("\nlr ranges for studies/atlas/suites.py:")
    for label, ranges in chosen.items():
        print(f"  {label}: " + ", ".join(f'"{f}": ({lo:g}, {hi:g})' for f, (lo, hi) in ranges.items()))
    return 0


def _median(results: list, arm: str, lr: float, chance: float) -> float:  # type: ignore[type-arg]
    values = []
    for result in results:
        if result.key.arm != arm or result.key.lr != lr:
            continue
        if result.status.value == "diverged":
            values.append(chance)
        elif result.status.value == "completed" and result.val_metric is not None:
            values.append(min(float(result.val_metric), chance))
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
