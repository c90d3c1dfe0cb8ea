"""Real failures during a study: a Ray worker killed mid-trial, the database stopped and restarted,
the API/scheduler process killed and restarted. Each time the study must complete with every trial
stored exactly once (one row per key, completed, one curve point per epoch).

Trials here are made to last a few seconds (synthetic workload, 16k samples, 20 epochs), so there
is a trial running when the failure strikes. Every process a test starts is killed at the end, on
failure too (found by the test's own data dir in their environment, or their temp dir).
(kill -9 of the study driver itself is covered in test_end_to_end.py.)
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cluster_helpers import (
    PrivatePostgres,
    ServeProcess,
    assert_each_trial_once,
    private_postgres,
    ray_cluster,
    reap_data_dir,
    serve_env,
    study_rows,
    synthetic_spec,
    trial_rows,
    wait_for_study,
    wait_until,
)
from test_optuna_record import mirrored, stored_results

from service.client import DemonlabClient
from service.jobs.launchers import LocalJob
from service.settings import Settings

ON_POSTGRES = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
EPOCHS = 20


@pytest.fixture
def reaper(data_dir: Path) -> Iterator[Path]:
    """The test's data dir; at the end every process run for it (servers, drivers, their Ray) is killed."""
    yield data_dir
    reap_data_dir(data_dir)


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test alone (the shared one on 5432 is never stopped)."""
    with private_postgres() as server:
        yield server


def _driver_pid(job_id: str | None) -> int:
    assert job_id is not None
    assert job_id.startswith("local:"), job_id
    return LocalJob.parse(job_id).pid


def _driver_log(data_dir: Path, study_id: str, tail: int | None = 6000) -> str:
    """The study's driver log(s), their last ``tail`` characters each (all of it for None)."""
    logs = sorted((data_dir / "logs").glob(f"{study_id}-*.log"))
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-(tail or 0) :]}" for p in logs)


