"""The published OpenAPI schema says what the app really does: the error body of every 4xx, the
statuses each route returns, the bearer scheme, the valid values of enumerated parameters, and the
methods a path allows."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.db import StudyStatus
from studies.results import TrialStatus
from studies.vocab import ARMS, METRICS, SPLITS, STATS

# The OpenAPI document and the statuses each route declares are the app's, not the database's (the
# routes' database side runs on both backends in test_api.py and test_storage.py).
ONE_BACKEND = "sqlite"

STUDIES = "/api/v1/studies"


@pytest.fixture
def schema(api: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = api.get("/openapi.json").json()
    return body


def operation(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = schema["paths"][path][method]
    return op


def resolve(schema: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].rsplit("/", 1)[-1]
    resolved: dict[str, Any] = schema["components"]["schemas"][name]
    return resolved


def test_every_422_is_the_error_body_the_app_returns(api: TestClient, schema: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            if "422" in op["responses"]:
                ref = op["responses"]["422"]["content"]["application/json"]["schema"]
                assert ref == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    error_body = schema["components"]["schemas"]["ErrorBody"]
    body = api.get(STUDIES, params={"limit": 0}).json()  # what a 422 really looks like
    assert set(body) <= set(error_body["properties"])
    assert set(body["errors"][0]) == set(resolve(schema, {"$ref": "#/components/schemas/FieldError"})["properties"])
    assert body == {
        "detail": "invalid limit: Input should be greater than or equal to 1",
        "field": "limit",
        "errors": [{"field": "limit", "reason": "Input should be greater than or equal to 1"}],
    }


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", STUDIES, {"202", "401", "409", "413", "422"}),
        ("get", f"{STUDIES}/{{study_id}}", {"200", "404"}),
        ("post", f"{STUDIES}/{{study_id}}/cancel", {"200", "401", "404", "409"}),
        ("delete", f"{STUDIES}/{{study_id}}", {"204", "401", "404", "409"}),
        ("get", f"{STUDIES}/{{study_id}}/trials", {"200", "404", "422"}),
        ("get", f"{STUDIES}/{{study_id}}/grid", {"200", "404", "422"}),
        ("get", f"{STUDIES}/{{study_id}}/export.csv", {"200", "404"}),
        ("get", f"{STUDIES}/{{study_id}}/events", {"200", "404", "422"}),
        ("get", f"{STUDIES}/{{study_id}}/placement", {"200", "404"}),
        ("get", f"{STUDIES}/{{study_id}}/heatmaps", {"200", "404", "422"}),
        ("get", f"{STUDIES}/{{study_id}}/points", {"200", "404", "422"}),
        ("post", "/api/v1/specs/parse", {"200", "413", "422"}),
    ],
)
def test_routes_document_the_statuses_they_return(
    schema: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= set(operation(schema, method, path)["responses"])


def test_the_event_stream_is_documented_as_text_event_stream(schema: dict[str, Any]) -> None:
    ok = operation(schema, "get", f"{STUDIES}/{{study_id}}/events")["responses"]["200"]
    assert set(ok["content"]) == {"text/event-stream"}


MUTATIONS = [("post", STUDIES), ("post", f"{STUDIES}/{{study_id}}/cancel"), ("delete", f"{STUDIES}/{{study_id}}")]


def test_mutations_declare_the_bearer_scheme_optional_while_no_token_exists(schema: dict[str, Any]) -> None:
    """Open mode (no token created yet) accepts mutations without one: the schema says so."""
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token (`demonlab token create`)",
    }
    for method, path in MUTATIONS:
        assert operation(schema, method, path)["security"] == [{}, {"bearer": []}]
        assert "Authentication: open" in operation(schema, method, path)["description"]
    assert "security" not in operation(schema, "get", STUDIES)  # reads need no token


def test_mutations_require_the_bearer_token_once_one_exists(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    from service.db import dal, session_scope

    with session_scope(api.app.state.engine) as session:  # type: ignore[attr-defined]
        dal.create_token(session, "ci")
    schema = api.get("/openapi.json").json()
    for method, path in MUTATIONS:
        assert operation(schema, method, path)["security"] == [{"bearer": []}]
        assert "Authentication: a valid token is required" in operation(schema, method, path)["description"]
    assert api.post(STUDIES, json=smoke_spec).status_code == 401  # what the schema now says


def test_mutations_require_the_bearer_token_when_the_deployment_requires_tokens(api_factory: Any) -> None:
    schema = api_factory(api_tokens_required=True).get("/openapi.json").json()
    assert operation(schema, "post", STUDIES)["security"] == [{"bearer": []}]


def _enum(schema: dict[str, Any], method: str, path: str, name: str) -> list[str]:
    (param,) = [p for p in operation(schema, method, path)["parameters"] if p["name"] == name]
    branches = param["schema"].get("anyOf", [param["schema"]])
    for branch in branches:
        if "$ref" in branch:
            branch = resolve(schema, branch)
        if "enum" in branch:
            return list(branch["enum"])
    raise AssertionError(f"{name} of {method} {path} is not an enum: {param['schema']}")


def test_enumerated_parameters_are_typed_once_and_listed(schema: dict[str, Any]) -> None:
    grid = f"{STUDIES}/{{study_id}}/grid"
    assert _enum(schema, "get", STUDIES, "status") == [s.value for s in StudyStatus]
    assert "completed_with_failures" in _enum(schema, "get", STUDIES, "status")
    assert _enum(schema, "get", f"{STUDIES}/{{study_id}}/trials", "status") == [s.value for s in TrialStatus]
    assert _enum(schema, "get", f"{STUDIES}/{{study_id}}/trials", "arm") == list(ARMS)
    assert _enum(schema, "get", grid, "arm") == list(ARMS)
    assert _enum(schema, "get", grid, "metric") == list(METRICS)
    assert _enum(schema, "get", grid, "split") == list(SPLITS)
    assert _enum(schema, "get", grid, "stat") == list(STATS)
    assert _enum(schema, "get", f"{STUDIES}/{{study_id}}/sensitivity", "split") == list(SPLITS)
    assert _enum(schema, "get", f"{STUDIES}/{{study_id}}/heatmaps", "split") == list(SPLITS)
    assert _enum(schema, "get", f"{STUDIES}/{{study_id}}/heatmaps", "metric") == list(METRICS)
    assert _enum(schema, "get", f"{STUDIES}/{{study_id}}/points", "split") == list(SPLITS)
    study = schema["components"]["schemas"]["StudySummary"]["properties"]["status"]
    assert resolve(schema, study)["enum"] == [s.value for s in StudyStatus]


def test_every_endpoint_has_a_response_model(schema: dict[str, Any]) -> None:
    untyped = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            ok = op["responses"].get("200") or op["responses"].get("202") or op["responses"].get("204")
            content = (ok or {}).get("content", {})
            json_schema = content.get("application/json", {}).get("schema")
            if method == "delete" or any(kind != "application/json" for kind in content):
                continue  # 204, or a file (PNG, SVG, CSV, Parquet)
            if not json_schema or json_schema == {} or json_schema.get("additionalProperties") is True:
                untyped.append(f"{method.upper()} {path}")
    assert untyped == []


def test_options_and_other_methods_list_every_method_of_the_path(api: TestClient, study_id: str) -> None:
    path = f"{STUDIES}/{study_id}"
    for method in ("OPTIONS", "PUT", "PATCH"):
        response = api.request(method, path)
        assert response.status_code == 405
        assert response.headers["allow"] == "DELETE, GET, HEAD"
        assert response.json() == {"detail": "Method Not Allowed"}
    assert api.request("OPTIONS", STUDIES).headers["allow"] == "GET, HEAD, POST"


def test_head_answers_wherever_get_does_with_the_gets_headers_and_no_body(api: TestClient, study_id: str) -> None:
    """``curl -I``, link checkers and monitors send HEAD: every route that answers GET answers it (a
    405 that listed HEAD in ``Allow`` before), pages and files included; unknown paths stay 404."""
    for path in ("/healthz", STUDIES, f"{STUDIES}/{study_id}", f"{STUDIES}/{study_id}/export.csv", "/static/app.css"):
        get, head = api.get(path), api.head(path)
        assert (head.status_code, get.status_code) == (200, 200), path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.headers["content-length"] == str(len(get.content)), path
    for page in ("/", f"/studies/{study_id}", "/submit", "/compare"):
        head = api.head(page)
        assert (head.status_code, head.content) == (200, b""), page
        assert head.headers["content-type"].startswith("text/html"), page
    assert api.head(f"{STUDIES}/000000000000").status_code == 404


def test_a_page_refuses_other_methods_naming_the_ones_it_has(api: TestClient, study_id: str) -> None:
    for page in ("/", f"/studies/{study_id}", "/submit", "/compare"):
        response = api.post(page)
        assert response.status_code == 405, page
        assert response.headers["allow"] == "GET, HEAD", page


@pytest.fixture
def study_id(api: TestClient, smoke_spec: dict[str, Any]) -> str:
    created: str = api.post(STUDIES, json=smoke_spec).json()["id"]
    return created


def test_offsets_are_bounded_in_the_schema_as_in_the_app(api: TestClient, schema: dict[str, Any]) -> None:
    for path in (STUDIES, f"{STUDIES}/{{study_id}}/trials"):
        (offset,) = [p for p in operation(schema, "get", path)["parameters"] if p["name"] == "offset"]
        assert offset["schema"]["maximum"] == 10**12
    response = api.get(STUDIES, params={"offset": 10**30})
    assert response.status_code == 422
    assert response.json()["field"] == "offset"
    assert api.get(STUDIES, params={"offset": 10**12}).json()["data"] == []


# Names the pages read that are keys of a free-form object, not schema properties: the robustness
# group's key (service.analysis adds "arm_params" to each arm's group key, a dict in the schema).
FREE_FORM_KEYS = {"arm_params"}


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        names.update(node.get("properties", {}) if isinstance(node.get("properties"), dict) else {})
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names


def test_every_field_the_pages_read_is_in_the_schema(schema: dict[str, Any]) -> None:
    """A report or trial field renamed in its model fails here, not silently in the browser (a
    missing field reads as ``undefined``: a sentence or a column just goes blank). Every snake_case
    name the dashboard's JavaScript reads (``x.a_b`` or ``"a_b"``; JavaScript's own names are
    camelCase) must be a property of some schema the API publishes."""
    import re
    from pathlib import Path

    static = Path(__file__).resolve().parents[2] / "service" / "dashboard" / "static"
    published = _property_names(schema) | FREE_FORM_KEYS
    read: dict[str, set[str]] = {}
    for script in sorted(static.glob("*.js")):
        for match in re.finditer(
            r"\.([a-z][a-z0-9]*_[a-z0-9_]+)\b|[\"']([a-z][a-z0-9]*_[a-z0-9_]+)[\"']", script.read_text()
        ):
            read.setdefault(match.group(1) or match.group(2), set()).add(script.name)
    assert len(read) > 30  # the pattern still finds what the pages read
    unknown = {name: sorted(files) for name, files in read.items() if name not in published}
    assert unknown == {}, f"read by the pages, published by no schema: {unknown}"
    assert set(read) >= FREE_FORM_KEYS  # an allowance nobody needs any more goes
