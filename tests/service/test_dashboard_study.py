"""The study page in a real browser (issue 17): the first screen answers "which arm is less sensitive,
by how much, how sure" (verdicts, a forest plot of each pair's Δs, lr slices, the difference map);
the keyboard (one Tab stop per map, arrow keys, Enter opens and focuses the details); the state in
the URL; the learning-curve overlay; the sortable, filterable trial table; dark mode, print and the
offline API docs. axe-core finds nothing in any state (``dashboard_helpers.accessible``).

With ``DEMONLAB_UPDATE_SCREENSHOTS=1`` the first screen is copied to ``docs/dashboard-study.png``.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from dashboard_helpers import (
    ARMS,
    BETAS,
    DOCS,
    LRS,
    Server,
    accessible,
    finish,
    keys,
    new_page,
    no_problems,
    record_all,
    serve,
    shot,
    spec,
    start,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.slow  # a browser and a server subprocess: ~5 s a test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``demonlab serve`` for the module (a server per test cost ~3 s of CPU each): every test
    makes its own study and reads only that study's page and answers, so they share it safely."""
    with serve(tmp_path_factory.mktemp("serve")) as running:
        yield running


def finished_study(server: Server, name: str = "landscape", seeds: int = 3) -> str:
    study_id = server.submit(spec(name, seeds=seeds))
    start(server.engine)
    record_all(server.engine, study_id, keys(seeds=tuple(range(seeds))))
    finish(server.engine, study_id)
    return study_id


def open_study(page: Any, server: Server, study_id: str, query: str = "") -> None:
    page.goto(f"{server.url}/studies/{study_id}{query}")
    page.wait_for_selector("#study[data-ready=true]")


