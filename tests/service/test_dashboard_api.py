"""The dashboard's server side without a browser (in-process app, SQLite and PostgreSQL): the heatmap
and search-point JSON, spec parsing with field lines, the pages' headers, escaping and name search,
the figures in words of real sensitivity reports (metrics version 6: the verdict first, every figure
with its 95% interval or the reason it has none, Δ > 0 = the first arm better, the target beside
every success figure), and the words of a never-trained arm and of the probabilities."""

from __future__ import annotations

import html
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from service.dashboard import words
from service.db import StudyStatus, dal, session_scope
from studies.metrics.models import METRICS_VERSION
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus
from studies.units import Units, points

ARMS = ("demon_sgdm", "sgdm_step")


def engine_of(api: TestClient) -> Engine:
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    return engine


def submit(api: TestClient, spec: dict[str, Any]) -> str:
    response = api.post("/api/v1/studies", json=spec)
    assert response.status_code == 202, response.text
    study_id: str = response.json()["id"]
    return study_id


def completed(key: TrialKey, value: float) -> TrialResult:
    return TrialResult(
        key=key,
        status=TrialStatus.COMPLETED,
        epochs=(EpochRecord(0, 1.0, 0.5, value),),
        val_metric=value,
        val_loss=0.5,
        test_metric=value,
        test_loss=0.5,
        epochs_done=1,
        wall_seconds=0.1,
        node="n1",
        device="cpu",
    )


def record(api: TestClient, study_id: str, results: list[TrialResult]) -> None:
    for result in results:
        with session_scope(engine_of(api)) as session:
            dal.record_trial_result(session, study_id, result)


