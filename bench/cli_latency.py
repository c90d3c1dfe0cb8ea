"""CLI latency: the wall time of every ``demonlab`` API command against a running server.

What it does: ``demonlab serve --port 0`` (its own process, a fresh SQLite data dir; the port is the
one the server bound and printed), one small packed synthetic study submitted and run to the end,
then ``--rounds`` interleaved rounds (default 5) of: ``python -c pass`` (the interpreter's own
start, the floor), ``import service.client``, and each command below as its own process, exactly as
a user types it. Each command's time is the whole process: interpreter start, imports, the HTTP
call and the server's answer (the first round's ``sensitivity``/``compare``/``heatmap`` include the
server computing the study's report once; later rounds hit its cache). It prints min and median
per command, the median CPU seconds of the command's own process (what the client side costs,
whatever the load), and whether the min meets the 0.5 s goal, with the machine's load average: on a
shared machine the wall times move with the load (run it on a quiet one for the figures the README
quotes).

    python bench/cli_latency.py [--rounds N] [--check]

``--check`` exits 1 when a command's min misses the goal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from service.client import DemonlabClient

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 0.5
SPEC = {
    "name": "cli-latency",
    "workload": "synthetic",
    "arms": ["demon_sgdm", "sgdm_step"],
    "lr": [0.01, 0.1],
    "beta_init": [0.8, 0.9],
    "seeds": 2,
    "epochs": 2,
    "execution": {"mode": "packed"},
}


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """``demonlab serve --port 0``; returns the process and the URL from its first line."""
    env = os.environ | {"DEMONLAB_DATA_DIR": str(data_dir)}
    env.pop("DEMONLAB_DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", "0", "--log-level", "warning"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    match = re.search(r"dashboard at (http://\S+?)/ ", line)
    if not match:
        server.kill()
        raise RuntimeError(f"the server did not say where it listens: {line!r}")
    return server, match.group(1)


def ready_study(url: str) -> str:
    """Submit ``SPEC`` and wait for it to finish; its id."""
    with DemonlabClient(url, timeout=30) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.list_studies()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        study_id = client.submit(SPEC).id
        study = client.wait(study_id, timeout=300)
        if study.status != "completed":
            raise RuntimeError(f"the study ended {study.status}: {study.error}")
        return study_id


def commands(url: str, study_id: str, out: Path) -> dict[str, list[str]]:
    """Label → argv of every command timed (``demonlab`` as ``python -m service.cli``)."""
    cli = [sys.executable, "-m", "service.cli"]
    on = ["--url", url]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import service.client": [sys.executable, "-c", "import service.client"],
        "list": [*cli, "list", *on],
        "status": [*cli, "status", study_id, *on],
        "trials": [*cli, "trials", study_id, *on],
        "grid": [*cli, "grid", study_id, "--arm", "demon_sgdm", *on],
        "sensitivity": [*cli, "sensitivity", study_id, *on],
        "compare": [*cli, "compare", study_id, *on],
        "robustness": [*cli, "robustness", "synthetic", *on],
        "heatmap": [*cli, "heatmap", study_id, "--out", str(out / "h.png"), *on],
        "export": [*cli, "export", study_id, "--out", str(out / "t.csv"), *on],
    }


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command's own process) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a command's min misses the goal")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="dl-cli-"))
    server, url = start_server(data_dir)
    try:
        study_id = ready_study(url)
        runs = commands(url, study_id, data_dir)
        times: dict[str, list[float]] = {label: [] for label in runs}
        cpu: dict[str, list[float]] = {label: [] for label in runs}
        load_before = os.getloadavg()
        for _ in range(args.rounds):
            for label, command in runs.items():
                wall, used = timed(command)
                times[label].append(wall)
                cpu[label].append(used)
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"demonlab CLI commands against `demonlab serve` (SQLite), {args.rounds} interleaved rounds")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}; {os.cpu_count()} CPUs")
    print(f"{'command':24} {'min s':>7} {'median s':>9} {'CPU s':>6}  goal <= {GOAL_S} s (min wall)")
    missed = []
    for label, values in times.items():
        goal = "" if label.startswith(("python", "import")) else ("met" if min(values) <= GOAL_S else "NOT met")
        if goal == "NOT met":
            missed.append(label)
        used = statistics.median(cpu[label])
        print(f"{label:24} {min(values):7.3f} {statistics.median(values):9.3f} {used:6.3f}  {goal}")
    summary = {
        label: {"min": min(v), "median": statistics.median(v), "cpu": statistics.median(cpu[label])}
        for label, v in times.items()
    }
    print(json.dumps(summary))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
