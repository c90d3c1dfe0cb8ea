"""Launchers start a study's driver (``python -m service.jobs.driver STUDY_ID``) and answer whether
it still lives. Each implements the ``Launcher`` protocol (the scheduler knows no other), and one
contract test suite runs over every implementation (``tests/service/test_launchers.py``).

- ``local`` (default): a process on this machine in its own session, so it outlives a restart of
  the API/scheduler process; job id ``local:<host>:<pid>:<start>`` (``LocalJob``: the start time
  makes the id name one process, not a number the machine reuses). With warm drivers it is forked
  from a warm process (``service.jobs.forkserver``), else started fresh.
- ``ray``: a Ray Job submitted with Ray's Jobs API to ``RAY_ADDRESS`` (the driver runs on the
  cluster); job id ``ray:<submission id>``; cancel stops the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from ..settings import Settings

logger = logging.getLogger("demonlab.launcher")

if TYPE_CHECKING:
    from .forkserver import ForkServerClient


DRIVER_MODULE = "service.jobs.driver"
LOCAL_PREFIX = "local:"  # a job id names its launcher: local:<host>:<pid>:<start>
RAY_PREFIX = "ray:"  # ray:<submission id>


def driver_command(study_id: str, attempt: int) -> list[str]:
    """The driver's command line (``sys.executable`` first) for one launch of a study."""
    return [sys.executable, "-m", DRIVER_MODULE, study_id, "--attempt", str(attempt)]


class Launcher(Protocol):
    """Start, probe and stop study drivers. Job ids are strings that name their launcher kind."""

    def launch(self, study_id: str, attempt: int) -> str:
        """Start a driver for this launch of the study; return its job id."""
        ...

    def is_alive(self, job_id: str) -> bool:
        """Whether the job's driver still runs (False for a job this launcher cannot see)."""
        ...

    def stop(self, job_id: str) -> None:
        """Stop the job's driver; a job that is gone already is not an error."""
        ...

    def owns(self, job_id: str) -> bool:
        """Whether ``job_id`` is of this launcher's kind (else ask ``launcher_for_job``)."""
        ...

    def reap(self) -> list[str]:
        """The jobs of this launcher seen to exit since the last call (certain evidence they are gone)."""
        ...

    def warm(self, wait: float = 0.0) -> bool:
        """Get ready for the first launch (start what launches need) without launching anything; with
        ``wait``, wait up to that many seconds for it to be ready. Whether launches are fast now."""
        ...

    def close(self) -> None:
        """Release what launching held (the warm process); drivers already running carry on."""
        ...


def driver_env(settings: Settings) -> dict[str, str]:
    """What a driver needs to reach the same database and data dir as the service."""
    env = {
        "DEMONLAB_DATABASE_URL": settings.database_url,
        "DEMONLAB_DATA_DIR": str(settings.data_dir),
        "DEMONLAB_LAUNCHER": settings.launcher,
        "DEMONLAB_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "DEMONLAB_STALE_AFTER_SECONDS": str(settings.stale_after_seconds),
        "DEMONLAB_WARM_DRIVERS": "1" if settings.warm_drivers else "0",
        "DEMONLAB_SMALL_STUDY_EPOCHS": str(settings.small_study_epochs),
        "RAY_AUTH_MODE": settings.ray_auth_mode,
    }
    if settings.dataset_dir is not None:
        env["DEMONLAB_DATASET_DIR"] = str(settings.dataset_dir)
    return env


@dataclass(frozen=True)
class LocalJob:
    """A local job id, ``local:<host>:<pid>:<start>``: the driver's machine, its pid, and when it
    started (clock ticks since boot, from ``/proc/<pid>/stat``). A pid alone does not name a process:
    once the driver is gone the machine hands its number to a later process (pid_max is 32,768 on many
    machines, and Ray's workers and threads use numbers fast), perhaps another study's driver, whose
    command line is the same. With the start, ``is_alive`` does not take that process for the dead
    driver (its study would stay "running" for ever) and ``stop`` does not kill it. An id without a
    start (an older release's, or a machine without ``/proc``) is still read; it is checked by its
    command line, as before."""

    host: str
    pid: int
    start: int | None = None

    @classmethod
    def parse(cls, job_id: str) -> LocalJob:
        """The parts of a ``local:`` job id (with or without its start)."""
        parts = job_id.split(":")
        if not job_id.startswith(LOCAL_PREFIX) or len(parts) not in (3, 4):
            raise ValueError(f"not a local job id: {job_id!r}")
        return cls(parts[1], int(parts[2]), int(parts[3]) if len(parts) == 4 else None)

    @classmethod
    def of(cls, pid: int) -> LocalJob:
        """The job of the process ``pid`` of this machine, as it is now."""
        return cls(platform.node(), pid, process_start(pid))

    def __str__(self) -> str:
        start = "" if self.start is None else f":{self.start}"
        return f"{LOCAL_PREFIX}{self.host}:{self.pid}{start}"


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat``, field 22): the
    same for as long as the process exists, zombie included, and never the same for a later process
    with its number. None when there is no such process or no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after "(comm)", which may hold spaces
    except OSError:
        return None
    return int(fields[19])  # fields[0] is field 3 (the state)