def in_first_screen(page: Any, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900 and box["x"] + box["width"] <= 1400


def test_first_screen_answers_which_arm_by_how_much_how_sure(server: Server, page: Any, tmp_path: Path) -> None:
    study_id = finished_study(server, seeds=8)  # enough seeds for every pair interval
    open_study(page, server, study_id)
    report = server.http.get(f"/api/v1/studies/{study_id}/sensitivity").json()
    heatmaps = server.http.get(f"/api/v1/studies/{study_id}/heatmaps").json()
    (pair,) = report["pairs"]

    # Every part of the answer is on the first screen (1400 × 900, nothing scrolled).
    for part in ("#verdicts .verdict", "#forest svg.forest", "#slices svg.slice", "#differences svg.difference"):
        assert in_first_screen(page, part), part
    assert page.locator("#verdicts .verdict").count() == len(report["pairs"])
    assert f"{pair['arm_a']} vs {pair['arm_b']}" in page.locator("#verdicts").inner_text()
    if "verdict" in pair:  # metrics v4: the verdict's own statement is the headline
        assert pair["verdict"]["statement"] in page.locator("#verdicts").inner_text()
        assert page.locator("#verdicts .verdict").get_attribute("data-outcome") == pair["verdict"]["outcome"]

    # The forest plot: one row per Δ of the pair, its estimate, a zero line.
    deltas = [pair["primary"], *pair["exploratory"]] if "primary" in pair else pair["deltas"]
    forest = page.locator("#forest svg.forest")
    assert forest.locator("circle.estimate").count() == sum(
        1 for d in deltas if d.get("value", d.get("delta")) is not None
    )
    assert forest.locator("line.zero-line").count() == 1
    assert "demon_sgdm better →" in forest.text_content()
    path = shot(page, tmp_path, "first-screen", full_page=False)
    if os.environ.get("DEMONLAB_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / "dashboard-study.png")
    page.click("#forest button")  # its table twin
    rows = page.locator("#forest table.forest-table tbody tr")
    assert rows.count() == len(deltas)

    # lr slices: one panel per β_init, one line per arm; the all-diverged lr marked × for sgdm_step.
    slices = page.locator("#slices svg.slice")
    assert slices.count() == len(BETAS)
    assert slices.first.locator("polyline.series").count() == len(ARMS)
    assert slices.first.locator(".mark-diverged").count() == 1  # sgdm_step at lr 1
    key = [k.inner_text().strip("━ ").strip() for k in page.locator("#slices .key").all()]
    assert key == [a["arm"] for a in heatmaps["arms"]] == list(report["arms"])  # one arm order everywhere

    # The difference map: first arm − second per cell, in percentage points (the PNG's unit).
    (difference,) = heatmaps["differences"]["pairs"]
    labels = [c.text_content() for c in page.locator("#differences svg.difference .cell-label").all()]
    expected = [("+" if v > 0 else "") + f"{100 * v:.1f}" for row in difference["values"] for v in row if v is not None]
    assert labels == expected
    assert "Blue: demon_sgdm lower (better) than sgdm_step" in page.locator("#differences").inner_text()
    accessible(page, "first screen")
    no_problems(page)


def test_keyboard_one_tab_stop_per_map_arrows_and_enter(server: Server, page: Any, tmp_path: Path) -> None:
    study_id = finished_study(server)
    open_study(page, server, study_id)
    maps = page.locator("svg.heatmap")
    for index in range(len(ARMS)):
        assert maps.nth(index).locator(".cell[tabindex='0']").count() == 1  # one Tab stop per map
        assert maps.nth(index).locator(".cell[tabindex='-1']").count() == len(LRS) * len(BETAS) - 1
    first = maps.first.locator(".cell[tabindex='0']")
    first.focus()
    page.keyboard.press("Tab")  # leaves the map at once: the next stop is the second map
    focused = page.evaluate("document.activeElement.dataset.arm")
    assert focused == ARMS[1]
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("[document.activeElement.dataset.arm, document.activeElement.dataset.i]") == [ARMS[0], "0"]
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # stops at the last column
    state = page.evaluate("[document.activeElement.dataset.i, document.activeElement.dataset.j]")
    assert state == ["1", str(len(BETAS) - 1)]
    expect(page.locator("#tooltip")).to_be_visible()  # focus shows the cell's tooltip
    assert maps.first.locator(".cell[tabindex='0']").get_attribute("data-i") == "1"  # the stop moved along
    page.keyboard.press("Enter")
    details = page.locator("#cell-details")
    expect(details).to_be_focused()
    expect(details.locator("h3")).to_have_text(f"Trials of {ARMS[0]} at lr {LRS[1]}, β_init {BETAS[-1]}")
    assert in_first_screen(page, "#cell-details h3")
    accessible(page, "details opened from the keyboard")
    no_problems(page)


def test_state_in_the_url_survives_a_reload(server: Server, page: Any, tmp_path: Path) -> None:
    study_id = finished_study(server)
    open_study(page, server, study_id)
    page.select_option("#split", "val")
    page.wait_for_selector("#study[data-ready=true]")
    expect(page.locator("svg.heatmap .chart-title").first).to_contain_text("median val error")
    page.locator("svg.heatmap [data-arm='demon_sgdm'][data-i='1'][data-j='2']").click()
    page.locator("#cell-details table").first.wait_for()
    page.click("#cell-details button:has-text('Overlay this cell in every arm')")
    page.locator("#curves svg.curve-chart").first.wait_for()
    query = urlparse(page.url).query
    assert "split=val" in query
    assert "cell=demon_sgdm%2C0.01%2C0.99" in query

    page.reload()
    page.wait_for_selector("#study[data-ready=true]")
    assert page.locator("#split").input_value() == "val"
    expect(page.locator("#cell-details h3")).to_have_text("Trials of demon_sgdm at lr 0.01, β_init 0.99")
    # the overlay: the chosen cell in both arms, train and validation curves, median ± band each
    expect(page.locator("#curve-chips .chip")).to_have_count(len(ARMS))
    loss, metric = page.locator("#curves svg.curve-chart").all()
    assert loss.locator("polyline.series").count() == 2 * len(ARMS)  # train and val per arm
    assert loss.locator("polyline.series.dashed").count() == len(ARMS)
    assert metric.locator("polygon.band").count() == len(ARMS)
    accessible(page, "restored from the URL with the overlay")
    page.click("#curve-chips button[aria-label^='remove sgdm_step']")
    expect(page.locator("#curve-chips .chip")).to_have_count(1)
    no_problems(page)


def test_trial_table_sorts_and_filters_the_whole_study(server: Server, page: Any, tmp_path: Path) -> None:
    study_id = finished_study(server)
    open_study(page, server, study_id)
    table = page.locator("#trials table")
    assert "72 trials, page 1 of 3" in page.locator("#trials .pager").inner_text()
    table.locator("th button", has_text="test error").click()
    expect(table.locator("th[aria-sort=ascending]")).to_have_count(1)
    best = server.http.get(f"/api/v1/studies/{study_id}/trials", params={"sort": "test_metric", "limit": 1}).json()
    first_row = [c.inner_text() for c in table.locator("tbody tr").first.locator("td").all()]
    assert first_row[:4] == [best["data"][0]["arm"], "0.01", "0.99", "0"]
    table.locator("th button", has_text="test error").click()
    expect(table.locator("th[aria-sort=descending]")).to_have_count(1)
    page.select_option("#trial-filters select[name=status]", "diverged")
    page.fill("#trial-filters input[name=lr]", "1")
    page.click("#trial-filters button[type=submit]")
    expect(page.locator("#trials .pager")).to_contain_text("12 trials")  # lr 1: 3 of demon_sgdm, 9 of sgdm_step
    assert {c.inner_text() for c in table.locator("tbody td:nth-child(5)").all()} == {"diverged"}
    assert "t_status=diverged" in page.url
    accessible(page, "trial table filtered")
    page.reload()
    expect(page.locator("#trials .pager")).to_contain_text("12 trials")  # the filters came back from the URL
    no_problems(page)


def test_dark_mode_and_print(server: Server, browser: Any, tmp_path: Path) -> None:
    study_id = finished_study(server)
    with new_page(browser, color_scheme="dark") as page:
        open_study(page, server, study_id)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(22, 23, 26)"
        accessible(page, "dark mode")
        shot(page, tmp_path, "dark", full_page=False)
        page.emulate_media(media="print", color_scheme="light")
        assert page.locator("header.top").is_hidden()
        assert page.locator("#cancel-button").is_hidden()
        assert page.locator("#forest svg.forest").is_visible()
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
        page.emulate_media(media="screen", color_scheme="dark")
        for path in ("/", "/submit", f"/compare?studies={study_id}&workload=synthetic"):
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            accessible(page, f"dark mode {path}")
        no_problems(page)
    # A phone (390 × 844): the answer wraps to the screen; nothing runs off its right edge (the forest
    # plot's fixed width made the page 684 px wide and cut the verdict sentence).
    with new_page(browser, width=390, height=844) as page:
        open_study(page, server, study_id)
        shot(page, tmp_path, "phone", full_page=False)
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391)"
            ".map(e => e.tagName + '#' + e.id + '.' + e.className.baseVal + e.className + ' ' +"
            " Math.round(e.getBoundingClientRect().right)).slice(0, 12)"
        )
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, wide
        for part in ("#verdicts .verdict", "#forest svg.forest", "#slices svg.slice"):
            box = page.locator(part).first.bounding_box()
            assert box is not None, part
            assert box["x"] >= 0, part
            assert box["x"] + box["width"] <= 390, (part, box)
        no_problems(page)


