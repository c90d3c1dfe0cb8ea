"""API latency: p50 and p99 of the grid, sensitivity and trials-page endpoints under concurrent clients.

What it measures, per database (SQLite, PostgreSQL or both):

1. Setup (not timed as part of the result): ``--rows`` synthetic trial rows (default 100,000) in
   ``--studies`` completed studies (default 20). Each study is 4 arms × 11 lr × 6 β_init × S seeds on
   ``digits_mlp`` (error rate, lower is better), S chosen so the studies hold at least ``--rows`` rows
   (100,000 → 19 seeds, 5,016 trials per study, 100,320 rows). Studies are created through the DAL
   (``service.submission.store_study``, then claimed and ``dal.finish_study``-ed as completed, which recomputes their
   progress counters); the trial rows and their curves are bulk-inserted with SQLAlchemy core
   ``insert`` executemany, since ``dal.record_trial_result`` per row (lock, upsert, recount) is far
   too slow for 100,000 rows. Results come from a made-up sensitivity landscape: a valley in
   log10(lr) whose floor moves with β_init, seed noise, and divergence growing with lr/(1−β)
   (diverged trials keep a chance-level metric and a NaN or inf loss). One trial in
   ``--curve-every`` (default 4) gets a per-epoch curve of ``--epochs`` (5) points.
   PostgreSQL gets an ``ANALYZE`` after the load, as autovacuum would do shortly after.
2. A real server: ``demonlab serve --no-scheduler`` in a subprocess (its own interpreter, so the
   load generator does not share its GIL), on a free loopback port, access log off.
3. Cold calls, one request in flight: the first ``/grid`` of every (study, arm) and the first
   ``/sensitivity`` of every study — what the first visitor of a finished study waits for.
4. Steady state, ``--clients`` (default 20) closed-loop clients (threads, one keep-alive connection
   each, no think time), ``--requests`` (default 10,000) requests per endpoint spread
   uniformly at random over the studies (and arms, and page offsets), one endpoint at a time:
   ``GET /api/v1/studies/{id}/grid?arm=A``, ``/sensitivity`` and ``/trials?limit=100&offset=K``.
   Each phase stops early after ``--max-seconds`` (default 30). At ~1,400 grid requests a second a
   phase lasts several seconds, so it includes the background checks of each finished study's
   answers against the database (every 5 s a study, ``service.report_cache.SettledAnswers``): 400
   requests took 0.3 s and never saw one. Latency is measured by the client around each request, so
   it includes queueing in the server (20 requests in flight) and the client's own work. The
   clients are ``http.client`` connections by default (``--client stdlib``): the load generator
   shares the server's 2 cores, and ``httpx`` costs it enough CPU a request that its own 20 threads
   make the tail (``--client httpx``, 2026-12-07: ``/healthz`` p99 49 ms, the grid 48 ms; with
   ``http.client`` 18 and 22 ms, the server's CPU per request the same).
   Then grid, sensitivity and healthz again with one client (one request in flight): what a reader
   alone waits for, with no queue. The targets are judged on the concurrent table.

5. The dashboard's study page (``--study-page-trials``, default 100,000; 5,000 with ``--quick``; 0
   skips it): one more study of that size in a fresh database and server; every request the page
   makes (its HTML, ``/heatmaps``, the figures fragment, ``/placement``, the static files) timed one at a time, cold
   (the study's first visitor, after an unmeasured warm-up of the same code on another metric) and
   warm (median of 5 later visits); then, on a fresh server process, the cold page as a browser loads
   it (the HTML, then the other requests in parallel). Target: the cold total under 1 s.

It prints one table per database (endpoint, n, p50 ms, p99 ms, target, met?) plus the cold-call
latencies. Targets (from the issue): grid p99 ≤ 25 ms, sensitivity p99 ≤ 250 ms; the trials page
has none. Exit status: 1 if any request failed, or with ``--check`` if a target was missed; else 0.
On a machine shared with other work the numbers move by tens of percent between runs: client and
server compete for the same cores.

    python bench/api_latency.py [--db sqlite|postgres|both] [--rows N] [--requests N] [--clients N]
                                [--quick]

``--quick`` is the smoke-test size: 4 studies of 5 seeds (5,280 rows), 40 requests per endpoint.
PostgreSQL: a throw-away database ``demonlab_bench_<pid>_<hex>`` on ``--postgres-url`` (default
``$DEMONLAB_BENCH_POSTGRES_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), dropped
at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES_URL = os.environ.get(
    "DEMONLAB_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ARMS = ("demon_sgdm", "sgdm_step", "sgdm_cosine", "demon_adam")
LRS = tuple(round(10 ** (-3 + 0.3 * i), 6) for i in range(11))  # 1e-3 … 1.0, 11 log-spaced values
BETAS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
WORKLOAD = "digits_mlp"
CHANCE_ERROR = 0.9  # digits_mlp: 10 classes
# The same load on two reference endpoints, for scale: a study's detail (the framework plus one database
# read, the least any results endpoint does) and /healthz (the framework and the client alone).
REFERENCES = ("study", "healthz")
TARGETS_MS: dict[str, float | None] = {"grid": 25.0, "sensitivity": 250.0}
ENDPOINTS = ("grid", "sensitivity", "trials")
PAGE = 100
PENDING: dict[str, list[Any]] = {}  # populate(pending_every=K): results not stored yet, per study


@dataclass(frozen=True)
class Layout:
    """How many studies and seeds make up the rows asked for."""

    studies: int
    seeds: int

    @property
    def per_study(self) -> int:
        return len(ARMS) * len(LRS) * len(BETAS) * self.seeds

    @property
    def rows(self) -> int:
        return self.studies * self.per_study

    def describe(self) -> str:
        return (
            f"{self.rows:,} trials in {self.studies} studies "
            f"({len(ARMS)} arms × {len(LRS)} lr × {len(BETAS)} β × {self.seeds} seeds = {self.per_study:,} each)"
        )


def layout_for(rows: int, studies: int) -> Layout:
    cells = studies * len(ARMS) * len(LRS) * len(BETAS)
    return Layout(studies=studies, seeds=max(1, math.ceil(rows / cells)))


# ------------------------------------------------------------------------------------------------ data


def study_spec(name: str, seeds: int, epochs: int) -> Any:
    """A validated ``StudySpec`` of the benchmark's grid (what ``POST /studies`` would have stored)."""
    from studies.spec import StudySpec

    raw = {
        "name": name,
        "workload": WORKLOAD,
        "arms": list(ARMS),
        "lr": list(LRS),
        "beta_init": list(BETAS),
        "seeds": seeds,
        "epochs": epochs,
        "batch_size": 32,
        "metric": "error",
        "split": "val",
    }
    return StudySpec.model_validate(raw, context={"max_trials": math.inf})


