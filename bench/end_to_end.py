"""End to end: every way to run a digits study, whole processes, side by side in one interleaved run.

Each path is one fresh process, timed from its start to its exit (imports, data, training, outputs
and teardown included), in interleaved rounds (the order reversed every other round) so a change in
the machine's load hits every path. The paths (``--paths``, names as in the table; ``--all``):

- ``floor``: the bare torch loop a user would write (this file with ``--floor``): scikit-learn's
  digits, then for every trial of the spec, seeding, the MLP, the arm's optimizer and scheduler
  (``DemonSGD``, torch's SGD with ``MultiStepLR`` / ``CosineAnnealingLR``), 10 epochs of shuffled
  batches and a test evaluation, one trial after another on one thread; no outputs.
- ``optuna``: the same trials as a plain Optuna loop (``--optuna``): a ``GridSampler`` over (arm, lr,
  β_init, seed), the objective the floor's trial, in-memory storage.
- ``tune``: the same trials as a hand-written Ray Tune grid (``--tune``): ``ray.init`` on 2 CPUs (own
  temp dir), ``tune.run`` of a function trainable with ``tune.grid_search`` over the four, one CPU a
  trial, ``reuse_actors=True`` (its default, False, starts a process per trial: over 10 minutes for the
  150 trials at load 11 here), its other arguments left at their defaults (``verbose=0``).
- ``per-trial``: ``demonlab run --executor inprocess`` with ``execution.mode: per_trial``.
- ``per-trial-ray``: ``demonlab run --executor ray``, per trial (each trial a Ray Tune trial).
- ``packed``: ``demonlab run`` with its defaults (packed, one forked pack per core, no Ray).
- ``packed-ray``: ``demonlab run --executor ray``, packed (each pack a Ray task on a Ray it starts).
- ``packed-warm-ray`` / ``per-trial-warm-ray``: the same joining a Ray this bench started once for
  the whole run (``RAY_ADDRESS``): what a study pays on a warm Ray rather than a new one per study.
- ``service``: ``make run``'s path, ``demonlab demo --exit-when-done`` (the service in a process,
  SQLite in a fresh data dir, the spec submitted over HTTP, its first result and end followed).

Every demonlab path writes its outputs (trials.csv/parquet, metrics.json, the heatmaps). Printed
per path: min and median wall seconds, the first result's seconds after the process started where
the path says (floor, optuna, tune: their first trial's end; service: after submission, as ``make
run`` prints it), and floor / path (min); the machine's load (``os.getloadavg``) before and after.
Goals (issue 16): packed ≤ 6 s and ≥ 4× the floor (the 150-trial study on a quiet 2-core
machine); packed on Ray ≥ 3× per trial on Ray and within 1.5× of packed in process; per trial on Ray
at least as fast as ``tune``.

    .venv/bin/python bench/end_to_end.py --seeds 2                  # floor and packed, 3 rounds
    .venv/bin/python bench/end_to_end.py --seeds 2 --all --rounds 3 # every path
    .venv/bin/python bench/end_to_end.py --seeds 2 --paths packed,packed-ray,packed-warm-ray
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "studies" / "examples" / "digits.yaml"
GOAL_SECONDS, GOAL_RATIO = 6.0, 4.0
GOAL_PACKED_RAY_OVER_PER_TRIAL, GOAL_PACKED_RAY_OVER_PACKED = 3.0, 1.5
FIRST = "first result at "  # what the floor, Optuna and Tune paths print (a Unix time)


def _digits() -> tuple[Any, Any, Any, Any]:
    """scikit-learn's digits split 60/20/20 as a user would (the study's test split)."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    _, x_test, _, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    return x_train, y_train, x_test, y_test


def train_one(
    data: tuple[Any, Any, Any, Any], arm: str, lr: float, beta: float, seed: int, spec: dict[str, Any]
) -> float:
    """One trial as a user writes it: seed, the MLP, the arm's optimizer and scheduler, shuffled
    batches for the spec's epochs (stop at a non-finite loss), the test error (1.0 if diverged)."""
    import math

    import torch
    from torch import nn
    from torch.optim.lr_scheduler import CosineAnnealingLR, MultiStepLR

    from demon import DemonSGD

    x_train, y_train, x_test, y_test = data
    batch, epochs = spec["batch_size"], spec["epochs"]
    steps = epochs * math.ceil(len(x_train) / batch)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    scheduler: Any = None
    if arm == "demon_sgdm":
        optimizer: torch.optim.Optimizer = DemonSGD(model.parameters(), lr=lr, beta_init=beta, total_steps=steps)
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
                return 1.0
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
    with torch.no_grad():
        return float((model(x_test).argmax(1) != y_test).float().mean())


