"""Start ``demonlab serve`` for a bench on a port the server binds itself, and read that port back.

``--port 0`` makes the server take a free port and print it on its first line ("demonlab: dashboard
at http://HOST:PORT/ ..."); the benches read it from the server's log. Choosing a port by binding and
releasing it first, as they used to, left a moment in which another process could take it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ADDRESS = re.compile(rb"dashboard at http://([^/:]+):(\d+)/")


def start_serve(
    args: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None, port: int = 0, timeout: float = 120
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m service.cli serve --port PORT ARGS`` with its output appended to ``log``, in a new
    session (stop it with ``os.killpg``); (the process, its base URL) once it has said where it listens.
    ``RuntimeError`` with the log's tail when it exits or says nothing within ``timeout``."""
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), *args]
    start = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while True:
        found = ADDRESS.search(log.read_bytes()[start:])
        if found:
            return process, f"http://{found.group(1).decode()}:{int(found.group(2))}"
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait()
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the server did not say where it listens (exit {process.returncode}):\n{tail}")
        time.sleep(0.05)
