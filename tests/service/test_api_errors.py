"""Bad requests, on SQLite and PostgreSQL: each gets a 4xx whose message names the field at fault,
never a 500, and leaves the stored data as it was. Then authentication with bearer tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from service.db import ApiToken, Study, Trial, TrialEpoch, dal, session_scope
from studies.results import TrialKey, TrialResult, TrialStatus

ApiFactory = Callable[..., TestClient]
STUDIES = "/api/v1/studies"
JSON = {"content-type": "application/json"}


def engine_of(api: TestClient) -> Engine:
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    return engine


def stored(api: TestClient) -> dict[str, Any]:
    """What the database holds: row counts and every study's and trial's status."""
    with session_scope(engine_of(api), read_only=True) as session:
        return {
            "studies": sorted(session.execute(select(Study.id, Study.status, Study.attempts)).tuples().all()),
            "trials": session.execute(
                select(Trial.status, func.count()).group_by(Trial.status).order_by(Trial.status)
            ).all(),
            "epochs": session.scalar(select(func.count()).select_from(TrialEpoch)),
            "tokens": session.scalar(select(func.count()).select_from(ApiToken)),
        }


@contextmanager
def unchanged(api: TestClient) -> Iterator[None]:
    """The block must leave the stored data exactly as it found it."""
    before = stored(api)
    yield
    assert stored(api) == before


def check_error(response: httpx.Response, status: int, field: str | None = None, *words: str) -> dict[str, Any]:
    """A ``status`` answer whose body names ``field`` and whose message contains it and ``words``.

    A bare ``field`` matches the last part of a dotted one (``query.offset``, ``lr.list[float]``).
    """
    assert response.status_code < 500, response.text
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    if field is not None:
        named = str(body.get("field", ""))
        assert named == field or named.startswith(f"{field}.") or named.endswith(f".{field}"), body
        assert field in body["detail"], body
    for word in words:
        assert word in body["detail"], body
    return body


@pytest.fixture
def study_id(api: TestClient, smoke_spec: dict[str, Any]) -> str:
    """A stored smoke study with one result (so a mistake could change something)."""
    response = api.post(STUDIES, json=smoke_spec)
    assert response.status_code == 202
    study_id: str = response.json()["id"]
    result = TrialResult(
        key=TrialKey("demon_sgdm", 0.01, 0.8, 0),
        status=TrialStatus.COMPLETED,
        val_metric=0.2,
        test_metric=0.25,
        epochs_done=2,
        wall_seconds=0.5,
    )
    with session_scope(engine_of(api)) as session:
        dal.record_trial_result(session, study_id, result)
    return study_id


# ------------------------------------------------------------------------------------------- the spec


def raw(spec: dict[str, Any], replace: tuple[str, str] | None = None) -> bytes:
    text = json.dumps(spec)
    if replace is not None:
        text = text.replace(*replace)
    return text.encode()


BAD_SPECS: list[tuple[str, Any, str, tuple[str, ...]]] = [
    # (id, a change to the smoke spec or a raw body, field, words of the message)
    ("lr-not-a-number", {"lr": "abc"}, "lr", ()),
    ("lr-list-of-text", {"lr": ["abc"]}, "lr", ()),
    ("lr-negative", {"lr": [-0.1]}, "lr", ("> 0",)),
    ("lr-duplicated", {"lr": [0.1, 0.1]}, "lr", ("unique",)),
    ("epochs-negative", {"epochs": -1}, "epochs", ("greater than or equal to 1",)),
    ("epochs-text", {"epochs": "ten"}, "epochs", ()),
    ("seeds-zero", {"seeds": 0}, "seeds", ()),
    ("seed-too-large", {"seeds": [2**40]}, "seeds", ("2147483647",)),
    ("beta-one", {"beta_init": [1.0]}, "beta_init", ("[0, 1)",)),
    ("unknown-workload", {"workload": "imagenet"}, "workload", ("imagenet", "valid choices", "synthetic")),
    ("unknown-arm", {"arms": ["demon_sgdm", "sgd_magic"]}, "arms.1", ("sgd_magic", "valid choices", "demon_sgdm")),
    ("unknown-field", {"colour": "red"}, "colour", ("Extra inputs",)),
    ("empty-name", {"name": ""}, "name", ()),
    ("nul-in-name", {"name": "a\x00b"}, "name", ("NUL",)),
    ("unknown-metric", {"metric": "accuracy"}, "metric", ("accuracy", "valid choices")),
    ("lr-nan", ("[0.01, 0.1, 1.0]", "[NaN]"), "lr", ("finite",)),
    ("lr-infinity", ("[0.01, 0.1, 1.0]", "[0.1, Infinity]"), "lr", ("finite",)),
    ("beta-minus-infinity", ("[0.8, 0.9]", "[-Infinity]"), "beta_init", ()),
    ("arm-param-huge-int", {"arms": [{"name": "demon_sgdm", "params": {"delay": 10**400}}]}, "arms.0", ("finite",)),
    ("cpu-nan", ('"cpu": 1', '"cpu": NaN'), "resources.cpu", ("finite",)),
    ("lr-range-repeats", {"lr": {"min": 0.1, "max": 0.1, "num": 3}}, "lr", ("repeat",)),
    (
        "verdict-k-not-a-budget",
        {"verdict": {"primary": "expected_best", "k": 3, "difference_of_interest": 0.05}},
        "verdict.k",
        ("choose one of 1, 2, 4, 6",),
    ),
]


@pytest.mark.parametrize(("change", "field", "words"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_refused_and_stores_nothing(
    api: TestClient,
    study_id: str,
    smoke_spec: dict[str, Any],
    change: Any,
    field: str,
    words: tuple[str, ...],
) -> None:
    body = raw(smoke_spec, change) if isinstance(change, tuple) else raw(smoke_spec | change)

    with unchanged(api):
        response = api.post(STUDIES, content=body, headers=JSON)

    check_error(response, 422, field, "invalid", *words)


def test_every_spec_error_is_listed(api: TestClient, study_id: str, smoke_spec: dict[str, Any]) -> None:
    with unchanged(api):
        response = api.post(STUDIES, json=smoke_spec | {"epochs": 0, "workload": "nope", "lr": [-1]})

    body = check_error(response, 422)
    assert {e["field"] for e in body["errors"]} >= {"epochs", "workload", "lr"}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_lr_alone(api: TestClient, study_id: str, constant: str) -> None:
    with unchanged(api):
        response = api.post(STUDIES, content=f'{{"lr": [{constant}]}}'.encode(), headers=JSON)

    body = check_error(response, 422)
    lr_errors = [e["reason"] for e in body["errors"] if e["field"] == "lr"]
    assert len(lr_errors) == 1
    assert "finite" in lr_errors[0]


BAD_BODIES: list[tuple[str, bytes, dict[str, str], str]] = [
    ("malformed-json", b'{"name": "x", ', JSON, "malformed JSON"),
    ("trailing-garbage", b"{} x", JSON, "malformed JSON"),
    ("json-array", b"[1, 2]", JSON, "JSON object"),
    ("json-string", b'"a spec"', JSON, "JSON object"),
    ("json-null", b"null", JSON, ""),
    ("empty", b"", JSON, "required"),
]


@pytest.mark.parametrize(("content", "headers", "words"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
def test_bad_body_is_refused_and_stores_nothing(
    api: TestClient, study_id: str, content: bytes, headers: dict[str, str], words: str
) -> None:
    with unchanged(api):
        response = api.post(STUDIES, content=content, headers=headers)

    check_error(response, 422, "body", words)


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", "text/yaml; charset=utf-8", ""])
def test_a_spec_sent_as_another_content_type_is_told_to_send_json(
    api: TestClient, study_id: str, smoke_spec: dict[str, Any], kind: str
) -> None:
    """A valid spec with the wrong Content-Type, or none: the answer names the header, not "not a JSON
    object" (what a body without one got)."""
    with unchanged(api):
        headers = {"content-type": kind} if kind else {}
        response = api.post(STUDIES, content=json.dumps(smoke_spec).encode(), headers=headers)

    check_error(response, 422, "content-type", "application/json", kind.split(";")[0] or "no Content-Type")