def _grid(spec: dict[str, Any], seeds: int | None) -> list[tuple[str, float, float, int]]:
    return [
        (arm, lr, beta, seed)
        for arm in spec["arms"]
        for lr in spec["lr"]
        for beta in spec["beta_init"]
        for seed in range(seeds or spec["seeds"])
    ]


def _first(seen: list[bool]) -> None:
    if not seen:
        seen.append(True)
        print(f"{FIRST}{time.time():.3f}", flush=True)


def floor(spec_path: Path, seeds: int | None) -> None:
    """The bare loop (run in its own process by ``--floor``)."""
    import torch
    import yaml

    torch.set_num_threads(1)
    spec = yaml.safe_load(spec_path.read_text())
    data = _digits()
    seen: list[bool] = []
    for arm, lr, beta, seed in _grid(spec, seeds):
        train_one(data, arm, lr, beta, seed, spec)
        _first(seen)


def optuna_loop(spec_path: Path, seeds: int | None) -> None:
    """The same trials as a plain Optuna grid loop (``--optuna``)."""
    import optuna
    import torch
    import yaml

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = yaml.safe_load(spec_path.read_text())
    data = _digits()
    space = {
        "arm": spec["arms"],
        "lr": spec["lr"],
        "beta_init": spec["beta_init"],
        "seed": list(range(seeds or spec["seeds"])),
    }
    seen: list[bool] = []

    def objective(trial: optuna.Trial) -> float:
        error = train_one(
            data,
            trial.suggest_categorical("arm", space["arm"]),
            trial.suggest_categorical("lr", space["lr"]),
            trial.suggest_categorical("beta_init", space["beta_init"]),
            trial.suggest_categorical("seed", space["seed"]),
            spec,
        )
        _first(seen)
        return error

    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=0))
    study.optimize(objective, n_trials=len(_grid(spec, seeds)))


def tune_grid(spec_path: Path, seeds: int | None, work: Path) -> None:
    """The same trials as a hand-written Ray Tune grid (``--tune``)."""
    import ray
    import yaml
    from ray import tune

    spec = yaml.safe_load(spec_path.read_text())

    def trainable(config: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)
        error = train_one(_digits(), config["arm"], config["lr"], config["beta_init"], config["seed"], spec)
        tune.report({"test_error": error})

    seen: list[bool] = []

    class FirstResult(tune.Callback):
        def on_trial_result(self, *args: Any, **kwargs: Any) -> None:
            _first(seen)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    temp = Path(tempfile.mkdtemp(prefix="dl-tune-"))  # short: Ray's socket paths live under it
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp))
    tune.run(
        trainable,
        config={
            "arm": tune.grid_search(spec["arms"]),
            "lr": tune.grid_search(spec["lr"]),
            "beta_init": tune.grid_search(spec["beta_init"]),
            "seed": tune.grid_search(list(range(seeds or spec["seeds"]))),
        },
        resources_per_trial={"cpu": 1},
        reuse_actors=True,  # tune.run's default (False) starts an actor, so a process, per trial
        storage_path=str(work / "tune"),
        callbacks=[FirstResult()],
        verbose=0,
    )
    ray.shutdown()


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


