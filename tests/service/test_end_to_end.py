"""End to end, on SQLite and PostgreSQL: the app with its scheduler over real HTTP launches real drivers
(``python -m service.jobs.driver ID``, each starting its own local Ray), which run the trials and
record them. A study runs to completion; a cancel stops its driver within seconds; a driver killed
with SIGKILL mid-study is noticed through its stale heartbeat and relaunched, and the study completes
without running a finished trial twice.

Every driver is a session leader (``start_new_session``), and the Ray processes it starts stay in its
session: teardown kills every process of every driver session this test created, on failure too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import psutil
import pytest
from cluster_helpers import created_at, session_still_ours
from sqlalchemy import Engine, func, select

from service.cli import main
from service.client import DemonlabClient
from service.db import Trial, TrialEpoch, session_scope
from service.db.models import utcnow
from service.jobs.launchers import LocalJob, LocalLauncher
from service.jobs.optuna_record import optuna_study_name, optuna_url
from service.jobs.scheduler import Scheduler
from service.schemas import StudyPublic
from service.settings import Settings
from studies.optuna_storage import open_rdb_storage
from studies.results import TrialStatus

pytestmark = pytest.mark.slow

LiveServer = Callable[..., AbstractContextManager[str]]
SMOKE_SPEC_PATH = Path(__file__).resolve().parents[2] / "studies" / "examples" / "synthetic_smoke.yaml"
HEARTBEAT_SECONDS = 0.5
STALE_AFTER_SECONDS = 3.0
RUN_TIMEOUT = 180.0
RESULTS = (TrialStatus.COMPLETED, TrialStatus.DIVERGED)


def slow_spec(name: str, lrs: list[float]) -> dict[str, Any]:
    """2 arms × len(lrs) lr × 2 β_init × 2 seeds of a synthetic MLP: about a second per trial, run
    per trial (``| PACKED``-style overrides pack it)."""
    return {
        "name": name,
        "workload": "synthetic",
        "workload_params": {"n_train": 2048, "hidden": 32},
        "arms": ["demon_sgdm", "sgdm_step"],
        "lr": lrs,
        "beta_init": [0.8, 0.9],
        "seeds": 2,
        "epochs": 60,
        "resources": {"cpu": 1, "gpu": 0},
        "execution": {"mode": "per_trial"},  # results one by one (packed ones arrive with their pack)
    }


# ------------------------------------------------------------------------------------------- processes


def job_pid(job_id: str | None) -> int:
    """The pid in a local job id (``LocalJob``)."""
    assert job_id is not None
    assert job_id.startswith("local:"), job_id
    return LocalJob.parse(job_id).pid


def session_members(leader: int) -> list[psutil.Process]:
    """Every live process of the session ``leader`` started (the driver and its Ray processes)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == leader and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def is_gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class Drivers:
    """The drivers this test's scheduler launched: noted by job id, or found among our children."""

    leaders: dict[int, float | None] = field(default_factory=dict)  # pid -> when it started

    def note(self, job_id: str | None) -> int:
        pid = job_pid(job_id)
        self.leaders.setdefault(pid, created_at(pid))
        return pid

    def scan(self) -> None:
        for child in psutil.Process().children():
            try:
                if "service.jobs.driver" in child.cmdline():
                    self.leaders.setdefault(child.pid, child.create_time())
            except psutil.Error:
                continue

    def reap(self) -> None:
        """SIGKILL every process of every driver session still ours (a driver killed early in the
        test may have had its pid reused since, by another test's driver), then collect our exited
        children."""
        self.scan()
        ours = [leader for leader, created in self.leaders.items() if session_still_ours(leader, created)]
        victims = [p for leader in ours for p in session_members(leader)]
        for process in victims:
            try:
                process.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(victims, timeout=15)
        for leader in self.leaders:
            with contextlib.suppress(ChildProcessError):  # not our child, or collected by the launcher
                os.waitpid(leader, os.WNOHANG)


@dataclass
class Service:
    url: str
    client: DemonlabClient
    engine: Engine
    data_dir: Path
    drivers: Drivers

    def wait_for(
        self, study_id: str, until: Callable[[StudyPublic], bool], timeout: float = RUN_TIMEOUT
    ) -> StudyPublic:
        """Poll the study over HTTP until ``until(study)``; fails with the last state on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            study = self.client.get_study(study_id)
            if study.job_id:
                self.drivers.note(study.job_id)
            if until(study):
                return study
            assert time.monotonic() < deadline, f"timed out after {timeout}s; last state {study}; {self.logs()}"
            time.sleep(0.2)

    def logs(self) -> str:
        """The drivers' logs (tails), for failure messages."""
        parts = [f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}" for p in self.log_files()]
        return "\n".join(parts) or "no driver logs"

    def log_files(self) -> list[Path]:
        """The drivers' logs, one per launch (not the warm process's own)."""
        return sorted(p for p in (self.data_dir / "logs").glob("*.log") if p.name != "forkserver.log")

    def trials(self, study_id: str) -> list[Trial]:
        with session_scope(self.engine, read_only=True) as session:
            return list(session.scalars(select(Trial).where(Trial.study_id == study_id)).all())


