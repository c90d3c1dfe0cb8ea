"""Hostile and oversized input: deep nesting, huge bodies, out-of-range workload parameters and
seeds are refused with a 4xx naming the field (never a 500), and list pages stay small."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api.limits import too_large_message

ApiFactory = Any
STUDIES = "/api/v1/studies"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [300, 5000])
def test_deeply_nested_workload_params_are_422_not_500(api: TestClient, smoke_spec: dict[str, Any], depth: int) -> None:
    deep = '{"a":' * depth + "1" + "}" * depth  # written out: json.dumps itself stops at ~1000 levels
    body = json.dumps({**smoke_spec, "workload_params": {"n_train": "DEEP"}}).replace('"DEEP"', deep)
    response = api.post(STUDIES, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    assert response.json()["field"].startswith(("workload_params", "body"))
    assert api.get(STUDIES).json()["count"] == 0


def test_deeply_nested_arm_params_are_422(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    spec = {**smoke_spec, "arms": [{"name": "sgdm_step", "params": {"milestones": nested(300)}}]}
    response = api.post(STUDIES, json=spec)
    assert response.status_code == 422, response.text[:300]
    assert response.json()["field"] == "arms.0"


def test_a_body_over_the_limit_is_413_with_a_clear_message(api_factory: ApiFactory, smoke_spec: dict[str, Any]) -> None:
    api = api_factory(max_request_bytes=4096)
    huge = {**smoke_spec, "name": "x" * 5000}
    response = api.post(STUDIES, json=huge)
    assert response.status_code == 413
    assert response.json() == {"detail": too_large_message(4096), "field": "body"}
    assert "4096 bytes" in response.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit holds on the bytes received
        payload = json.dumps(huge).encode()
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    chunked = api.post(STUDIES, content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert api.post(STUDIES, json=smoke_spec).status_code == 202  # under the limit: accepted
    assert api.get(STUDIES).json()["count"] == 1


def test_the_default_limit_is_one_mebibyte(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    over = {**smoke_spec, "name": "n", "workload_params": {"typo": "x" * (1 << 20)}}
    assert api.post(STUDIES, json=over).status_code == 413
    under = {**smoke_spec, "workload_params": {"typo": "x" * 1000}}
    refused = api.post(STUDIES, json=under)
    assert refused.status_code == 422  # read and validated: an unknown parameter
    assert refused.json()["field"] == "workload_params.typo"


def test_the_list_returns_summaries_and_the_study_its_spec(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    study_id = api.post(STUDIES, json=smoke_spec).json()["id"]
    page = api.get(STUDIES).json()
    assert [s["id"] for s in page["data"]] == [study_id]
    assert "spec" not in page["data"][0]
    assert page["data"][0]["progress"]["total"] == 24
    full = api.get(f"{STUDIES}/{study_id}").json()
    assert full["spec"]["name"] == smoke_spec["name"]


@pytest.mark.parametrize(
    ("params", "field", "word"),
    [
        ({"n_train": 10**12}, "workload_params.n_train", "100000"),
        ({"n_train": 1e12}, "workload_params.n_train", "integer"),
        ({"hidden": 10**9}, "workload_params.hidden", "4096"),
        ({"n_train": -5}, "workload_params.n_train", "2"),
        ({"n_train": "abc"}, "workload_params.n_train", "integer"),
        ({"layers": 3}, "workload_params.layers", "Extra inputs"),
    ],
)
def test_bad_workload_params_are_422_at_submission(
    api: TestClient, smoke_spec: dict[str, Any], params: dict[str, Any], field: str, word: str
) -> None:
    response = api.post(STUDIES, json={**smoke_spec, "workload_params": params})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field
    assert word in body["detail"]
    assert api.get(STUDIES).json()["count"] == 0


def test_an_optuna_seed_beyond_range_is_422(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    search = {"mode": "optuna", "n_trials": 2, "lr": {"min": 0.01, "max": 0.1}, "beta_init": {"min": 0, "max": 0.9}}
    spec = {k: v for k, v in smoke_spec.items() if k not in ("lr", "beta_init")}
    response = api.post(STUDIES, json={**spec, "search": {**search, "seed": 2**70}})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "search.optuna.seed"
    assert api.post(STUDIES, json={**spec, "search": {**search, "seed": 7}}).status_code == 202


def test_a_missing_dataset_is_refused_at_submission_where_the_service_sees_it(
    api: TestClient, smoke_spec: dict[str, Any]
) -> None:
    spec = {**smoke_spec, "workload": "cifar10_resnet20", "workload_params": {}}
    response = api.post(STUDIES, json=spec)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "workload"
    assert "CIFAR-10 not found" in body["detail"]
    assert "data_batch_1" in body["detail"]
    assert api.get(STUDIES).json()["count"] == 0


def test_the_schema_lists_each_workloads_parameters(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    spec = schema["components"]["schemas"]["StudySpec"]
    branches = {b["title"]: b for b in spec["properties"]["workload_params"]["anyOf"]}
    assert branches["synthetic"]["properties"]["n_train"]["maximum"] == 100_000
    assert branches["ptb_lstm"]["properties"]["layers"]["maximum"] == 8
    body = schema["paths"]["/api/v1/studies"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"] == "#/components/schemas/StudySpec"


def test_a_client_sees_the_413_as_an_api_error(live_server: Any, smoke_spec: dict[str, Any]) -> None:
    from service.client import ApiError, DemonlabClient

    with live_server(max_request_bytes=2048) as url, DemonlabClient(url) as client:
        with pytest.raises(ApiError) as caught:
            client.submit({**smoke_spec, "name": "y" * 4000})
        assert caught.value.status == 413
        assert caught.value.field == "body"
        assert httpx.get(f"{url}/api/v1/studies").json()["count"] == 0


# ------------------------------------------------------------------ specs/parse: bounded work, rate limits
PARSE = "/api/v1/specs/parse"


@pytest.mark.parametrize("depth", [33, 256, 300, 489])
def test_spec_parse_of_deep_text_is_422_not_500(api: TestClient, depth: int) -> None:
    """256 to ~490 levels passed the parser and broke the response's serialisation (a 500)."""
    response = api.post(PARSE, json={"text": "a: " + "[" * depth + "]" * depth})
    assert response.status_code == 422, response.text[:300]
    assert response.json()["detail"] == "invalid spec: nested too deeply (more than 32 levels) (line 1)"


