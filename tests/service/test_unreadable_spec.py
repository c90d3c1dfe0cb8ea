"""A finished study whose stored spec this version cannot read (stored by another release: an arm
renamed since, a field added, a workload removed; or edited in the database), on SQLite and
PostgreSQL. Its reports answered 500 with a pydantic traceback in the log, and it broke
``/robustness`` for every study of its workload. Now each report is a 409 ``ErrorBody`` naming the
study and the field, its page an HTML error, the robustness aggregate leaves it out and names it, and
its row, trials and export read as before.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from test_api import claim, engine_of, finish, record_results, submit

from service import analysis
from service.db import Study, dal, session_scope
from service.errors import SpecUnreadable

Edit = Callable[[dict[str, Any]], dict[str, Any]]

EDITS: dict[str, tuple[Edit, str, str]] = {  # what another release stored → the field and the reason named
    "renamed arm": (
        lambda s: {**s, "arms": [s["arms"][0], {**s["arms"][1], "name": "sgdm_oldname"}]},
        "arms.1",
        "unknown arm 'sgdm_oldname'",
    ),
    "extra key": (lambda s: {**s, "legacy_field": 3}, "legacy_field", "Extra inputs are not permitted"),
    "removed workload": (lambda s: {**s, "workload": "old_workload"}, "workload", "unknown workload 'old_workload'"),
}
REPORTS = ["sensitivity", "grid?arm=demon_sgdm", "heatmaps", "heatmap.png", "heatmap.svg", "points"]


def finished_study(api: TestClient, spec: dict[str, Any], name: str) -> str:
    """A completed study of ``spec`` with every trial's result but one."""
    study_id = submit(api, spec | {"name": name})
    record_results(engine_of(api), study_id)
    claim(engine_of(api))
    finish(engine_of(api), study_id)
    return study_id


def store_edited(api: TestClient, study_id: str, edit: Edit) -> None:
    """Rewrite the study's stored spec in the database, as another release or a hand edit left it."""
    with session_scope(engine_of(api)) as session:
        spec = dict(dal.get_study(session, study_id).spec)
        session.execute(update(Study).where(Study.id == study_id).values(spec=edit(spec)))


@pytest.fixture(params=list(EDITS))
def edit(request: pytest.FixtureRequest) -> tuple[Edit, str, str]:
    return EDITS[request.param]


def test_reports_of_an_unreadable_spec_are_409_naming_the_field(
    api: TestClient, smoke_spec: dict[str, Any], edit: tuple[Edit, str, str]
) -> None:
    change, field, why = edit
    study_id = finished_study(api, smoke_spec, "stored by another release")
    store_edited(api, study_id, change)
    said = f"study {study_id}'s stored spec cannot be read by this version: {field}: {why}"

    for route in REPORTS:
        response = api.get(f"/api/v1/studies/{study_id}/{route}")
        assert response.status_code == 409, (route, response.text)
        assert response.headers["content-type"] == "application/json", route
        assert response.json()["detail"].startswith(said), (route, response.json())
    page = api.get(f"/studies/{study_id}")
    assert page.status_code == 409, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert said in html.unescape(page.text)
    figures = api.get(f"/studies/{study_id}/figures")  # the fragment says it in the page, as other 409s
    assert figures.status_code == 200
    assert said in html.unescape(figures.text)


def test_the_study_its_trials_and_export_still_read(
    api: TestClient, smoke_spec: dict[str, Any], edit: tuple[Edit, str, str]
) -> None:
    change, _, _ = edit
    study_id = finished_study(api, smoke_spec, "stored by another release")
    store_edited(api, study_id, change)

    shown = api.get(f"/api/v1/studies/{study_id}")
    assert shown.status_code == 200
    assert shown.json()["status"] == "completed"
    assert api.get(f"/api/v1/studies/{study_id}/trials").json()["count"] == 24
    assert api.get(f"/api/v1/studies/{study_id}/export.csv").status_code == 200