def _identify(job: LocalJob) -> Literal["ours", "gone", "other"]:
    """Whether the process with the job's pid is the job's driver ("ours", zombie included), there is
    none ("gone": the driver has exited and been collected), or the number names a later process
    ("other"). An id without a start is judged by the command line (a driver's, or a zombie)."""
    start = process_start(job.pid)
    if job.start is not None and start is not None:
        return "ours" if start == job.start else "other"
    import psutil

    try:
        process = psutil.Process(job.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "ours"
        command = " ".join(process.cmdline())  # a forked driver has its fork server's command line
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        return "other"
    return "ours" if any(word in command for word in DRIVER_COMMANDS) else "other"


class LocalLauncher:
    """Run the driver as a subprocess of this machine, logging to ``<data_dir>/logs/``."""

    prefix = LOCAL_PREFIX

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._forked: set[int] = set()  # drivers forked from the warm process: its children, not ours
        self._jobs: dict[int, LocalJob] = {}  # the job of each pid above, read while the driver lived
        self._forkserver: ForkServerClient | None = None
        if settings.warm_drivers:
            from .forkserver import ForkServerClient

            self._forkserver = ForkServerClient()

    def owns(self, job_id: str) -> bool:
        return job_id.startswith(self.prefix)

    def warm(self, wait: float = 0.0) -> bool:
        """Start the warm process drivers are forked from (``warm_drivers``), so it is ready before
        the first study: the scheduler's launcher does; one made only to stop a job does not. With
        ``wait``, wait for its warm-up (``make run`` does before it submits)."""
        if self._forkserver is None:
            return True  # a fresh Python per driver: nothing to get ready
        if wait <= 0:
            self._forkserver.start(self._env(), str(Path.cwd()))
            return False
        return self._forkserver.wait_ready(self._env(), str(Path.cwd()), wait)

    def close(self) -> None:
        if self._forkserver is not None:
            self._forkserver.close()

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **driver_env(self.settings)}
        env.pop("RAY_ADDRESS", None)  # the driver reads DEMONLAB_RAY_ADDRESS: join that cluster, else start Ray
        if self.settings.ray_address:
            env["DEMONLAB_RAY_ADDRESS"] = self.settings.ray_address
        return env

    def launch(self, study_id: str, attempt: int) -> str:
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = self._env()
        if self._forkserver is not None:  # a driver forked from the warm process, in its own session
            try:
                pid = self._forkserver.launch(
                    study_id, attempt, logs / f"{study_id}-{attempt}.log", env, str(Path.cwd())
                )
                self._forked.add(pid)
                return self._launched(pid)
            except (OSError, RuntimeError, ValueError):
                logger.warning("study %s: no warm driver; starting a fresh one", study_id, exc_info=True)
        log = open(logs / f"{study_id}-{attempt}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            driver_command(study_id, attempt),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(Path.cwd()),
            start_new_session=True,
        )
        log.close()
        self._children[process.pid] = process
        return self._launched(process.pid)

    def _launched(self, pid: int) -> str:
        """The job id of a driver just started (it exists: a zombie at worst, not yet collected)."""
        job = LocalJob.of(pid)
        self._jobs[pid] = job
        return str(job)

    def _job_of(self, pid: int) -> LocalJob:
        return self._jobs.pop(pid, None) or LocalJob(platform.node(), pid)

    def reap(self) -> list[str]:
        """Collect children that have exited and return their job ids: without this, every finished
        driver stays a zombie of this process (the scheduler's) for as long as it runs. An exited
        child is certain evidence that its driver is gone, with no need to wait for its heartbeat
        to go stale (the scheduler relaunches its study at once if it was still running). A driver
        forked from the warm process is that process's child, so it is looked up instead: gone
        (``is_alive``) is as certain as an exit; without this a killed one waited ~30 s for its
        heartbeat to go stale (bench/relaunch.py)."""
        exited: list[str] = []
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                self._children.pop(pid, None)
                exited.append(str(self._job_of(pid)))
        for pid in list(self._forked):
            job_id = str(self._jobs.get(pid) or LocalJob(platform.node(), pid))
            if not self.is_alive(job_id):
                self._forked.discard(pid)
                exited.append(str(self._job_of(pid)))
        return exited

    def is_alive(self, job_id: str) -> bool:
        """Whether the job's driver runs: the process with its pid is that driver (``LocalJob``) and
        not a zombie."""
        job = LocalJob.parse(job_id)
        if job.host != platform.node():
            return False  # another machine's driver: its stale heartbeat is the evidence it is gone
        child = self._children.get(job.pid)
        if child is not None and child.poll() is not None:
            self._children.pop(job.pid, None)
            return False
        return _identify(job) == "ours" and not _has_exited(job.pid)

    def stop(self, job_id: str) -> None:
        """SIGTERM the driver's process group, then SIGKILL what is left; nothing when the pid names a
        later process (the driver and its group are gone: a number is not reused while a group has it)."""
        job = LocalJob.parse(job_id)
        pid = job.pid
        if job.host != platform.node():
            return
        if _identify(job) != "other":
            _terminate_group(pid)
        self._forked.discard(pid)
        self._jobs.pop(pid, None)
        child = self._children.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1)