@pytest.fixture
def service(live_server: LiveServer, engine: Engine, data_dir: Path) -> Iterator[Service]:
    """The app with its scheduler on the test's database, served over HTTP; drivers reaped at the end."""
    drivers = Drivers()
    try:
        with (
            live_server(
                run_scheduler=True,
                heartbeat_seconds=HEARTBEAT_SECONDS,
                stale_after_seconds=STALE_AFTER_SECONDS,
                max_concurrent_studies=2,
            ) as url,
            DemonlabClient(url, timeout=30) as client,
        ):
            yield Service(url, client, engine, data_dir, drivers)
    finally:  # the scheduler has stopped with the server: nothing relaunches what is killed here
        drivers.reap()


def count(engine: Engine, query: Any) -> int:
    with session_scope(engine, read_only=True) as session:
        return int(session.scalar(query) or 0)


def assert_each_key_once(engine: Engine, study_id: str) -> None:
    keys = (Trial.arm, Trial.lr, Trial.beta_init, Trial.seed)
    with session_scope(engine, read_only=True) as session:
        repeated = session.execute(
            select(*keys, func.count()).where(Trial.study_id == study_id).group_by(*keys).having(func.count() > 1)
        ).all()
    assert repeated == []


def finished(study: StudyPublic) -> bool:
    return study.status in ("completed", "failed", "cancelled")


def assert_no_scheduler_pass_relaunches(service: Service, study: StudyPublic) -> None:
    """No scheduler would relaunch this (cancelled) study, however long it waited: a pass dated past
    the stale window (a fake clock, not a sleep through it), told that the study's driver exited,
    requeues nothing and launches nothing."""
    database_url = service.engine.url.render_as_string(hide_password=False)
    settings = Settings(
        data_dir=service.data_dir,
        database_url=database_url,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        stale_after_seconds=STALE_AFTER_SECONDS,
    )
    launcher = LocalLauncher(settings)
    try:
        scheduler = Scheduler(settings, service.engine, launcher=launcher)
        later = utcnow() + dt.timedelta(seconds=STALE_AFTER_SECONDS + 1.5)
        assert scheduler.recover([study.job_id] if study.job_id else [], now=later) == []
        assert scheduler.launch_queued() == []
    finally:
        launcher.close()


# ---------------------------------------------------------------------------------------------- tests