def synthetic_result(
    rng: random.Random, study_shift: float, arm: str, lr: float, beta: float, seed: int, epochs: int
) -> Any:
    """One made-up ``TrialResult``: a valley in log10(lr) whose floor moves with β; divergence grows
    with the effective step lr/(1−β) (Demon arms a little more robust)."""
    from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus

    demon = arm.startswith("demon_")
    adam = arm.endswith("adam")
    best_log_lr = (-3.0 if adam else -1.5) + math.log10(1 - beta) * (0.0 if demon else 0.6) + study_shift
    width = 1.1 if demon else 0.8
    floor = 0.03 + 0.01 * ARMS.index(arm) + 0.02 * abs(beta - 0.9)
    error = floor + 0.12 * ((math.log10(lr) - best_log_lr) / width) ** 2 + rng.gauss(0, 0.008)
    error = min(max(error, 0.005), CHANCE_ERROR)
    effective = lr / (1 - beta) * (0.02 if adam else 1.0)
    p_diverge = min(0.95, max(0.0, (math.log10(effective) - (0.7 if demon else 0.4)) * 0.5))
    key = TrialKey(arm=arm, lr=lr, beta_init=beta, seed=seed)
    if rng.random() < p_diverge:
        blown_at = rng.randint(1, epochs)
        loss = math.nan if rng.random() < 0.7 else math.inf
        curve = tuple(
            EpochRecord(epoch=e, train_loss=2.3 if e < blown_at else loss, val_loss=2.3, val_metric=CHANCE_ERROR)
            for e in range(1, blown_at + 1)
        )
        return TrialResult(
            key=key,
            status=TrialStatus.DIVERGED,
            epochs=curve,
            val_metric=CHANCE_ERROR,
            val_loss=loss,
            test_metric=None,
            test_loss=None,
            best_val_metric=CHANCE_ERROR,
            epochs_done=blown_at,
            wall_seconds=round(rng.uniform(1, 5) * blown_at, 3),
            node="bench",
        )
    test_error = min(max(error + rng.gauss(0, 0.004), 0.005), CHANCE_ERROR)
    curve = tuple(
        EpochRecord(
            epoch=e,
            train_loss=0.1 + 2.2 * (error / CHANCE_ERROR) ** (e / epochs),
            val_loss=0.12 + 2.2 * (error / CHANCE_ERROR) ** (e / epochs),
            val_metric=CHANCE_ERROR * (error / CHANCE_ERROR) ** (e / epochs),
        )
        for e in range(1, epochs + 1)
    )
    return TrialResult(
        key=key,
        status=TrialStatus.COMPLETED,
        epochs=curve,
        val_metric=error,
        val_loss=0.12 + 2.2 * error / CHANCE_ERROR,
        test_metric=test_error,
        test_loss=0.12 + 2.2 * test_error / CHANCE_ERROR,
        best_val_metric=error,
        epochs_done=epochs,
        wall_seconds=round(rng.uniform(5, 25), 3),
        node="bench",
    )


