"""The atlas's page and its offline report in a real browser (Debian's headless Chromium under
Playwright, as the dashboard's browser tests): the page follows the atlas live until it is done and
shows every figure; the downloaded report opens from a file with the network cut off, loads every
figure from itself, requests nothing else, and prints (navigation and download links hidden).

The atlas is the smoke suite, run for real by the study driver in this process (claimed as the
scheduler would) against the server's SQLite database.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import Server  # the server, browser and page fixtures: tests/service/conftest.py
from playwright.sync_api import expect
from test_atlas import run_queued

from service.settings import Settings

pytestmark = pytest.mark.slow

ALL_IMAGES_LOADED = "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"


def wait_for_images(view: Any, timeout_s: float = 30.0) -> None:
    """Until every image has loaded and decoded (evaluated through the protocol: the page's CSP
    forbids the string evaluation ``wait_for_function`` uses)."""
    deadline = time.monotonic() + timeout_s
    while not view.evaluate(ALL_IMAGES_LOADED):
        assert time.monotonic() < deadline, "images did not load"
        view.wait_for_timeout(200)


def test_atlas_page_follows_the_atlas_and_the_report_opens_offline(
    server: Server,
    page: Any,
    browser: Any,
    tmp_path: Path,
) -> None:
    created = server.http.post("/api/v1/atlases", json={"suite": "smoke", "seeds": 6})
    assert created.status_code == 202, created.text
    page.goto(f"{server.url}/atlases/smoke-s6")
    expect(page.locator("h1")).to_contain_text("Sensitivity atlas · smoke suite · 6 seeds")
    expect(page.locator("#atlas-status")).to_have_text("running")
    expect(page.locator("#atlas-command")).to_have_text("demonlab atlas --suite smoke --seeds 6")

    settings = Settings(data_dir=tmp_path / "data", database_url=str(server.engine.url))
    run_queued(server.engine, settings)

    expect(page.locator("#atlas-status")).to_have_text("done", timeout=60_000)  # the page refreshed itself
    rows = page.locator("#answer-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("demon_sgdm vs sgdm_none")
    expect(rows.first).to_contain_text("of 2 workloads")
    wait_for_images(page)
    assert page.locator("img").count() == 1 + 3 + 4  # overview, 3 forest plots, 2 workloads × 2 families
    assert page.problems == []

    report = tmp_path / "atlas-smoke-s6.html"
    report.write_text(server.http.get("/api/v1/atlases/smoke-s6/report.html").text)
    offline = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    try:
        view = offline.new_page()
        requests: list[str] = []
        view.on("request", lambda request: requests.append(request.url))
        view.goto(report.as_uri())
        expect(view.locator("h1")).to_contain_text("Sensitivity atlas · smoke suite · 6 seeds")
        expect(view.locator("#answer-table tbody tr")).to_have_count(3)
        wait_for_images(view)
        assert view.locator("img").count() == 8
        assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
        view.emulate_media(media="print")
        assert view.locator(".exports").first.is_hidden()
        pdf = view.pdf(format="A4")
        assert pdf.startswith(b"%PDF")
        assert len(pdf) > 10_000
    finally:
        offline.close()
