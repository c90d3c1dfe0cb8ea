"""Drivers forked from the warm process (``DEMONLAB_WARM_DRIVERS``, ``service.jobs.forkserver``) keep
every semantics of a driver started as its own Python: each runs in its own session with its log,
completes a study, stops within seconds on a cancel (and is not relaunched), and when SIGKILLed is
relaunched and resumes its packs; a per-trial study starts its own Ray from the forked driver."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy.engine import Engine
from test_end_to_end import (
    HEARTBEAT_SECONDS,
    RESULTS,
    STALE_AFTER_SECONDS,
    Drivers,
    Service,
    assert_each_key_once,
    assert_no_scheduler_pass_relaunches,
    finished,
    is_gone,
    session_members,
    slow_spec,
)
from test_packed_api import kill_a_packed_driver_and_check_it_resumes

from service.client import DemonlabClient
from studies.results import TrialStatus

# On SQLite only: what a forked driver changes is the launcher's (how the process starts), not the
# database's. A driver's PostgreSQL path, forked by default, runs in test_end_to_end.py,
# test_packed_api.py (killed, relaunched, resumed) and test_fault_tolerance.py.
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
PACKED = {"execution": {"mode": "packed", "pack_size": 8}}
PER_TRIAL = {"execution": {"mode": "per_trial"}}  # the smoke spec would pack by default


@pytest.fixture
def warm(live_server: object, engine: Engine, data_dir: Path) -> Iterator[Service]:
    """The app and scheduler over HTTP with ``warm_drivers=True``; drivers reaped at the end."""
    drivers = Drivers()
    try:
        with (
            live_server(  # type: ignore[operator]
                run_scheduler=True,
                heartbeat_seconds=HEARTBEAT_SECONDS,
                stale_after_seconds=STALE_AFTER_SECONDS,
                max_concurrent_studies=2,
                warm_drivers=True,
            ) as url,
            DemonlabClient(url, timeout=30) as client,
        ):
            yield Service(url, client, engine, data_dir, drivers)
    finally:
        drivers.reap()


def _forked_driver(service: Service, study_id: str) -> int:
    study = service.wait_for(study_id, lambda s: s.job_id is not None or finished(s))
    pid = service.drivers.note(study.job_id)
    parent = psutil.Process(pid).parent()
    assert parent is not None
    assert "service.jobs.forkserver" in " ".join(parent.cmdline())  # forked, not a fresh Python
    return pid


def test_a_forked_driver_runs_a_study_in_its_own_session_with_its_log(warm: Service) -> None:
    created = warm.client.submit(slow_spec("warm-run", [0.01, 0.1]) | PACKED)
    pid = _forked_driver(warm, created.id)
    assert os.getsid(pid) == pid  # its own session: stopped with its group, outlives the scheduler
    study = warm.wait_for(created.id, finished)
    assert study.status == "completed", warm.logs()
    assert study.progress.done == 16
    assert_each_key_once(warm.engine, created.id)
    assert [p.name for p in warm.log_files()] == [f"{created.id}-1.log"]
    assert (warm.data_dir / "logs" / "forkserver.log").exists()
    # After the study's end the driver stores its reports and writes what the Optuna mirror lacks,
    # then exits: under the load of a shared machine that takes more than a few seconds.
    deadline = time.monotonic() + 60
    while not is_gone(pid):  # the fork server collected it: no zombie left
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_cancelled_forked_driver_stops_within_seconds_and_is_not_relaunched(warm: Service) -> None:
    created = warm.client.submit(slow_spec("warm-cancel", [0.01, 0.1]) | PACKED)
    driver = _forked_driver(warm, created.id)
    warm.wait_for(created.id, lambda s: any((warm.data_dir / "packs").glob("*/*.pack.pt")) or finished(s))
    started = time.monotonic()
    cancelled = warm.client.cancel(created.id)
    while not is_gone(driver) or session_members(driver):
        assert time.monotonic() - started < 15, [p.cmdline() for p in session_members(driver)]
        time.sleep(0.1)
    assert cancelled.status == "cancelled"
    assert_no_scheduler_pass_relaunches(warm, cancelled)
    study = warm.client.get_study(created.id)
    assert (study.status, study.attempts, study.job_id) == ("cancelled", 1, cancelled.job_id)
    assert study.progress.done < 16


def test_a_killed_forked_driver_is_relaunched_and_resumes_its_packs(warm: Service, tmp_path: Path) -> None:
    kill_a_packed_driver_and_check_it_resumes(warm, tmp_path)  # the drivers forked (in `warm`)


def test_a_small_per_trial_study_runs_in_the_forked_driver_without_ray(
    warm: Service, smoke_spec: dict[str, object]
) -> None:
    """24 trials × 2 epochs ≤ small_study_epochs (200): one trial after another in the driver, no Ray."""
    created = warm.client.submit(smoke_spec | PER_TRIAL)
    _forked_driver(warm, created.id)
    study = warm.wait_for(created.id, finished)
    assert study.status == "completed", warm.logs()
    trials = warm.trials(created.id)
    assert len(trials) == 24
    assert_each_key_once(warm.engine, created.id)
    assert {t.status for t in trials} <= set(RESULTS)
    assert all("/" not in (t.node or "") for t in trials)  # not on Ray
    assert {t.attempts for t in trials} == {1}  # each marked running once as it started, as on Ray


def test_a_per_trial_study_starts_its_own_ray_from_a_forked_driver(
    warm: Service, smoke_spec: dict[str, object]
) -> None:
    """24 trials × 10 epochs > small_study_epochs (200): the forked driver starts a local Ray."""
    created = warm.client.submit(smoke_spec | PER_TRIAL | {"name": "warm-ray", "epochs": 10})
    driver = _forked_driver(warm, created.id)
    study = warm.wait_for(created.id, finished)
    assert study.status == "completed", warm.logs()
    trials = warm.trials(created.id)
    assert len(trials) == 24
    assert {t.status for t in trials} <= set(RESULTS)
    assert any("/" in (t.node or "") for t in trials if t.status is TrialStatus.COMPLETED)  # ran on Ray
    deadline = time.monotonic() + 30
    while session_members(driver):  # the driver shut its Ray down
        assert time.monotonic() < deadline, [p.cmdline() for p in session_members(driver)]
        time.sleep(0.2)


def test_a_dead_fork_server_is_restarted_at_the_next_launch(warm: Service) -> None:
    servers = [p for p in psutil.Process().children() if "service.jobs.forkserver" in " ".join(p.cmdline())]
    assert servers  # started with the scheduler, before any study (earlier tests' may be exiting)
    server = max(servers, key=lambda p: p.create_time())
    server.kill()
    server.wait(10)
    created = warm.client.submit(slow_spec("warm-restart", [0.01]) | PACKED)
    _forked_driver(warm, created.id)
    study = warm.wait_for(created.id, finished)
    assert study.status == "completed", warm.logs()