def populate(
    url: str,
    layout: Layout,
    *,
    epochs: int,
    curve_every: int,
    seed: int = 0,
    pending_every: int = 0,
    finish: bool = True,
) -> tuple[list[str], float]:
    """Create the studies (DAL) and bulk-insert their trials and curves; returns (study ids, seconds).

    With ``pending_every`` K, one trial in K is stored pending, its result kept in ``PENDING`` (study
    id → results) for a writer to record later; without ``finish`` the studies stay running."""
    from sqlalchemy import Table, insert, select

    from service.db import dal
    from service.db.engine import make_engine, session_scope
    from service.db.migrations import upgrade_to_head
    from service.db.models import Trial, TrialEpoch, utcnow
    from service.db.nonfinite import encode_float
    from service.submission import store_study
    from studies.spec import expand_trials

    started = time.perf_counter()
    engine = make_engine(url)
    upgrade_to_head(engine)
    rng = random.Random(seed)
    ids: list[str] = []
    try:
        for n in range(layout.studies):
            spec = study_spec(f"bench-{n:02d}", layout.seeds, epochs)
            keys = expand_trials(spec)
            shift = rng.uniform(-0.3, 0.3)
            results = [synthetic_result(rng, shift, k.arm, k.lr, k.beta_init, k.seed, epochs) for k in keys]
            later = results[::pending_every] if pending_every > 0 else []
            results = [r for i, r in enumerate(results) if pending_every <= 0 or i % pending_every]
            with session_scope(engine) as session:
                # No trial keys here: the rows arrive below complete with their results.
                study = store_study(session, spec, launcher="local", with_trials=False)
                rows = [
                    {"study_id": study.id, "arm": r.key.arm, "lr": r.key.lr, "beta_init": r.key.beta_init}
                    | {"seed": r.key.seed, "attempts": 1}
                    | dal._result_columns(r)  # the DAL's own encoding of a result's columns
                    for r in results
                ]
                session.execute(insert(cast(Table, Trial.__table__)), rows)
                if later:  # rows of their own shape: one executemany each
                    pending = [
                        {"study_id": study.id, "arm": r.key.arm, "lr": r.key.lr, "beta_init": r.key.beta_init}
                        | {"seed": r.key.seed, "status": "pending", "updated_at": utcnow()}
                        for r in later
                    ]
                    session.execute(insert(cast(Table, Trial.__table__)), pending)
                trial_ids = {
                    (arm, lr, beta, s): tid
                    for tid, arm, lr, beta, s in session.execute(
                        select(Trial.id, Trial.arm, Trial.lr, Trial.beta_init, Trial.seed).where(
                            Trial.study_id == study.id
                        )
                    )
                }
                epoch_rows = []
                for i, r in enumerate(results):
                    if curve_every <= 0 or i % curve_every:
                        continue
                    trial_id = trial_ids[(r.key.arm, r.key.lr, r.key.beta_init, r.key.seed)]
                    for record in r.epochs:
                        row: dict[str, Any] = {"trial_id": trial_id, "epoch": record.epoch}
                        for name in dal.EPOCH_VALUE_NAMES:
                            row[name], row[f"{name}_kind"] = encode_float(getattr(record, name))
                        epoch_rows.append(row)
                if epoch_rows:
                    session.execute(insert(cast(Table, TrialEpoch.__table__)), epoch_rows)
            ids.append(study.id)
            PENDING[study.id] = later
        with session_scope(engine) as session:
            claimed = dal.claim_queued_studies(session, limit=len(ids), launcher_id="bench")
            assert sorted(s.id for s in claimed) == sorted(ids), "another scheduler claimed a bench study"
        for study_id in ids:
            with session_scope(engine) as session:
                if finish:
                    dal.finish_study(session, study_id, status="completed")
                else:  # a running study's counters, as its driver's results keep them
                    dal._refresh_progress(session, dal.get_study(session, study_id))
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return ids, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- server