def test_grid_over_the_trial_limit(api_factory: ApiFactory, smoke_spec: dict[str, Any]) -> None:
    api = api_factory(max_trials_per_study=10)

    with unchanged(api):
        response = api.post(STUDIES, json=smoke_spec)
        huge = api.post(STUDIES, json=smoke_spec | {"lr": {"min": 1e-4, "max": 1, "num": 200}, "seeds": 1000})

    check_error(response, 422, None, "24 trials", "limit of 10")
    check_error(huge, 422, None, "800000 trials", "limit of 10")
    assert api.post(STUDIES, json=smoke_spec | {"arms": ["demon_sgdm"], "lr": [0.1]}).status_code == 202


def test_idempotency_key_too_long(api: TestClient, study_id: str, smoke_spec: dict[str, Any]) -> None:
    with unchanged(api):
        response = api.post(STUDIES, json=smoke_spec, headers={"Idempotency-Key": "k" * 201})

    check_error(response, 422, "idempotency-key", "200")


# ------------------------------------------------------------------------------------ unknown studies

STUDY_ROUTES = [
    ("GET", ""),
    ("POST", "/cancel"),
    ("DELETE", ""),
    ("GET", "/trials"),
    ("GET", "/grid"),
    ("GET", "/sensitivity"),
    ("GET", "/heatmap.png"),
    ("GET", "/heatmap.svg"),
    ("GET", "/export.csv"),
    ("GET", "/export.parquet"),
]


