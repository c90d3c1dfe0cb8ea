"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against a real
``demonlab serve`` (a subprocess on a free port, SQLite, no scheduler). Results are recorded into the
database by the test, as a study's driver would, while the page is open. axe-core runs in every
page state and must find nothing (``dashboard_helpers.accessible``).

Screenshots of every page are saved under the test's tmp dir. With ``DEMONLAB_UPDATE_SCREENSHOTS=1``
the README's are also copied to ``docs/`` (``test_dashboard_study.py`` writes the study page's);
without it the tracked files are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import (
    ARMS,
    BETAS,
    LRS,
    SEEDS,
    Server,
    accessible,
    finish,
    js_num,
    keys,
    no_problems,
    record,
    record_all,
    score,
    serve,
    shot,
    spec,
    start,
)
from playwright.sync_api import expect

from service.db import dal, session_scope
from studies.results import TrialKey
from studies.units import Units, points

pytestmark = pytest.mark.slow  # a browser and a server subprocess: ~5 s a test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``demonlab serve`` shared by the tests that read only the studies they made (a server per
    test cost ~3 s of CPU each); the list, compare and token tests, which see every study or change
    the server's tokens, take ``own_server``."""
    with serve(tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A fresh ``demonlab serve`` for this test alone."""
    with serve(tmp_path) as running:
        yield running


def pct1(value: float) -> str:
    """A fraction as the page writes an error rate: percent with one decimal (as the PNG)."""
    return f"{100 * value:.1f}"


# ------------------------------------------------------------------------------------------- tests


def test_list_shows_studies_and_filters(own_server: Server, page: Any, tmp_path: Path) -> None:
    first = own_server.submit(spec("digits sweep"))
    second = own_server.submit(spec("cnn sweep"))
    page.goto(own_server.url + "/")
    rows = page.locator("table.studies tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-study") == second  # newest first
    assert page.locator(f"tr[data-study='{first}'] .study-name").inner_text() == "digits sweep"
    assert page.locator(f"tr[data-study='{first}'] .status").inner_text() == "queued"
    accessible(page, "studies list")
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
    assert page.locator("#cancel-button").is_enabled()  # running: cancel is offered
    page.evaluate("window.__notReloaded = true")

    rest = [k for k in all_keys if k.seed == 2]
    record(server.engine, study_id, rest[: len(rest) // 2])
    expect(page.locator("#done")).to_have_text(str(len(half) + len(rest) // 2))
    record(server.engine, study_id, rest[len(rest) // 2 :])
    finish(server.engine, study_id)
    expect(page.locator("#done")).to_have_text(str(len(all_keys)))
    expect(page.locator("#status")).to_have_text("completed")
    expect(page.locator("#cancel-button")).to_be_disabled()  # finished: nothing left to cancel
    assert page.evaluate("window.__notReloaded") is True  # the same document: no reload
    assert page.locator("#progress").get_attribute("max") == str(len(all_keys))
    expect(page.locator("#placement tbody tr td").nth(2)).to_have_text(str(len(all_keys)))  # node-a ran all

    # One heatmap per arm, one cell per grid point, and the divergence-rate maps.
    expect(page.locator("#live")).to_have_text("finished")
    expect(page.locator("#trials tbody")).not_to_contain_text("pending")  # the trial table followed too
    page.wait_for_selector("#study[data-ready=true]")
    maps = page.locator("svg.heatmap")
    assert maps.count() == len(ARMS)
    for index in range(len(ARMS)):
        assert maps.nth(index).locator(".cell").count() == len(LRS) * len(BETAS)
    assert page.locator("svg.divergence").count() == len(ARMS)
    grid = server.http.get(f"/api/v1/studies/{study_id}/grid", params={"arm": "demon_sgdm"}).json()
    # every cell of the all-diverged row of sgdm_step is marked ×
    step = page.locator("svg.heatmap").nth(1)
    assert step.locator(".mark-all").count() == len(BETAS)
    # the colour bars: the score's and the divergence rate's, each with the grey of "no result yet"
    assert page.locator("#legend svg.colour-bar").count() == 2
    assert page.locator("#legend svg.colour-bar", has_text="no result yet").count() == 2
    # each cell's label is black or white, whichever contrasts more: ≥ 4.5:1 on every cell
    ratios = page.eval_on_selector_all("svg.grid .cell", CONTRAST_JS)
    assert len(ratios) == (2 * len(ARMS) + 1) * len(LRS) * len(BETAS)  # medians, divergence, the difference
    assert min(r for r in ratios if r is not None) >= 4.5
    accessible(page, "study page loaded")

    # Hover lr 0.01, β_init 0.9 of demon_sgdm: its median, each seed's value, the interval and its level,
    # in percent as the PNG heatmaps.
    i, j = LRS.index(0.01), BETAS.index(0.9)
    cell = page.locator(f"svg.heatmap [data-arm='demon_sgdm'][data-i='{i}'][data-j='{j}']")
    cell.hover()
    tooltip = page.locator("#tooltip")
    tooltip.locator(".seed").first.wait_for()
    median = grid["values"][i][j]
    assert float(cell.get_attribute("data-value")) == pytest.approx(median)
    assert cell.locator(".cell-label").text_content() == pct1(median)
    text = tooltip.inner_text()
    assert f"median {pct1(median)}% (3 seeds with a result)" in text
    # 3 seeds: the order-statistic interval [min, max] has level 1 - 2^(1-3) = 75%, and says so
    assert grid["median_level"][i][j] == 0.75
    bounds = f"[{pct1(grid['median_low'][i][j])}, {pct1(grid['median_high'][i][j])}]%"
    assert f"interval of the median: {bounds} at 75%" in text
    assert "95%" not in text
    assert "0 of 3 seeds diverged" in text
    seeds = [s.inner_text() for s in tooltip.locator(".seed").all()]
    expected = [f"seed {s}: {pct1(score(TrialKey('demon_sgdm', 0.01, 0.9, s)) + 0.01)}%" for s in SEEDS]
    assert seeds == expected
    # the median validation curve over the seeds, with its band
    tooltip.locator("svg.tip-chart polyline.series").wait_for()
    assert tooltip.locator("svg.tip-chart polygon.band").count() == 1
    accessible(page, "tooltip shown")
    # A partly diverged cell names its diverged seed.
    page.locator(f"svg.heatmap [data-arm='demon_sgdm'][data-i='{LRS.index(1.0)}'][data-j='0']").hover()
    page.wait_for_selector("#tooltip .seed-diverged")
    assert page.locator("#tooltip .seed-diverged").inner_text() == "seed 0: diverged"
    assert "1 of 3 seeds diverged" in page.locator("#tooltip").inner_text()
    shot(page, tmp_path, "study-hover")

    # Click → the cell's trials and curves open, scrolled into view, with focus.
    cell.click()
    details = page.locator("#cell-details")
    details.locator("table.data tbody tr").first.wait_for()
    expect(details).to_be_focused()
    top = details.evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < 200
    assert details.locator("table.data").first.locator("tbody tr").count() == len(SEEDS)
    # train and validation loss (median, band) and the validation error (median, band): one cell
    curves = details.locator("svg.curve-chart")
    assert curves.count() == 2
    assert curves.nth(0).locator("polyline.series").count() == 2
    assert curves.nth(0).locator("polyline.series.dashed").count() == 1
    assert curves.nth(1).locator("polygon.band").count() == 1
    accessible(page, "cell details open")

    # The figures in words (metrics v4), on request: the verdict first, the target, every figure with
    # its interval or the reason it has none; every chart has a table on request.
    page.click("#figures-details summary")
    page.wait_for_selector("#figures .arm-figures")
    report = server.http.get(f"/api/v1/studies/{study_id}/sensitivity").json()
    figures = page.locator("#figures").inner_text()
    units = Units(percent=report["score_unit"] == "percent")  # an error rate: in percent, as the maps
    assert report["score_unit"] == "percent"
    assert f"A run succeeds when its test error is at most {units.score(report['target']['raw_value'])}" in figures
    for arm in ARMS:
        peak = report["arms"][arm]["peak"]
        said = f"median test error {units.score(peak['raw_score'])}, no interval: too few seeds (intervals from 8)"
        assert said in page.locator(".arm-figures", has_text=arm).inner_text()
    assert page.locator("#figures .pair-figures h3").inner_text() == "demon_sgdm vs sgdm_step"
    pair = page.locator("#figures .pair-figures").inner_text()
    (compared,) = report["pairs"]
    assert f"Verdict: {compared['verdict']['statement']}" in pair
    assert compared["verdict"]["outcome"] == "inconclusive_too_few_seeds"  # 3 seeds: no interval
    assert (
        f"Primary: share of the grid reaching the target: Δ = {points(compared['primary']['value'])} "
        "(positive means demon_sgdm is better; no interval: too few seeds (intervals from 8))"
    ) in pair
    assert "95% interval" not in pair  # 3 seeds: no interval is claimed
    assert figures.index("Verdict:") < figures.index("Success share")  # the answer first
    accessible(page, "figures in words open")
    page.click("#heatmap-table-toggle")
    assert page.locator("#heatmap-tables table").count() == len(ARMS)
    assert page.locator("#heatmap-tables table").first.locator("tbody tr").count() == len(LRS) * len(BETAS)
    accessible(page, "tables shown")
    page.click("#heatmap-table-toggle")
    page.mouse.move(5, 5)
    page.locator("#tooltip").wait_for(state="hidden")
    shot(page, tmp_path, "study")
    no_problems(page)


# WCAG contrast of each cell's label against its rectangle (null: a cell without a label)
CONTRAST_JS = """cells => cells.map((cell) => {
  const label = cell.querySelector('text');
  if (!label) return null;
  const lum = (hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16) / 255)
    .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
    .reduce((sum, c, k) => sum + [0.2126, 0.7152, 0.0722][k] * c, 0);
  const [a, b] = [lum(cell.querySelector('rect').getAttribute('fill')), lum(label.getAttribute('fill'))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
})"""


def test_compare_shows_each_study_and_the_robustness_aggregate(own_server: Server, page: Any, tmp_path: Path) -> None:
    ids = [own_server.submit(spec(name)) for name in ("budget a", "budget b")]
    start(own_server.engine)
    for study_id, shift in zip(ids, (0.0, 0.02), strict=True):
        record_all(own_server.engine, study_id, keys(), shift=shift)
        finish(own_server.engine, study_id)

    # Without a workload the aggregate is offered (the studies' shared one), never filled in silently.
    page.goto(f"{own_server.url}/compare?studies={','.join(ids)}")
    assert page.locator("input[name=workload]").input_value() == ""
    assert page.locator("#robustness svg.chart").count() == 0
    suggestion = page.locator("#robustness-suggestion")
    assert suggestion.inner_text() == "aggregate every completed study on synthetic"

    # One colour scale for every map: one colour bar, and equal medians get equal colours.
    page.locator("#compare-maps svg.compare-map").first.wait_for()
    assert page.locator("#compare-maps svg.compare-map").count() == len(ids) * len(ARMS)
    assert page.locator("#compare-legend svg.colour-bar").count() == 1
    body = own_server.http.get("/api/v1/compare/heatmaps", params={"studies": ",".join(ids)}).json()
    colour = {}
    for m in body["maps"]:
        for row_values, row_colours in zip(m["values"], m["colours"], strict=True):
            for v, c in zip(row_values, row_colours, strict=True):
                assert colour.setdefault(v, c) == c
    # The same arm across studies: budget b − budget a, +2 points in every trained cell.
    differences = page.locator("#compare-differences svg.compare-difference")
    assert differences.count() == len(ARMS)
    labels = {t.text_content() for t in differences.first.locator(".cell-label").all()}
    assert labels == {"+2.0"}
    accessible(page, "compare without a workload")

    suggestion.click()
    page.wait_for_url(re.compile(r"workload=synthetic"))
    per_study = page.locator("#per-study table")
    per_study.wait_for()
    header = [c.inner_text() for c in per_study.locator("thead th").all()]
    assert header[:6] == ["study", "arm", "peak (raw)", "peak interval", "target (raw)", "success share [95%]"]
    assert header[7] == "lr sensitivity (raw) [95%]"  # score units, as the peak: not the study page's points
    rows = per_study.locator("tbody tr")
    assert rows.count() == len(ids) * len(ARMS)
    report = own_server.http.get(f"/api/v1/studies/{ids[0]}/sensitivity").json()
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
    # estimate with its interval, as bars and a table, each figure saying which way is better.
    page.locator("#robustness svg.chart").first.wait_for()
    aggregate = own_server.http.get("/api/v1/robustness", params={"workload": "synthetic"}).json()
    assert len(aggregate["groups"]) == len(ARMS)
    titles = [t.text_content() for t in page.locator("#robustness .chart-title").all()]
    assert len(titles) == 4
    assert titles[0] == "success share (higher is better): each study's estimate with its 95% interval"
    assert all("higher is better" in t or "lower is better" in t for t in titles)
    # every label is drawn inside its chart (none cut at the left edge)
    lefts = page.eval_on_selector_all("#robustness svg.chart text.tick", "ts => ts.map((t) => t.getBBox().x)")
    assert len(lefts) == 4 * 2 * len(ARMS) * len(ids)  # a label and a value per study and group, in 4 charts
    assert min(lefts) >= 0
    page.click("#robust-table-toggle")
    table = page.locator("#robustness table")
    expect(table).to_be_visible()
    lines = [[c.inner_text() for c in r.locator("td").all()] for r in table.locator("tbody tr").all()]
    group = next(g for g in aggregate["groups"] if g["key"]["arm"] == "demon_sgdm")
    label = "demon_sgdm · 3 epochs · 4×3 grid · default target (2 studies)"
    for study in group["success_share"]["studies"]:
        share = f"{round(100 * study['value'])}%"
        row = [label, "success share (higher is better)", study["study_id"], share, "no interval: too few seeds"]
        assert row in lines
    for study in group["success_lr_width"]["studies"]:
        width = js_num(study["value"], 3)
        row = [
            label,
            "succeeding lr decades (higher is better)",
            study["study_id"],
            width,
            "no interval: too few seeds",
        ]
        assert row in lines
    assert all(line[3] != "–" for line in lines)  # every figure found under its v4 name
    accessible(page, "compare with the robustness aggregate")
    shot(page, tmp_path, "compare")
    no_problems(page)


def test_submit_shows_field_errors_then_opens_the_study(server: Server, page: Any, tmp_path: Path) -> None:
    # The page opens with the text of the example its select shows.
    page.goto(server.url + "/submit")
    chosen = page.locator("#example").input_value()
    examples = Path(__file__).resolve().parents[2] / "studies" / "examples"
    assert page.locator("#spec-text").input_value() == (examples / f"{chosen}.yaml").read_text()
    accessible(page, "submit page")

    page.goto(server.url + "/submit?example=synthetic_smoke")
    assert page.locator("#example").input_value() == "synthetic_smoke"
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
    accessible(page, "submit errors shown")
    shot(page, tmp_path, "submit-error")

    # A value that fits no branch of a union: one error, by the field's own name.
    page.fill("#spec-text", text.replace("seeds: 2", "seeds: two"))
    page.click("#submit-button")
    page.wait_for_selector("#spec-errors li[data-field='seeds']")
    assert page.locator("#spec-errors li").count() == 1
    assert "Input should be a valid integer or a valid list" in page.locator("#spec-errors").inner_text()

    page.fill("#spec-text", "name: [unclosed")
    page.click("#submit-button")
    page.wait_for_selector("#spec-errors li[data-field='spec']")
    assert "not valid YAML" in page.locator("#spec-errors").inner_text()

    # lr written as 1e-2 is a number here as in the CLI (one parser).
    page.fill("#spec-text", text.replace("lr: [0.01, 0.1, 1.0]", "lr: [1e-2, 1e-1, 1.0]"))
    page.click("#submit-button")
    page.wait_for_url(re.compile(r"/studies/[0-9a-f]{12}$"))
    assert page.locator("#study-name").inner_text() == "synthetic-smoke"
    study_id = page.url.rsplit("/", 1)[1]
    assert server.http.get(f"/api/v1/studies/{study_id}").json()["spec"]["lr"] == [0.01, 0.1, 1.0]
    no_problems(page, "422")  # the browser logs the refused submissions' 422


def test_cancel_needs_a_token_when_tokens_exist(own_server: Server, page: Any, tmp_path: Path) -> None:
    study_id = own_server.submit(spec("guarded"))
    with session_scope(own_server.engine) as session:
        token = dal.create_token(session, "browser")
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{own_server.url}/studies/{study_id}")
    page.wait_for_selector("#study[data-ready=true]")  # a queued study: grey maps, no verdict yet
    assert page.locator("svg.heatmap .cell").count() == len(ARMS) * len(LRS) * len(BETAS)
    assert page.locator("#forest").inner_text() == "No Δ yet: no cell has a result in both arms of a pair."
    assert page.locator("#differences").inner_text() == "No difference map yet: no cell has a result in both arms."
    accessible(page, "a queued study without results")
    shot(page, tmp_path, "queued")
    page.click("#cancel-button")
    expect(page.locator("#action-message")).to_contain_text("refused")
    assert "401" in page.locator("#action-message").inner_text()
    assert own_server.http.get(f"/api/v1/studies/{study_id}").json()["status"] == "queued"
    shot(page, tmp_path, "cancel-refused")

    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    assert page.evaluate("sessionStorage.getItem('demonlab.token')") == token
    assert token not in page.url
    page.click("#cancel-button")
    expect(page.locator("#action-message")).to_have_text("cancelled")
    expect(page.locator("#status")).to_have_text("cancelled")  # told by the event stream
    expect(page.locator("#cancel-button")).to_be_disabled()
    assert own_server.http.get(f"/api/v1/studies/{study_id}").json()["status"] == "cancelled"
    page.reload()
    expect(page.locator("#cancel-button")).to_be_disabled()  # a finished study is served with it off
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
    cells = page.locator("#per-study tbody tr").first.locator("td").all_inner_texts()
    assert cells[0] == f"{name} ({study_id})"
    assert cells[3] == "no interval: no results"  # nothing ran yet (it read "no interval: undefined")
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
    page.wait_for_selector("#study[data-ready=true]")
    # it says what a search can and cannot give, and gives no grid figure or grid coverage
    assert page.locator("#answer-title").inner_text() == "What this search can tell"
    assert "not estimated" in page.locator("#search-summary").inner_text()
    assert page.locator("svg.heatmap").count() == 0  # a sparse sample is not drawn as a grid
    assert page.locator("#verdicts, #forest, #figures").count() == 0
    assert "missing of" not in page.locator("main").inner_text()
    charts = page.locator("#scatter svg.search-points")
    assert charts.count() == len(ARMS)
    for index in range(len(ARMS)):
        assert charts.nth(index).locator("circle.point").count() == len(sampled)  # one per point, seeds pooled
    # slice plots: the score against lr and against β_init, every arm's points
    slices = page.locator("#scatter svg.search-slice")
    assert slices.count() == 2
    finite = sum(1 for a in ARMS for lr, _ in sampled if not (a == "sgdm_step" and lr == 1.0))
    assert slices.first.locator("circle.point").count() >= finite - 1
    importances = page.locator("#scatter table.data:not(.points-table)").first
    assert importances.locator("tbody tr").count() == 2  # lr and β_init
    caption = "parameter importances for median test error (Optuna's PED-ANOVA)"
    assert importances.locator("caption").inner_text() == caption
    accessible(page, "search study")
    page.click("#heatmap-table-toggle")
    step_table = page.locator(".points-table").nth(1)
    assert step_table.locator("tbody tr").count() == len(sampled)
    assert step_table.locator("tbody tr").last.locator("td").last.inner_text() == "2"  # lr 1: both seeds diverged
    points = server.http.get(f"/api/v1/studies/{study_id}/points").json()
    assert points["percent"] is True  # an error rate: in percent, as the grid pages and the PNG
    first = points["arms"][1]["points"][0]["value"]
    assert step_table.locator("tbody tr").first.locator("td").nth(2).inner_text() == pct1(first)
    assert charts.nth(1).locator("circle.point.diverged").count() == 1
    # the trial table in the page's unit: percent, as the points (it showed fractions, 0.2578)
    expect(page.locator("#trials tbody tr").first).to_contain_text("%")
    accessible(page, "search study tables")
    shot(page, tmp_path, "search")
    no_problems(page)


def test_the_page_rounds_numbers_as_python_does(server: Server, page: Any) -> None:
    """The page, the CLI, the PNGs and the figures in words show one number the same way: an exact
    tie rounds to the even digit (a median of 0.0625 is 6.2%, not toFixed's 6.3) and zero has no sign."""
    import random

    rng = random.Random(7)
    values = [6.25, 0.125 * 100, 12.35, 0.05, -0.05, -0.04, 2.5, 3.5, 99.95, 7.125, -0.0]
    values += [rng.randrange(-800, 800) / 8 for _ in range(300)] + [rng.uniform(-50, 50) for _ in range(300)]
    page.goto(server.url + "/")
    shown = page.evaluate("(vs) => vs.map((v) => [demonlab.fixed(v, 1), demonlab.fixed(v, 2)])", values)

    def python(v: float, digits: int) -> str:
        text = f"{v:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text

    assert [tuple(s) for s in shown] == [(python(v, 1), python(v, 2)) for v in values]