def test_robustness_leaves_out_an_unreadable_study_and_names_it(
    api: TestClient, smoke_spec: dict[str, Any], edit: tuple[Edit, str, str]
) -> None:
    change, _, _ = edit
    readable = finished_study(api, smoke_spec, "this release")
    unreadable = finished_study(api, smoke_spec, "another release")
    store_edited(api, unreadable, change)

    response = api.get("/api/v1/robustness", params={"workload": "synthetic"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"]["studies"] == 1
    assert body["query"]["unreadable"] == [unreadable]
    assert {tuple(group["study_ids"]) for group in body["groups"]} == {(readable,)}
    assert len(body["groups"]) == 2  # one per arm of the readable study


def test_study_spec_raises_the_service_error_with_every_field() -> None:
    """Not pydantic's ``ValidationError``: the app maps ``SpecUnreadable`` to a 409, the driver fails
    the study with its message."""
    study = Study(id="abc123", spec={"workload": "old_workload", "arms": ["sgdm_oldname"], "legacy_field": 3})

    with pytest.raises(SpecUnreadable) as raised:
        analysis.study_spec(study)

    fields = [error["field"] for error in raised.value.errors]
    assert {"workload", "arms.0", "legacy_field"} <= set(fields)
    assert str(raised.value).startswith("study abc123's stored spec cannot be read by this version: ")


def test_an_atlas_report_leaves_out_only_the_unreadable_studys_cell(api: TestClient) -> None:
    """An atlas one of whose studies this version cannot read: its report answered 409 as a whole
    (the other cell of that workload shares the colour scale, and drew it from every cell). Now the
    report is there, that cell says why it has no verdict, and only its own heatmap is refused."""
    from studies.results import EpochRecord, TrialResult, TrialStatus
    from studies.spec import StudySpec, expand_trials

    assert api.post("/api/v1/atlases", json={"suite": "smoke", "seeds": 6}).status_code == 202
    engine = engine_of(api)
    claim(engine)
    with session_scope(engine, read_only=True) as session:
        studies = [(s.id, dict(s.spec)) for s in session.scalars(select(Study))]
    for study_id, spec in studies:
        with session_scope(engine) as session:  # every trial's result at once: the atlas as its drivers leave it
            for key in expand_trials(StudySpec.model_validate(spec)):
                score = 0.2 + 0.05 * abs(math.log10(key.lr) + 1) + 0.001 * key.seed
                curve = (EpochRecord(1, 0.5, 0.5, score),)
                result = TrialResult(
                    key=key, status=TrialStatus.COMPLETED, epochs=curve, val_metric=score, test_metric=score,
                    val_loss=0.5, test_loss=0.5, best_val_metric=score, epochs_done=1,
                )  # fmt: skip
                dal.record_trial_result(session, study_id, result)
        finish(engine, study_id)
    unreadable = studies[0][0]
    store_edited(api, unreadable, EDITS["extra key"][0])

    atlas = api.get("/api/v1/atlases/smoke-s6").json()
    failed = [c for c in atlas["cells"] if c["status"] == "failed"]
    assert [s["id"] for c in failed for s in c["studies"]] == [unreadable]
    assert "legacy_field" in failed[0]["error"]
    report = api.get("/api/v1/atlases/smoke-s6/report.html")
    assert report.status_code == 200, report.text
    assert f"study {unreadable}" in report.text  # the cell's error, in the report
    assert "legacy_field: Extra inputs are not permitted" in report.text
    drawn = report.text.count('src="data:image/png')
    assert drawn >= len(atlas["cells"]) - 1  # every other cell's heatmap, and the comparisons' figures
    label = failed[0]["label"]
    own = f"heatmap-{atlas['labels'].index(label)}-{failed[0]['family']}"
    refused = api.get(f"/api/v1/atlases/smoke-s6/figures/{own}.png")
    assert refused.status_code == 409, refused.text
    assert unreadable in refused.json()["detail"]
    sibling = next(c for c in atlas["cells"] if c["label"] == label and c["status"] == "done")
    drawn_sibling = api.get(
        f"/api/v1/atlases/smoke-s6/figures/heatmap-{atlas['labels'].index(label)}-{sibling['family']}.png"
    )
    assert drawn_sibling.status_code == 200
    assert drawn_sibling.content.startswith(b"\x89PNG")