def test_unknown_study_is_404_on_every_route(api: TestClient, study_id: str) -> None:
    with unchanged(api):
        for unknown in ("000000000000", "x" * 300):
            for method, route in STUDY_ROUTES:
                response = api.request(method, f"{STUDIES}/{unknown}{route}")
                check_error(response, 404, None, "study", "not found", unknown)


# ------------------------------------------------------------------------------------ bad query params

BAD_QUERIES: list[tuple[str, str, dict[str, Any], str, tuple[str, ...]]] = [
    # (id, route under the study or "/…" absolute, params, field, words)
    ("list-status", "/api/v1/studies", {"status": "foo"}, "status", ("valid choices", "queued")),
    ("list-negative-offset", "/api/v1/studies", {"offset": -1}, "offset", ()),
    ("list-huge-offset", "/api/v1/studies", {"offset": 10**20}, "offset", ()),
    ("list-offset-text", "/api/v1/studies", {"offset": "abc"}, "offset", ()),
    ("list-limit-zero", "/api/v1/studies", {"limit": 0}, "limit", ()),
    ("list-limit-too-big", "/api/v1/studies", {"limit": 501}, "limit", ()),
    ("trials-status", "/trials", {"status": "done"}, "status", ("valid choices", "diverged")),
    ("trials-arm", "/trials", {"arm": "foo"}, "arm", ("valid choices", "demon_sgdm")),
    ("trials-negative-offset", "/trials", {"offset": -1}, "offset", ()),
    ("trials-huge-offset", "/trials", {"offset": 2**63}, "offset", ()),
    ("trials-limit-zero", "/trials", {"limit": 0}, "limit", ()),
    ("trials-lr-negative", "/trials", {"lr": -0.1}, "lr", ()),
    ("trials-lr-nan", "/trials", {"lr": "nan"}, "lr", ()),
    ("trials-lr-text", "/trials", {"lr": "abc"}, "lr", ()),
    ("trials-beta-one", "/trials", {"beta_init": 1.0}, "beta_init", ()),
    ("trials-beta-inf", "/trials", {"beta_init": "inf"}, "beta_init", ()),
    ("trials-curves", "/trials", {"curves": "maybe"}, "curves", ()),
    ("grid-split", "/grid", {"split": "foo"}, "split", ("valid choices", "val, test")),
    ("grid-stat", "/grid", {"stat": "foo"}, "stat", ("valid choices", "median")),
    ("grid-metric", "/grid", {"metric": "foo"}, "metric", ("valid choices", "error")),
    ("grid-arm", "/grid", {"arm": "foo"}, "arm", ("valid choices", "sgdm_step")),
    ("sensitivity-split", "/sensitivity", {"split": "foo"}, "split", ("valid choices",)),
    ("sensitivity-metric", "/sensitivity", {"metric": "foo"}, "metric", ("valid choices",)),
    ("sensitivity-target-negative", "/sensitivity", {"target": -1}, "target", ()),
    ("sensitivity-target-nan", "/sensitivity", {"target": "nan"}, "target", ()),
    ("sensitivity-target-inf", "/sensitivity", {"target": "inf"}, "target", ()),
    ("heatmap-split", "/heatmap.png", {"split": "foo"}, "split", ()),
    ("heatmap-metric", "/heatmap.svg", {"metric": "foo"}, "metric", ()),
    ("heatmap-arms", "/heatmap.png", {"arms": "demon_sgdm,foo"}, "arms", ("foo", "valid choices")),
    ("robustness-no-workload", "/api/v1/robustness", {}, "workload", ("required",)),
    ("robustness-epochs", "/api/v1/robustness", {"workload": "synthetic", "epochs": 0}, "epochs", ()),
]


