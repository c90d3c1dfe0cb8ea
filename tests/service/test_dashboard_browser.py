"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against a real
``demonlab serve`` (a subprocess on a free port, SQLite, no scheduler). Results are recorded into the
database by the test, as a study's driver would, while the page is open.

Screenshots of every page are saved under the test's tmp dir. With ``DEMONLAB_UPDATE_SCREENSHOTS=1``
the study page's is also copied to ``docs/dashboard-study.png`` (the README shows it); without it
the tracked file is left alone.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import Engine

from service.db import dal, make_engine, session_scope, upgrade_to_head
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus

pytestmark = pytest.mark.slow  # a browser and a server subprocess per test: ~10 s each

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
ARMS = ("demon_sgdm", "sgdm_step")
LRS = (0.001, 0.01, 0.1, 1.0)
BETAS = (0.5, 0.9, 0.99)
SEEDS = (0, 1, 2)


def spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "workload": "synthetic",
        "arms": list(ARMS),
        "lr": list(LRS),
        "beta_init": list(BETAS),
        "seeds": len(SEEDS),
        "epochs": 3,
        "resources": {"cpu": 1, "gpu": 0},
    }


def keys() -> list[TrialKey]:
    return [TrialKey(a, lr, b, s) for a in ARMS for lr in LRS for b in BETAS for s in SEEDS]


def score(key: TrialKey) -> float:
    """A landscape with a valley at lr 0.01, better at high β_init, Demon a little better."""
    value = 0.1 + 0.1 * abs(math.log10(key.lr) + 2) + 0.2 * (0.99 - key.beta_init) + 0.01 * key.seed
    return round(value + (0.04 if key.arm == "sgdm_step" else 0.0), 6)


def result_for(key: TrialKey) -> TrialResult:
    """Diverged at lr 1 for sgdm_step (every seed) and for seed 0 of demon_sgdm; completed elsewhere."""
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
    v = score(key)
    curve = tuple(EpochRecord(e, 1.0 - 0.1 * e, 0.8 - 0.1 * e, v + 0.05 * (2 - e)) for e in range(3))
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


def start(engine: Engine) -> None:
    with session_scope(engine) as session:
        dal.claim_queued_studies(session, limit=100, launcher_id="browser-test")


def finish(engine: Engine, study_id: str) -> None:
    with session_scope(engine) as session:
        dal.finish_study(session, study_id, status="completed")


# ---------------------------------------------------------------------------------------- fixtures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``demonlab serve`` in a subprocess on a free port, on a fresh SQLite database."""
    data_dir = Path(tmp_path / "data")
    data_dir.mkdir()
    url = f"sqlite:///{data_dir / 'demonlab.db'}"
    port = _free_port()
    env = os.environ | {
        "DEMONLAB_DATA_DIR": str(data_dir),
        "DEMONLAB_DATABASE_URL": url,
        "DEMONLAB_EVENTS_POLL_SECONDS": "0.1",
        "DEMONLAB_EVENTS_HEARTBEAT_SECONDS": "2",
    }
    env.pop("DEMONLAB_API_TOKENS_REQUIRED", None)
    cli = Path(sys.executable).with_name("demonlab")
    command = [str(cli), "serve", "--port", str(port), "--no-scheduler", "--log-level", "warning"]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=base, timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"demonlab serve did not start: {(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.1)
        engine = make_engine(url)
        upgrade_to_head(engine)
        yield Server(base, engine, http)
        engine.dispose()
    finally:
        http.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh page (its own context: empty sessionStorage); console errors and page errors are
    collected in ``page.problems`` and fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
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


def js_num(value: float, digits: int) -> str:
    """A number as the page's ``demonlab.num`` writes it (``toPrecision``, then shortest form)."""
    return repr(float(f"{value:.{digits}g}"))


def shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def no_problems(page: Any, *allowed: str) -> None:
    problems = [p for p in page.problems if not any(a in p for a in allowed)]
    assert problems == []


# ------------------------------------------------------------------------------------------- tests


