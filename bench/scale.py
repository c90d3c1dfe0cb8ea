"""Scale: a 5,000-trial study on the ``synthetic`` workload through the Ray executor, with PostgreSQL.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--trials-per-task", type=int, default=100)
    args = parser.parse_args()

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
