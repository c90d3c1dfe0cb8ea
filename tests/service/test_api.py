"""The HTTP API in process (``TestClient``, lifespan entered: the database is migrated), on SQLite and
PostgreSQL, without the scheduler: studies are driven by calling the data-access layer directly.

Results are recorded with ``dal.record_trial_result`` from hand-made ``TrialResult`` values whose
scores are easy to check by hand (see ``score``), including diverged trials with non-finite values
and one trial left without a result.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from service import analysis
from service.db import StudyStatus, Trial, dal, session_scope
from service.schemas import GridPublic
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus

ARMS = ("demon_sgdm", "sgdm_step")
LRS = (0.01, 0.1, 1.0)
BETAS = (0.8, 0.9)
SEEDS = (0, 1)
Y_FAIL = 2 / 3  # synthetic: 3 classes, the chance error rate
DIVERGED = {("sgdm_step", 1.0, 0.8, 0), ("sgdm_step", 1.0, 0.8, 1), ("sgdm_step", 1.0, 0.9, 0)}
MISSING = ("sgdm_step", 1.0, 0.9, 1)  # never recorded: stays pending
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def engine_of(api: TestClient) -> Engine:
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    return engine


def submit(api: TestClient, spec: dict[str, Any], key: str | None = None) -> str:
    headers = {"Idempotency-Key": key} if key else {}
    response = api.post("/api/v1/studies", json=spec, headers=headers)
    assert response.status_code == 202, response.text
    study_id: str = response.json()["id"]
    return study_id


def score(arm: str, lr: float, beta_init: float, seed: int) -> float:
    """The test error of a completed trial: arm + lr row / 10 + β column / 100 + seed / 50."""
    base = 0.1 if arm == "demon_sgdm" else 0.3
    return base + LRS.index(lr) * 0.1 + BETAS.index(beta_init) * 0.01 + seed * 0.02


def make_result(key: TrialKey) -> TrialResult:
    if (key.arm, key.lr, key.beta_init, key.seed) in DIVERGED:
        return TrialResult(
            key=key,
            status=TrialStatus.DIVERGED,
            epochs=(EpochRecord(0, math.inf, math.nan, math.nan),),
            val_metric=math.inf,
            val_loss=math.nan,
            test_metric=None,
            test_loss=math.inf,
            best_val_metric=None,
            epochs_done=1,
            wall_seconds=0.25,
            node="node-a",
            device="cpu",
            error="loss is nan",
        )
    value = score(key.arm, key.lr, key.beta_init, key.seed)
    return TrialResult(
        key=key,
        status=TrialStatus.COMPLETED,
        epochs=(EpochRecord(0, 1.0, 0.9, value + 0.1), EpochRecord(1, 0.8, 0.7, value)),
        val_metric=value - 0.05,
        val_loss=0.7,
        test_metric=value,
        test_loss=0.8,
        best_val_metric=value - 0.06,
        epochs_done=2,
        wall_seconds=1.5,
        node="node-a",
        device="cpu",
    )


def all_keys() -> list[TrialKey]:
    return [TrialKey(arm, lr, beta, seed) for arm in ARMS for lr in LRS for beta in BETAS for seed in SEEDS]


def record_results(engine: Engine, study_id: str) -> None:
    """Every trial's result but ``MISSING``'s, each in its own transaction like the driver's."""
    for key in all_keys():
        if (key.arm, key.lr, key.beta_init, key.seed) != MISSING:
            with session_scope(engine) as session:
                dal.record_trial_result(session, study_id, make_result(key))


def claim(engine: Engine, limit: int = 100) -> list[str]:
    """Claim queued studies as the scheduler would (oldest first): they become running."""
    with session_scope(engine) as session:
        return [s.id for s in dal.claim_queued_studies(session, limit=limit, launcher_id="test")]


def finish(engine: Engine, study_id: str, status: StudyStatus = StudyStatus.COMPLETED) -> None:
    with session_scope(engine) as session:
        dal.finish_study(session, study_id, status=status)


def trial_count(engine: Engine, study_id: str, status: TrialStatus | None = None) -> int:
    query = select(func.count()).select_from(Trial).where(Trial.study_id == study_id)
    if status is not None:
        query = query.where(Trial.status == status)
    with session_scope(engine, read_only=True) as session:
        return session.scalar(query) or 0