def test_list_shows_studies_and_filters(server: Server, page: Any, tmp_path: Path) -> None:
    first = server.submit(spec("digits sweep"))
    second = server.submit(spec("cnn sweep"))
    page.goto(server.url + "/")
    rows = page.locator("table.studies tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-study") == second  # newest first
    assert page.locator(f"tr[data-study='{first}'] .study-name").inner_text() == "digits sweep"
    assert page.locator(f"tr[data-study='{first}'] .status").inner_text() == "queued"
    page.fill("input[name=q]", "DIGITS")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=DIGITS"))
    assert page.locator("table.studies tbody tr").count() == 1
    assert page.locator(".study-name").inner_text() == "digits sweep"
    page.select_option("select[name=status]", "running")
    page.click("button:has-text('Filter')")
    page.wait_for_url(re.compile(r"status=running"))
    assert page.locator("table.studies tbody tr").count() == 0
    shot(page, tmp_path, "studies")
    no_problems(page)


def test_study_page_live_progress_heatmap_hover_and_trials(server: Server, page: Any, tmp_path: Path) -> None:
    study_id = server.submit(spec("landscape"))
    start(server.engine)
    all_keys = keys()
    half = [k for k in all_keys if k.seed != 2]
    record(server.engine, study_id, half)
    response = page.goto(f"{server.url}/studies/{study_id}")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    page.wait_for_selector("svg.heatmap .cell")
    assert page.locator("#done").inner_text() == str(len(half))
    page.evaluate("window.__notReloaded = true")

    rest = [k for k in all_keys if k.seed == 2]
    record(server.engine, study_id, rest[: len(rest) // 2])
    expect(page.locator("#done")).to_have_text(str(len(half) + len(rest) // 2))
    record(server.engine, study_id, rest[len(rest) // 2 :])
    finish(server.engine, study_id)
    expect(page.locator("#done")).to_have_text(str(len(all_keys)))
    expect(page.locator("#status")).to_have_text("completed")
    assert page.evaluate("window.__notReloaded") is True  # the same document: no reload
    assert page.locator("#progress").get_attribute("max") == str(len(all_keys))
    expect(page.locator("#placement tbody tr td").nth(2)).to_have_text(str(len(all_keys)))  # node-a ran all

    # One heatmap per arm, one cell per grid point, and the divergence-rate maps.
    expect(page.locator("#live")).to_have_text("finished")
    maps = page.locator("svg.heatmap")
    assert maps.count() == len(ARMS)
    for index in range(len(ARMS)):
        assert maps.nth(index).locator(".cell").count() == len(LRS) * len(BETAS)
    assert page.locator("svg.divergence").count() == len(ARMS)
    grid = server.http.get(f"/api/v1/studies/{study_id}/grid", params={"arm": "demon_sgdm"}).json()
    # every cell of the all-diverged row of sgdm_step is marked ×
    step = page.locator("svg.heatmap").nth(1)
    assert step.locator(".mark-all").count() == len(BETAS)

    # Hover lr 0.01, β_init 0.9 of demon_sgdm: its median, each seed's value, the interval and its level.
    i, j = LRS.index(0.01), BETAS.index(0.9)
    cell = page.locator(f"svg.heatmap [data-arm='demon_sgdm'][data-i='{i}'][data-j='{j}']")
    cell.hover()
    tooltip = page.locator("#tooltip")
    tooltip.locator(".seed").first.wait_for()
    median = grid["values"][i][j]
    assert float(cell.get_attribute("data-value")) == pytest.approx(median)
    text = tooltip.inner_text()
    assert f"median {js_num(median, 3)} (3 seeds with a result)" in text
    # 3 seeds: the order-statistic interval [min, max] has level 1 - 2^(1-3) = 75%, and says so
    assert grid["median_level"][i][j] == 0.75
    bounds = f"[{js_num(grid['median_low'][i][j], 3)}, {js_num(grid['median_high'][i][j], 3)}]"
    assert f"interval of the median: {bounds} at 75%" in text
    assert "95%" not in text
    assert "0 of 3 seeds diverged" in text
    seeds = [s.inner_text() for s in tooltip.locator(".seed").all()]
    expected = [f"seed {s}: {js_num(score(TrialKey('demon_sgdm', 0.01, 0.9, s)) + 0.01, 4)}" for s in SEEDS]
    assert seeds == expected
    # A partly diverged cell names its diverged seed.
    page.locator(f"svg.heatmap [data-arm='demon_sgdm'][data-i='{LRS.index(1.0)}'][data-j='0']").hover()
    page.wait_for_selector("#tooltip .seed-diverged")
    assert page.locator("#tooltip .seed-diverged").inner_text() == "seed 0: diverged"
    assert "1 of 3 seeds diverged" in page.locator("#tooltip").inner_text()
    shot(page, tmp_path, "study-hover")

    # Keyboard: focus the cell and press Enter → its trials with learning curves.
    cell.focus()
    page.keyboard.press("Enter")
    details = page.locator("#cell-details")
    details.locator("table.data tbody tr").first.wait_for()
    assert details.locator("table.data").first.locator("tbody tr").count() == len(SEEDS)
    assert details.locator("svg polyline.series").count() == len(SEEDS)

    # Figures in words (metrics v4): the verdict first, the target, every figure with its interval or
    # the reason it has none; every chart has a table on request.
    page.wait_for_selector("#figures .arm-figures")
    report = server.http.get(f"/api/v1/studies/{study_id}/sensitivity").json()
    figures = page.locator("#figures").inner_text()
    assert f"A run succeeds when its test error is at most {js_num(report['target']['raw_value'], 3)}" in figures
    for arm in ARMS:
        peak = report["arms"][arm]["peak"]
        said = f"median test error {js_num(peak['raw_score'], 3)}, no interval: too few seeds (intervals from 8)"
        assert said in page.locator(".arm-figures", has_text=arm).inner_text()
    assert page.locator("#figures .pair-figures h3").inner_text() == "demon_sgdm vs sgdm_step"
    pair = page.locator("#figures .pair-figures").inner_text()
    (compared,) = report["pairs"]
    assert f"Verdict: {compared['verdict']['statement']}" in pair
    assert compared["verdict"]["outcome"] == "inconclusive_too_few_seeds"  # 3 seeds: no interval
    value = compared["primary"]["value"]
    sign = "0" if value == 0 else ("+" if value > 0 else "-") + js_num(abs(value), 3)
    assert (
        f"Primary: share of the grid reaching the target: Δ = {sign} "
        "(positive means demon_sgdm is better; no interval: too few seeds (intervals from 8))"
    ) in pair
    assert "95% interval" not in pair  # 3 seeds: no interval is claimed
    assert figures.index("Verdict:") < figures.index("Success share")  # the answer first
    page.click("#heatmap-table-toggle")
    assert page.locator("#heatmap-tables table").count() == len(ARMS)
    assert page.locator("#heatmap-tables table").first.locator("tbody tr").count() == len(LRS) * len(BETAS)
    page.click("#heatmap-table-toggle")
    page.mouse.move(5, 5)
    page.locator("#tooltip").wait_for(state="hidden")
    path = shot(page, tmp_path, "study")
    if os.environ.get("DEMONLAB_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / "dashboard-study.png")
    no_problems(page)


def test_compare_shows_each_study_and_the_robustness_aggregate(server: Server, page: Any, tmp_path: Path) -> None:
    ids = [server.submit(spec(name)) for name in ("budget a", "budget b")]
    start(server.engine)
    for study_id in ids:
        record(server.engine, study_id, keys())
        finish(server.engine, study_id)
    page.goto(f"{server.url}/compare?studies={','.join(ids)}&workload=synthetic")
    per_study = page.locator("#per-study table")
    per_study.wait_for()
    header = [c.inner_text() for c in per_study.locator("thead th").all()]
    assert header[:6] == ["study", "arm", "peak (raw)", "peak interval", "target (raw)", "success share [95%]"]
    rows = per_study.locator("tbody tr")
    assert rows.count() == len(ids) * len(ARMS)
    report = server.http.get(f"/api/v1/studies/{ids[0]}/sensitivity").json()
    demon = report["arms"]["demon_sgdm"]
    cells = [c.inner_text() for c in rows.first.locator("td").all()]
    assert cells[2:] == [
        js_num(demon["peak"]["raw_score"], 3),
        "no interval: too few seeds",
        js_num(demon["success"]["raw_target"], 3),
        f"{round(100 * demon['success']['share']['value'])}% no interval: too few seeds",
        f"{js_num(demon['success']['lr_width']['value'], 3)} no interval: too few seeds",
        f"{js_num(demon['lr_sensitivity']['pooled']['value'], 3)} no interval: too few seeds",
    ]

    # The robustness aggregate: one group per arm (both studies share every key), each study's
    # estimate with its interval, as bars and a table.
    page.locator("#robustness svg.chart").first.wait_for()
    aggregate = server.http.get("/api/v1/robustness", params={"workload": "synthetic"}).json()
    assert len(aggregate["groups"]) == len(ARMS)
    assert page.locator("#robustness svg.chart").count() == 4
    assert page.locator("#robustness .chart-title").first.text_content().startswith("success share: each study's")
    # every label is drawn inside its chart (none cut at the left edge)
    lefts = page.eval_on_selector_all("#robustness svg.chart text.tick", "ts => ts.map((t) => t.getBBox().x)")
    assert len(lefts) == 4 * 2 * len(ARMS) * len(ids)  # a label and a value per study and group, in 4 charts
    assert min(lefts) >= 0
    page.click("#robust-table-toggle")
    table = page.locator("#robustness table")
    expect(table).to_be_visible()
    lines = [[c.inner_text() for c in r.locator("td").all()] for r in table.locator("tbody tr").all()]
    group = next(g for g in aggregate["groups"] if g["key"]["arm"] == "demon_sgdm")
    label = "demon_sgdm · 3 epochs · default target (2 studies)"
    for study in group["success_share"]["studies"]:
        share = f"{round(100 * study['value'])}%"
        assert [label, "success share", study["study_id"], share, "no interval: too few seeds"] in lines
    for study in group["success_lr_width"]["studies"]:
        width = js_num(study["value"], 3)
        assert [label, "succeeding lr decades", study["study_id"], width, "no interval: too few seeds"] in lines
    assert all(line[3] != "–" for line in lines)  # every figure found under its v4 name
    shot(page, tmp_path, "compare")
    no_problems(page)


def test_submit_shows_field_errors_then_opens_the_study(server: Server, page: Any, tmp_path: Path) -> None:
    page.goto(server.url + "/submit?example=synthetic_smoke")
    text = page.locator("#spec-text").input_value()
    assert "workload: synthetic" in text
    page.fill("#spec-text", text.replace("epochs: 2", "epochs: -3"))
    page.click("#submit-button")
    error = page.locator("#spec-errors li")
    error.first.wait_for()
    assert error.first.get_attribute("data-field") == "epochs"
    line = text.splitlines().index("epochs: 2") + 1
    assert f"epochs (line {line}): " in error.first.inner_text()
    assert page.locator("#spec-text").get_attribute("aria-invalid") == "true"
    beside = page.locator("#spec-annotated .has-error")
    assert beside.count() == 1
    assert beside.locator(".ln").inner_text() == str(line)
    assert beside.locator("code").inner_text() == "epochs: -3"
    assert beside.locator(".inline-error").inner_text().startswith("← epochs: ")
    shot(page, tmp_path, "submit-error")

    page.fill("#spec-text", "name: [unclosed")
    page.click("#submit-button")
    page.wait_for_selector("#spec-errors li[data-field='spec']")
    assert "not valid YAML" in page.locator("#spec-errors").inner_text()

    page.fill("#spec-text", text)
    page.click("#submit-button")
    page.wait_for_url(re.compile(r"/studies/[0-9a-f]{12}$"))
    assert page.locator("#study-name").inner_text() == "synthetic-smoke"
    no_problems(page, "422")  # the browser logs the refused submission's 422


def test_cancel_needs_a_token_when_tokens_exist(server: Server, page: Any, tmp_path: Path) -> None:
    study_id = server.submit(spec("guarded"))
    with session_scope(server.engine) as session:
        token = dal.create_token(session, "browser")
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/studies/{study_id}")
    page.click("#cancel-button")
    expect(page.locator("#action-message")).to_contain_text("refused")
    assert "401" in page.locator("#action-message").inner_text()
    assert server.http.get(f"/api/v1/studies/{study_id}").json()["status"] == "queued"
    shot(page, tmp_path, "cancel-refused")

    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    assert page.evaluate("sessionStorage.getItem('demonlab.token')") == token
    assert token not in page.url
    page.click("#cancel-button")
    expect(page.locator("#action-message")).to_have_text("cancelled")
    expect(page.locator("#status")).to_have_text("cancelled")  # told by the event stream
    assert server.http.get(f"/api/v1/studies/{study_id}").json()["status"] == "cancelled"
    no_problems(page, "401")


def test_a_name_with_markup_is_shown_as_text(server: Server, page: Any, tmp_path: Path) -> None:
    name = "<script>alert(1)</script>"
    study_id = server.submit(spec(name))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server.url + "/")
    assert page.locator(f"tr[data-study='{study_id}'] .study-name").inner_text() == name
    page.goto(f"{server.url}/studies/{study_id}")
    assert page.locator("#study-name").inner_text() == name
    assert name in page.locator("#spec").inner_text()
    assert page.title().startswith(name)
    page.goto(f"{server.url}/compare?studies={study_id}")
    assert page.locator(f"a[href='/studies/{study_id}']").inner_text() == name
    page.locator("#per-study table").wait_for()
    assert page.locator("#per-study tbody tr").first.locator("td").first.inner_text() == f"{name} ({study_id})"
    page.locator("#compare-maps svg").first.wait_for()
    assert page.locator("#compare-maps svg.compare-map").count() == len(ARMS)
    assert page.locator("#compare-maps .chart-title").first.text_content() == f"{name}: demon_sgdm"
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.locator("script:not([src])").count() == 0
    shot(page, tmp_path, "escaped")
    no_problems(page)


def test_search_study_shows_its_sampled_points(server: Server, page: Any, tmp_path: Path) -> None:
    search = {
        "name": "search",
        "workload": "synthetic",
        "arms": list(ARMS),
        "seeds": 2,
        "epochs": 1,
        "search": {
            "mode": "optuna",
            "n_trials": 8,
            "lr": {"min": 0.001, "max": 1.0},
            "beta_init": {"min": 0.5, "max": 0.95},
        },
    }
    study_id = server.submit(search)
    sampled = [(10 ** (-3 + 3 * i / 7), 0.5 + 0.05 * ((3 * i) % 8)) for i in range(8)]
    record(server.engine, study_id, [TrialKey(a, lr, b, s) for a in ARMS for lr, b in sampled for s in (0, 1)])
    page.goto(f"{server.url}/studies/{study_id}")
    page.locator("#scatter svg").first.wait_for()
    charts = page.locator("#scatter svg.chart")
    assert charts.count() == len(ARMS)
    for index in range(len(ARMS)):
        assert charts.nth(index).locator("circle.point").count() == len(sampled)  # one per point, seeds pooled
    assert page.locator("svg.heatmap").count() == 0  # a sparse sample is not drawn as a grid
    importances = page.locator("#scatter table.data:not(.points-table)").first
    assert importances.locator("tbody tr").count() == 2  # lr and β_init
    assert importances.locator("caption").inner_text() == "parameter importances (Optuna's PED-ANOVA)"
    page.click("#heatmap-table-toggle")
    step_table = page.locator(".points-table").nth(1)
    assert step_table.locator("tbody tr").count() == len(sampled)
    assert step_table.locator("tbody tr").last.locator("td").last.inner_text() == "2"  # lr 1: both seeds diverged
    assert charts.nth(1).locator("circle.point.diverged").count() == 1
    # the grid figures a sparse sample cannot give are said once per pair, not one line each
    page.wait_for_selector("#figures .pair-figures")
    assert page.locator("#figures .pair-figures li", has_text="Not estimated (incomplete)").count() == 1
    assert page.locator("#figures .pair-figures li", has_text="width of the succeeding lr range").count() == 1
    shot(page, tmp_path, "search")
    no_problems(page)
