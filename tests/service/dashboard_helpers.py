"""What the dashboard's browser tests share: a real ``demonlab serve`` (a subprocess on a free port,
SQLite, no scheduler), Debian's headless Chromium under Playwright, axe-core (vendored for the tests
only, ``vendor/axe-core``; never served) and a small synthetic study whose results the tests record
into the database as a study's driver would.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_helpers import bound_port
from sqlalchemy import Engine

from service.db import dal, make_engine, session_scope, upgrade_to_head
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
DOCS = Path(__file__).resolve().parents[2] / "docs"
ARMS = ("demon_sgdm", "sgdm_step")
LRS = (0.001, 0.01, 0.1, 1.0)
BETAS = (0.5, 0.9, 0.99)
SEEDS = (0, 1, 2)


def spec(name: str, seeds: int = len(SEEDS)) -> dict[str, Any]:
    return {
        "name": name,
        "workload": "synthetic",
        "arms": list(ARMS),
        "lr": list(LRS),
        "beta_init": list(BETAS),
        "seeds": seeds,
        "epochs": 3,
        "resources": {"cpu": 1, "gpu": 0},
    }


def keys(seeds: tuple[int, ...] = SEEDS) -> list[TrialKey]:
    return [TrialKey(a, lr, b, s) for a in ARMS for lr in LRS for b in BETAS for s in seeds]


def score(key: TrialKey) -> float:
    """A landscape with a valley at lr 0.01, better at high β_init, Demon a little better."""
    value = 0.1 + 0.1 * abs(math.log10(key.lr) + 2) + 0.2 * (0.99 - key.beta_init) + 0.01 * key.seed
    return round(value + (0.04 if key.arm == "sgdm_step" else 0.0), 6)


def result_for(key: TrialKey, shift: float = 0.0) -> TrialResult:
    """Diverged at lr 1 for sgdm_step (every seed) and for seed 0 of demon_sgdm; completed elsewhere,
    ``shift`` added to every score (another study of the same landscape)."""
    if key.lr == 1.0 and (key.arm == "sgdm_step" or key.seed == 0):
        return TrialResult(
            key=key,
            status=TrialStatus.DIVERGED,
            epochs=(EpochRecord(0, 2.0, math.inf, math.nan),),
            val_loss=math.inf,
            epochs_done=1,
            wall_seconds=0.1,
            node="node-a",
            device="cpu",
        )
    v = round(score(key) + shift, 6)
    curve = tuple(EpochRecord(e, 1.0 - 0.1 * e, 0.8 - 0.1 * e, v + 0.05 * (3 - e)) for e in range(1, 4))
    return TrialResult(
        key=key,
        status=TrialStatus.COMPLETED,
        epochs=curve,
        val_metric=v,
        val_loss=0.6,
        test_metric=v + 0.01,
        test_loss=0.65,
        best_val_metric=v,
        epochs_done=3,
        wall_seconds=0.2,
        node="node-a",
        device="cpu",
    )


def record(engine: Engine, study_id: str, batch: list[TrialKey]) -> None:
    for key in batch:
        with session_scope(engine) as session:
            dal.record_trial_result(session, study_id, result_for(key))


def record_all(engine: Engine, study_id: str, batch: list[TrialKey], shift: float = 0.0) -> None:
    """Many results in one transaction (a big study's fixture)."""
    with session_scope(engine) as session:
        for key in batch:
            dal.record_trial_result(session, study_id, result_for(key, shift))


def start(engine: Engine) -> None:
    with session_scope(engine) as session:
        dal.claim_queued_studies(session, limit=100, launcher_id="browser-test")


def finish(engine: Engine, study_id: str) -> None:
    with session_scope(engine) as session:
        dal.finish_study(session, study_id, status="completed")


@dataclass
class Server:
    url: str
    engine: Engine
    http: httpx.Client

    def submit(self, body: dict[str, Any], token: str | None = None) -> str:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.post("/api/v1/studies", json=body, headers=headers)
        assert response.status_code == 202, response.text
        study_id: str = response.json()["id"]
        return study_id


@contextmanager
def serve(tmp_path: Path) -> Iterator[Server]:
    """``demonlab serve`` in a subprocess on a port it binds itself, on a fresh SQLite database."""
    data_dir = Path(tmp_path / "data")
    data_dir.mkdir()
    url = f"sqlite:///{data_dir / 'demonlab.db'}"
    env = os.environ | {
        "DEMONLAB_DATA_DIR": str(data_dir),
        "DEMONLAB_DATABASE_URL": url,
        "DEMONLAB_EVENTS_POLL_SECONDS": "0.1",
        "DEMONLAB_EVENTS_HEARTBEAT_SECONDS": "2",
    }
    env.pop("DEMONLAB_API_TOKENS_REQUIRED", None)
    cli = Path(sys.executable).with_name("demonlab")
    # --port 0: the server binds a free port itself and prints which (cluster_helpers.bound_port)
    command = [str(cli), "serve", "--port", "0", "--no-scheduler", "--log-level", "warning"]
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    http: httpx.Client | None = None
    try:
        deadline = time.monotonic() + 60
        while True:
            port = bound_port(log_path)
            if port is not None:
                http = http or httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"demonlab serve did not start: {(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.1)
        assert http is not None
        engine = make_engine(url)
        upgrade_to_head(engine)
        yield Server(str(http.base_url).rstrip("/"), engine, http)
        engine.dispose()
    finally:
        if http is not None:
            http.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright (skipped where it is missing, except in CI)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def new_page(browser: Any, width: int = 1400, height: int = 900, **options: Any) -> Iterator[Any]:
    """A fresh page (its own context: empty sessionStorage) with axe-core injected into every document
    through the DevTools protocol (so the page's CSP still applies to everything else). Console
    errors and page errors are collected in ``page.problems``."""
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    context.add_init_script(path=str(AXE))
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None,
    )
    page.problems = problems
    page.set_default_timeout(15_000)
    yield page
    context.close()


def axe_violations(page: Any) -> list[str]:
    """axe-core's violations on the page as it is now: 'rule (impact): node, node…' per rule."""
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        f"{v['id']} ({v['impact']}): "
        + " | ".join(", ".join(n["target"]) + " " + n["failureSummary"] for n in v["nodes"])
        for v in found
    ]


def accessible(page: Any, state: str) -> None:
    """0 axe violations in this page state (``state`` names it in the failure)."""
    violations = axe_violations(page)
    assert violations == [], f"{state}: {violations}"


def js_num(value: float, digits: int) -> str:
    """A number as the page's ``demonlab.num`` writes it (``toPrecision``, then shortest form)."""
    return repr(float(f"{value:.{digits}g}"))


def shot(page: Any, tmp_path: Path, name: str, full_page: bool = True) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def no_problems(page: Any, *allowed: str) -> None:
    problems = [p for p in page.problems if not any(a in p for a in allowed)]
    assert problems == []