def _running_trial_worker(driver_pid: int) -> psutil.Process | None:
    """A Ray worker of this driver's Ray that is inside a trial (Tune's function trainable actor
    runs ``ImplicitFunc.train`` for the whole trial; its process title says so)."""
    try:
        children = psutil.Process(driver_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            if child.name().startswith("ray::ImplicitFunc.train"):
                return child
        except psutil.Error:
            continue
    return None


def _kill_mid_trial(driver_pid: int) -> psutil.Process | None:
    """SIGKILL a worker that has been inside one trial for half a second (each takes seconds)."""
    worker = _running_trial_worker(driver_pid)
    if worker is None:
        return None
    time.sleep(0.5)
    try:
        if not worker.name().startswith("ray::ImplicitFunc.train"):
            return None  # between trials: try again
        worker.kill()
    except psutil.NoSuchProcess:
        return None
    return worker


def _held(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with a hold file: its trials start, then wait until ``_release`` removes the file."""
    hold = Path(tempfile.mkdtemp(prefix="dl-hold-")) / "hold"
    hold.touch()
    spec["workload_params"] = {**spec.get("workload_params", {}), "hold": str(hold)}
    return spec


def _release(spec: dict[str, Any]) -> None:
    hold = Path(spec["workload_params"]["hold"])
    hold.unlink()
    hold.parent.rmdir()


def _started_and_held(client: DemonlabClient, study_id: str) -> Any:
    """Wait until the driver runs a trial (Ray started, trials waiting on the hold file): mid-study."""

    def check(study: Any) -> bool:
        if study.status in ("completed", "completed_with_failures", "failed", "cancelled"):
            raise AssertionError(f"study {study_id} is {study.status} before the failure: {study.error}")
        return client.trials(study_id, status="running").count >= 1

    return wait_for_study(client, study_id, timeout=120, until=check)


def _trials_done(database_url: str, study_id: str) -> int:
    rows = trial_rows(database_url, study_id)
    return sum(1 for row in rows if row["status"] in ("completed", "diverged"))


@pytest.mark.slow
@ON_POSTGRES
def test_a_ray_worker_killed_mid_trial_is_retried_and_every_trial_is_stored_once(
    live_server: Any, db_url: str, reaper: Path
) -> None:
    data_dir = reaper
    spec = synthetic_spec("kill-a-worker", lrs=(0.01, 0.05, 0.1, 0.2), epochs=EPOCHS, n_train=16384)
    # a small study: on Ray only because it is asked for (small_study_epochs=0), since Ray is the subject
    with live_server(run_scheduler=True, small_study_epochs=0) as url, DemonlabClient(url) as client:
        study_id = client.submit(spec).id
        running = wait_for_study(client, study_id, timeout=60, until=lambda s: s.job_id is not None)
        driver = _driver_pid(running.job_id)
        killed = wait_until(lambda: _kill_mid_trial(driver), timeout=90, interval=0.1, what="a trial's worker")
        before = client.get_study(study_id).progress.done
        study = wait_for_study(client, study_id, timeout=150)
    assert before < 4
    assert study.status == "completed", f"{study.status}: {study.error}\n{_driver_log(data_dir, study_id)}"
    assert study.error is None
    assert study.progress.failed == 0
    assert study.attempts == 1  # the driver survived: Tune retried the trial, not the scheduler the study
    assert_each_trial_once(db_url, study_id, total=4, epochs=EPOCHS)
    # The killed trial really failed once and was run again: Tune kept the error of its first attempt.
    errors = [p.read_text(errors="replace") for p in (data_dir / "tune" / study_id).glob("*/error.txt")]
    assert len(errors) == 1, f"worker {killed.pid} killed; errors kept by Tune: {errors}"
    assert "ActorDiedError" in errors[0] or "died" in errors[0], errors[0]


def _outage_mid_study(
    pg: PrivatePostgres, data_dir: Path, spec: dict[str, Any], seconds: float, **settings: str
) -> tuple[Any, str]:
    """Submit ``spec`` (held) to a server on ``pg``; once a trial runs, stop PostgreSQL, release the
    trials (they train while it is down, and their results wait for it), start it again after
    ``seconds``; wait for the study to finish. The study and its driver's whole log."""
    env = serve_env(
        database_url=pg.url, data_dir=data_dir, HEARTBEAT_SECONDS="1", STALE_AFTER_SECONDS="120", **settings
    )
    server = ServeProcess(env, data_dir / "serve.log").start()
    spec = _held(spec)
    with DemonlabClient(server.url) as client:
        study_id = client.submit(spec).id
        seen = _started_and_held(client, study_id)
        assert seen.progress.done == 0  # held: the outage strikes mid-study whatever the machine's speed
        pg.stop("fast")
        outage = time.monotonic()
        _release(spec)
        time.sleep(seconds)  # the outage's length (not a guess at timing)
        pg.start()
        assert time.monotonic() - outage >= seconds
        study = wait_for_study(client, study_id, timeout=300)
    log = _driver_log(data_dir, study_id, tail=None)
    assert study.status == "completed", f"{study.status}: {study.error}\n{log[-6000:]}\n{server.log_tail()}"
    assert study.error is None
    assert study.attempts == 1, "the driver gave up and the study was relaunched"
    # The driver did see the outage (its heartbeat every second failed, or a result waited).
    assert "heartbeat failed" in log or "database unavailable; retrying" in log, log[-6000:]
    # The mirror caught up too: the driver writes it after the study's end, then exits.
    mirror_settings = Settings(data_dir=data_dir, database_url=pg.url)
    stored = stored_results(_engine(pg.url), study_id)
    wait_until(lambda: set(mirrored(mirror_settings, study_id)) == stored, timeout=60, what="the Optuna mirror")
    return study, log


def _engine(url: str) -> Any:
    from service.db import make_engine

    return make_engine(url)


@pytest.mark.slow
def test_postgresql_stopped_and_restarted_mid_study_the_driver_reconnects(pg: PrivatePostgres, reaper: Path) -> None:
    spec = synthetic_spec("db-outage", lrs=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5), epochs=EPOCHS, n_train=16384)
    study, _ = _outage_mid_study(pg, reaper, spec, 8)
    assert_each_trial_once(pg.url, study.id, total=6, epochs=EPOCHS)


@pytest.mark.slow
def test_postgresql_down_for_60s_mid_packed_study_the_driver_waits_and_finishes(
    pg: PrivatePostgres, reaper: Path
) -> None:
    """Packed (two packs of three, forked by the driver): results wait 60 s for the database."""
    spec = synthetic_spec("db-outage-packed", lrs=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5), epochs=EPOCHS, n_train=16384)
    spec["execution"] = {"mode": "packed", "pack_size": 3}
    study, _ = _outage_mid_study(pg, reaper, spec, 60)
    assert_each_trial_once(pg.url, study.id, total=6, epochs=EPOCHS)