@dataclass
class Path_:
    """One way to run the study: its command, environment changes, and what it measured."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)


SERVICE_FIRST = re.compile(r"first result ([0-9.]+) s after submission")


def _timed(path: Path_, cwd: Path) -> None:
    """Run the path's process once; record its wall time and, where it says, its first result."""
    command = path.command
    started_unix, started = time.time(), time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ, **path.env})
    wall = time.perf_counter() - started
    print(f"{path.name}: {wall:.2f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    if done.returncode != 0:
        raise SystemExit(f"{path.name}: {' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    path.walls.append(wall)
    output = done.stdout + done.stderr
    logs = cwd / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{re.sub(r'[^a-z0-9]+', '-', path.name.lower())}-{len(path.walls)}.log").write_text(output)
    service = SERVICE_FIRST.search(output)
    if service:
        path.firsts.append(float(service.group(1)))
    for line in output.splitlines():
        if line.startswith(FIRST):
            path.firsts.append(float(line.removeprefix(FIRST)) - started_unix)
            break


@contextmanager
def warm_ray(folder: Path) -> Iterator[str]:
    """A local Ray on 2 CPUs held by a child process for the whole run; yields its address. Closing
    the child's stdin shuts it down (this bench's own Ray only: never ``ray stop``)."""
    temp = Path(tempfile.mkdtemp(prefix="dl-warm-"))  # short: Ray's socket paths live under it
    holder = (
        "import os, sys, ray; os.environ.setdefault('RAY_AUTH_MODE', 'disabled'); "
        f"ray.init(num_cpus=2, include_dashboard=False, _temp_dir={str(temp)!r}); "
        "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read(); ray.shutdown()"
    )
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    process = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=folder
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()
        if not address:
            raise SystemExit("the warm Ray did not start")
        yield address
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=60)


PATH_NAMES = {
    "floor": "floor (bare torch loop)",
    "optuna": "Optuna GridSampler loop",
    "tune": "Ray Tune tune.run grid",
    "per-trial": "demonlab run, per trial",
    "per-trial-ray": "demonlab run, per trial, Ray",
    "per-trial-warm-ray": "demonlab run, per trial, warm Ray",
    "packed": "demonlab run, packed",
    "packed-ray": "demonlab run, packed, Ray",
    "packed-warm-ray": "demonlab run, packed, warm Ray",
    "service": "service (make run), packed",
}


def _paths(names: list[str], args: argparse.Namespace, work: Path, ray_address: str | None) -> list[Path_]:
    demonlab = str(Path(sys.executable).parent / "demonlab")
    spec = _seeded_spec(args.spec, args.seeds, False, work)
    per_trial = _seeded_spec(args.spec, args.seeds, True, work)
    seeds = ["--seeds", str(args.seeds)] if args.seeds else []
    me = [sys.executable, __file__, "--spec", str(args.spec), *seeds]
    warm = {"RAY_ADDRESS": ray_address or "", "RAY_AUTH_MODE": "disabled"}

    def run(spec_file: Path, out: str, *extra: str) -> list[str]:
        return [
            demonlab,
            "run",
            str(spec_file),
            "--out",
            str(work / out),
            "--data-dir",
            str(work / f"data-{out}"),
            *extra,
        ]

    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "floor": ([*me, "--floor"], {}),
        "optuna": ([*me, "--optuna"], {}),
        "tune": ([*me, "--tune", "--work", str(work)], {}),
        "per-trial": (run(per_trial, "out-pt", "--executor", "inprocess"), {}),
        "per-trial-ray": (run(per_trial, "out-pt-ray", "--executor", "ray"), {}),
        "per-trial-warm-ray": (run(per_trial, "out-pt-warm", "--executor", "ray"), warm),
        "packed": (run(spec, "out"), {}),
        "packed-ray": (run(spec, "out-ray", "--executor", "ray"), {}),
        "packed-warm-ray": (run(spec, "out-warm", "--executor", "ray"), warm),
        "service": (  # --port 0: the service binds a free port itself
            [demonlab, "demo", "--spec", str(spec), "--port", "0", "--exit-when-done"],
            {"DEMONLAB_DATA_DIR": str(work / "service")},
        ),
    }
    return [Path_(PATH_NAMES[name], *commands[name]) for name in names]


def _ratio(a: Path_ | None, b: Path_ | None) -> float | None:
    """min(a) / min(b), both measured in this run."""
    return min(a.walls) / min(b.walls) if a and b and a.walls and b.walls else None