@pytest.mark.parametrize(
    ("route", "params", "field", "words"), [q[1:] for q in BAD_QUERIES], ids=[q[0] for q in BAD_QUERIES]
)
def test_bad_query_parameter(
    api: TestClient, study_id: str, route: str, params: dict[str, Any], field: str, words: tuple[str, ...]
) -> None:
    url = route if route.startswith("/api") else f"{STUDIES}/{study_id}{route}"

    with unchanged(api):
        response = api.get(url, params=params)

    check_error(response, 422, field, *words)


def test_a_value_that_fits_no_branch_of_a_union_is_one_error_of_its_field(api: TestClient, study_id: str) -> None:
    """An arm is a registered name or a label: an unknown one failed both branches, and the second
    error ("arm.constrained-str": a regex of every arm) was listed beside the first."""
    body = check_error(api.get(f"{STUDIES}/{study_id}/trials", params={"arm": "nope"}), 422, "arm", "valid choices")
    assert [e["field"] for e in body["errors"]] == ["arm"]


@pytest.mark.parametrize(
    ("route", "params"),
    [
        ("/api/v1/studies", {"name": "a\x00b"}),
        ("/api/v1/studies", {"workload": "\x00"}),
        ("/trials", {"arm": "demon\x00"}),
        ("/api/v1/robustness", {"workload": "syn\x00thetic"}),
        ("/heatmap.png", {"arms": ","}),
        ("/trials", {"lr": 1e308}),
        ("/api/v1/robustness", {"workload": "synthetic", "epochs": 10**20}),
    ],
    ids=["nul-name", "nul-workload", "nul-arm", "nul-robustness", "empty-arms", "huge-lr", "huge-epochs"],
)
def test_odd_query_values_never_fail_the_server(
    api: TestClient, study_id: str, route: str, params: dict[str, Any]
) -> None:
    url = route if route.startswith("/api") else f"{STUDIES}/{study_id}{route}"

    with unchanged(api):
        response = api.get(url, params=params)

    assert response.status_code < 500, response.text


def test_nul_in_a_study_id_is_never_a_server_error(api: TestClient, study_id: str) -> None:
    with unchanged(api):
        responses = [api.request(m, f"{STUDIES}/ab%00cd{r}") for m, r in STUDY_ROUTES]

    assert all(r.status_code in (404, 422) for r in responses), [r.text for r in responses]


# ----------------------------------------------------------------------------------------------- tokens


def create_token(api: TestClient, name: str = "ci") -> str:
    with session_scope(engine_of(api)) as session:
        return dal.create_token(session, name)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


WRONG_CREDENTIALS = [
    ({}, "Authorization: Bearer"),
    ({"Authorization": "Bearer not-the-token"}, "not valid"),
    ({"Authorization": "Bearer "}, "Authorization: Bearer"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "Authorization: Bearer"),
    ({"Authorization": "not-the-token"}, "Authorization: Bearer"),
]


def mutations(study_id: str, spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", STUDIES, {"json": spec}),
        ("POST", f"{STUDIES}/{study_id}/cancel", {}),
        ("DELETE", f"{STUDIES}/{study_id}", {}),
    ]


