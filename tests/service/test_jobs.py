"""The local launcher's process handling, with stand-in drivers (a short Python sleeper in its own
session), no Ray: stopping a driver that exits on SIGTERM returns at once, exited drivers are
collected (no zombies), and what a dead driver left in its process group is stopped.
"""

from __future__ import annotations

import contextlib
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

from service.jobs.launchers import LocalLauncher, _terminate_group, clean_up_dead_job
from service.settings import Settings

# Exits on SIGTERM like the driver does (after a moment), else sleeps for a minute.
POLITE = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); time.sleep(60)"
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
    driver = start(spawned, POLITE)
    time.sleep(0.5)  # let it install its handler

    started = time.monotonic()
    _terminate_group(driver.pid, grace=5.0)

    assert time.monotonic() - started < 2  # an exited driver is a zombie, not a reason to wait 5 s
    assert driver.poll() == 0


def test_a_driver_that_ignores_sigterm_is_killed_after_the_grace(spawned: list[subprocess.Popen[bytes]]) -> None:
    stubborn = start(spawned, "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")
    time.sleep(0.5)

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

    launcher.reap()

    assert launcher._children == {}
    assert not psutil.pid_exists(child_pid)


def test_clean_up_stops_what_a_dead_driver_left(spawned: list[subprocess.Popen[bytes]]) -> None:
    driver = start(spawned, WITH_HELPER)
    assert driver.stdout is not None
    assert driver.stdout.readline() == b"ready\n"
    helpers = [pid for pid in group_members(driver.pid) if pid != driver.pid]
    assert len(helpers) == 1
    job_id = f"local:{platform.node()}:{driver.pid}"

    clean_up_dead_job(job_id)  # the driver lives: nothing happens
    assert group_members(driver.pid) == sorted([driver.pid, *helpers])

    driver.kill()
    driver.wait(timeout=10)
    clean_up_dead_job(job_id)

    assert group_members(driver.pid) == []


def test_clean_up_ignores_other_hosts_and_ray_jobs(spawned: list[subprocess.Popen[bytes]]) -> None:
    driver = start(spawned, POLITE)

    clean_up_dead_job(f"local:some-other-host:{driver.pid}")
    clean_up_dead_job("ray:demonlab-abc-1-2")

    assert driver.poll() is None
