"""How long a killed driver's study waits to run again, with the local launcher, measured in one run.

A real service (``demonlab serve``, scheduler on, default heartbeat 5 s and stale limit 30 s) runs a
synthetic study of 16 one-second trials. Once a result is in, the driver is SIGKILLed, and the bench
times (1) until the study is relaunched (a new driver's job id) and (2) until the relaunched driver
records its first result (Ray started again). Two cases, side by side:

- ``child``: the driver is the scheduler's own child, so the scheduler sees it exit on its next tick.
- ``stale``: the service was restarted after the launch (the driver is no longer its child), so the
  scheduler knows only the heartbeat and waits for it to go stale: what every kill cost before.

Usage: ``.venv/bin/python bench/relaunch.py`` (about 3-4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from served import start_serve

SPEC: dict[str, Any] = {
    "name": "relaunch-bench",
    "workload": "synthetic",
    "workload_params": {"n_train": 2048, "hidden": 32},
    "arms": ["demon_sgdm", "sgdm_step"],
    "lr": [0.01, 0.1],
    "beta_init": [0.8, 0.9],
    "seeds": 2,
    "epochs": 60,
    # Per trial: results one by one, so the driver is killed mid-study. Packed (the default since),
    # the results of a study this small all arrive at its end, and the driver was killed too late.
    "execution": {"mode": "per_trial"},
}


def serve(data_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The service on ``port`` (0: a free one, which a restart then asks for again); (process, base URL)."""
    env = {**os.environ, "DEMONLAB_DATA_DIR": str(data_dir)}
    return start_serve(["--log-level", "warning"], env=env, log=log, port=port)


def wait(what: str, check: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def measure(case: str, root: Path) -> tuple[float, float]:
    """(seconds to relaunch, seconds to the relaunched driver's first result) after the kill."""
    from service.client import DemonlabClient
    from service.jobs.launchers import LocalJob

    data_dir = root / case
    data_dir.mkdir(parents=True, exist_ok=True)
    server, url = serve(data_dir, 0, root / f"{case}-serve.log")
    servers = [server]
    try:
        with DemonlabClient(url, timeout=30) as client:
            wait("the service", client.healthz, 120)
            study_id = client.submit(SPEC).id
            running = wait("a first result", lambda: (s := client.get_study(study_id)).progress.done >= 1 and s, 300)
            if case == "stale":  # restart the service: the driver runs on, no longer anyone's child
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
                server, _ = serve(data_dir, int(url.rsplit(":", 1)[1]), root / f"{case}-serve-2.log")
                servers.append(server)
                wait("the restarted service", client.healthz, 120)
            driver = LocalJob.parse(str(running.job_id)).pid
            done = client.get_study(study_id).progress.done
            killed = time.monotonic()
            os.kill(driver, signal.SIGKILL)
            wait("the relaunch", lambda: client.get_study(study_id).attempts >= 2, 300, 0.1)
            relaunched = time.monotonic() - killed
            wait("a result of the new driver", lambda: client.get_study(study_id).progress.done > done, 300, 0.1)
            resumed = time.monotonic() - killed
            client.cancel(study_id)
    finally:
        for process in servers:
            stop(process)
    return relaunched, resumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-rl-", dir="/tmp") as tmp:
        results = {case: measure(case, Path(tmp)) for case in ("child", "stale")}
    print("case   relaunched(s)  first-result(s)")
    for case, (relaunched, resumed) in results.items():
        print(f"{case:6} {relaunched:13.1f}  {resumed:15.1f}")
    child, stale = results["child"][1], results["stale"][1]
    print(f"kill → first new result: child / stale = {child / stale:.2f}")


if __name__ == "__main__":
    main()