@pytest.mark.slow
def test_an_outage_longer_than_the_drivers_retry_limit_pauses_the_study_until_the_database_is_back(
    pg: PrivatePostgres, reaper: Path
) -> None:
    """Past its retry limit (5 minutes; 3 s here) the driver used to crash and leave its study for a
    relaunch; now it pauses the study, says so, and resumes when the database is back. (Paused, it
    tries every 15 s by default; every 2 s here.)"""
    # Trials of a second: their results reach the driver early in the outage and wait out the rest.
    spec = synthetic_spec("db-outage-long", lrs=(0.01, 0.02, 0.05, 0.1), epochs=2)
    spec["execution"] = {"mode": "packed", "pack_size": 2}
    study, log = _outage_mid_study(pg, reaper, spec, 12, DRIVER_RETRY_SECONDS="3", DRIVER_PAUSED_RETRY_SECONDS="2")
    assert "the study is paused until it is back (retrying every 2s)" in log, log[-6000:]
    assert "the study resumes" in log, log[-6000:]
    assert_each_trial_once(pg.url, study.id, total=4, epochs=2)


@pytest.mark.slow
@ON_POSTGRES
def test_the_api_and_scheduler_process_killed_and_restarted_running_studies_carry_on(db_url: str, reaper: Path) -> None:
    data_dir = reaper
    env = serve_env(database_url=db_url, data_dir=data_dir, HEARTBEAT_SECONDS="1", STALE_AFTER_SECONDS="30")
    first = ServeProcess(env, data_dir / "serve-1.log").start()
    spec = _held(synthetic_spec("serve-restart", lrs=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5), epochs=EPOCHS, n_train=16384))
    with DemonlabClient(first.url) as client:
        study_id = client.submit(spec).id
        seen = _started_and_held(client, study_id)
    assert seen.progress.done == 0  # held: the restart strikes mid-study whatever the machine's speed
    driver = _driver_pid(seen.job_id)
    first.kill()  # SIGKILL: no shutdown of anything
    assert psutil.pid_exists(driver), "the driver died with the service"
    _release(spec)
    wait_until(  # the study runs on with no service at all: a result arrives
        lambda: _trials_done(db_url, study_id) >= 1, timeout=120, interval=0.2, what="a result without the service"
    )
    second = ServeProcess(env, data_dir / "serve-2.log").start()
    with DemonlabClient(second.url) as client:
        study = wait_for_study(client, study_id, timeout=150)
    log = _driver_log(data_dir, study_id)
    assert study.status == "completed", f"{study.status}: {study.error}\n{log}\n{second.log_tail()}"
    assert study.error is None
    assert study.attempts == 1, "the study was relaunched"
    assert study.job_id == seen.job_id
    assert [p.name for p in (data_dir / "logs").glob(f"{study_id}-*.log")] == [f"{study_id}-1.log"]
    assert study_rows(db_url, [study_id])[study_id]["attempts"] == 1
    assert_each_trial_once(db_url, study_id, total=6, epochs=EPOCHS)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the drivers run on this machine's cluster
def test_the_ray_head_killed_mid_study_the_ray_job_is_relaunched_on_the_new_head(
    live_server: Any, db_url: str, reaper: Path
) -> None:
    """The Ray-Job launcher under kill -9 of the Ray head (its daemons, workers and the study's
    driver with it): while no head answers the scheduler waits; a new head knows no job of the old
    one (the launcher took that 404 for "alive" and the study waited forever), so the study is
    relaunched there and finishes with every trial once."""
    spec = _held(synthetic_spec("ray-head-kill", lrs=(0.01, 0.1), epochs=2))
    with ray_cluster("rk") as cluster:
        cluster.start_head(num_cpus=2, dashboard=True)
        ray = {"launcher": "ray", "ray_address": cluster.dashboard_url}
        timing = {"heartbeat_seconds": 1, "stale_after_seconds": 5}
        with live_server(run_scheduler=True, **ray, **timing) as url, DemonlabClient(url) as client:
            study_id = client.submit(spec).id
            first = _started_and_held(client, study_id)
            assert first.job_id is not None
            assert first.job_id.startswith("ray:")
            cluster.stop()  # SIGKILL every process of the cluster: the head is gone, with the driver
            cluster.start_head(num_cpus=2, dashboard=True, again=True)
            restarted = time.monotonic()
            _release(spec)
            relaunched = wait_for_study(client, study_id, timeout=300, until=lambda s: s.attempts == 2 and s.job_id)
            relaunch_s = time.monotonic() - restarted
            study = wait_for_study(client, study_id, timeout=300)
    assert study.status == "completed", f"{study.status}: {study.error}"
    assert study.attempts == 2
    assert relaunched.job_id != first.job_id
    assert_each_trial_once(db_url, study_id, total=2, epochs=2)
    print(f"relaunched on the new head {relaunch_s:.1f} s after it started")
