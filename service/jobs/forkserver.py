"""A warm process the local launcher forks study drivers from (``DEMONLAB_WARM_DRIVERS=1``).

A driver started as ``python -m service.cli execute`` spends seconds importing torch, SQLAlchemy and
the study stack before its first trial (``bench/first_result.py``).
The fork server pays that once: it imports them, says so (one line, ``{"ready": true}``, so a
launcher can wait for it: ``make run`` submits once it is warm), then waits on its stdin for launch
requests (one JSON line each: study id, attempt, log file, environment, working directory) and answers
each with the pid of a forked child that runs exactly what ``python -m service.jobs.driver STUDY
--attempt N`` runs (``service.jobs.driver.main``).

The child is a driver like any other: its own session (``setsid``: the launcher stops it with its
process group; it outlives a restart of the scheduler), its output in the study's log file, the
service's settings read from the request's environment; heartbeat, cancel, kill detection and
relaunch are the driver's own. The server stays single-threaded (fork-safe: no thread holds a lock
when it forks), never imports Ray (a child starts or joins Ray itself, after the fork), reaps its
exited children, and exits at once when its stdin closes (the scheduler is gone).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

ANSWER_TIMEOUT = 120.0  # seconds a launch waits for the server (its warm-up takes a few)


def warm_up() -> None:
    """Import what every driver imports before its first result, once, for every fork.

    Not imported here: scikit-learn (the digits data ships as ``digits.npz``; only the tabular
    workloads import it, on use) and ``torch._dynamo``, which a torch optimizer imports on its first
    construction or step (~1.4 s of CPU): a pack builds no torch optimizer, so the default (packed)
    driver never pays it, and a per-trial driver pays it once, after its fork. Both cost every warm
    process ~2.4 s of CPU before it was ready, for drivers that mostly never used them.
    """
    import torch

    torch.set_num_threads(1)
    import sqlalchemy  # noqa: F401
    from optuna.storages import RDBStorage  # noqa: F401 - the driver's mirror of its results

    import service.jobs.driver  # noqa: F401
    import studies.executors
    import studies.packed  # noqa: F401
    from studies.environment import software
    from studies.workloads.digits import digits_arrays

    software()  # two git commands, cached: every driver records it at its start
    digits_arrays()  # the digits workloads' data (make run's study): read once, shared by every fork


def _reap(*_: Any) -> None:
    """SIGCHLD: collect every exited child (drivers are our children, not the scheduler's)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _run_driver(request: dict[str, Any]) -> int:
    """In the forked child (already the leader of its own session): become a driver for the
    request's study; return its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(devnull)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    from service.jobs.driver import main
    from service.settings import clear_settings_cache

    clear_settings_cache()
    return main([request["study_id"], "--attempt", str(request["attempt"])])


def serve(requests: IO[str], answers: IO[str]) -> None:
    """Answer launch requests until ``requests`` closes."""
    signal.signal(signal.SIGCHLD, _reap)
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in requests:
        request = json.loads(line)
        session_made, told = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(session_made)
                os.setsid()  # before the pid is answered: its group exists as soon as the launcher knows it
                os.close(told)
                code = _run_driver(request)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(told)
        os.read(session_made, 1)  # end of file: the child made its session (or died)
        os.close(session_made)
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()


class ForkServerClient:
    """The launcher's side: start the server (``start``: it warms up while nothing is asked of it),
    ask it for drivers (thread-safe), restart it if it has died, give up on one that does not answer."""

    def __init__(self, answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._ready = False  # the running server's ready line was read
        self.answer_timeout = answer_timeout

    def start(self, env: dict[str, str], cwd: str) -> None:
        """Start the server unless it runs."""
        with self._lock:
            self._ensure(env, cwd)

    def wait_ready(self, env: dict[str, str], cwd: str, timeout: float) -> bool:
        """Start the server unless it runs, and wait up to ``timeout`` seconds for it to be warm;
        whether it is (False: still warming up, or it died; launches then start or restart it)."""
        with self._lock:
            process = self._ensure(env, cwd)
            return self._read_ready(process, timeout)

    def _ensure(self, env: dict[str, str], cwd: str) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = self._start(env, cwd)
            self._ready = False
        return self._process

    def _read_line(self, process: subprocess.Popen[str], timeout: float) -> str:
        stdout = process.stdout
        if stdout is None:
            raise RuntimeError("the driver fork server has no pipes")
        ready, _, _ = select.select([stdout], [], [], timeout)
        return stdout.readline() if ready else ""

    def _read_ready(self, process: subprocess.Popen[str], timeout: float) -> bool:
        """Consume the server's ready line (once per server); whether it came within ``timeout``."""
        if not self._ready:
            self._ready = bool(self._read_line(process, timeout))
        return self._ready

    def launch(self, study_id: str, attempt: int, log: Path, env: dict[str, str], cwd: str) -> int:
        """Fork a driver for ``study_id``; return its pid. ``RuntimeError`` when the server does not
        answer within ``answer_timeout`` (it is then killed; the next launch starts a new one)."""
        request = {"study_id": study_id, "attempt": attempt, "log": str(log), "env": env, "cwd": cwd}
        with self._lock:
            process = self._ensure(env, cwd)
            stdin = process.stdin
            if stdin is None:
                raise RuntimeError("the driver fork server has no pipes")
            answer = ""
            if self._read_ready(process, self.answer_timeout):
                stdin.write(json.dumps(request) + "\n")
                stdin.flush()
                answer = self._read_line(process, self.answer_timeout)
            if not answer:
                process.kill()
                process.wait(timeout=10)
                self._process = None
                self._ready = False
                raise RuntimeError(f"the driver fork server did not answer; see {env.get('DEMONLAB_DATA_DIR')}/logs")
        return int(json.loads(answer)["pid"])

    @staticmethod
    def _start(env: dict[str, str], cwd: str) -> subprocess.Popen[str]:
        log = Path(env.get("DEMONLAB_DATA_DIR", ".")) / "logs" / "forkserver.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as output:
            return subprocess.Popen(
                [sys.executable, "-m", "service.jobs.forkserver"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=output,
                text=True,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )

    def close(self) -> None:
        """Close the server's stdin: it exits (its drivers run on)."""
        with self._lock:
            if self._process is not None and self._process.stdin is not None:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            self._process = None
            self._ready = False


if __name__ == "__main__":
    warm_up()
    serve(sys.stdin, sys.stdout)
    # Its scheduler is gone: exit without tearing down the heap (torch and the rest: a second or two
    # that the scheduler's shutdown waited for). Nothing is left to flush; drivers run on.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