def test_study_runs_to_completion(
    service: Service, smoke_spec: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    created = service.client.submit(smoke_spec, idempotency_key="e2e-smoke")

    study = service.wait_for(created.id, finished)

    assert study.status == "completed", service.logs()
    assert study.error is None
    assert study.attempts == 1
    assert (study.progress.done, study.progress.total, study.progress.failed) == (24, 24, 0)
    assert study.finished_at is not None
    trials = service.trials(created.id)
    assert len(trials) == 24
    assert_each_key_once(service.engine, created.id)
    assert {t.status for t in trials} <= set(RESULTS)
    assert {t.attempts for t in trials} == {1}, "each trial marked running once as its Ray trial started"
    for trial in trials:
        assert trial.node
        assert trial.device == "cpu"
        assert trial.wall_seconds > 0
        if trial.status is TrialStatus.COMPLETED:
            assert trial.epochs_done == 2
    curves = select(func.count()).select_from(TrialEpoch).join(Trial).where(Trial.study_id == created.id)
    assert count(service.engine, curves) == sum(t.epochs_done for t in trials)

    for arm in ("demon_sgdm", "sgdm_step"):
        grid = service.client.grid(created.id, arm=arm)
        assert (grid.lrs, grid.betas) == ([0.01, 0.1, 1.0], [0.8, 0.9])
        assert grid.n == [[2, 2]] * 3
        assert grid.missing == [[0, 0]] * 3
        for values, diverged in zip(grid.values, grid.diverged, strict=True):
            for value, n_diverged in zip(values, diverged, strict=True):
                assert value is not None
                assert 0 <= value <= 1  # an error rate, diverged seeds at the chance rate
                assert n_diverged <= 2
    report = service.client.sensitivity(created.id)
    assert set(report.arms) == {"demon_sgdm", "sgdm_step"}
    assert all(arm.coverage.complete for arm in report.arms.values())
    assert [(p.arm_a, p.arm_b) for p in report.pairs] == [("demon_sgdm", "sgdm_step")]
    assert report.study.status == "completed"

    driver = job_pid(study.job_id)
    deadline = time.monotonic() + 60
    # The driver writes what is left of the Optuna mirror after the study's end, shuts its Ray down and
    # exits, and the scheduler collects it (no zombie left behind).
    while psutil.pid_exists(driver) or session_members(driver):
        assert time.monotonic() < deadline, [p.cmdline() for p in session_members(driver)]
        time.sleep(0.2)
    # Then every result is also in Optuna's storage, one Optuna study per arm (what optuna-dashboard shows).
    database_url = service.engine.url.render_as_string(hide_password=False)
    storage = open_rdb_storage(optuna_url(Settings(data_dir=service.data_dir, database_url=database_url)))
    for arm in ("demon_sgdm", "sgdm_step"):
        name = optuna_study_name(created.id, arm, search=False, name=study.name)
        stored = optuna.load_study(study_name=name, storage=storage).get_trials()
        assert sorted((t.params["lr"], t.params["beta_init"], t.user_attrs["seed"]) for t in stored) == sorted(
            (t.lr, t.beta_init, t.seed) for t in trials if t.arm == arm
        )
        assert {t.user_attrs["demonlab_study_id"] for t in stored} == {created.id}
        assert {t.user_attrs["diverged"] for t in stored} <= {True, False}

    assert [p.name for p in service.log_files()] == [f"{created.id}-1.log"]

    # The same spec under the same key is the same (finished) study: `submit --wait` ends at once.
    capsys.readouterr()
    code = main(["submit", str(SMOKE_SPEC_PATH), "--url", service.url, "--idempotency-key", "e2e-smoke", "--wait"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"study {created.id}: completed" in out


# The cancel and the kill each run on one database (the whole study on both, above): what they add
# is the launcher's and the scheduler's, which do not depend on it. The database side of each runs
# on both elsewhere: a cancel in test_storage.py and test_api.py, a killed driver relaunched and
# resumed in test_packed_api.py.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cancel_stops_the_driver_within_seconds(service: Service) -> None:
    created = service.client.submit(slow_spec("e2e-cancel", [0.01, 0.1]))
    study = service.wait_for(created.id, lambda s: s.progress.done >= 2 or finished(s))
    assert study.status == "running", service.logs()
    assert study.progress.done < study.progress.total, "the study ran out before it could be cancelled"
    driver = job_pid(study.job_id)

    started = time.monotonic()
    cancelled = service.client.cancel(created.id)  # stops the job: SIGTERM, SIGKILL after 5 s
    answered_after = time.monotonic() - started
    while not is_gone(driver) or session_members(driver):
        assert time.monotonic() - started < 15, [p.cmdline() for p in session_members(driver)]
        time.sleep(0.1)

    assert cancelled.status == "cancelled"
    assert answered_after < 10  # SIGTERM, then SIGKILL after a grace period of 5 s
    statuses = [t.status for t in service.trials(created.id)]
    assert len(statuses) == 16
    assert set(statuses) <= {*RESULTS, TrialStatus.CANCELLED}
    assert TrialStatus.CANCELLED in statuses
    assert_no_scheduler_pass_relaunches(service, cancelled)
    study = service.client.get_study(created.id)
    assert study.status == "cancelled"
    assert study.attempts == 1
    assert study.job_id == cancelled.job_id
    assert study.progress.done < 16
    assert [t.status for t in service.trials(created.id)].count(TrialStatus.PENDING) == 0
    assert len(service.log_files()) == 1


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_killed_driver_is_relaunched_and_nothing_runs_twice(service: Service) -> None:
    created = service.client.submit(slow_spec("e2e-kill", [0.01, 0.1]))
    study = service.wait_for(created.id, lambda s: s.progress.done >= 3 or finished(s))
    assert study.status == "running", service.logs()
    first = service.drivers.note(study.job_id)

    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not is_gone(first):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    done_before = {
        (t.arm, t.lr, t.beta_init, t.seed): (t.updated_at, t.wall_seconds, t.node)
        for t in service.trials(created.id)
        if t.status in RESULTS
    }
    assert 3 <= len(done_before) < 16, "the study ran out before the driver could be killed"

    study = service.wait_for(created.id, finished, timeout=RUN_TIMEOUT + STALE_AFTER_SECONDS)

    assert study.status == "completed", service.logs()
    assert study.attempts == 2
    assert job_pid(study.job_id) != first
    assert study.progress.done == 16
    trials = service.trials(created.id)
    assert len(trials) == 16
    assert_each_key_once(service.engine, created.id)
    assert {t.status for t in trials} <= set(RESULTS)
    after = {(t.arm, t.lr, t.beta_init, t.seed): (t.updated_at, t.wall_seconds, t.node) for t in trials}
    for key, recorded in done_before.items():  # recorded once, before the kill, and never again
        assert after[key] == recorded, key
    assert all(isinstance(updated, dt.datetime) for updated, _, _ in after.values())
    assert [p.name for p in service.log_files()] == [f"{created.id}-1.log", f"{created.id}-2.log"]
    assert session_members(first) == []  # what the killed driver left (Ray's agents) was stopped