@contextmanager
def serve(url: str, data_dir: Path, *, scheduler: bool = False) -> Iterator[tuple[str, int]]:
    """``demonlab serve --no-scheduler`` (or with its scheduler) on a port it binds itself; yields its
    base URL and pid."""
    import httpx
    from served import start_serve

    env = os.environ | {
        "DEMONLAB_DATABASE_URL": url,
        "DEMONLAB_DATA_DIR": str(data_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    args = ([] if scheduler else ["--no-scheduler"]) + ["--log-level", "warning"]
    log_path = data_dir / "server.log"
    process, base = start_serve(args, env=env, log=log_path, cwd=data_dir)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become ready:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------------------------ load


def process_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process has used so far; None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class HttpxClient:
    """One keep-alive ``httpx.Client``: what a Python client of the service would use."""

    def __init__(self, base: str, timeout: float) -> None:
        import httpx

        self._http = httpx.Client(base_url=base, timeout=timeout)

    def get(self, path: str) -> tuple[int, bytes]:
        response = self._http.get(path)
        return response.status_code, response.content

    def close(self) -> None:
        self._http.close()


class StdlibClient:
    """One keep-alive ``http.client.HTTPConnection``: a lighter load generator (less client CPU)."""

    def __init__(self, base: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(base)
        self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)

    def get(self, path: str) -> tuple[int, bytes]:
        self._connection.request("GET", path)
        response = self._connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self._connection.close()


CLIENTS: dict[str, type[HttpxClient] | type[StdlibClient]] = {"httpx": HttpxClient, "stdlib": StdlibClient}


@dataclass
class Phase:
    """The latencies (ms) of one endpoint's requests, and what went wrong."""

    endpoint: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    planned: int = 0
    server_cpu_s: float | None = None  # the API process's CPU time during the phase

    @property
    def server_cpu_ms_per_request(self) -> float:
        return math.nan if self.server_cpu_s is None or not self.n else self.server_cpu_s / self.n * 1000

    @property
    def n(self) -> int:
        return len(self.latencies_ms)

    def quantile(self, q: float) -> float:
        """Linear-interpolated quantile (numpy's default), NaN without samples."""
        values = sorted(self.latencies_ms)
        if not values:
            return math.nan
        position = q * (len(values) - 1)
        low = math.floor(position)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (position - low)


def paths_for(endpoint: str, ids: list[str], layout: Layout, count: int, rng: random.Random) -> list[str]:
    """``count`` request paths for ``endpoint``, uniformly over studies (arms, page offsets)."""
    paths = []
    for _ in range(count):
        study = rng.choice(ids)
        if endpoint == "healthz":
            paths.append("/healthz")
        elif endpoint == "study":
            paths.append(f"/api/v1/studies/{study}")
        elif endpoint == "grid":
            paths.append(f"/api/v1/studies/{study}/grid?arm={rng.choice(ARMS)}")
        elif endpoint == "sensitivity":
            paths.append(f"/api/v1/studies/{study}/sensitivity")
        else:
            offset = rng.randrange(0, max(1, layout.per_study - PAGE + 1))
            paths.append(f"/api/v1/studies/{study}/trials?limit={PAGE}&offset={offset}")
    return paths


def run_concurrent(
    base: str,
    endpoint: str,
    paths: list[str],
    clients: int,
    max_seconds: float,
    client_kind: str = "httpx",
    server_pid: int | None = None,
) -> Phase:
    """``clients`` closed-loop clients share ``paths`` (each takes the next as soon as it is done)."""
    phase = Phase(endpoint, planned=len(paths))
    lock = threading.Lock()
    queue = iter(paths)
    start = threading.Barrier(clients + 1)
    deadline: list[float] = []

    def take() -> str | None:
        with lock:
            if deadline and time.perf_counter() > deadline[0]:
                return None
            return next(queue, None)

    def client() -> None:
        http = CLIENTS[client_kind](base, 60)
        try:
            http.get("/healthz")  # open the keep-alive connection before the clock starts
        finally:
            start.wait()
        try:
            while (path := take()) is not None:
                t0 = time.perf_counter()
                try:
                    status, body = http.get(path)
                    elapsed = (time.perf_counter() - t0) * 1000
                    ok, detail = status == 200, f"{status} {body[:200]!r}"
                except Exception as exc:  # a failed request is reported, not fatal
                    elapsed, ok, detail = math.nan, False, repr(exc)
                    http.close()
                    http = CLIENTS[client_kind](base, 60)
                with lock:
                    if ok:
                        phase.latencies_ms.append(elapsed)
                    else:
                        phase.errors.append(f"GET {path}: {detail}")
        finally:
            http.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    cpu_before = process_cpu_s(server_pid)
    start.wait()
    t0 = time.perf_counter()
    deadline.append(t0 + max_seconds)
    for thread in threads:
        thread.join()
    phase.wall_s = time.perf_counter() - t0
    cpu_after = process_cpu_s(server_pid)
    if cpu_before is not None and cpu_after is not None:
        phase.server_cpu_s = cpu_after - cpu_before
    return phase


def run_cold(base: str, ids: list[str], client_kind: str = "httpx") -> dict[str, Phase]:
    """The first /sensitivity of each study and the first /grid of each (study, arm), one at a time;
    each answer is checked for the benchmark's grid shape."""
    phases = {"grid": Phase("grid"), "sensitivity": Phase("sensitivity")}
    http = CLIENTS[client_kind](base, 120)
    try:
        http.get("/healthz")
        for study in ids:
            requests = [("sensitivity", f"/api/v1/studies/{study}/sensitivity")]
            requests += [("grid", f"/api/v1/studies/{study}/grid?arm={arm}") for arm in ARMS]
            for endpoint, path in requests:
                phase = phases[endpoint]
                phase.planned += 1
                t0 = time.perf_counter()
                status, body = http.get(path)
                elapsed = (time.perf_counter() - t0) * 1000
                problem = f"{status} {body[:200]!r}" if status != 200 else _shape_problem(endpoint, json.loads(body))
                if problem:
                    phase.errors.append(f"GET {path}: {problem}")
                else:
                    phase.latencies_ms.append(elapsed)
    finally:
        http.close()
    return phases


def _shape_problem(endpoint: str, body: dict[str, Any]) -> str | None:
    """What is wrong with a 200 answer (None: it has the benchmark's arms and grid)."""
    if endpoint == "grid":
        shape = (len(body["values"]), {len(row) for row in body["values"]})
        return None if shape == (len(LRS), {len(BETAS)}) else f"grid of shape {shape}"
    arms = sorted(body["arms"])
    return None if arms == sorted(ARMS) else f"arms {arms}"


# ---------------------------------------------------------------------------------------------- report


def fmt_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def print_table(
    db: str,
    layout: Layout,
    clients: int,
    client: str,
    load_s: float,
    cold: dict[str, Phase],
    steady: list[Phase],
    solo: list[Phase],
) -> bool:
    """Print the tables; return whether every target was met (under ``clients`` clients)."""
    print(f"\n== {db}: {layout.describe()}; loaded in {load_s:.1f} s ==")
    print(f"steady state, {clients} concurrent {client} clients (closed loop, no think time):")
    all_met = _print_steady(steady)
    print("(cpu ms/req: the API process's CPU time per request, PostgreSQL's own excluded)")
    if solo:
        print(f"one {client} client, one request in flight (what a reader alone waits for; no queueing):")
        _print_steady(solo)
    print("cold calls (first request per study, or per study and arm for grid; one request in flight):")
    header = f"{'endpoint':<20}{'n':>6}{'p50 ms':>10}{'mean ms':>10}{'max ms':>10}"
    print(header)
    print("-" * len(header))
    for phase in cold.values():
        mean = statistics.fmean(phase.latencies_ms) if phase.latencies_ms else math.nan
        print(
            f"{phase.endpoint + ' (cold)':<20}{phase.n:>6}{fmt_ms(phase.quantile(0.5)):>10}{fmt_ms(mean):>10}"
            f"{fmt_ms(max(phase.latencies_ms, default=math.nan)):>10}"
        )
    return all_met


def _print_steady(steady: list[Phase]) -> bool:
    """One steady-state table; whether each of its targets was met."""
    header = (
        f"{'endpoint':<20}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'req/s':>8}{'cpu ms/req':>12}"
        f"  {'target':<15}met?"
    )
    print(header)
    print("-" * len(header))
    all_met = True
    for phase in steady:
        target = TARGETS_MS.get(phase.endpoint)
        p99 = phase.quantile(0.99)
        if target is None:
            target_text, met = "-", "-"
        else:
            ok = phase.n > 0 and p99 <= target
            all_met &= ok
            target_text, met = f"p99 <= {target:g} ms", "yes" if ok else "NO"
        rate = phase.n / phase.wall_s if phase.wall_s else math.nan
        name = f"{phase.endpoint} (ref)" if phase.endpoint in REFERENCES else phase.endpoint
        short = "" if phase.n == phase.planned else f"  ({phase.n}/{phase.planned}: stopped at --max-seconds)"
        print(
            f"{name:<20}{phase.n:>6}{fmt_ms(phase.quantile(0.5)):>9}{fmt_ms(p99):>9}"
            f"{fmt_ms(max(phase.latencies_ms, default=math.nan)):>9}{rate:>8.0f}"
            f"{fmt_ms(phase.server_cpu_ms_per_request):>12}  {target_text:<15}{met}{short}"
        )
    return all_met


# ------------------------------------------------------------------------------------------- databases


@contextmanager
def database(kind: str, workdir: Path, admin_url: str) -> Iterator[str]:
    """A fresh empty database of ``kind``; PostgreSQL's is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"demonlab_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def bench_one(kind: str, args: argparse.Namespace, layout: Layout) -> tuple[bool, bool]:
    """Load, serve and measure one database; returns (no request failed, every target met)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"demonlab-bench-{kind}-"))
    try:
        with database(kind, workdir, args.postgres_url) as url:
            ids, load_s = populate(url, layout, epochs=args.epochs, curve_every=args.curve_every)
            with serve(url, workdir) as (base, pid):
                cold = run_cold(base, ids, args.client)
                rng = random.Random(1)
                # Unmeasured warm-up at full concurrency on an endpoint outside the caches (a study's
                # detail): the server's thread pool and database pool grow to their steady size here.
                warm_paths = [f"/api/v1/studies/{rng.choice(ids)}" for _ in range(5 * args.clients)]
                warm = run_concurrent(base, "warm-up", warm_paths, args.clients, args.max_seconds, args.client)
                steady = []
                for endpoint in (*ENDPOINTS, *REFERENCES):
                    paths = paths_for(endpoint, ids, layout, args.requests, rng)
                    phase = run_concurrent(base, endpoint, paths, args.clients, args.max_seconds, args.client, pid)
                    steady.append(phase)
                solo = []  # the same endpoints with one client: the server's own latency, no queue
                for endpoint in ("grid", "sensitivity", "healthz"):
                    paths = paths_for(endpoint, ids, layout, args.requests, rng)
                    solo.append(run_concurrent(base, endpoint, paths, 1, args.max_seconds, args.client, pid))
            met = print_table(kind, layout, args.clients, args.client, load_s, cold, steady, solo)
            errors = [e for phase in [*cold.values(), warm, *steady, *solo] for e in phase.errors]
            if errors:
                print(f"{len(errors)} requests failed; first: {errors[0]}")
            return not errors, met
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------- the study page

