"""The local launcher's process handling, with stand-in drivers (a short Python sleeper in its own
session), no Ray: stopping a driver that exits on SIGTERM returns at once, exited drivers are
collected (no zombies), and what a dead driver left in its process group is stopped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cluster_helpers import created_at, session_still_ours
from sqlalchemy import Engine

from service.db import StudyStatus, dal, session_scope
from service.jobs.launchers import LocalJob, LocalLauncher, _terminate_group, clean_up_dead_job, process_start
from service.jobs.scheduler import Scheduler
from service.settings import Settings

# Exits on SIGTERM like the driver does, else sleeps for a minute; says "ready" once its handler is in.
POLITE = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
    "print('ready', flush=True); time.sleep(60)"
)
# A process whose command line is a driver's, as a later driver with a dead one's number would be.
IMPOSTOR = [sys.executable, "-c", "print('ready', flush=True); import time; time.sleep(60)", "service.jobs.driver"]
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)
# The same, and first starts a grandchild in its group that ignores nothing (Ray's agents, say).
WITH_HELPER = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "print('ready', flush=True); time.sleep(60)"
)


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Stand-in drivers started by a test; their process groups are killed at the end, whatever happened."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start(spawned: list[subprocess.Popen[bytes]], code: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    spawned.append(process)
    return process


def ready(process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Wait for the stand-in's "ready" line (a handshake, not a guess at how long start-up takes)."""
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return process


def group_members(pgid: int) -> list[int]:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def test_stopping_a_driver_that_exits_on_sigterm_returns_at_once(spawned: list[subprocess.Popen[bytes]]) -> None:
    driver = ready(start(spawned, POLITE))  # its handler is installed

    started = time.monotonic()
    _terminate_group(driver.pid, grace=5.0)

    assert time.monotonic() - started < 2  # an exited driver is a zombie, not a reason to wait 5 s
    assert driver.poll() == 0


def test_a_driver_that_ignores_sigterm_is_killed_after_the_grace(spawned: list[subprocess.Popen[bytes]]) -> None:
    stubborn = ready(start(spawned, STUBBORN))

    _terminate_group(stubborn.pid, grace=0.5)

    assert stubborn.wait(timeout=5) == -signal.SIGKILL


