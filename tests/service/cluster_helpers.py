"""Helpers of the multi-process tests: a Ray cluster of real nodes, a private PostgreSQL server,
``demonlab serve`` subprocesses, and a janitor that kills every process a test started.

Everything here is scoped to what the test itself started: Ray nodes are found by the session of
their ``ray start`` and by their temp dir, drivers and their Ray workers by the test's unique data dir
(``DEMONLAB_DATA_DIR`` in their environment). Nothing here ever runs ``ray stop``, which would stop
every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from service.client import DemonlabClient
from service.db.models import Study, Trial, TrialEpoch

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
T = TypeVar("T")


# ------------------------------------------------------------------------------------------ basics


def free_ports(n: int, avoid: set[int] | None = None) -> list[int]:
    """``n`` distinct TCP ports that are free right now (held together while chosen), none in ``avoid``:
    ports handed out before and released but not yet bound by whoever got them (a cluster's GCS port
    came back as its runtime-env agent's, and ``ray start`` refused the pair)."""
    sockets = []
    chosen: list[int] = []
    try:
        while len(chosen) < n:
            s = socket.socket()
            s.bind(("", 0))
            sockets.append(s)  # held, so the system hands out another next
            port = s.getsockname()[1]
            if port not in (avoid or set()):
                chosen.append(port)
        return chosen
    finally:
        for s in sockets:
            s.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def free_port_range(size: int = 100) -> tuple[int, int]:
    """A range of ``size`` consecutive free ports below the ephemeral range (Ray's worker ports)."""
    for _ in range(200):
        base = random.randrange(20_000, 32_000 - size)
        if all(_port_free(p) for p in range(base, base + size)):
            return base, base + size - 1
    raise RuntimeError(f"no {size} consecutive free ports")


def wait_until(check: Callable[[], T], *, timeout: float, interval: float = 0.5, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def short_tmp(prefix: str) -> Path:
    """A fresh dir directly under /tmp (Ray's socket paths must stay under ~107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child: the venv first on PATH, Ray's auth off, no Ray address
    and no DEMONLAB_* settings leaking in from the test runner; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMONLAB_") and k != "RAY_ADDRESS"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------ janitor


def _protected() -> set[int]:
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


def created_at(pid: int) -> float | None:
    """When the process ``pid`` started (None if there is none): with ``session_still_ours``, how a
    session is told from a later one that reuses its number."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def session_still_ours(leader: int, created: float | None) -> bool:
    """Whether processes in session ``leader`` can still be the ones of the leader that started at
    ``created``. A session id stays reserved while any process of the session lives, so its number is
    reused only once the whole session is gone: a live process with that pid which started at another
    time means the session we knew is over, and the session with that id now is someone else's (this
    machine's pid_max is 32,768 and the suite runs thousands of processes and threads: a reaper that
    killed session ``leader`` regardless could kill another worker's fresh driver, a session leader)."""
    now = created_at(leader)
    return now is None or created is None or now == created


def find_processes(
    *,
    sessions: Iterable[int] = (),
    roots: Iterable[int] = (),
    cmdline_markers: Iterable[str] = (),
    env_markers: Mapping[str, str] | None = None,
) -> list[psutil.Process]:
    """Processes in one of ``sessions``, with a marker in their command line or ``env_markers`` in
    their environment, ``roots`` themselves, and the descendants of all of them (never this process
    nor its ancestors)."""
    sessions, markers, env_markers = set(sessions), list(cmdline_markers), dict(env_markers or {})
    found: dict[int, psutil.Process] = {}
    for pid in roots:
        with contextlib.suppress(psutil.Error):
            found[pid] = psutil.Process(pid)
    for process in psutil.process_iter():
        try:
            if sessions and os.getsid(process.pid) in sessions:
                found[process.pid] = process
                continue
            if markers and any(m in " ".join(process.cmdline()) for m in markers):
                found[process.pid] = process
                continue
            if env_markers:
                environ = process.environ()
                if any(environ.get(k) == v for k, v in env_markers.items()):
                    found[process.pid] = process
        except (psutil.Error, OSError):
            continue
    for process in list(found.values()):
        with contextlib.suppress(psutil.Error):
            for child in process.children(recursive=True):
                found[child.pid] = child
    protected = _protected()
    return [p for pid, p in found.items() if pid not in protected]


def kill_processes(processes: Sequence[psutil.Process], *, grace: float = 0.0) -> None:
    """SIGTERM (when ``grace``), then SIGKILL, and wait for them."""
    if grace:
        for p in processes:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, processes = psutil.wait_procs(processes, timeout=grace)
    for p in processes:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(processes, timeout=10)


def reap(**criteria: Any) -> int:
    """Kill everything ``find_processes(**criteria)`` finds, a few rounds (children may appear while
    their parents die); returns how many processes were killed."""
    killed = 0
    for _ in range(4):
        processes = find_processes(**criteria)
        if not processes:
            break
        killed += len(processes)
        kill_processes(processes)
    return killed


# ------------------------------------------------------------------------------------------ Ray


class RayCluster:
    """Real Ray nodes on this machine (``ray start``), each with its temp dir under ``root``.

    Every node's daemons run in the session of its ``ray start`` (started in a new session), so
    ``stop()`` finds them, the workers they spawned and the drivers of jobs submitted to them, and
    kills them all, never touching anyone else's Ray.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sessions: list[int] = []
        self.session_created: dict[int, float | None] = {}  # each session leader's start time
        self.gcs_port: int | None = None
        self.client_port: int | None = None
        self.dashboard_port: int | None = None
        self._count = 0
        self._taken: set[int] = set()  # every port this cluster handed out: never twice

    def _ports(self, n: int) -> list[int]:
        ports = free_ports(n, self._taken)
        self._taken.update(ports)
        return ports

    @property
    def gcs_address(self) -> str:
        assert self.gcs_port is not None, "start_head() first"
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        assert self.dashboard_port is not None, "start_head(dashboard=True) first"
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_head(
        self, *, num_cpus: int, resources: dict[str, float] | None = None, dashboard: bool = False, again: bool = False
    ) -> None:
        """Start the head node; ``again``: a new head on the ports of the last one (after a kill)."""
        if not again:
            self.gcs_port, self.client_port = self._ports(2)
        args = ["--head", f"--port={self.gcs_port}", f"--ray-client-server-port={self.client_port}"]
        if dashboard:
            if not again:
                (self.dashboard_port,) = self._ports(1)
            args += [
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
            ]
        else:
            args += ["--include-dashboard=false"]
        self._start("h", args, num_cpus, resources)

    def add_worker(self, *, num_cpus: int, resources: dict[str, float] | None = None) -> None:
        self._start(f"w{self._count}", [f"--address={self.gcs_address}"], num_cpus, resources)

    def _start(self, name: str, args: list[str], num_cpus: int, resources: dict[str, float] | None) -> None:
        self._count += 1
        temp_dir = self.root / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        node_manager, object_manager, agent_grpc, agent_http, metrics, runtime_env = self._ports(6)
        low, high = free_port_range()
        command = [
            str(VENV_BIN / "ray"),
            "start",
            *args,
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp_dir}",
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            f"--resources={json.dumps(resources or {})}",
            "--object-store-memory=100000000",
            f"--node-manager-port={node_manager}",
            f"--object-manager-port={object_manager}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--dashboard-agent-listen-port={agent_http}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime_env}",
            f"--min-worker-port={low}",
            f"--max-worker-port={high}",
            "--disable-usage-stats",
        ]
        log_path = self.root / f"{name}-start.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=base_env(),
                cwd=str(REPO_ROOT),  # a Ray Job's entrypoint runs here
                start_new_session=True,
            )
        self.sessions.append(process.pid)  # the node's daemons stay in this session
        self.session_created[process.pid] = created_at(process.pid)  # our child: not reaped yet
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            raise RuntimeError(f"ray start ({name}) failed ({code}):\n{log_path.read_text()[-4000:]}")

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes, from the dashboard's state API: node_id, is_head_node, resources_total."""
        from ray.util.state import list_nodes

        rows = list_nodes(address=self.dashboard_url, filters=[("state", "=", "ALIVE")], raise_on_missing_output=False)
        return [dict(node.__dict__) if not isinstance(node, dict) else node for node in rows]

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: its nodes' daemons, their workers and jobs' drivers."""
        return find_processes(sessions=self._our_sessions(), cmdline_markers=[f"{self.root}/"])

    def _our_sessions(self) -> list[int]:
        return [s for s in self.sessions if session_still_ours(s, self.session_created.get(s))]

    def stop(self) -> None:
        """Kill every process of this cluster (SIGKILL: nothing of it needs to survive)."""
        for _ in range(4):  # a few rounds, each with the sessions that are still ours (see ``reap``)
            processes = self.processes()
            if not processes:
                break
            kill_processes(processes)


@contextlib.contextmanager
def ray_cluster(prefix: str = "rt") -> Iterator[RayCluster]:
    """A ``RayCluster`` under a short fresh /tmp dir, killed and removed on the way out."""
    root = short_tmp(prefix)
    cluster = RayCluster(root)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------ PostgreSQL


class PrivatePostgres:
    """A PostgreSQL 15 server of this test alone (``initdb`` in a temp dir, its own port)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        (self.port,) = free_ports(1)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=timeout, cwd=str(self.root), check=False
        )
        if result.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed: {result.stdout}{result.stderr}\n{log}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server, started; stopped (immediate) and removed on the way out."""
    if not (PG_BIN / "initdb").exists():
        message = f"no PostgreSQL binaries under {PG_BIN}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run the PostgreSQL outage test", pytrace=False)
        pytest.skip(message)
    server = PrivatePostgres(short_tmp("pg"))
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            with contextlib.suppress(Exception):
                server.stop("immediate")
        # whatever is left of it (a postmaster that would not stop)
        reap(cmdline_markers=[str(server.data)])
        shutil.rmtree(server.root, ignore_errors=True)


# ------------------------------------------------------------------------------------------ service


def bound_port(log_path: Path) -> int | None:
    """The port ``demonlab serve`` bound (it prints ``dashboard at http://host:PORT/``), if it has yet."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    found = re.findall(r"dashboard at http://\S+?:(\d+)/", text)
    return int(found[-1]) if found else None


class ServeProcess:
    """``demonlab serve`` in a subprocess of its own session (SIGKILL it to "crash" the service).

    It binds the port itself (``--port 0``) and says which in its log: no port is chosen here and
    released for it to take (another process could take it in between)."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60) -> ServeProcess:
        command = [str(VENV_BIN / "demonlab"), "serve", "--port", "0", "--log-level", "warning"]
        self.log_path.write_bytes(b"")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=str(REPO_ROOT),
                start_new_session=True,
            )
        wait_until(self._ready, timeout=timeout, interval=0.2, what=f"demonlab serve ({self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"demonlab serve exited ({self.process.returncode}):\n{self.log_tail()}")
        self.port = self.port or bound_port(self.log_path)
        if self.port is None:
            return False
        import httpx

        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL the server process alone (the drivers it launched live in their own sessions)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def serve_env(*, database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``demonlab serve`` (and so of its drivers): ``settings`` are DEMONLAB_* names
    without the prefix, e.g. ``RAY_ADDRESS="127.0.0.1:6379"``."""
    extra = {"DEMONLAB_DATABASE_URL": database_url, "DEMONLAB_DATA_DIR": str(data_dir)}
    extra |= {f"DEMONLAB_{name.upper()}": value for name, value in settings.items()}
    return base_env(**extra)


def data_dir_processes(data_dir: Path) -> list[psutil.Process]:
    """Processes run for this data dir: servers, drivers and the Ray they started (by environment)."""
    return find_processes(env_markers={"DEMONLAB_DATA_DIR": str(data_dir)})


def reap_data_dir(data_dir: Path) -> int:
    """Kill every process run for this data dir (servers, drivers, their Ray)."""
    return reap(env_markers={"DEMONLAB_DATA_DIR": str(data_dir)})


# ------------------------------------------------------------------------------------------ studies


def synthetic_spec(
    name: str,
    *,
    lrs: Sequence[float] = (0.01, 0.1),
    betas: Sequence[float] = (0.9,),
    seeds: int = 1,
    epochs: int = 2,
    n_train: int | None = None,
    resources: dict[str, Any] | None = None,
    mode: str = "per_trial",
) -> dict[str, Any]:
    """A small grid study on the synthetic workload (one arm): len(lrs) × len(betas) × seeds trials,
    run per trial (``mode``: or ``packed``)."""
    spec: dict[str, Any] = {
        "name": name,
        "workload": "synthetic",
        "arms": ["demon_sgdm"],
        "lr": list(lrs),
        "beta_init": list(betas),
        "seeds": seeds,
        "epochs": epochs,
        "resources": resources or {"cpu": 1, "gpu": 0},
        "execution": {"mode": mode},  # per trial by default: these tests are about Ray's trials, one by one
    }
    if n_train is not None:
        spec["workload_params"] = {"n_train": n_train}
    return spec


def wait_for_study(
    client: DemonlabClient, study_id: str, *, timeout: float, until: Callable[[Any], bool] | None = None
) -> Any:
    """Poll the study until ``until(study)`` (default: finished); the study, or TimeoutError with its state."""
    last: list[Any] = [None]

    def check() -> Any:
        study = client.get_study(study_id)
        last[0] = study
        done = until(study) if until else study.status in ("completed", "failed", "cancelled")
        return study if done else None

    try:
        return wait_until(check, timeout=timeout, interval=0.5, what=f"study {study_id}")
    except TimeoutError as exc:
        study = last[0]
        state = f"{study.status}, {study.progress.done}/{study.progress.total}" if study else "never answered"
        raise TimeoutError(f"{exc} (last seen: {state})") from None


def trial_rows(database_url: str, study_id: str) -> list[dict[str, Any]]:
    """Every stored trial of a study, straight from the database, with its number of curve points."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            epochs = select(TrialEpoch.trial_id, func.count().label("points")).group_by(TrialEpoch.trial_id).subquery()
            query = (
                select(
                    Trial.arm,
                    Trial.lr,
                    Trial.beta_init,
                    Trial.seed,
                    Trial.status,
                    Trial.node,
                    Trial.epochs_done,
                    Trial.extra,
                    func.coalesce(epochs.c.points, 0).label("points"),
                )
                .outerjoin(epochs, epochs.c.trial_id == Trial.id)
                .where(Trial.study_id == study_id)
            )
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


def study_rows(database_url: str, study_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """id → {status, attempts, claimed_by, job_id, error} straight from the database."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            query = select(Study.id, Study.status, Study.attempts, Study.claimed_by, Study.job_id, Study.error).where(
                Study.id.in_(list(study_ids))
            )
            return {row.id: dict(row._mapping) for row in connection.execute(query)}
    finally:
        engine.dispose()


def assert_each_trial_once(database_url: str, study_id: str, *, total: int, epochs: int) -> list[dict[str, Any]]:
    """Every trial of the study stored exactly once, completed, with one curve point per epoch."""
    rows = trial_rows(database_url, study_id)
    keys = [(r["arm"], r["lr"], r["beta_init"], r["seed"]) for r in rows]
    assert len(rows) == total, f"{len(rows)} trial rows for {total} trials"
    assert len(set(keys)) == total, f"duplicate trial keys: {sorted(keys)}"
    statuses = {str(getattr(r["status"], "value", r["status"])) for r in rows}
    assert statuses == {"completed"}, f"trial statuses {statuses}: {rows}"
    assert all(r["epochs_done"] == epochs and r["points"] == epochs for r in rows), rows
    return rows
