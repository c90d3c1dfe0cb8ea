"""End to end: whole processes on a digits study, the sequential floor against ``demonlab run``.

Each path is one fresh process, timed from its start to its exit (imports, data, training, outputs
and teardown included), in interleaved rounds so a change in the machine's load hits every path:

- ``floor``: the bare torch loop a user would write (this file with ``--floor``): scikit-learn's
  digits, then for every trial of the spec, seeding, the MLP, the arm's optimizer and scheduler
  (``DemonSGD``, torch's SGD with ``MultiStepLR`` / ``CosineAnnealingLR``), 10 epochs of shuffled
  batches and a test evaluation, one trial after another on one thread; no outputs.
- ``demonlab run``: the spec as a user runs it (default executor: packed wherever the workload packs,
  one forked pack per core), writing trials.csv/parquet, metrics.json and the heatmaps.
- optionally ``demonlab run --executor inprocess`` with ``execution.mode: per_trial`` (``--per-trial``).

Printed: min and median wall seconds per path, and floor / path (how many times faster than the
floor's whole process), with the machine's load (``os.getloadavg``) before and after. Goal (issue 16):
the 150-trial study in ≤ 6 s on a quiet 2-core machine, ≥ 4× the floor.

    .venv/bin/python bench/end_to_end.py                 # 3 rounds, digits.yaml
    .venv/bin/python bench/end_to_end.py --rounds 5 --per-trial
    .venv/bin/python bench/end_to_end.py --seeds 8       # the spec with 8 seeds (600 trials)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "studies" / "examples" / "digits.yaml"
GOAL_SECONDS, GOAL_RATIO = 6.0, 4.0


def floor(spec_path: Path, seeds: int | None) -> None:
    """The bare loop (run in its own process by ``--floor``)."""
    import math

    import torch
    import yaml
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn
    from torch.optim.lr_scheduler import CosineAnnealingLR, MultiStepLR

    from demon import DemonSGD

    torch.set_num_threads(1)
    spec = yaml.safe_load(spec_path.read_text())
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    _, x_test, _, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    batch, epochs = spec["batch_size"], spec["epochs"]
    steps = epochs * math.ceil(len(x_train) / batch)
    for arm in spec["arms"]:
        for lr in spec["lr"]:
            for beta in spec["beta_init"]:
                for seed in range(seeds or spec["seeds"]):
                    torch.manual_seed(seed)
                    generator = torch.Generator().manual_seed(seed)
                    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
                    if arm == "demon_sgdm":
                        optimizer: torch.optim.Optimizer = DemonSGD(
                            model.parameters(), lr=lr, beta_init=beta, total_steps=steps
                        )
                        scheduler = None
                    else:
                        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=beta)
                        scheduler = (
                            MultiStepLR(optimizer, [steps // 2, 3 * steps // 4])
                            if arm == "sgdm_step"
                            else CosineAnnealingLR(optimizer, steps)
                        )
                    for _ in range(epochs):
                        order = torch.randperm(len(x_train), generator=generator)
                        for start in range(0, len(order), batch):
                            index = order[start : start + batch]
                            optimizer.zero_grad()
                            loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
                            if not math.isfinite(float(loss)):
                                break
                            loss.backward()
                            optimizer.step()
                            if scheduler is not None:
                                scheduler.step()
                    with torch.no_grad():
                        (model(x_test).argmax(1) != y_test).float().mean()


def _seeded_spec(spec_path: Path, seeds: int | None, per_trial: bool, folder: Path) -> Path:
    import yaml

    spec = yaml.safe_load(spec_path.read_text())
    if seeds:
        spec["seeds"] = seeds
    if per_trial:
        spec["execution"] = {"mode": "per_trial"}
    path = folder / ("per-trial.yaml" if per_trial else "spec.yaml")
    path.write_text(yaml.safe_dump(spec))
    return path


def _timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="a digits_mlp grid spec (default: the example)")
    parser.add_argument("--seeds", type=int, default=None, help="override the spec's seed count")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--per-trial", action="store_true", help="also demonlab run per trial, in process")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (it takes ~25 s a round)")
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:
        floor(args.spec, args.seeds)
        return 0
    demonlab = str(Path(sys.executable).parent / "demonlab")
    work = Path(tempfile.mkdtemp(prefix="dl-e2e-"))
    spec = _seeded_spec(args.spec, args.seeds, False, work)
    paths: dict[str, list[str]] = {"demonlab run": [demonlab, "run", str(spec), "--out", str(work / "out")]}
    if args.per_trial:
        per_trial = _seeded_spec(args.spec, args.seeds, True, work)
        paths["demonlab run, per trial"] = [
            demonlab, "run", str(per_trial), "--out", str(work / "out-pt"), "--executor", "inprocess"
        ]  # fmt: skip
    if not args.no_floor:
        paths["floor (bare torch loop)"] = [sys.executable, __file__, "--floor", "--spec", str(args.spec)] + (
            ["--seeds", str(args.seeds)] if args.seeds else []
        )
    walls: dict[str, list[float]] = {name: [] for name in paths}
    load_before = os.getloadavg()
    for round_ in range(args.rounds):
        names = list(paths) if round_ % 2 == 0 else list(reversed(paths))
        for name in names:
            walls[name].append(_timed(paths[name], work))
    load_after = os.getloadavg()
    print(
        f"{args.spec.name} ({args.seeds or 'its'} seeds): {args.rounds} interleaved rounds, whole processes; "
        f"load {load_before[0]:.1f} → {load_after[0]:.1f}"
    )
    floor_min = min(walls["floor (bare torch loop)"]) if not args.no_floor else None
    print(f"{'path':28} {'min s':>7} {'median s':>9} {'floor/path (min)':>17}")
    for name, values in walls.items():
        ratio = f"{floor_min / min(values):17.2f}" if floor_min else f"{'':>17}"
        print(f"{name:28} {min(values):7.2f} {statistics.median(values):9.2f} {ratio}")
    best = min(walls["demonlab run"])
    verdict = "met" if best <= GOAL_SECONDS and (floor_min is None or floor_min / best >= GOAL_RATIO) else "NOT met"
    print(f"goal: demonlab run <= {GOAL_SECONDS:g} s and >= {GOAL_RATIO:g}x the floor: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
