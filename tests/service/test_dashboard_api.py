"""The dashboard's server side without a browser (in-process app, SQLite and PostgreSQL): the heatmap
and search-point JSON, spec parsing with field lines, the pages' headers, escaping and name search,
and the figures in words reading reports whose fields differ from today's."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from service.dashboard import words
from service.db import dal, session_scope
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus

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
    assert body["interval_level"] == 0.95
    assert [a["arm"] for a in body["arms"]] == list(ARMS)
    demon, step = body["arms"]
    grid = api.get(f"/api/v1/studies/{study_id}/grid", params={"arm": "demon_sgdm"}).json()
    assert demon["values"] == grid["values"]  # the same medians as /grid
    assert demon["ci_low"] == grid["ci_low"]
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
    page = api.get(f"/studies/{study_id}")
    assert 'id="scatter"' in page.text


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


def test_words_read_reports_defensively() -> None:
    context = words.Context(metric="error", split="test", eps=0.01, relative=False)
    arm = {
        "peak": {
            "status": "ok",
            "lr": 0.1,
            "beta_init": 0.9,
            "raw_score": 0.12,
            "raw_score_ci_low": 0.1,
            "raw_score_ci_high": 0.14,
            "level": 0.9,
            "n_seeds": 5,
        },
        "good_fraction": {"status": "too_few_seeds"},
        "a_new_figure": {"value": 3},
        "variance": "not a mapping",
    }
    lines = {line.label: line.sentence for line in words.arm_lines(arm, context)}
    assert "interval [0.1, 0.14] at 90%" in lines["Peak"]
    assert lines["ε-good region"] == "not estimated: too few seeds"
    assert lines["a new figure"] == '{"value": 3}'
    assert "Variance" not in lines
    pair = {
        "arm_a": "demon_sgdm",
        "arm_b": "sgdm_step",
        "deltas": [
            {
                "metric": "good_fraction",
                "estimate": 0.12,
                "ci_low": 0.05,
                "ci_high": 0.2,
                "bootstrap_share_positive": 0.97,
            },
            {"metric": "peak", "status": "too_few_seeds"},
            {"metric": "renamed_metric"},
        ],
        "ties": 3,
    }
    sentences = [line.sentence for line in words.pair_lines(pair)]
    assert sentences[0] == (
        "demon_sgdm's ε-good region is 0.12 larger than sgdm_step's, interval [0.05, 0.2] at 95%; "
        "97% of bootstrap resamples favour demon_sgdm (better for demon_sgdm)"
    )
    assert sentences[1] == "not estimated: too few seeds"
    assert sentences[2] == "no estimate"
    assert sentences[3] == "3"
    assert words.pair_lines({"arm_a": "a", "arm_b": "b", "error": "different grids"})[0].sentence == "different grids"