PAGE_TARGET_MS = 1000.0  # the dashboard's study page of a 100,000-trial study loads in under 1 s
STATIC = ("app.css", "common.js", "charts.js", "study_answer.js", "study_maps.js", "study_trials.js", "study.js")


def study_page_requests(study_id: str) -> list[tuple[str, str]]:
    """What a browser fetches to show a study's page (its event stream aside: it stays open)."""
    return [
        ("page HTML", f"/studies/{study_id}"),
        ("heatmaps JSON", f"/api/v1/studies/{study_id}/heatmaps?split=test"),
        ("sensitivity JSON (verdicts, forest)", f"/api/v1/studies/{study_id}/sensitivity?split=test"),
        ("placement JSON", f"/api/v1/studies/{study_id}/placement"),
        ("trials page (25)", f"/api/v1/studies/{study_id}/trials?limit=25&offset=0"),
        *((f"static {name}", f"/static/{name}") for name in STATIC),
    ]


def _warm_up(http: Any, study_id: str) -> None:
    """Unmeasured: the same code paths on the loss (another frame, other cache keys), so "cold" is a
    finished study's first visitor, not the server's first request after start (lazy imports, the
    start-up warm-up thread)."""
    http.get("/healthz")
    for path in (
        f"/api/v1/studies/{study_id}/heatmaps?metric=loss",
        f"/api/v1/studies/{study_id}/sensitivity?metric=loss",
    ):
        http.get(path)


