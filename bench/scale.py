"""Scale: how studies grow. Two benchmarks.

``--curve`` (issue 16 item 6): the digits study (``studies/examples/digits.yaml``) with 2, 4, 8, 16
and 32 seeds (150 to 2,400 trials), each a whole ``demonlab run`` process (packed by default, one
forked pack per core, ``pack_size: auto`` capped at the workload's ``pack_knee``), printing wall
seconds, seconds per trial (flat = linear) and the peak memory of the process tree (PSS: shared
pages counted once; RSS of the parent alone too). Goal: linear, and ≤ 700 MB at 2,400 trials. Then
the knee: one pack of K members in this process, one torch thread, µs per member per step for K
from 25 to 1,200 (``pack_knee`` is where this starts to rise).

    .venv/bin/python bench/scale.py --curve
    .venv/bin/python bench/scale.py --curve --seeds 2 8 32 --no-knee

Without ``--curve``: a 5,000-trial study on the ``synthetic`` workload through the Ray executor, per
trial, with PostgreSQL.

The study is stored and claimed as the service would, then this process runs its driver
(``service.jobs.driver.execute``), so every trial goes through Ray Tune and is recorded in its own
transaction. Printed: trials recorded per second (sustained: first to last result; and overall,
Ray's start included), the driver's peak RSS and its RSS at 10/50/90% of the trials (flat memory
means no growth with trials done), and the rows written. Target on 2 cores: ≥ 50 trials/s.

Ray's per-trial cost (tens of ms) would cap a one-trial-per-task run well below that, so trials run
in packs (``trials_per_task``, default 100): several trials one after another in one Ray task, each
still recorded the moment the pack reports.

    .venv/bin/python bench/scale.py                 # 5,000 trials, packs of 100
    .venv/bin/python bench/scale.py --trials-per-task 1 --trials 500
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

import psutil
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("DEMONLAB_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def spec_for(trials: int, pack: int) -> dict[str, object]:
    """A synthetic grid of exactly ``trials`` trials: 2 arms × n lrs × 5 βs × 10 seeds."""
    lrs = max(1, trials // 100)
    return {
        "name": f"scale-{trials}",
        "workload": "synthetic",
        "workload_params": {"n_train": 128},
        "arms": ["demon_sgdm", "sgdm_step"],
        "lr": {"min": 0.001, "max": 1.0, "num": lrs} if lrs > 1 else [0.05],
        "beta_init": [0.5, 0.7, 0.8, 0.9, 0.95],
        "seeds": 10,
        "epochs": 1,
        "batch_size": 64,
        "trials_per_task": pack,
        "resources": {"cpu": 1, "gpu": 0},
        "execution": {"mode": "per_trial"},  # this benchmark is of Ray's per-trial path
    }


class MemorySampler(threading.Thread):
    """Sample this process's RSS every 0.2 s, with the number of trials recorded at that moment."""

    def __init__(self, progress: list[int]) -> None:
        super().__init__(daemon=True)
        self.progress = progress
        self.samples: list[tuple[int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        process = psutil.Process()
        while not self.stop.wait(0.2):
            self.samples.append((self.progress[0], process.memory_info().rss))


def _tree_memory(root: psutil.Process) -> tuple[int, int]:
    """(PSS of ``root`` and its descendants, RSS of ``root``) in bytes; 0 for what has exited."""
    pss = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            pss += process.memory_full_info().pss
        except psutil.Error:
            continue
    try:
        rss = root.memory_info().rss
    except psutil.Error:
        rss = 0
    return pss, rss


def _run_measured(command: list[str]) -> tuple[float, int, int]:
    """Run ``command``; (wall seconds, peak tree PSS, peak parent RSS), sampled every 0.1 s."""
    import subprocess

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(process.pid)
    peak_pss = peak_rss = 0
    while process.poll() is None:
        pss, rss = _tree_memory(watched)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(process.stderr.read() if process.stderr else '')[-3000:]}")
    return wall, peak_pss, peak_rss


def curve(seed_counts: list[int]) -> None:
    """The digits study at each seed count, whole ``demonlab run`` processes."""
    import sys

    import yaml

    root = Path(__file__).resolve().parents[1]
    spec = yaml.safe_load((root / "studies" / "examples" / "digits.yaml").read_text())
    work = Path(tempfile.mkdtemp(prefix="dl-scale-"))
    demonlab = str(Path(sys.executable).parent / "demonlab")
    print(f"load {os.getloadavg()[0]:.1f} at the start")
    print(f"{'trials':>7} {'wall s':>8} {'s/trial':>8} {'peak PSS MiB':>13} {'parent RSS MiB':>15}")
    for seeds in seed_counts:
        path = work / f"digits-{seeds}.yaml"
        path.write_text(yaml.safe_dump({**spec, "seeds": seeds}))
        trials = len(spec["arms"]) * len(spec["lr"]) * len(spec["beta_init"]) * seeds
        wall, pss, rss = _run_measured([demonlab, "run", str(path), "--out", str(work / f"out-{seeds}")])
        print(f"{trials:7d} {wall:8.2f} {wall / trials:8.4f} {pss / 2**20:13.0f} {rss / 2**20:15.0f}")
    print(f"load {os.getloadavg()[0]:.1f} at the end; goal: s/trial flat, <= 700 MB at 2,400 trials")


def knee(sizes: list[int]) -> None:
    """µs per member per step of one digits pack of K members, one torch thread, in this process."""
    import torch

    from studies.packed import run_pack
    from studies.results import TrialKey
    from studies.training import TrialPlan

    torch.set_num_threads(1)
    plan = TrialPlan(workload="digits_mlp", epochs=1, batch_size=32)
    steps = plan.steps_per_epoch(1078)
    arms = ("demon_sgdm", "sgdm_step", "sgdm_cosine")
    run_pack(plan, [TrialKey("demon_sgdm", 0.1, 0.9, 0)])  # warm-up
    print(f"{'members':>8} {'µs per member-step':>19}")
    for size in sizes:
        keys = [TrialKey(arms[i % 3], 0.01 * (1 + i % 5), 0.9, i) for i in range(size)]
        started = time.perf_counter()
        run_pack(plan, keys)
        print(f"{size:8d} {1e6 * (time.perf_counter() - started) / (size * steps):19.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curve", action="store_true", help="the digits curve and the knee (see above)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 4, 8, 16, 32], help="--curve: seed counts")
    parser.add_argument("--no-knee", action="store_true", help="--curve: skip the knee")
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--trials-per-task", type=int, default=100)
    args = parser.parse_args()
    if args.curve:
        curve(args.seeds)
        if not args.no_knee:
            knee([25, 75, 150, 300, 600, 1200])
        return

    from service.db import dal
    from service.db.engine import make_engine, session_scope
    from service.db.migrations import upgrade_to_head
    from service.db.models import Trial, TrialEpoch
    from service.jobs import driver
    from service.settings import Settings
    from service.submission import store_study
    from studies.results import TrialResult
    from studies.spec import StudySpec

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"demonlab_scale_{os.getpid()}_{secrets.token_hex(2)}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    data_dir = Path(tempfile.mkdtemp(prefix="/tmp/dlscale"))
    try:
        engine = make_engine(url)
        upgrade_to_head(engine)
        spec = StudySpec.model_validate(spec_for(args.trials, args.trials_per_task))
        with session_scope(engine) as session:
            study = store_study(session, spec, launcher="local")
            dal.claim_queued_studies(session, limit=1, launcher_id="bench")
        progress = [0]
        times: list[float] = []
        original = dal.record_trial_result

        def counting(session: object, study_id: str, result: TrialResult) -> int:
            trial_id = original(session, study_id, result)  # type: ignore[arg-type]
            progress[0] += 1
            times.append(time.perf_counter())
            return trial_id

        dal.record_trial_result = counting  # type: ignore[assignment]
        sampler = MemorySampler(progress)
        settings = Settings(
            _env_file=None, database_url=url, data_dir=data_dir, heartbeat_seconds=2, stale_after_seconds=30
        )
        sampler.start()
        started = time.perf_counter()
        code = driver.execute(study.id, settings)
        wall = time.perf_counter() - started
        sampler.stop.set()
        dal.record_trial_result = original
        with session_scope(engine, read_only=True) as session:
            final = dal.get_study(session, study.id)
            trial_rows = session.scalar(select(func.count()).select_from(Trial))
            epoch_rows = session.scalar(select(func.count()).select_from(TrialEpoch))
        engine.dispose()
        report(args, code, final, wall, times, sampler.samples, trial_rows, epoch_rows)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def report(args, code, study, wall, times, samples, trial_rows, epoch_rows) -> None:  # type: ignore[no-untyped-def]
    n = len(times)
    sustained = (n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else float("nan")
    print(f"study: {study.status.value}, {study.trials_done}/{study.trials_total} done, driver exit {code}")
    print(f"trials per Ray task: {args.trials_per_task}")
    print(f"trials recorded: {n} in {wall:.1f} s (Ray start included): {n / wall:.1f} trials/s overall")
    print(
        f"sustained (first to last result): {sustained:.1f} trials/s   "
        f"target >= 50: {'met' if sustained >= 50 else 'MISSED'}"
    )
    if samples:
        peak = max(rss for _, rss in samples)
        print(f"driver peak RSS: {peak / 2**20:.0f} MiB")
        for share in (0.1, 0.5, 0.9):
            point = next((rss for done, rss in samples if done >= share * n), None)
            if point is not None:
                print(f"  RSS at {share:.0%} of trials: {point / 2**20:.0f} MiB")
    print(f"rows written: {trial_rows} trials, {epoch_rows} epoch rows")


if __name__ == "__main__":
    main()