def test_a_study_where_every_run_diverged_reads_as_such(server: Server, page: Any, tmp_path: Path) -> None:
    """Every trial diverged: the slices mark × at every lr and the forest says an arm never trained
    (the page read "no finite values yet" without a mark, and "No Δ yet", as if nothing had run)."""
    from service.db import dal, session_scope
    from studies.results import TrialResult, TrialStatus

    study_id = server.submit(spec("everything diverged", seeds=2))
    start(server.engine)
    with session_scope(server.engine) as session:
        for key in keys(seeds=(0, 1)):
            diverged = TrialResult(key=key, status=TrialStatus.DIVERGED, epochs=(), val_loss=math.inf)
            dal.record_trial_result(session, study_id, diverged)
    finish(server.engine, study_id)
    open_study(page, server, study_id)
    outcomes = {
        p["verdict"]["outcome"] for p in server.http.get(f"/api/v1/studies/{study_id}/sensitivity").json()["pairs"]
    }
    assert outcomes == {"never_trained"}
    slices = page.locator("#slices svg.slice")
    assert slices.count() == len(BETAS)
    for index in range(len(BETAS)):
        assert slices.nth(index).locator(".mark-diverged").count() == len(ARMS) * len(LRS)
        assert "no finite values" not in slices.nth(index).text_content()
    assert "an arm never trained" in page.locator("#forest").inner_text()
    shot(page, tmp_path, "all-diverged", full_page=False)
    no_problems(page)


def test_api_docs_work_offline_under_the_csp(server: Server, page: Any, tmp_path: Path) -> None:
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).netloc))
    response = page.goto(server.url + "/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock-summary-path")
    assert page.locator(".opblock").count() > 10  # every operation, from /openapi.json
    assert page.locator(".opblock-summary-path", has_text="/api/v1/studies/{study_id}/heatmaps").count() == 1
    assert hosts == {urlparse(server.url).netloc}  # nothing from a CDN
    accessible(page, "API docs")
    page.locator(".opblock-summary-control").first.click()  # an operation opened: its parameters and schema
    page.locator(".opblock-body").first.wait_for()
    accessible(page, "API docs, an operation open")
    shot(page, tmp_path, "docs", full_page=False)
    no_problems(page)


def test_tooltip_is_capped_with_a_median_curve(server: Server, page: Any, tmp_path: Path) -> None:
    many = tuple(range(12))
    study_id = server.submit(spec("many seeds", seeds=len(many)))
    start(server.engine)
    record_all(server.engine, study_id, keys(seeds=many))
    finish(server.engine, study_id)
    open_study(page, server, study_id)
    page.locator("svg.heatmap [data-arm='demon_sgdm'][data-i='1'][data-j='1']").hover()
    tooltip = page.locator("#tooltip")
    tooltip.locator(".seed").first.wait_for()
    assert tooltip.locator(".seed").count() == 8
    assert tooltip.locator(".more").inner_text() == "+4 more (click the cell for every seed)"
    assert "band min–max over 12 seeds" in tooltip.locator("svg.tip-chart").text_content()
    assert tooltip.locator("svg.tip-chart polyline.series").count() == 1  # one median curve, not 12
    box = tooltip.bounding_box()
    assert box is not None
    assert box["height"] <= 380
    assert box["y"] + box["height"] <= 900  # inside the window
    accessible(page, "capped tooltip")
    no_problems(page)