def _get_ms(http: Any, path: str) -> float:
    t0 = time.perf_counter()
    status, body = http.get(path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return (time.perf_counter() - t0) * 1000


def _as_a_browser(base: str, client: str, study_id: str) -> float:
    """The page as a browser loads it: the HTML, then its data and static requests at once (six
    connections, as browsers open per origin); the wall time in ms until the last one answered."""
    from concurrent.futures import ThreadPoolExecutor

    requests = study_page_requests(study_id)
    clients = [CLIENTS[client](base, 120) for _ in range(len(requests) - 1)]
    try:
        for http in clients:
            http.get("/healthz")
        t0 = time.perf_counter()
        _get_ms(clients[0], requests[0][1])
        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(_get_ms, clients, [path for _, path in requests[1:]]))
        return (time.perf_counter() - t0) * 1000
    finally:
        for http in clients:
            http.close()


def _store_report_as_the_driver_does(url: str, study_id: str) -> float:
    """The driver's step at a study's end: compute and store its sensitivity report; its seconds."""
    from service.db.engine import make_engine
    from service.jobs.driver import _store_report

    engine = make_engine(url)
    started = time.perf_counter()
    try:
        _store_report(engine, study_id)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def bench_study_page(kind: str, args: argparse.Namespace, trials: int) -> bool:
    """One study of about ``trials`` trials: the study page's requests, cold (first visitor) and warm
    (median of 5 later visits), one request at a time; then, on a fresh server, the cold page as a
    browser loads it (data requests in parallel). Returns whether the page met its target.

    Before the page is visited, the bench does what a study's driver does when the study ends: it
    computes the study's sensitivity report and stores it (``service.jobs.driver._store_report``);
    that step's time is printed apart ("report stored at study end")."""
    layout = layout_for(trials, 1)
    workdir = Path(tempfile.mkdtemp(prefix=f"demonlab-bench-page-{kind}-"))
    try:
        with database(kind, workdir, args.postgres_url) as url:
            ids, load_s = populate(url, layout, epochs=args.epochs, curve_every=args.curve_every, seed=7)
            stored_s = _store_report_as_the_driver_does(url, ids[0])
            with serve(url, workdir) as (base, _pid):
                http = CLIENTS[args.client](base, 900)
                try:
                    _warm_up(http, ids[0])
                    rows = []
                    for label, path in study_page_requests(ids[0]):
                        times = [_get_ms(http, path) for _ in range(6)]
                        rows.append((label, times[0], statistics.median(times[1:])))
                finally:
                    http.close()
            with serve(url, workdir) as (base, _pid):  # a fresh process: nothing cached
                http = CLIENTS[args.client](base, 900)
                try:
                    _warm_up(http, ids[0])
                finally:
                    http.close()
                browser_ms = _as_a_browser(base, args.client, ids[0])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\n== {kind}: the dashboard's study page, one study of {layout.per_study:,} trials; "
        f"loaded in {load_s:.1f} s =="
    )
    print(f"report stored at study end (the driver's last step): {stored_s:.1f} s")
    print(f"{'request':<26}{'cold ms':>10}{'warm ms':>10}")
    print("-" * 46)
    for label, cold, warm in rows:
        print(f"{label:<26}{cold:>10.1f}{warm:>10.1f}")
    cold_total = sum(r[1] for r in rows)
    warm_total = sum(r[2] for r in rows)
    print(f"{'total (one at a time)':<26}{cold_total:>10.1f}{warm_total:>10.1f}")
    print(f"{'cold, as a browser loads':<26}{browser_ms:>10.1f}     (the HTML, then the rest in parallel)")
    met = cold_total < PAGE_TARGET_MS
    print(f"study page target: cold total < {PAGE_TARGET_MS:g} ms: {'yes' if met else 'NO'}")
    return met


