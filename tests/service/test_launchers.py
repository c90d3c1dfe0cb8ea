"""The ``Launcher`` contract, run over every implementation: a fresh local driver, a driver forked from
the warm process, and a Ray Job on a real single-node cluster.

Each launches a real driver (``python -m service.jobs.driver``) for a real study on a SQLite file;
the study's trials wait on a hold file, so "running" is a state the test holds, not a guess at
timing. The contract: a launch returns a job id the launcher owns (and no other kind does); the
driver really drives the study (it heartbeats); ``is_alive`` is true while it runs and turns false
once it is stopped, or once it has finished by itself; a job ``reap`` reports is gone; stopping a
job that is gone is not an error; ``warm`` launches nothing; ``close`` (the scheduler stopping) lets
running drivers run on and ends the warm process.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster_helpers import ray_cluster, reap_data_dir, wait_until
from sqlalchemy.engine import Engine

from service.db import dal, make_engine, session_scope, upgrade_to_head
from service.jobs.launchers import Launcher, LocalJob, LocalLauncher, RayJobLauncher, launcher_for_job, process_start
from service.settings import Settings
from service.submission import store_study
from studies.spec import StudySpec
from studies.vocab import StudyStatus

pytestmark = pytest.mark.slow
KINDS = ("local", "local-warm", "ray")


@dataclass
class Rig:
    """One launcher under test, the settings its drivers read, and a way to make held studies."""

    launcher: Launcher
    settings: Settings
    engine: Engine
    hold: Path

    def held_study(self, name: str) -> tuple[str, int]:
        """A study claimed as the scheduler would (running, its launch counted); its trials wait on
        ``hold``. Returns (study id, attempt)."""
        self.hold.touch()
        spec = StudySpec.model_validate(
            {
                "name": name,
                "workload": "synthetic",
                "workload_params": {"hold": str(self.hold)},
                "arms": ["demon_sgdm"],
                "lr": [0.05],
                "beta_init": [0.9],
                "epochs": 1,
                "execution": {"mode": "packed", "pack_size": 1},
            }
        )
        with session_scope(self.engine) as session:
            study = store_study(session, spec, launcher=self.settings.launcher)
            (claimed,) = dal.claim_queued_studies(session, limit=1, launcher_id="contract")
            assert claimed.id == study.id
            return claimed.id, claimed.attempts

    def heartbeat_seen(self, study_id: str) -> bool:
        with session_scope(self.engine, read_only=True) as session:
            return dal.get_study(session, study_id).heartbeat_at is not None

    def eventually(self, check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        """Wait for ``check``; on a timeout, say what the drivers (and the fork server) logged."""
        try:
            wait_until(lambda: check() or None, timeout=timeout, interval=0.2, what=what)
        except TimeoutError as exc:
            logs = sorted((self.settings.data_dir / "logs").glob("*.log"))
            told = [f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs] + self._ray_jobs()
            raise TimeoutError(f"{exc}\n" + "\n".join(told)) from None

    def _ray_jobs(self) -> list[str]:
        """A Ray launcher's jobs, each with its status and the end of its log (a Ray Job's driver
        logs to the cluster, not to the data dir)."""
        if not isinstance(self.launcher, RayJobLauncher):
            return []
        from ray.job_submission import JobSubmissionClient

        try:
            client = JobSubmissionClient(self.settings.ray_address)
            return [
                f"--- ray job {job.submission_id}: {job.status}\n{client.get_job_logs(job.submission_id)[-3000:]}"
                for job in client.list_jobs()
            ]
        except Exception as exc:  # the cluster itself may be what failed
            return [f"--- ray jobs: not readable ({exc!r})"]

    def status(self, study_id: str) -> StudyStatus:
        with session_scope(self.engine, read_only=True) as session:
            return dal.get_study(session, study_id).status


def _settings(data_dir: Path, kind: str, ray_address: str | None) -> Settings:
    return Settings(
        data_dir=data_dir,
        launcher="ray" if kind == "ray" else "local",
        warm_drivers=kind == "local-warm",
        ray_address=ray_address,
        heartbeat_seconds=0.5,
        stale_after_seconds=5.0,
    )


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A single-node cluster (2 CPUs, the dashboard: the Jobs API) for the module's ``ray`` cases; its
    dashboard URL. Shared: each case's drivers use the case's own data dir and database, and a Ray
    launcher's ``reap`` reports nothing, so nothing one case leaves is seen by the next; a cluster a
    case cost ~8 s of CPU to start and stop."""
    with ray_cluster("lc") as cluster:
        cluster.start_head(num_cpus=2, dashboard=True)
        yield cluster.dashboard_url