@pytest.mark.parametrize(
    "text",
    [
        "a: [" + ", ".join(f"&a{i} {i}" for i in range(50_000)) + "]\n",  # 50,000 anchors: 5 s of CPU before
        "x: &x [" + ", ".join(["1"] * 100) + "]\n" + "y: [" + ", ".join(["*x"] * 20) + "]\n",  # 2,125 values
        "".join(f"k{i}: {i}\n" for i in range(1_001)),
    ],
    ids=["anchors", "aliases", "keys"],
)
def test_spec_parse_refuses_text_over_its_work_limit(api: TestClient, text: str) -> None:
    response = api.post(PARSE, json={"text": text})
    assert response.status_code == 422, response.text[:300]
    assert "too many fields (more than 2000 values, aliases counted as what they repeat)" in response.json()["detail"]


def test_spec_parse_takes_text_up_to_its_work_limit(api: TestClient) -> None:
    # the mapping, 2 keys, x (100 values with its list) and y (1 + 18 × 100): 1,904 values
    text = "x: &x [" + ", ".join(["1"] * 99) + "]\n" + "y: [" + ", ".join(["*x"] * 18) + "]\n"
    response = api.post(PARSE, json={"text": text})
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["spec"]["y"]) == 18


def test_spec_parse_is_rate_limited_per_client(api_factory: ApiFactory) -> None:
    api = api_factory(parse_rate_limit="3/minute")
    statuses = [api.post(PARSE, json={"text": "name: x\n"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.post(PARSE, json={"text": "name: x\n"})
    assert refused.json()["detail"] == "too many spec parses from this address (limit 3 per 1 minute)"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_wrong_tokens_are_rate_limited_per_client(api_factory: ApiFactory, smoke_spec: dict[str, Any]) -> None:
    """After the allowance of wrong tokens, even the right one waits: guessing costs time."""
    from service.db import dal, session_scope

    api = api_factory(failed_token_limit="3/minute")
    with session_scope(api.app.state.engine) as session:  # type: ignore[attr-defined]
        token = dal.create_token(session, "ci")
    wrong = {"authorization": "Bearer dlt_wrong"}
    assert [api.post(STUDIES, json=smoke_spec, headers=wrong).status_code for _ in range(3)] == [401, 401, 401]

    refused = api.post(STUDIES, json=smoke_spec, headers={"authorization": f"Bearer {token}"})
    assert refused.status_code == 429
    assert refused.json()["detail"] == "too many wrong tokens from this address (limit 3 per 1 minute)"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert api.post(STUDIES, json=smoke_spec).status_code == 401  # no token at all: not a guess, same answer
    assert api.get(STUDIES).json()["count"] == 0  # reads need no token and are not limited