# What a live driver's command line contains: this module's, an older release's (``demonlab execute``,
# still running across an upgrade) or the fork server's (a forked driver keeps its parent's).
DRIVER_COMMANDS = (DRIVER_MODULE, "execute", "service.jobs.forkserver")


def clean_up_dead_job(job_id: str) -> None:
    """Stop what a dead local driver left in its process group: Ray's agents (dashboard, runtime-env)
    outlive a driver killed outright (SIGKILL, OOM killer), one pair per crash.

    Only once the driver has exited: gone, or a zombie its parent has not collected yet (a driver
    forked from the warm process is reported gone while it is the fork server's zombie). Either way
    the number cannot name another process's group: a zombie still holds its pid, and while the
    group has members its id cannot be reused. A later process with the number (``LocalJob``) means
    the group is gone: nothing to do.
    """
    if not job_id.startswith(LOCAL_PREFIX):
        return
    job = LocalJob.parse(job_id)
    if job.host != platform.node():
        return
    identity = _identify(job)
    if identity == "gone" or (identity == "ours" and _has_exited(job.pid)):
        _terminate_group(job.pid)


def _has_exited(pid: int) -> bool:
    """The process is gone or a zombie."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _terminate_group(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the driver's process group (it shuts Ray down), then SIGKILL what is left."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_running(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_running(pgid: int) -> bool:
    """Whether a process of the group still runs. An exited driver stays a zombie until its parent
    (this process, or a scheduler elsewhere) collects it, and ``killpg(pgid, 0)`` counts zombies: so
    collect our own child, and ignore zombies, rather than wait out the grace period for nothing."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    import psutil

    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


class RayJobLauncher:
    """Submit the driver as a Ray Job to the cluster at ``settings.ray_address``."""

    prefix = RAY_PREFIX

    def __init__(self, settings: Settings) -> None:
        if not settings.ray_address:
            raise ValueError("launcher 'ray' needs RAY_ADDRESS (the cluster's dashboard, e.g. http://head:8265)")
        self.settings = settings

    def _client(self) -> object:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(_dashboard_url(self.settings.ray_address or ""))

    def launch(self, study_id: str, attempt: int) -> str:
        client = self._client()
        submission_id = f"demonlab-{study_id}-{attempt}-{int(time.time())}"
        env = driver_env(self.settings)
        client.submit_job(  # type: ignore[attr-defined]
            entrypoint=shlex.join(["python", *driver_command(study_id, attempt)[1:]]),
            submission_id=submission_id,
            runtime_env={"env_vars": env},
        )
        return f"{RAY_PREFIX}{submission_id}"

    def is_alive(self, job_id: str) -> bool:
        """Whether the job runs. A cluster that answers but does not know the job lost it (its head was
        killed and started afresh: Ray keeps no job history across a head's restart), so it is dead and
        its study is relaunched; a cluster that does not answer raises (the scheduler then waits)."""
        from ray.job_submission import JobStatus

        try:
            status = self._client().get_job_status(job_id.removeprefix(RAY_PREFIX))  # type: ignore[attr-defined]
        except RuntimeError as exc:
            if "status code 404" in str(exc):
                return False
            raise
        return status in (JobStatus.PENDING, JobStatus.RUNNING)

    def stop(self, job_id: str) -> None:
        self._client().stop_job(job_id.removeprefix(RAY_PREFIX))  # type: ignore[attr-defined]

    def owns(self, job_id: str) -> bool:
        return job_id.startswith(self.prefix)

    def reap(self) -> list[str]:
        return []  # Ray's job manager collects its jobs; the scheduler probes them with is_alive

    def warm(self, wait: float = 0.0) -> bool:
        return True  # the cluster is already running

    def close(self) -> None:
        return None  # each call made its own client


def _dashboard_url(address: str) -> str:
    if address.startswith(("http://", "https://")):
        return address
    if address.startswith("ray://"):
        address = address.removeprefix("ray://")
    host = address.split(":")[0]
    return f"http://{host}:8265"


def make_launcher(settings: Settings) -> Launcher:
    """The launcher the settings name."""
    if settings.launcher == "ray":
        return RayJobLauncher(settings)
    launcher = LocalLauncher(settings)
    launcher.warm()
    return launcher


def launcher_for_job(settings: Settings, job_id: str) -> Launcher:
    """The launcher that owns ``job_id`` (by its prefix), whatever the current setting."""
    if job_id.startswith(RayJobLauncher.prefix):
        return RayJobLauncher(settings)
    return LocalLauncher(settings)


def stop_job(settings: Settings, job_id: str) -> None:
    """Stop a study's job, whichever launcher started it (best effort: it may be gone already)."""
    with contextlib.suppress(Exception):
        launcher_for_job(settings, job_id).stop(job_id)