@pytest.fixture(params=KINDS)
def rig(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Rig]:
    kind: str = request.param
    with contextlib.ExitStack() as stack:
        address = request.getfixturevalue("ray_head") if kind == "ray" else None
        settings = _settings(data_dir, kind, address)
        engine = make_engine(settings.database_url)
        upgrade_to_head(engine)
        stack.callback(engine.dispose)
        stack.callback(reap_data_dir, data_dir)
        launcher: Launcher = RayJobLauncher(settings) if kind == "ray" else LocalLauncher(settings)
        stack.callback(launcher.close)
        yield Rig(launcher, settings, engine, data_dir / "hold")


def test_warm_launches_nothing_and_job_ids_name_their_launcher(rig: Rig) -> None:
    rig.launcher.warm()
    assert rig.launcher.reap() == []
    study_id, attempt = rig.held_study("owns")
    job = rig.launcher.launch(study_id, attempt)
    assert rig.launcher.owns(job)
    assert type(launcher_for_job(rig.settings, job)) is type(rig.launcher)
    other = "ray:demonlab-x-1-0" if isinstance(rig.launcher, LocalLauncher) else "local:elsewhere:1"
    assert not rig.launcher.owns(other)
    if isinstance(rig.launcher, LocalLauncher):  # the id names the process, not only its number
        assert LocalJob.parse(job).start == process_start(LocalJob.parse(job).pid) is not None
    rig.launcher.stop(job)


def test_a_launched_driver_runs_until_stopped(rig: Rig) -> None:
    study_id, attempt = rig.held_study("stopped")
    job = rig.launcher.launch(study_id, attempt)
    rig.eventually(lambda: rig.heartbeat_seen(study_id), "the driver's first heartbeat")
    assert rig.launcher.is_alive(job)
    assert rig.status(study_id) is StudyStatus.RUNNING
    warm = getattr(getattr(rig.launcher, "_forkserver", None), "_process", None)

    rig.launcher.close()  # what the scheduler does when it stops: running drivers carry on
    assert rig.launcher.is_alive(job)
    if warm is not None:  # the warm process itself exits
        assert warm.wait(timeout=30) is not None

    rig.launcher.stop(job)
    rig.eventually(lambda: not rig.launcher.is_alive(job), "the stopped driver to be gone")
    rig.launcher.stop(job)  # stopping a job that is gone is not an error
    assert rig.status(study_id) is StudyStatus.RUNNING  # a stopped driver finishes nothing


def test_a_driver_that_finishes_is_no_longer_alive(rig: Rig) -> None:
    study_id, attempt = rig.held_study("finishes")
    job = rig.launcher.launch(study_id, attempt)
    rig.eventually(lambda: rig.heartbeat_seen(study_id), "the driver's first heartbeat")
    os.unlink(rig.hold)

    rig.eventually(lambda: rig.status(study_id) is StudyStatus.COMPLETED, "the study to complete")
    if isinstance(rig.launcher, LocalLauncher):  # fresh (its child) or forked (looked up): it is collected
        reaped: list[str] = []
        rig.eventually(lambda: job in reaped or bool(reaped.extend(rig.launcher.reap())), "the driver's exit")
    rig.eventually(lambda: not rig.launcher.is_alive(job), "the finished driver to be gone")
    assert rig.launcher.reap() == []


@pytest.mark.parametrize("rig", ["local", "local-warm"], indirect=True)  # a Ray job's driver is the cluster's
def test_a_killed_local_driver_is_reaped_at_once(rig: Rig) -> None:
    """SIGKILL of a local driver: ``reap`` reports it, so the scheduler relaunches its study on its next
    tick instead of waiting for the heartbeat to go stale. A warm (forked) driver is the fork server's
    child, not the launcher's: it was only found by its stale heartbeat (27.8 s in bench/relaunch.py)."""
    assert isinstance(rig.launcher, LocalLauncher)
    study_id, attempt = rig.held_study("killed")
    job = rig.launcher.launch(study_id, attempt)
    rig.eventually(lambda: rig.heartbeat_seen(study_id), "the driver's first heartbeat")
    assert job not in rig.launcher.reap()
    os.kill(LocalJob.parse(job).pid, signal.SIGKILL)
    reaped: list[str] = []
    rig.eventually(lambda: job in reaped or bool(reaped.extend(rig.launcher.reap())), "the killed driver", 10)
    assert reaped.count(job) == 1
    assert rig.launcher.reap() == []  # reported once