def strict_json(text: str) -> Any:
    """Parse JSON that must not contain NaN or Infinity (which ``json.loads`` would accept)."""

    def reject(constant: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {constant} in the response")

    return json.loads(text, parse_constant=reject)


@pytest.fixture
def results_study(api: TestClient, smoke_spec: dict[str, Any]) -> str:
    """The smoke study with every result recorded but ``MISSING``'s."""
    study_id = submit(api, smoke_spec)
    record_results(engine_of(api), study_id)
    return study_id


# ---------------------------------------------------------------------------------------------- studies


def test_submit_answers_202_with_location(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    response = api.post("/api/v1/studies", json=smoke_spec)

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "status", "url", "trials_total"}
    assert len(body["id"]) == 12
    assert int(body["id"], 16) >= 0
    assert body["status"] == "queued"
    assert body["trials_total"] == 24
    assert response.headers["location"] == body["url"] == f"/api/v1/studies/{body['id']}"
    study = api.get(response.headers["location"])
    assert study.status_code == 200
    shown = study.json()
    assert shown["id"] == body["id"]
    assert shown["status"] == "queued"
    assert shown["attempts"] == 0
    assert shown["progress"] == {"done": 0, "total": 24, "diverged": 0, "failed": 0, "fraction": 0.0}
    assert shown["spec"]["lr"] == [0.01, 0.1, 1.0]
    assert shown["spec"]["name"] == "synthetic-smoke"
    assert trial_count(engine_of(api), body["id"], TrialStatus.PENDING) == 24


def test_submit_normalises_the_spec(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec | {"lr": [1.0, 0.01, 0.1], "beta_init": [0.9, 0.8]})

    spec = api.get(f"/api/v1/studies/{study_id}").json()["spec"]
    assert spec["lr"] == [0.01, 0.1, 1.0]
    assert spec["beta_init"] == [0.8, 0.9]
    assert [arm["name"] for arm in spec["arms"]] == list(ARMS)


def test_idempotency_key_returns_the_same_study(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    first = submit(api, smoke_spec, key="key-1")
    again = submit(api, smoke_spec, key="key-1")
    other = submit(api, smoke_spec, key="key-2")
    unkeyed = submit(api, smoke_spec)

    assert again == first
    assert len({first, other, unkeyed}) == 3
    assert api.get("/api/v1/studies").json()["count"] == 3
    assert trial_count(engine_of(api), first) == 24


def test_idempotency_key_reused_for_another_spec_is_a_conflict(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    submit(api, smoke_spec, key="key-1")

    response = api.post("/api/v1/studies", json=smoke_spec | {"epochs": 3}, headers={"Idempotency-Key": "key-1"})

    assert response.status_code == 409
    assert "key-1" in response.json()["detail"]
    assert api.get("/api/v1/studies").json()["count"] == 1


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["data"]]


def test_list_studies_filters_and_pages(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    first = submit(api, smoke_spec)
    second = submit(api, smoke_spec | {"name": "other"})
    digits = smoke_spec | {"name": "digits", "workload": "digits_mlp", "lr": [0.1], "beta_init": [0.9], "seeds": 1}
    third = submit(api, digits)
    assert claim(engine_of(api), limit=1) == [first]  # the oldest
    url = "/api/v1/studies"

    assert ids(api.get(url)) == [third, second, first]  # newest first
    assert ids(api.get(url, params={"status": "running"})) == [first]
    assert ids(api.get(url, params={"status": "queued"})) == [third, second]
    assert ids(api.get(url, params={"status": "cancelled"})) == []
    assert ids(api.get(url, params={"workload": "digits_mlp"})) == [third]
    assert ids(api.get(url, params={"workload": "synthetic", "status": "queued"})) == [second]
    assert ids(api.get(url, params={"name": "other"})) == [second]
    assert ids(api.get(url, params={"name": "nobody"})) == []
    page = api.get(url, params={"limit": 2}).json()
    assert [s["id"] for s in page["data"]] == [third, second]
    assert (page["count"], page["offset"], page["limit"]) == (3, 0, 2)
    page = api.get(url, params={"limit": 2, "offset": 2}).json()
    assert [s["id"] for s in page["data"]] == [first]
    assert page["count"] == 3
    assert ids(api.get(url, params={"offset": 5})) == []


def test_list_studies_after_claim_shows_running(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec)
    claim(engine_of(api))

    study = api.get(f"/api/v1/studies/{study_id}").json()

    assert study["status"] == "running"
    assert study["attempts"] == 1
    assert study["started_at"] is not None
    assert study["heartbeat_at"] is not None


# ----------------------------------------------------------------------------------------------- trials


def trials(api: TestClient, study_id: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/api/v1/studies/{study_id}/trials", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = strict_json(response.text)
    return body


def test_trials_filters(api: TestClient, results_study: str) -> None:
    def count(**params: Any) -> int:
        body = trials(api, results_study, limit=1000, **params)
        assert len(body["data"]) == body["count"]
        return int(body["count"])

    assert count() == 24
    assert count(arm="sgdm_step") == 12
    assert count(arm="demon_sgdm", status="completed") == 12
    assert count(status="diverged") == 3
    assert count(status="pending") == 1
    assert count(status="failed") == 0
    assert count(lr=1.0) == 8
    assert count(lr=0.1, beta_init=0.9) == 4
    assert count(beta_init=0.8) == 12
    assert count(arm="sgdm_step", lr=1.0, beta_init=0.9) == 2
    pending = trials(api, results_study, status="pending")["data"]
    assert [(t["arm"], t["lr"], t["beta_init"], t["seed"]) for t in pending] == [MISSING]


def test_trials_pages_in_key_order(api: TestClient, results_study: str) -> None:
    seen: list[tuple[Any, ...]] = []
    for offset in range(0, 28, 7):
        page = trials(api, results_study, offset=offset, limit=7)
        assert page["count"] == 24
        assert page["offset"] == offset
        assert page["limit"] == 7
        assert len(page["data"]) == min(7, 24 - offset)
        seen += [(t["arm"], t["lr"], t["beta_init"], t["seed"]) for t in page["data"]]

    assert seen == sorted((k.arm, k.lr, k.beta_init, k.seed) for k in all_keys())
    assert trials(api, results_study, offset=24)["data"] == []


def test_trials_values_and_curves(api: TestClient, results_study: str) -> None:
    plain = trials(api, results_study, arm="demon_sgdm", lr=0.1, beta_init=0.9, limit=1)["data"][0]
    assert plain["curve"] is None
    assert plain["status"] == "completed"
    assert plain["seed"] == 0
    assert plain["test_metric"] == pytest.approx(score("demon_sgdm", 0.1, 0.9, 0))
    assert (plain["epochs_done"], plain["wall_seconds"], plain["node"], plain["device"]) == (2, 1.5, "node-a", "cpu")

    body = trials(api, results_study, arm="sgdm_step", lr=1.0, curves="true")
    by_seed = {(t["beta_init"], t["seed"]): t for t in body["data"]}
    diverged = by_seed[(0.8, 0)]
    assert diverged["status"] == "diverged"
    assert diverged["error"] == "loss is nan"
    assert [diverged[name] for name in ("val_metric", "val_loss", "test_metric", "test_loss")] == [None] * 4
    assert diverged["curve"] == [{"epoch": 0, "train_loss": None, "val_loss": None, "val_metric": None}]
    assert by_seed[(0.9, 1)]["status"] == "pending"
    assert by_seed[(0.9, 1)]["curve"] == []

    completed = trials(api, results_study, arm="sgdm_step", lr=0.01, beta_init=0.8, curves=True)["data"]
    value = score("sgdm_step", 0.01, 0.8, 0)
    assert completed[0]["curve"] == [
        {"epoch": 0, "train_loss": 1.0, "val_loss": 0.9, "val_metric": pytest.approx(value + 0.1)},
        {"epoch": 1, "train_loss": 0.8, "val_loss": 0.7, "val_metric": pytest.approx(value)},
    ]


def test_progress_counts_results(api: TestClient, results_study: str) -> None:
    progress = api.get(f"/api/v1/studies/{results_study}").json()["progress"]

    assert progress == {"done": 23, "total": 24, "diverged": 3, "failed": 0, "fraction": pytest.approx(23 / 24)}


# ---------------------------------------------------------------------------------------------- numbers


def grid(api: TestClient, study_id: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/api/v1/studies/{study_id}/grid", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = strict_json(response.text)
    return body


@pytest.mark.parametrize(("stat", "seed_offset"), [("median", 0.01), ("mean", 0.01), ("min", 0.0), ("max", 0.02)])
def test_grid_of_a_complete_arm(api: TestClient, results_study: str, stat: str, seed_offset: float) -> None:
    body = grid(api, results_study, stat=stat)  # the first arm by default

    assert (body["arm"], body["metric"], body["split"], body["stat"]) == ("demon_sgdm", "error", "test", stat)
    assert body["lrs"] == list(LRS)
    assert body["betas"] == list(BETAS)
    expected = [[score("demon_sgdm", lr, beta, 0) + seed_offset for beta in BETAS] for lr in LRS]
    assert body["values"] == [[pytest.approx(v) for v in row] for row in expected]
    assert body["n"] == [[2, 2]] * 3
    assert body["diverged"] == [[0, 0]] * 3
    assert body["missing"] == [[0, 0]] * 3
    # two seeds per cell: each median's interval is [min, max], at its real level of 50%
    assert body["median_level"] == [[0.5, 0.5]] * 3
    for low_row, value_row, high_row in zip(body["median_low"], body["values"], body["median_high"], strict=True):
        for low, value, high in zip(low_row, value_row, high_row, strict=True):
            assert low <= high
            if stat in ("median", "mean"):
                assert low - 1e-12 <= value <= high + 1e-12


def test_grid_counts_diverged_and_missing_seeds(api: TestClient, results_study: str) -> None:
    body = grid(api, results_study, arm="sgdm_step", stat="median")

    assert body["n"] == [[2, 2], [2, 2], [2, 1]]
    assert body["diverged"] == [[0, 0], [0, 0], [2, 1]]
    assert body["missing"] == [[0, 0], [0, 0], [0, 1]]
    assert body["values"][0] == [pytest.approx(score("sgdm_step", 0.01, b, 0) + 0.01) for b in BETAS]
    assert body["values"][2][0] == pytest.approx(Y_FAIL)  # every seed diverged: the failure score


def test_grid_on_val_split_and_loss(api: TestClient, results_study: str) -> None:
    val = grid(api, results_study, split="val", stat="min")
    loss = grid(api, results_study, metric="loss", stat="max")

    assert val["values"][0][0] == pytest.approx(score("demon_sgdm", 0.01, 0.8, 0) - 0.05)
    assert loss["metric"] == "loss"
    assert loss["values"] == [[pytest.approx(0.8)] * 2] * 3


def test_grid_of_a_study_without_results(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec)

    body = grid(api, study_id)

    assert body["values"] == [[None, None]] * 3
    assert body["n"] == [[0, 0]] * 3
    assert body["missing"] == [[2, 2]] * 3


def test_sensitivity_target_given_default_and_per_metric(api: TestClient, results_study: str) -> None:
    default = strict_json(api.get(f"/api/v1/studies/{results_study}/sensitivity").text)
    assert default["target"]["chosen_on"] == "val"
    assert default["target"]["source"].startswith("default: the lower quartile")
    # the lower quartile of every trained run's validation error, pooled over the arms
    assert 0 < default["target"]["raw_value"] < Y_FAIL
    given = strict_json(api.get(f"/api/v1/studies/{results_study}/sensitivity", params={"target": 0.2}).text)
    assert (given["target"]["raw_value"], given["target"]["source"]) == (0.2, "given")
    assert all(arm["success"]["raw_target"] == 0.2 for arm in given["arms"].values() if arm["status"] == "ok")
    loss = strict_json(api.get(f"/api/v1/studies/{results_study}/sensitivity", params={"metric": "loss"}).text)
    assert loss["study"]["metric"] == "loss"
    assert loss["target"]["chosen_on"] == "val"
    refused = api.get(f"/api/v1/studies/{results_study}/sensitivity", params={"target": 0.7})
    assert refused.status_code == 422
    assert refused.json()["field"] == "target"
    assert "failure score" in refused.json()["detail"]


def test_sensitivity_reports_the_verdict_arms_and_pairs(api: TestClient, results_study: str) -> None:
    response = api.get(f"/api/v1/studies/{results_study}/sensitivity")

    assert response.status_code == 200
    body = strict_json(response.text)  # no NaN or Infinity anywhere
    assert set(body["arms"]) == set(ARMS)
    assert body["orientation"].startswith("higher is better")
    assert body["metrics_version"] == 7
    assert body["min_interval_seeds"] == 8
    assert body["study"] == {
        "id": results_study,
        "metric": "error",
        "split": "test",
        "status": "queued",
        "protocol": None,
    }
    demon = body["arms"]["demon_sgdm"]
    assert demon["coverage"]["complete"] is True
    assert demon["coverage"]["n_completed"] == 12
    assert demon["peak"]["lr"] == 0.01
    assert demon["peak"]["beta_init"] == 0.8
    step = body["arms"]["sgdm_step"]["coverage"]
    assert (step["n_completed"], step["n_diverged"], step["n_missing"]) == (8, 3, 1)
    (pair,) = [p for p in body["pairs"] if (p["arm_a"], p["arm_b"]) == ("demon_sgdm", "sgdm_step")]
    # two seeds, one of them with a trial not run yet (no share there): no interval and no spread to
    # plan with, so the verdict is inconclusive and names the fewest seeds that give an interval
    assert pair["verdict"]["outcome"] == "inconclusive_too_few_seeds"
    assert pair["verdict"]["seeds_needed"] is None
    assert "1 of 2 seeds have the figure" in pair["verdict"]["statement"]
    assert "at least 8 seeds would detect" in pair["verdict"]["statement"]
    assert pair["primary"]["figure"] == "success_share"
    assert pair["primary"]["interval"]["status"] == "too_few_seeds"


def test_sensitivity_json_is_the_report_serialised_once_per_progress(api: TestClient, results_study: str) -> None:
    """The route answers the report's JSON made once per computed report: the same bytes while the
    study's progress stands, the same content as the typed report, new bytes once it finishes."""
    url = f"/api/v1/studies/{results_study}/sensitivity"
    first, again = api.get(url), api.get(url)
    assert first.headers["content-type"] == "application/json"
    assert first.content == again.content
    typed = analysis.sensitivity(engine_of(api), results_study, metric=None, split="test")
    assert strict_json(first.text) == typed.model_dump(mode="json")
    assert strict_json(api.get(url, params={"target": 0.2}).text)["target"]["source"] == "given"  # another report

    claim(engine_of(api))
    finish(engine_of(api), results_study)
    finished = strict_json(api.get(url).text)
    assert finished["study"]["status"] == "completed"
    assert strict_json(first.text)["study"]["status"] == "queued"


def test_grid_json_is_the_grid_serialised_once(api: TestClient, results_study: str) -> None:
    """/grid answers the same bytes for the same grid, equal to the typed grid; another arm, another grid."""
    url = f"/api/v1/studies/{results_study}/grid"
    first, again = api.get(url, params={"arm": "sgdm_step"}), api.get(url, params={"arm": "sgdm_step"})
    assert first.headers["content-type"] == "application/json"
    assert first.content == again.content
    body = analysis.grid(engine_of(api), results_study, arm="sgdm_step", metric=None, split="test", stat="median")
    assert strict_json(first.text) == GridPublic.model_validate(body).model_dump(mode="json")
    assert strict_json(api.get(url, params={"arm": "demon_sgdm"}).text)["arm"] == "demon_sgdm"


def test_sensitivity_with_target_metric_and_split(api: TestClient, results_study: str) -> None:
    response = api.get(
        f"/api/v1/studies/{results_study}/sensitivity", params={"target": 0.75, "metric": "loss", "split": "val"}
    )

    assert response.status_code == 200
    body = strict_json(response.text)
    assert body["target"]["raw_value"] == 0.75
    assert body["study"]["metric"] == "loss"
    assert body["study"]["split"] == "val"


def test_heatmaps(api: TestClient, results_study: str) -> None:
    png = api.get(f"/api/v1/studies/{results_study}/heatmap.png")
    svg = api.get(f"/api/v1/studies/{results_study}/heatmap.svg", params={"arms": "sgdm_step", "split": "val"})

    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_SIGNATURE)
    assert len(png.content) > 1000
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content[:1000]


def check_export(frame: pd.DataFrame) -> None:
    assert len(frame) == 24
    assert list(frame[["arm", "lr", "beta_init", "seed"]].itertuples(index=False, name=None)) == sorted(
        (k.arm, k.lr, k.beta_init, k.seed) for k in all_keys()
    )
    rows = {(r.arm, r.lr, r.beta_init, r.seed): r for r in frame.itertuples(index=False)}
    for key in all_keys():
        row = rows[(key.arm, key.lr, key.beta_init, key.seed)]
        if (key.arm, key.lr, key.beta_init, key.seed) in DIVERGED:
            assert row.status == "diverged"
            assert row.test_loss == math.inf
            assert row.val_metric == math.inf
            assert math.isnan(row.val_loss)
            assert math.isnan(row.test_metric)
        elif (key.arm, key.lr, key.beta_init, key.seed) == MISSING:
            assert row.status == "pending"
            assert math.isnan(row.test_metric)
        else:
            assert row.status == "completed"
            assert row.test_metric == pytest.approx(score(key.arm, key.lr, key.beta_init, key.seed))
            assert (row.epochs_done, row.wall_seconds, row.node, row.device) == (2, 1.5, "node-a", "cpu")


def test_export_csv(api: TestClient, results_study: str) -> None:
    response = api.get(f"/api/v1/studies/{results_study}/export.csv")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="{results_study}.csv"' in response.headers["content-disposition"]
    check_export(pd.read_csv(io.BytesIO(response.content)))


def test_export_parquet(api: TestClient, results_study: str) -> None:
    response = api.get(f"/api/v1/studies/{results_study}/export.parquet")

    assert response.status_code == 200
    assert response.content[:4] == b"PAR1"
    frame = pd.read_parquet(io.BytesIO(response.content))
    check_export(frame)
    csv = pd.read_csv(io.BytesIO(api.get(f"/api/v1/studies/{results_study}/export.csv").content))
    columns = ["arm", "lr", "beta_init", "seed", "status", "val_metric", "val_loss", "test_metric", "test_loss"]
    pd.testing.assert_frame_equal(frame[columns], csv[columns], check_dtype=False)


def test_robustness_over_completed_studies(api: TestClient, results_study: str, smoke_spec: dict[str, Any]) -> None:
    engine = engine_of(api)
    unfinished = submit(api, smoke_spec | {"name": "unfinished"})
    record_results(engine, unfinished)
    before = api.get("/api/v1/robustness", params={"workload": "synthetic"})
    assert before.status_code == 200
    assert before.json()["query"]["studies"] == 0
    claim(engine)
    finish(engine, results_study)

    response = api.get("/api/v1/robustness", params={"workload": "synthetic"})

    assert response.status_code == 200
    body = strict_json(response.text)
    assert body["query"] == {"workload": "synthetic", "arm": None, "epochs": None, "studies": 1, "unreadable": []}
    groups = {group["key"]["arm"]: group for group in body["groups"]}
    assert set(groups) == set(ARMS)
    demon = groups["demon_sgdm"]
    assert demon["study_ids"] == [results_study]
    assert demon["key"]["workload"] == "synthetic"
    assert demon["key"]["seeds"] == [0, 1]  # the seeds themselves, as everywhere else, not their count
    assert body["metrics_version"] == 7
    assert demon["key"]["target"] == "default"  # a default target groups by its rule
    (peak,) = demon["raw_peak_score"]["studies"]
    assert peak["study_id"] == results_study
    assert peak["value"] == pytest.approx(score("demon_sgdm", 0.01, 0.8, 0) + 0.01)
    assert peak["interval"]["status"] == "too_few_seeds"  # two seeds: no interval, and it says so
    assert demon["raw_peak_score"]["range_low"] == demon["raw_peak_score"]["range_high"] == peak["value"]
    assert demon["success_share"]["n_studies"] == 1
    only_step = api.get("/api/v1/robustness", params={"workload": "synthetic", "arm": "sgdm_step"}).json()
    assert [group["key"]["arm"] for group in only_step["groups"]] == ["sgdm_step"]
    filters = (({"arm": "sgdm_step"}, 1), ({"epochs": 2}, 1), ({"epochs": 3}, 0), ({"arm": "adam_step"}, 0))
    for params, studies in filters:
        body = api.get("/api/v1/robustness", params={"workload": "synthetic", **params}).json()
        assert body["query"]["studies"] == studies, params
    assert api.get("/api/v1/robustness", params={"workload": "digits_mlp"}).json()["query"]["studies"] == 0


def test_robustness_groups_only_studies_of_the_same_problem_training_and_grid(
    api: TestClient, smoke_spec: dict[str, Any]
) -> None:
    """Two synthetic studies of other class counts, batch sizes and weight decays (and a 3-lr grid and
    a 2-lr one with the same ends) were pooled into one group; the same spec under another name joins."""
    engine = engine_of(api)
    variants = {
        "same": smoke_spec | {"name": "same", "workload_params": {"classes": 3}},  # its default, written out
        "classes": smoke_spec | {"name": "classes", "workload_params": {"classes": 5}},
        "batch": smoke_spec | {"name": "batch", "batch_size": 7, "weight_decay": 0.5},
        "grid": smoke_spec | {"name": "grid", "lr": [min(smoke_spec["lr"]), max(smoke_spec["lr"])]},
    }
    ids = {"base": submit(api, smoke_spec)} | {name: submit(api, spec) for name, spec in variants.items()}
    claim(engine)
    for study_id in ids.values():
        with session_scope(engine) as session:
            keys = dal.pending_trial_keys(session, study_id)
        for key in keys:
            with session_scope(engine) as session:
                dal.record_trial_result(session, study_id, make_result(key))
        finish(engine, study_id)
    body = api.get("/api/v1/robustness", params={"workload": "synthetic", "arm": "demon_sgdm"}).json()
    assert body["query"]["studies"] == 5
    members = sorted(sorted(group["study_ids"]) for group in body["groups"])
    together = sorted([ids["base"], ids["same"]])
    assert members == sorted([together, [ids["classes"]], [ids["batch"]], [ids["grid"]]])


# ----------------------------------------------------------------------------------------------- health


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_health_and_readiness(api: TestClient, prefix: str) -> None:
    health = api.get(f"{prefix}/healthz")
    ready = api.get(f"{prefix}/readyz")

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "migrations": "head"}


# ------------------------------------------------------------------------------------- cancel and delete


def test_cancel_marks_pending_trials_cancelled(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec)
    engine = engine_of(api)
    with session_scope(engine) as session:  # two results already in: they stay results
        for key in all_keys()[:2]:
            dal.record_trial_result(session, study_id, make_result(key))

    response = api.post(f"/api/v1/studies/{study_id}/cancel")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["finished_at"] is not None
    assert body["progress"]["done"] == 2
    assert trial_count(engine, study_id, TrialStatus.CANCELLED) == 22
    assert trial_count(engine, study_id, TrialStatus.COMPLETED) == 2
    assert trial_count(engine, study_id, TrialStatus.PENDING) == 0
    again = api.post(f"/api/v1/studies/{study_id}/cancel")
    assert again.status_code == 200
    assert again.json()["finished_at"] == body["finished_at"]
    assert api.get(f"/api/v1/studies/{study_id}").json()["status"] == "cancelled"


def test_cancel_a_running_study_on_another_host(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec)
    engine = engine_of(api)
    claim(engine)
    with session_scope(engine) as session:  # a job this machine cannot stop: only the state changes
        dal.set_job_id(session, study_id, "local:some-other-host:4242")

    response = api.post(f"/api/v1/studies/{study_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["job_id"] == "local:some-other-host:4242"
    assert trial_count(engine, study_id, TrialStatus.CANCELLED) == 24


def test_cancel_a_finished_study_is_a_conflict(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec)
    claim(engine_of(api))
    finish(engine_of(api), study_id)

    response = api.post(f"/api/v1/studies/{study_id}/cancel")

    assert response.status_code == 409
    assert "completed" in response.json()["detail"]
    assert api.get(f"/api/v1/studies/{study_id}").json()["status"] == "completed"


def test_delete_study(api: TestClient, results_study: str, smoke_spec: dict[str, Any]) -> None:
    kept = submit(api, smoke_spec | {"name": "kept"})

    response = api.delete(f"/api/v1/studies/{results_study}")

    assert response.status_code == 204
    assert response.content == b""
    assert api.get(f"/api/v1/studies/{results_study}").status_code == 404
    assert api.get(f"/api/v1/studies/{results_study}/trials").status_code == 404
    assert api.delete(f"/api/v1/studies/{results_study}").status_code == 404
    assert trial_count(engine_of(api), results_study) == 0
    assert ids(api.get("/api/v1/studies")) == [kept]
    assert trial_count(engine_of(api), kept) == 24


def test_delete_a_running_study_is_refused(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = submit(api, smoke_spec)
    claim(engine_of(api))

    response = api.delete(f"/api/v1/studies/{study_id}")

    assert response.status_code == 409
    assert "cancel it first" in response.json()["detail"]
    assert api.get(f"/api/v1/studies/{study_id}").json()["status"] == "running"
    assert trial_count(engine_of(api), study_id) == 24
    assert api.post(f"/api/v1/studies/{study_id}/cancel").status_code == 200
    assert api.delete(f"/api/v1/studies/{study_id}").status_code == 204
