"""``service.jobs.forkserver``: the pid it answers is already the leader of its own session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil


def test_the_answered_pid_already_leads_its_own_session(tmp_path: Path) -> None:
    """The launcher stops a driver with its process group (``killpg(pid)``) and a cancel may come the
    moment the pid is known: the fork server used to answer before the child's ``setsid``, so under
    load the group did not exist yet (the warm-driver test saw ``getsid(pid)`` still the server's)."""
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from service.jobs.forkserver import serve; serve(sys.stdin, sys.stdout)"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    pids: list[int] = []
    try:
        assert json.loads(server.stdout.readline()) == {"ready": True}
        for attempt in range(3):
            # A study that does not exist: the child imports the driver (seconds), then fails and exits.
            request = {
                "study_id": "no-such-study",
                "attempt": attempt + 1,
                "log": str(tmp_path / f"driver-{attempt}.log"),
                "env": {**os.environ, "DEMONLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"},
                "cwd": str(tmp_path),
            }
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            pid = int(json.loads(server.stdout.readline())["pid"])
            pids.append(pid)
            assert os.getsid(pid) == pid  # at once, before anything else could run
            assert os.getsid(pid) != os.getsid(server.pid)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=15)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None