@pytest.mark.parametrize(("headers", "words"), WRONG_CREDENTIALS, ids=["none", "wrong", "empty", "basic", "bare"])
def test_mutations_need_a_valid_token_once_one_exists(
    api: TestClient, study_id: str, smoke_spec: dict[str, Any], headers: dict[str, str], words: str
) -> None:
    create_token(api)

    with unchanged(api):
        responses = [api.request(m, url, headers=headers, **kw) for m, url, kw in mutations(study_id, smoke_spec)]

    for response in responses:
        check_error(response, 401, None, words)
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_right_token_is_accepted(api: TestClient, study_id: str, smoke_spec: dict[str, Any]) -> None:
    token = create_token(api)
    create_token(api, "another")

    created = api.post(STUDIES, json=smoke_spec, headers=bearer(token))
    cancelled = api.post(f"{STUDIES}/{study_id}/cancel", headers={"Authorization": f"bearer {token}"})
    deleted = api.delete(f"{STUDIES}/{study_id}", headers=bearer(token))

    assert created.status_code == 202
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert deleted.status_code == 204
    assert [s["id"] for s in api.get(STUDIES).json()["data"]] == [created.json()["id"]]
    with session_scope(engine_of(api), read_only=True) as session:
        used = session.scalars(select(ApiToken.name).where(ApiToken.last_used_at.is_not(None))).all()
    assert used == ["ci"]


def test_reads_need_no_token(api: TestClient, study_id: str) -> None:
    create_token(api)

    for route in ("", "/trials", "/grid", "/export.csv"):
        assert api.get(f"{STUDIES}/{study_id}{route}").status_code == 200, route
    assert api.get(STUDIES).status_code == 200
    assert api.get("/api/v1/robustness", params={"workload": "synthetic"}).status_code == 200
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200


def test_tokens_required_without_any_token(api_factory: ApiFactory, smoke_spec: dict[str, Any]) -> None:
    open_api = api_factory()
    study_id = open_api.post(STUDIES, json=smoke_spec).json()["id"]
    api = api_factory(api_tokens_required=True)  # the same database, now closed to anonymous writes

    with unchanged(api):
        for headers in ({}, bearer("anything")):
            for method, url, kw in mutations(study_id, smoke_spec):
                response = api.request(method, url, headers=headers, **kw)
                check_error(response, 401)
                assert response.headers["www-authenticate"] == "Bearer"

    assert api.get(f"{STUDIES}/{study_id}").status_code == 200
    token = create_token(api)
    assert api.post(STUDIES, json=smoke_spec, headers=bearer(token)).status_code == 202


def test_unauthorised_bad_spec_is_401_not_422(api: TestClient, study_id: str, smoke_spec: dict[str, Any]) -> None:
    create_token(api)

    with unchanged(api):
        response = api.post(STUDIES, json=smoke_spec | {"epochs": -1})

    check_error(response, 401)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the app under test; the lost database is PostgreSQL
def test_a_lost_database_is_a_503_that_does_not_say_where_it_is(
    api: TestClient, study_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The driver's message names the server (``connection to server at "127.0.0.1", port N failed``):
    it goes to the log, not to anonymous clients."""
    from cluster_helpers import free_ports
    from sqlalchemy.pool import NullPool

    from service.db import make_engine

    (port,) = free_ports(1)  # nothing listens there: connection refused
    lost = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/demonlab", poolclass=NullPool)
    kept = engine_of(api)
    api.app.state.engine = lost  # type: ignore[attr-defined]
    try:
        with caplog.at_level("WARNING", logger="demonlab.db"):
            responses = [api.get(STUDIES), api.get(f"{STUDIES}/{study_id}"), api.delete(f"{STUDIES}/{study_id}")]
    finally:
        api.app.state.engine = kept  # type: ignore[attr-defined]
        lost.dispose()
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json() == {"detail": "the database is unavailable; try again shortly"}
        assert str(port) not in response.text
        assert "127.0.0.1" not in response.text
    assert str(port) in caplog.text  # the operator still learns where it failed