def test_launcher_collects_exited_drivers(tmp_path: Path) -> None:
    launcher = LocalLauncher(Settings(data_dir=tmp_path))
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    launcher._children[child.pid] = child
    child_pid = child.pid
    deadline = time.monotonic() + 10
    while psutil.Process(child_pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert launcher.reap() == [f"local:{platform.node()}:{child_pid}"]

    assert launcher._children == {}
    assert not psutil.pid_exists(child_pid)


def test_clean_up_stops_what_a_dead_driver_left(spawned: list[subprocess.Popen[bytes]]) -> None:
    driver = ready(start(spawned, WITH_HELPER))
    helpers = [pid for pid in group_members(driver.pid) if pid != driver.pid]
    assert len(helpers) == 1
    job_id = f"local:{platform.node()}:{driver.pid}"

    clean_up_dead_job(job_id)  # the driver lives: nothing happens
    assert group_members(driver.pid) == sorted([driver.pid, *helpers])

    driver.kill()
    driver.wait(timeout=10)
    clean_up_dead_job(job_id)

    assert group_members(driver.pid) == []


def test_clean_up_stops_what_a_zombie_driver_left(spawned: list[subprocess.Popen[bytes]]) -> None:
    """A forked driver is reported gone while it is still its parent's zombie: clean up then too."""
    driver = ready(start(spawned, WITH_HELPER))
    helpers = [pid for pid in group_members(driver.pid) if pid != driver.pid]
    assert len(helpers) == 1
    driver.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while psutil.Process(driver.pid).status() != psutil.STATUS_ZOMBIE:  # not collected: a zombie
        assert time.monotonic() < deadline
        time.sleep(0.02)

    clean_up_dead_job(f"local:{platform.node()}:{driver.pid}")

    assert group_members(driver.pid) == []


def test_clean_up_ignores_other_hosts_and_ray_jobs(spawned: list[subprocess.Popen[bytes]]) -> None:
    driver = start(spawned, POLITE)

    clean_up_dead_job(f"local:some-other-host:{driver.pid}")
    clean_up_dead_job("ray:demonlab-abc-1-2")

    assert driver.poll() is None


def test_a_driver_that_exits_is_relaunched_at_once_not_after_the_stale_wait(
    spawned: list[subprocess.Popen[bytes]], engine: Engine, settings: Settings
) -> None:
    """The scheduler's own child exits while its study runs (killed, crashed): the study is requeued
    on the next tick although its heartbeat is fresh; a live driver's study is left alone."""
    launcher = LocalLauncher(settings)
    scheduler = Scheduler(settings, engine, launcher=launcher)
    ids = []
    for name in ("killed", "alive"):
        with session_scope(engine) as session:
            study = dal.create_study(
                session, name=name, workload="synthetic", spec={}, spec_hash=name, trial_keys=[], launcher="local"
            )
            ids.append(study.id)
            (claimed,) = dal.claim_queued_studies(session, limit=1, launcher_id="test")
            driver = ready(start(spawned, POLITE))
            launcher._children[driver.pid] = driver
            dal.set_job_id(session, claimed.id, f"local:{platform.node()}:{driver.pid}")
            dal.heartbeat(session, claimed.id, attempt=claimed.attempts)
    killed, alive = spawned
    killed.kill()
    killed.wait(timeout=10)  # gone (the launcher still has to collect it: it is its child)

    assert scheduler.recover(launcher.reap()) == [ids[0]]

    with session_scope(engine, read_only=True) as session:
        assert dal.get_study(session, ids[0]).status is StudyStatus.QUEUED
        assert dal.get_study(session, ids[1]).status is StudyStatus.RUNNING
        assert dal.find_stale_running(session, stale_after_seconds=settings.stale_after_seconds) == []
    assert scheduler.recover(launcher.reap()) == []  # nothing twice
    assert alive.poll() is None


def test_the_reapers_tell_a_session_from_a_later_one_with_its_number() -> None:
    """The tests' reapers (``cluster_helpers.session_still_ours``) kill a session's processes only while
    its number can still be the session they knew: a live process with that pid that started at
    another time means the number was reused (by another test's driver, say), and it is left alone."""
    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        created = created_at(leader.pid)
        assert created is not None
        assert session_still_ours(leader.pid, created)
        assert not session_still_ours(leader.pid, created - 1.0)  # the same number, started at another time
    finally:
        leader.kill()
        leader.wait()
    assert created_at(leader.pid) is None or created_at(leader.pid) != created
    # nobody holds the number now (or someone new does): only a new holder is told apart
    assert session_still_ours(leader.pid, created) == (created_at(leader.pid) is None)


def impostor(spawned: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """A live session leader with a driver's command line (another study's driver, say)."""
    process = subprocess.Popen(IMPOSTOR, start_new_session=True, stdout=subprocess.PIPE)
    spawned.append(process)
    return ready(process)


def test_a_local_job_id_names_one_process_and_reads_back() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    started = process_start(child.pid)
    job = LocalJob.of(child.pid)
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        assert started is not None
        assert process_start(child.pid) == started  # a zombie keeps it
        assert str(job) == f"local:{platform.node()}:{child.pid}:{started}"
        assert LocalJob.parse(str(job)) == job
        assert LocalJob.parse(f"local:h:{child.pid}") == LocalJob("h", child.pid, None)  # an older release's id
        assert process_start(os.getpid()) != started
    finally:
        child.wait()
    assert process_start(child.pid) is None  # collected: gone
    for bad in ("ray:x", "local:h", "local:h:x", "local:h:1:2:3"):
        with pytest.raises(ValueError):
            LocalJob.parse(bad)


def test_a_dead_drivers_number_held_by_another_driver_is_not_taken_for_it(
    spawned: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """The driver of a job is gone and a later process got its number (pid_max is 32,768 here): its
    job id still names the dead driver (its start differs), so the job is not alive, stopping it and
    cleaning up after it leave the later process alone, though its command line is a driver's."""
    launcher = LocalLauncher(Settings(data_dir=tmp_path))
    other = impostor(spawned)
    now = process_start(other.pid)
    assert now is not None
    dead = str(LocalJob(platform.node(), other.pid, now - 100))  # the same number, started earlier

    assert launcher.is_alive(str(LocalJob.of(other.pid)))  # the process it names is alive
    assert not launcher.is_alive(dead)
    launcher.stop(dead)
    clean_up_dead_job(dead)

    assert other.poll() is None
    assert group_members(other.pid) == [other.pid]


def test_an_older_id_is_checked_by_its_command_line(spawned: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    """An id without a start (an older release's): a process with its number that is no driver is not
    taken for it nor stopped; one with a driver's command line is (the hazard the start removes)."""
    launcher = LocalLauncher(Settings(data_dir=tmp_path))
    bystander = ready(start(spawned, POLITE))
    legacy = f"local:{platform.node()}:{bystander.pid}"

    assert not launcher.is_alive(legacy)
    launcher.stop(legacy)
    assert bystander.poll() is None

    driver = impostor(spawned)
    assert launcher.is_alive(f"local:{platform.node()}:{driver.pid}")


def test_a_study_whose_drivers_number_was_reused_is_relaunched(
    spawned: list[subprocess.Popen[bytes]], engine: Engine, settings: Settings
) -> None:
    """Its driver died while no scheduler watched (none was its parent) and a later driver got the
    number: once its heartbeat is stale the study is requeued, not left "running" for ever, and the
    later driver runs on."""
    scheduler = Scheduler(settings, engine, launcher=LocalLauncher(settings))
    other = impostor(spawned)
    now = process_start(other.pid)
    assert now is not None
    with session_scope(engine) as session:
        study = dal.create_study(
            session, name="orphan", workload="synthetic", spec={}, spec_hash="orphan", trial_keys=[], launcher="local"
        )
        (claimed,) = dal.claim_queued_studies(session, limit=1, launcher_id="test")
        dal.set_job_id(session, claimed.id, str(LocalJob(platform.node(), other.pid, now - 100)))
        dal.heartbeat(session, claimed.id, attempt=claimed.attempts)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.stale_after_seconds + 60)

    assert scheduler.recover([], now=later) == [study.id]

    with session_scope(engine, read_only=True) as session:
        assert dal.get_study(session, study.id).status is StudyStatus.QUEUED
    assert other.poll() is None