def report(paths: list[Path_], args: argparse.Namespace, load: tuple[float, float]) -> None:
    """The table and the goals (each with the figures it rests on)."""
    print(
        f"{args.spec.name} ({args.seeds or 'its'} seeds): {args.rounds} interleaved rounds, whole processes; "
        f"load {load[0]:.1f} → {load[1]:.1f}"
    )
    by_name = {p.name: p for p in paths}
    floor_path = by_name.get(PATH_NAMES["floor"])
    print(f"| {'path':34} | {'wall min / median s':>19} | {'first result min / median s':>27} | floor / path (min) |")
    print(f"|{'-' * 36}|{'-' * 21}|{'-' * 29}|{'-' * 20}|")
    for path in paths:
        wall = f"{min(path.walls):.2f} / {statistics.median(path.walls):.2f}"
        first = f"{min(path.firsts):.2f} / {statistics.median(path.firsts):.2f}" if path.firsts else "–"
        ratio = _ratio(floor_path, path)
        print(f"| {path.name:34} | {wall:>19} | {first:>27} | {f'{ratio:.2f}' if ratio else '–':>18} |")

    def goal(text: str, ok: bool | None, figures: str) -> None:
        if ok is not None:
            print(f"goal: {text}: {'met' if ok else 'NOT met'} ({figures})")

    packed = by_name.get(PATH_NAMES["packed"])
    if packed:
        best = min(packed.walls)
        fl = _ratio(floor_path, packed)
        goal(
            f"demonlab run <= {GOAL_SECONDS:g} s and >= {GOAL_RATIO:g}x the floor",
            best <= GOAL_SECONDS and (fl is None or fl >= GOAL_RATIO),
            f"{best:.2f} s" + (f", {fl:.2f}x" if fl else ""),
        )
    for where in ("Ray", "warm Ray"):
        packed_ray = by_name.get(PATH_NAMES["packed-ray" if where == "Ray" else "packed-warm-ray"])
        per_trial_ray = by_name.get(PATH_NAMES["per-trial-ray" if where == "Ray" else "per-trial-warm-ray"])
        speedup = _ratio(per_trial_ray, packed_ray)
        goal(
            f"packed on {where} >= {GOAL_PACKED_RAY_OVER_PER_TRIAL:g}x per trial on {where}",
            None if speedup is None else speedup >= GOAL_PACKED_RAY_OVER_PER_TRIAL,
            f"{speedup or 0:.2f}x",
        )
        slower = _ratio(packed_ray, packed)
        goal(
            f"packed on {where} within {GOAL_PACKED_RAY_OVER_PACKED:g}x of packed in process",
            None if slower is None else slower <= GOAL_PACKED_RAY_OVER_PACKED,
            f"{slower or 0:.2f}x",
        )
    tune = by_name.get(PATH_NAMES["tune"])
    for name in ("per-trial-ray", "per-trial-warm-ray"):
        vs_tune = _ratio(by_name.get(PATH_NAMES[name]), tune)
        goal(
            f"{PATH_NAMES[name]} at least as fast as tune.run",
            None if vs_tune is None else vs_tune <= 1.0,
            f"{vs_tune or 0:.2f}x tune.run's wall",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="a digits_mlp grid spec (default: the example)")
    parser.add_argument("--seeds", type=int, default=None, help="override the spec's seed count")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--paths", default="floor,packed", help=f"comma-separated, of: {', '.join(PATH_NAMES)}")
    parser.add_argument("--all", action="store_true", help="every path")
    parser.add_argument("--per-trial", action="store_true", help="add demonlab run per trial, in process")
    parser.add_argument("--no-floor", action="store_true", help="leave the floor out (it takes ~25 s a round)")
    for hidden in ("--floor", "--optuna", "--tune"):
        parser.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.spec = args.spec.resolve()  # the paths run in a work dir of their own
    if args.floor:
        floor(args.spec, args.seeds)
        return 0
    if args.optuna:
        optuna_loop(args.spec, args.seeds)
        return 0
    if args.tune:
        tune_grid(args.spec, args.seeds, args.work or Path(tempfile.mkdtemp(prefix="dl-tune-")))
        return 0
    names = list(PATH_NAMES) if args.all else [n.strip() for n in args.paths.split(",") if n.strip()]
    if args.per_trial and "per-trial" not in names:
        names.append("per-trial")
    if args.no_floor:
        names = [n for n in names if n != "floor"]
    unknown = [n for n in names if n not in PATH_NAMES]
    if unknown:
        parser.error(f"--paths: unknown {', '.join(unknown)} (known: {', '.join(PATH_NAMES)})")
    work = Path(tempfile.mkdtemp(prefix="dl-e2e-"))
    needs_warm = any("warm" in name for name in names)
    load_before = os.getloadavg()
    with warm_ray(work) if needs_warm else _no_ray() as address:
        paths = _paths(names, args, work, address)
        for round_ in range(args.rounds):
            for path in paths if round_ % 2 == 0 else list(reversed(paths)):
                _timed(path, work)
    load_after = os.getloadavg()
    report(paths, args, (load_before[0], load_after[0]))
    print(f"each run's output: {work / 'logs'}/")
    return 0


@contextmanager
def _no_ray() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    sys.exit(main())