# ------------------------------------------------------------------------- readers and a running study

LANDING_TARGET_P90_MS = 100.0


def bench_while_results_land(kind: str, args: argparse.Namespace) -> bool:
    """``/sensitivity`` of a running study while its results land: one study of the bench's grid
    (5,016 trials at 19 seeds) with every fourth result still to come; a writer records them one
    transaction each (``dal.record_trial_result``, as the driver does) at ``--landing-rate`` per second
    while ``--clients`` readers ask for the study's sensitivity for ``--landing-seconds``. Target:
    p90 ≤ 100 ms (the issue measured 354 ms, max 930, when every result meant a recomputation)."""
    from service.db import dal
    from service.db.engine import make_engine, session_scope

    layout = layout_for(5_016 if not args.quick else 1_000, 1)
    workdir = Path(tempfile.mkdtemp(prefix=f"demonlab-bench-landing-{kind}-"))
    landed = 0
    cold_s = math.nan
    try:
        with database(kind, workdir, args.postgres_url) as url:
            (study_id,), _ = populate(url, layout, epochs=args.epochs, curve_every=0, pending_every=4, finish=False)
            pending = PENDING.pop(study_id)
            engine = make_engine(url)
            stop = threading.Event()

            def writer() -> None:
                nonlocal landed
                for result in pending:
                    if stop.wait(1.0 / args.landing_rate):
                        return
                    with session_scope(engine) as session:
                        dal.record_trial_result(session, study_id, result)
                    landed += 1

            with serve(url, workdir) as (base, pid):
                http = CLIENTS[args.client](base, 600)
                cold_s = time.perf_counter()
                http.get(f"/api/v1/studies/{study_id}/sensitivity")  # the first reader's wait, reported apart
                cold_s = time.perf_counter() - cold_s
                http.close()
                thread = threading.Thread(target=writer, daemon=True)
                thread.start()
                count = int(args.landing_seconds * args.clients * 50)  # more than fit: the time bound ends it
                paths = [f"/api/v1/studies/{study_id}/sensitivity"] * count
                phase = run_concurrent(base, "sensitivity", paths, args.clients, args.landing_seconds, args.client, pid)
                stop.set()
                thread.join()
            engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    p90 = phase.quantile(0.9)
    print(
        f"\n== {kind}: /sensitivity while results land: one running study of {layout.per_study:,} trials, "
        f"{landed} results recorded at {args.landing_rate:g}/s during {phase.wall_s:.0f} s, {args.clients} readers =="
    )
    print(f"the first reader (nothing computed yet) waited {cold_s:.1f} s; then, as results land:")
    print(
        f"n {phase.n}  p50 {fmt_ms(phase.quantile(0.5))}  p90 {fmt_ms(p90)}  p99 {fmt_ms(phase.quantile(0.99))}  "
        f"max {fmt_ms(max(phase.latencies_ms, default=math.nan))} ms; errors {len(phase.errors)}"
    )
    met = p90 <= LANDING_TARGET_P90_MS and not phase.errors
    print(f"target: p90 ≤ {LANDING_TARGET_P90_MS:g} ms: {'yes' if met else 'NO'}")
    return met


def throughput_spec(name: str, epochs: int = 20) -> dict[str, Any]:
    """A packed synthetic study that trains for tens of seconds on 2 cores at 20 epochs (96 trials, 2
    packs); the smoke test trains it for 2."""
    return {
        "name": name,
        "workload": "synthetic",
        "workload_params": {"n_train": 16384, "hidden": 64},
        "arms": ["demon_sgdm", "sgdm_step"],
        "lr": [0.01, 0.03, 0.1, 0.3],
        "beta_init": [0.8, 0.9, 0.95],
        "seeds": 4,
        "epochs": epochs,
        "execution": {"mode": "packed", "pack_size": 48},
    }


def _run_study(base: str, name: str, readers: int, client_kind: str, epochs: int) -> tuple[float, Phase | None]:
    """Submit ``throughput_spec``; time it from running to finished, ``readers`` clients reading its
    sensitivity, grid and trials meanwhile. (seconds, the readers' phase)."""
    import httpx

    spec = throughput_spec(name, epochs)
    study_id = httpx.post(f"{base}/api/v1/studies", json=spec, timeout=60).json()["id"]

    def status() -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{base}/api/v1/studies/{study_id}", timeout=60).json()
        return body

    while status()["status"] == "queued":
        time.sleep(0.1)
    started = time.perf_counter()
    phase: Phase | None = None
    if readers:
        ends = ("sensitivity", "grid?arm=demon_sgdm", "trials?limit=100")
        paths = [f"/api/v1/studies/{study_id}/{ends[i % 3]}" for i in range(readers * 100_000)]
        box: list[Phase] = []
        thread = threading.Thread(
            target=lambda: box.append(run_concurrent(base, "readers", paths, readers, 900, client_kind)), daemon=True
        )
        # run_concurrent ends at its time bound or when the paths run out: stop it when the study ends
        thread.start()
        while status()["status"] == "running":
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        paths.clear()  # the readers' iterator sees an empty list from here: they finish their request and stop
        thread.join()
        phase = box[0] if box else None
    else:
        while status()["status"] == "running":
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    final = status()
    assert final["status"] == "completed", final
    return elapsed, phase