def test_heatmaps_share_one_scale_and_mark_divergence(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec)
    results = []
    for key in (TrialKey(a, lr, b, s) for a in ARMS for lr in (0.01, 0.1, 1.0) for b in (0.8, 0.9) for s in (0, 1)):
        if key.lr == 1.0 and key.arm == "sgdm_step":
            results.append(TrialResult(key=key, status=TrialStatus.DIVERGED, epochs=(), val_loss=math.inf))
        elif (key.arm, key.lr, key.beta_init, key.seed) != ("demon_sgdm", 0.01, 0.8, 1):  # one seed missing
            results.append(
                completed(key, 0.1 * (key.lr * 10) + (0.09 if key.arm == "sgdm_step" else 0) + 0.01 * key.seed)
            )
    record(api, study_id, results)

    body = api.get(f"/api/v1/studies/{study_id}/heatmaps").json()
    assert body["lrs"] == [0.01, 0.1, 1.0]
    assert body["betas"] == [0.8, 0.9]
    assert [a["arm"] for a in body["arms"]] == list(ARMS)
    demon, step = body["arms"]
    grid = api.get(f"/api/v1/studies/{study_id}/grid", params={"arm": "demon_sgdm"}).json()
    assert demon["values"] == grid["values"]  # the same medians as /grid
    assert demon["interval_low"] == grid["median_low"]  # and the same intervals, at their real level
    assert demon["interval_high"] == grid["median_high"]
    assert demon["interval_level"] == grid["median_level"]
    assert demon["interval_level"][1][0] == 0.5  # two seeds: 1 - 2^(1-2), never labelled 95%
    assert demon["interval_low"][0][0] is None  # one seed: no interval
    assert demon["interval_level"][0][0] is None
    assert demon["n"][0][0] == 1
    assert demon["missing"][0][0] == 1
    assert step["diverged"][2] == [2, 2]
    assert step["divergence_rate"][2] == [1.0, 1.0]
    assert step["divergence_rate"][0] == [0.0, 0.0]
    # One colour scale: equal values get equal colours across arms; the best cell is the brightest.
    assert demon["values"][1][0] == pytest.approx(step["values"][0][0])
    assert demon["colours"][1][0] == step["colours"][0][0]
    assert demon["colours"][1][0] != demon["colours"][2][0]
    colours = {c for arm in body["arms"] for row in arm["colours"] for c in row}
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    assert body["scale"]["min"] == pytest.approx(
        min(v for a in body["arms"] for r in a["values"] for v in r if v is not None)
    )
    assert body["scale"]["legend"][0]["colour"] == demon["colours"][0][0]  # the minimum: viridis_r's bright end
    bad = api.get(f"/api/v1/studies/{study_id}/heatmaps", params={"split": "train"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "split"


def test_search_points_and_importances(api: TestClient) -> None:
    spec = {
        "name": "search",
        "workload": "synthetic",
        "arms": ["demon_sgdm"],
        "seeds": 1,
        "epochs": 1,
        "search": {
            "mode": "optuna",
            "n_trials": 12,
            "lr": {"min": 0.001, "max": 1.0},
            "beta_init": {"min": 0.5, "max": 0.95},
        },
    }
    study_id = submit(api, spec)
    points = [(10 ** (-3 + 0.25 * i), 0.5 + 0.04 * ((5 * i) % 12)) for i in range(12)]
    # the score depends on lr only: lr gets (almost) all the importance
    record(api, study_id, [completed(TrialKey("demon_sgdm", lr, b, 0), abs(math.log10(lr) + 1.5)) for lr, b in points])
    body = api.get(f"/api/v1/studies/{study_id}/points").json()
    (arm,) = body["arms"]
    assert len(arm["points"]) == 12
    assert {(p["lr"], p["beta_init"]) for p in arm["points"]} == set(points)
    assert arm["importances"]["lr"] > 0.8
    assert arm["importance_method"] == "Optuna's PED-ANOVA"  # named: the page says which evaluator
    page = api.get(f"/studies/{study_id}")
    assert 'id="scatter"' in page.text


# Two arms searched over one box (the tests record the sampled points themselves).
TWO_ARM_SEARCH: dict[str, Any] = {
    "workload": "synthetic",
    "arms": ["demon_sgdm", "sgdm_step"],
    "seeds": 2,
    "epochs": 1,
    "search": {
        "mode": "optuna",
        "n_trials": 4,
        "lr": {"min": 0.01, "max": 1.0},
        "beta_init": {"min": 0.5, "max": 0.95},
    },
}


def test_one_value_everywhere_gets_a_colour_bar_of_possible_errors(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    """Every cell with the same median (every trial diverged, or one cell so far): the colour bar is
    padded by half a percentage point, as the PNG's, where it read 16.7 … 117% (±0.5 of a fraction)."""
    study_id = submit(api, smoke_spec)
    keys = [TrialKey(a, lr, b, s) for a in ARMS for lr in (0.01, 0.1, 1.0) for b in (0.8, 0.9) for s in (0, 1)]
    record(api, study_id, [TrialResult(key=k, status=TrialStatus.DIVERGED, epochs=(), val_loss=math.inf) for k in keys])
    body = api.get(f"/api/v1/studies/{study_id}/heatmaps").json()
    assert body["percent"] is True
    (value,) = {v for arm in body["arms"] for row in arm["values"] for v in row}
    legend = [stop["value"] for stop in body["scale"]["legend"]]
    assert min(legend) == pytest.approx(value - 0.005)
    assert max(legend) == pytest.approx(value + 0.005)
    compared = api.get("/api/v1/compare/heatmaps", params={"studies": study_id}).json()
    (scale,) = compared["scales"].values()
    assert [stop["value"] for stop in scale["legend"]] == pytest.approx(legend)


def test_a_search_arm_the_sampler_has_not_reached_shows_empty_cells_not_an_error(api: TestClient) -> None:
    """A search study cancelled (or still running) before its second arm ran a trial: its maps, its
    grid and a comparison with it answer, that arm with every cell missing (a 422 and a 409 that said
    to try again later before, though the study had ended)."""
    study_id = submit(api, TWO_ARM_SEARCH | {"name": "one arm sampled"})
    points = [(0.02, 0.6), (0.2, 0.9)]
    record(api, study_id, [completed(TrialKey("demon_sgdm", lr, b, s), 0.2 + lr) for lr, b in points for s in (0, 1)])
    assert api.post(f"/api/v1/studies/{study_id}/cancel").status_code == 200

    maps = api.get(f"/api/v1/studies/{study_id}/heatmaps")
    assert maps.status_code == 200, maps.text
    by_arm = {arm["arm"]: arm for arm in maps.json()["arms"]}
    assert set(by_arm) == {"demon_sgdm", "sgdm_step"}
    assert by_arm["sgdm_step"]["values"] == [[None, None], [None, None]]
    assert by_arm["sgdm_step"]["n"] == [[0, 0], [0, 0]]
    assert by_arm["demon_sgdm"]["n"] == [[2, 0], [0, 2]]
    grid = api.get(f"/api/v1/studies/{study_id}/grid", params={"arm": "sgdm_step"})
    assert grid.status_code == 200, grid.text
    assert grid.json()["lrs"] == [0.02, 0.2]
    assert api.get("/api/v1/compare/heatmaps", params={"studies": study_id}).status_code == 200
    one = api.get("/api/v1/compare/heatmaps", params={"studies": study_id, "arm": "sgdm_step"}).json()
    assert [m["arm"] for m in one["maps"]] == ["sgdm_step"]
    typo = api.get("/api/v1/compare/heatmaps", params={"studies": study_id, "arm": "bogus"})
    assert typo.status_code == 422  # a typo is an error, not an empty page
    assert typo.json()["field"] == "arm"
    assert api.get(f"/api/v1/studies/{study_id}/grid", params={"arm": "sgdm_typo"}).status_code == 422


def test_a_search_that_sampled_nothing_answers_409_saying_why_and_the_schema_says_so(api: TestClient) -> None:
    """Queued: try again later. Cancelled before its first trial: it never will have a grid (the
    message said to try again). Either way the status is one the OpenAPI lists for the route."""
    study_id = submit(api, TWO_ARM_SEARCH | {"name": "nothing sampled"})
    routes = ["grid", "sensitivity", "heatmaps", "heatmap.png", "heatmap.svg"]
    for route in routes:
        response = api.get(f"/api/v1/studies/{study_id}/{route}")
        assert response.status_code == 409, (route, response.text)
        assert "try again once trials have finished" in response.json()["detail"]
    assert api.post(f"/api/v1/studies/{study_id}/cancel").status_code == 200
    for route in routes:
        response = api.get(f"/api/v1/studies/{study_id}/{route}")
        assert response.status_code == 409, (route, response.text)
        assert response.json()["detail"] == "the search ended (cancelled) before it sampled any point: it has no grid"
    compared = api.get("/api/v1/compare/heatmaps", params={"studies": study_id})
    assert compared.status_code == 409
    paths = api.get("/openapi.json").json()["paths"]
    for path in [f"/api/v1/studies/{{study_id}}/{route}" for route in routes] + ["/api/v1/compare/heatmaps"]:
        assert "409" in paths[path]["get"]["responses"], path


def test_a_search_study_has_no_verdict_on_any_surface(api: TestClient) -> None:
    """The study page says a search has no grid and so no verdict; the sensitivity report (the API, the
    CLI, the figures in words) says the same instead of a verdict on its sampled points as a grid."""
    spec = TWO_ARM_SEARCH | {"name": "two arms searched"}
    study_id = submit(api, spec)
    points = [(0.02, 0.6), (0.2, 0.9)]  # the study's sampler proposes each point for every arm
    record(
        api,
        study_id,
        [
            completed(TrialKey(arm, lr, b, s), 0.1 + lr)
            for arm in ("demon_sgdm", "sgdm_step")
            for lr, b in points
            for s in (0, 1)
        ],
    )
    (pair,) = api.get(f"/api/v1/studies/{study_id}/sensitivity").json()["pairs"]
    assert pair["verdict"]["outcome"] == "inconclusive_too_few_seeds"
    assert pair["verdict"]["winner"] is None
    assert pair["verdict"]["statement"].startswith("A search samples points, not a grid")
    assert "A search samples points, not a grid" in api.get(f"/studies/{study_id}/figures").text
    with session_scope(engine_of(api)) as session:  # completed: robustness reads finished studies
        dal.claim_queued_studies(session, limit=10, launcher_id="test")
        dal.finish_study(session, study_id, status=StudyStatus.COMPLETED)
    grid_study = submit(
        api, {**spec, "name": "a grid", "search": {"mode": "grid"}, "lr": [0.02, 0.2], "beta_init": [0.6, 0.9]}
    )
    with session_scope(engine_of(api)) as session:
        dal.claim_queued_studies(session, limit=10, launcher_id="test")
        dal.finish_study(session, grid_study, status=StudyStatus.COMPLETED)
    body = api.get("/api/v1/robustness", params={"workload": "synthetic"}).json()
    assert body["query"]["studies"] == 1  # the grid study is read, the search is not


def test_spec_parse_gives_each_field_its_line(api: TestClient) -> None:
    text = "name: x\nworkload: synthetic\narms:\n  - demon_sgdm\n  - name: sgdm_step\nepochs: 2\n"
    body = api.post("/api/v1/specs/parse", json={"text": text}).json()
    assert body["spec"]["arms"][1] == {"name": "sgdm_step"}
    assert body["lines"]["epochs"] == 6
    assert body["lines"]["arms.1.name"] == 5
    bad = api.post("/api/v1/specs/parse", json={"text": "name: x\narms: [a\n"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "spec"
    assert bad.json()["line"] == 3
    assert api.post("/api/v1/specs/parse", json={"text": "- a\n- b\n"}).json()["line"] == 1
    assert api.post("/api/v1/specs/parse", json={"text": "  "}).status_code == 422
    twice = api.post("/api/v1/specs/parse", json={"text": "name: x\nseeds: 8\nepochs: 1\nseeds: 2\n"}).json()
    assert (twice["line"], "found the key 'seeds' twice" in twice["detail"]) == (4, True)
    merged = "base: &b {seeds: 2}\nspec:\n  <<: *b\n  seeds: 3\n"  # a merged key may be overridden
    assert api.post("/api/v1/specs/parse", json={"text": merged}).json()["spec"]["spec"]["seeds"] == 3


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("epochs: .nan\n", "numbers must be finite"),
        ("when: 2026-13-01\n", "month must be in 1..12"),
        ("a: &a [*a]\n", "an alias refers to a field that holds it"),  # YAML can build a cycle; JSON cannot hold one
        (
            "a: &a [x, x]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}]\n"
                for p, c in zip("abcdefghijklmnopqrstuvwxy", "bcdefghijklmnopqrstuvwxyz", strict=True)
            ),
            "fields",
        ),
        ("x: &x [" + ", ".join(["0"] * 50_000) + "]\n" + "a: *x\n" * 10, "fields"),  # one key, repeated
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_spec_parse_refuses_what_json_cannot_send(api: TestClient, text: str, reason: str) -> None:
    response = api.post("/api/v1/specs/parse", json={"text": text})
    assert response.status_code == 422
    assert response.json()["field"] == "spec"
    assert reason in response.json()["detail"]
    if "alias" in reason:  # where the answer knows the line, its `line` says it (the page marks it)
        assert response.json()["line"] == 1


def test_spec_parse_sends_yaml_scalars_as_json_would(api: TestClient) -> None:
    body = api.post("/api/v1/specs/parse", json={"text": "1: one\nwhen: 2026-11-30\nnull: ~\n"}).json()
    assert body["spec"] == {"1": "one", "when": "2026-11-30", "null": None}
    assert body["lines"] == {"1": 1, "when": 2, "null": 3}


def test_pages_headers_escaping_and_search(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    evil = submit(api, smoke_spec | {"name": "<img src=x onerror=alert(1)> Sweep"})
    submit(api, smoke_spec | {"name": "other"})
    page = api.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert "<img src=x" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt; Sweep" in page.text
    assert re.search(r"<script>(?!</script>)", page.text) is None  # no inline script
    found = api.get("/", params={"q": "sweep"}).text
    assert f'data-study="{evil}"' in found
    assert "other" not in found
    assert api.get("/", params={"status": "bogus"}).status_code == 422
    study = api.get(f"/studies/{evil}")
    assert study.headers["content-security-policy"] == csp
    assert "<img src=x" not in study.text
    missing = api.get("/studies/000000000000")
    assert missing.status_code == 404
    assert "000000000000" in missing.text
    assert "not found" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    assert api.get("/compare?studies=000000000000").status_code == 404
    for path in (
        "/compare",
        f"/compare?studies={evil}&workload=synthetic",
        "/submit",
        "/submit?example=synthetic_smoke",
    ):
        assert api.get(path).status_code == 200, path
    assert api.get("/submit?example=nope").status_code == 422
    assert api.get("/static/study.js").status_code == 200


def grid_study(api: TestClient, seeds: int) -> str:
    """A finished-looking grid study with real results: demon_sgdm better by 0.05 everywhere, a
    valley at lr 0.1, every seed of sgdm_step diverged at lr 1 and β_init 0.9."""
    lrs, betas = (0.01, 0.1, 1.0), (0.8, 0.9)
    spec = {
        "name": f"{seeds} seeds",
        "workload": "synthetic",
        "arms": list(ARMS),
        "lr": list(lrs),
        "beta_init": list(betas),
        "seeds": seeds,
        "epochs": 1,
    }
    study_id = submit(api, spec)
    results = []
    for key in (TrialKey(a, lr, b, s) for a in ARMS for lr in lrs for b in betas for s in range(seeds)):
        if (key.arm, key.lr, key.beta_init) == ("sgdm_step", 1.0, 0.9):
            results.append(TrialResult(key=key, status=TrialStatus.DIVERGED, epochs=(), val_loss=math.inf))
            continue
        value = 0.2 + 0.1 * abs(math.log10(key.lr) + 1) + 0.1 * (0.9 - key.beta_init) + 0.003 * ((7 * key.seed) % 5)
        results.append(completed(key, round(value + (0.05 if key.arm == "sgdm_step" else 0.0), 6)))
    record(api, study_id, results)
    return study_id


def page_text(markup: str) -> str:
    """The text a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))


SEED_CASES = [1, 3, 8]  # no interval below 8 seeds (the report's min_interval_seeds), 95% from 8


@pytest.mark.parametrize("seeds", SEED_CASES)
def test_figures_in_words_of_a_real_report(api: TestClient, seeds: int) -> None:
    study_id = grid_study(api, seeds)
    report = api.get(f"/api/v1/studies/{study_id}/sensitivity").json()
    assert report["metrics_version"] == 7
    metric = report["study"]["metric"]
    fragment = api.get(f"/studies/{study_id}/figures")
    assert fragment.status_code == 200
    text = page_text(fragment.text)
    target, units = report["target"], Units(percent=report["score_unit"] == "percent")  # as the study page reads
    assert (
        f"A run succeeds when its test {metric} is at most {units.score(target['raw_value'])} ({target['source']})"
        in (text)
    )
    assert "Δ > 0 means the first arm is better" in text
    assert f"Metrics version {METRICS_VERSION}." in text

    (pair,) = report["pairs"]
    verdict = pair["verdict"]
    assert text.index(f"Verdict: {verdict['statement']}") < text.index("Success share per seed")  # the answer first
    enough = seeds >= report["min_interval_seeds"]
    if enough:
        assert verdict["outcome"] == "a_less_sensitive"  # demon_sgdm is better by construction
        assert verdict["winner"] == "demon_sgdm"
    else:
        assert verdict["outcome"] == "inconclusive_too_few_seeds"
        assert f"({seeds} seeds)" not in verdict["statement"] or "seeds would detect" in verdict["statement"]
    primary = pair["primary"]
    said = f"Primary: share of the grid reaching the target: Δ = {points(primary['value'])} (positive means demon_sgdm"
    assert said in text
    assert pair["family"] in text
    # "significant" only with its family: the family statement itself, or a figure that passed Holm in it
    assert text.count("significant") == text.count("(significant in the family)") + text.count("'significant' means")

    arm_text = page_text(fragment.text.split('class="figures"')[1])
    for arm, figures in report["arms"].items():
        peak, share = figures["peak"], figures["success"]["share"]
        where = f"lr {words.num(peak['lr'])}, β_init {words.num(peak['beta_init'], 4)}"
        assert f"{where}: median test {metric} {units.score(peak['raw_score'])}, " in arm_text, arm
        if enough:
            low, high = share["interval"]["low"], share["interval"]["high"]
            expected = (
                f"{words.pct(share['value'])} (95% interval [{words.pct(low)}, {words.pct(high)}], {seeds} seeds)"
            )
        else:
            expected = f"{words.pct(share['value'])} (no interval: too few seeds (intervals from 8), {seeds} seeds)"
        assert expected in arm_text, arm
    if not enough:
        assert "95%" not in arm_text  # no figure claims an interval it does not have
    assert "(describes these runs; no interval)" in arm_text  # the variance shares say what they are
    for old in ("eps_good", "ε-good", "min_level", "bootstrap", "higher is better"):  # v3 names and wording
        assert old not in fragment.text


def test_a_study_that_ended_without_results_has_no_figures_and_no_yet(
    api: TestClient, smoke_spec: dict[str, Any]
) -> None:
    """A failed study's figures said "No figures yet: no trial has a result yet": nothing more will come."""
    from service.db import StudyStatus, dal, session_scope

    study_id = submit(api, smoke_spec)
    assert "No figures yet: no trial has a result yet" in api.get(f"/studies/{study_id}/figures").text
    with session_scope(engine_of(api)) as session:
        dal.claim_queued_studies(session, limit=10, launcher_id="test")
        dal.finish_study(session, study_id, status=StudyStatus.FAILED, error="the driver crashed")
    text = page_text(api.get(f"/studies/{study_id}/figures").text)
    assert "No figures: the study failed before any trial had a result" in text
    assert "yet" not in text


def test_words_of_a_never_trained_arm_and_of_probabilities() -> None:
    """An arm that never trained gets no figure, and its pair says so; a probability is worded as a
    chance with its null, a Δ with its sign."""
    from studies.metrics import GridAxes, sensitivity_report

    rows = []
    for arm in ("demon_sgdm", "sgdm_step"):
        for lr in (0.01, 0.1, 1.0):
            for seed in range(8):
                ok = arm == "demon_sgdm"
                value = 0.2 + 0.01 * seed + 0.1 * lr
                rows.append(
                    {
                        "arm": arm,
                        "lr": lr,
                        "beta_init": 0.9,
                        "seed": seed,
                        "status": "completed" if ok else "diverged",
                        "val": value if ok else math.nan,
                        "test": value if ok else math.nan,
                    }
                )
    import pandas as pd

    report = sensitivity_report(pd.DataFrame(rows), GridAxes((0.01, 0.1, 1.0), (0.9,), tuple(range(8))), 0.9)
    context = words.report_context(report, "error")
    lines = words.arm_lines(report.arms["sgdm_step"], context)
    assert lines[0].sentence.startswith("never trained: no run beat the failure score")
    (pair,) = report.pairs
    sentences = [line.sentence for line in words.pair_lines(pair, context)]
    assert sentences == ["sgdm_step never trained (no run beat the failure score): demon_sgdm is the one that trains."]
    trained = words.arm_lines(report.arms["demon_sgdm"], context)
    assert [line.label for line in trained][:2] == ["Peak", "Success share"]
    assert trained[0].sentence.startswith("the best cell (chosen on validation) is lr 0.01, β_init 0.9: median")
    # validation tied in three cells: the sentence names no single cell's median (it gave the mean as
    # the first tied cell's, which the map and /grid contradicted)
    tied = pd.DataFrame(rows).assign(val=lambda f: f["val"].where(f["status"] != "completed", 0.3))
    report = sensitivity_report(tied, GridAxes((0.01, 0.1, 1.0), (0.9,), tuple(range(8))), 0.9)
    peak = words.arm_lines(report.arms["demon_sgdm"], words.report_context(report, "error"))[0].sentence
    assert peak.startswith("3 cells tie as the best on validation (the first: lr 0.01, β_init 0.9): the mean of their")
    assert words.level_pct(0.99998) == "> 99.9%"  # a level short of 100% is not shown as 100%


# ---------------------------------------------------------------- issue 17: the answer, units, parser


def test_heatmaps_in_report_order_with_difference_maps_and_the_png_units(
    api: TestClient, smoke_spec: dict[str, Any]
) -> None:
    from studies.units import is_percent

    study_id = submit(api, smoke_spec | {"arms": ["sgdm_step", "demon_sgdm"]})  # spec order ≠ report order
    keys = [TrialKey(a, lr, b, s) for a in ARMS for lr in (0.01, 0.1, 1.0) for b in (0.8, 0.9) for s in (0, 1)]
    record(api, study_id, [completed(k, 0.1 + 0.1 * k.lr + (0.05 if k.arm == "sgdm_step" else 0.0)) for k in keys])
    body = api.get(f"/api/v1/studies/{study_id}/heatmaps").json()
    report = api.get(f"/api/v1/studies/{study_id}/sensitivity").json()
    assert [a["arm"] for a in body["arms"]] == list(report["arms"]) == sorted(ARMS)
    medians = [v for arm in body["arms"] for row in arm["values"] for v in row]
    assert body["percent"] is is_percent(body["metric"], np.array(medians, dtype=float), body["y_fail"]) is True
    (pair,) = body["differences"]["pairs"]
    assert (pair["arm_a"], pair["arm_b"]) == (report["pairs"][0]["arm_a"], report["pairs"][0]["arm_b"])
    demon, step = body["arms"]
    for i, row in enumerate(pair["values"]):
        for j, value in enumerate(row):
            assert value == pytest.approx(demon["values"][i][j] - step["values"][i][j])
            assert value == pytest.approx(-0.05)  # demon_sgdm's error is 5 points lower everywhere
    assert body["differences"]["max_abs"] == pytest.approx(0.05)
    legend = body["differences"]["legend"]
    assert legend[0]["value"] == pytest.approx(-0.05)
    assert legend[-1]["value"] == pytest.approx(0.05)
    assert legend[len(legend) // 2]["colour"] in ("#f7f6f6", "#f7f7f7")  # white at 0 (RdBu_r)
    assert body["missing_colour"] == "#d9d9d9"
    assert [s["value"] for s in body["rate_legend"]][::8] == [0.0, 0.5, 1.0]
    page = api.get(f"/studies/{study_id}").text
    tags = re.findall(r'<span class="tag arm">([^<]+)</span>', page)
    assert tags == sorted(ARMS)


def test_search_points_name_the_spec_metric(api: TestClient) -> None:
    """With ``metric: loss`` the sampled points are the validation loss, and say so."""
    spec = {
        "name": "search on loss",
        "workload": "synthetic",
        "arms": ["demon_sgdm"],
        "seeds": 1,
        "epochs": 1,
        "metric": "loss",
        "search": {
            "mode": "optuna",
            "n_trials": 4,
            "lr": {"min": 0.001, "max": 1.0},
            "beta_init": {"min": 0.5, "max": 0.95},
        },
    }
    study_id = submit(api, spec)
    points = [(0.001, 0.5), (0.01, 0.6), (0.1, 0.7), (1.0, 0.9)]
    results = [
        replace(completed(TrialKey("demon_sgdm", lr, b, 0), 0.25), test_loss=0.5 + 0.4 * lr, val_loss=0.25 + 0.4 * lr)
        for lr, b in points
    ]
    record(api, study_id, results)
    body = api.get(f"/api/v1/studies/{study_id}/points").json()
    assert body["metric"] == "loss"
    assert body["percent"] is False  # a loss is never shown in percent
    assert sorted(p["value"] for p in body["arms"][0]["points"]) == pytest.approx([0.5 + 0.4 * lr for lr, _ in points])
    val = api.get(f"/api/v1/studies/{study_id}/points", params={"split": "val"}).json()
    assert sorted(p["value"] for p in val["arms"][0]["points"]) == pytest.approx([0.25 + 0.4 * lr for lr, _ in points])


def test_one_spec_parser_for_the_browser_and_the_cli(api: TestClient) -> None:
    from studies.spec import parse_spec_text

    text = "name: x\nworkload: synthetic\narms: [demon_sgdm]\nlr: [1e-4, 3e-2]\nbeta_init: [0.9]\nseeds: 1\nepochs: 1\n"
    body = api.post("/api/v1/specs/parse", json={"text": text}).json()
    assert body["spec"]["lr"] == [0.0001, 0.03] == parse_spec_text(text).lr_values
    assert api.post("/api/v1/studies", json=body["spec"]).status_code == 202


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"seeds": "two"}, [{"field": "seeds", "reason": "Input should be a valid integer or a valid list"}]),
        ({"seeds": [1, "x"]}, [{"field": "seeds.1", "reason": "Input should be a valid integer"}]),
        ({"lr": {"min": 0.1, "max": "x", "num": 3}}, [{"field": "lr.max", "reason": "Input should be a valid number"}]),
    ],
)
def test_a_union_field_fails_once_by_its_own_name(
    api: TestClient, smoke_spec: dict[str, Any], change: dict[str, Any], errors: list[dict[str, str]]
) -> None:
    response = api.post("/api/v1/studies", json=smoke_spec | change)
    assert response.status_code == 422
    assert response.json()["errors"] == errors


def test_submit_page_text_matches_its_select(api: TestClient) -> None:
    page = api.get("/submit").text
    selected = re.search(r'<option value="([^"]+)" selected>', page)
    assert selected is not None
    example = (Path(__file__).resolve().parents[2] / "studies" / "examples" / f"{selected.group(1)}.yaml").read_text()
    assert example.strip() in html.unescape(page)  # the textarea holds the file as it is (apostrophes too)


def test_trials_sorted_by_a_column(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec)
    keys = [TrialKey("demon_sgdm", lr, 0.8, s) for lr in (0.01, 0.1) for s in (0, 1)]
    record(api, study_id, [completed(k, 0.5 - k.lr - 0.01 * k.seed) for k in keys])
    record(
        api, study_id, [TrialResult(key=TrialKey("demon_sgdm", 1.0, 0.8, 0), status=TrialStatus.DIVERGED, epochs=())]
    )
    url = f"/api/v1/studies/{study_id}/trials"
    ascending = [t["val_metric"] for t in api.get(url, params={"sort": "val_metric"}).json()["data"]]
    values = [0.5 - k.lr - 0.01 * k.seed for k in keys]
    missing = [None] * (len(ascending) - len(values))  # the diverged trial and the pending ones last
    assert ascending == pytest.approx([*sorted(values), *missing])
    descending = [t["val_metric"] for t in api.get(url, params={"sort": "-val_metric"}).json()["data"]]
    assert descending == pytest.approx([*sorted(values, reverse=True), *missing])
    bad = api.get(url, params={"sort": "password"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "sort"


def test_api_docs_offline_under_the_dashboard_csp(api: TestClient) -> None:
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == api.get("/").headers["content-security-policy"]
    assert "cdn" not in docs.text.lower()
    assert re.search(r"<script>(?!</script>)", docs.text) is None  # no inline script
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text):
        assert api.get(asset).status_code == 200, asset
    assert "/static/apidocs/swagger-ui-bundle.js" in docs.text