def bench_throughput_under_readers(kind: str, args: argparse.Namespace) -> None:
    """A running study's throughput with no reader and with ``--clients`` readers on its results
    (sensitivity, grid, trials pages), interleaved ``--throughput-rounds`` times on one server."""
    workdir = Path(tempfile.mkdtemp(prefix=f"demonlab-bench-throughput-{kind}-"))
    trials = 96
    rows: list[tuple[int, float, Phase | None]] = []
    try:
        with database(kind, workdir, args.postgres_url) as url, serve(url, workdir, scheduler=True) as (base, _pid):
            for round_ in range(args.throughput_rounds):
                for readers in (0, args.clients):
                    seconds, phase = _run_study(
                        base, f"throughput-{round_}-{readers}", readers, args.client, args.throughput_epochs
                    )
                    rows.append((readers, seconds, phase))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\n== {kind}: a packed study of {trials} trials (2 packs, {args.throughput_epochs} epochs), "
        "running → completed, with and without readers =="
    )
    for readers in (0, args.clients):
        times = [seconds for r, seconds, _ in rows if r == readers]
        per_min = [trials / t * 60 for t in times]
        print(
            f"{readers:>3} readers: wall min {min(times):.1f} s / median {statistics.median(times):.1f} s; "
            f"{max(per_min):.0f} / {statistics.median(per_min):.0f} trials/min (max / median)"
        )
        for _, _, phase in (row for row in rows if row[0] == readers and row[2] is not None):
            assert phase is not None
            print(
                f"     readers' requests: n {phase.n}, p50 {fmt_ms(phase.quantile(0.5))} ms, "
                f"p90 {fmt_ms(phase.quantile(0.9))} ms, p99 {fmt_ms(phase.quantile(0.99))} ms, "
                f"errors {len(phase.errors)}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rows", type=int, default=None, help="trial rows in all (default 100000)")
    parser.add_argument("--studies", type=int, default=None, help="studies the rows are spread over (default 20)")
    parser.add_argument("--requests", type=int, default=None, help="requests per endpoint (default 10000)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per trial (default 5)")
    parser.add_argument("--curve-every", type=int, default=4, help="one trial in K gets a stored curve (0: none)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time bound per steady-state phase")
    parser.add_argument("--quick", action="store_true", help="smoke-test size: 5,000 rows, 4 studies, 40 requests")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server and maintenance database")
    parser.add_argument(
        "--client", choices=sorted(CLIENTS), default="stdlib", help="load generator's HTTP client (default stdlib)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--study-page-trials",
        type=int,
        default=None,
        help="trials of the study whose dashboard page is timed (default 100000, --quick 5000; 0 skips it)",
    )
    parser.add_argument("--landing-rate", type=float, default=20.0, help="results recorded per second (default 20)")
    parser.add_argument("--landing-seconds", type=float, default=30.0, help="length of that phase (default 30)")
    parser.add_argument("--throughput-rounds", type=int, default=2, help="rounds of 0 / --clients readers (0 skips)")
    parser.add_argument("--throughput-epochs", type=int, default=20, help="epochs of that study (default 20)")
    parser.add_argument(
        "--only", choices=["latency", "page", "landing", "throughput"], default=None, help="run one part only"
    )
    args = parser.parse_args(argv)
    rows = args.rows or (5_000 if args.quick else 100_000)
    studies = args.studies or (4 if args.quick else 20)
    args.requests = args.requests or (40 if args.quick else 10_000)
    layout = layout_for(rows, studies)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(
        f"API latency: {layout.describe()}; {args.clients} {args.client} clients, {args.requests} requests "
        "per endpoint; "
        f"{os.cpu_count()} CPUs"
    )
    ok = met = True
    part = args.only
    for kind in kinds if part in (None, "latency") else []:
        one_ok, one_met = bench_one(kind, args, layout)
        ok &= one_ok
        met &= one_met
    page_trials = args.study_page_trials if args.study_page_trials is not None else (5_000 if args.quick else 100_000)
    if page_trials > 0 and part in (None, "page"):
        for kind in kinds:
            met &= bench_study_page(kind, args, page_trials)
    for kind in kinds if part in (None, "landing") else []:
        met &= bench_while_results_land(kind, args)
    for kind in kinds if part in (None, "throughput") and args.throughput_rounds > 0 else []:
        bench_throughput_under_readers(kind, args)
    print(f"\nall targets met: {'yes' if met else 'NO'}")
    if not ok:
        return 1
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
