"""Studies: submit, list, show, cancel, delete (the work itself is in ``service.submission``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from studies.spec import EXAMPLE
from studies.vocab.statuses import StudyStatus

from ... import submission
from ...artefacts import delete_study_artefacts
from ...db import dal
from ...db.engine import session_scope
from ...errors import InvalidInput
from ...presenters import study_public, study_summary
from ...report_cache import reports
from ...schemas import StudiesPublic, StudyCreated, StudyPublic
from ..deps import AuthDep, EngineDep, OffsetQuery, SettingsDep
from ..responses import errors

router = APIRouter(prefix="/studies", tags=["studies"])

SPEC_BODY = {
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/StudySpec"},
            "examples": {"two_arms": {"value": EXAMPLE}},
        }
    },
    "required": True,
    "description": "a study spec (see studies/examples); the workload's parameters follow its model",
}


@router.post(
    "",
    status_code=202,
    response_model=StudyCreated,
    dependencies=[AuthDep],
    responses=errors(401, 409, 413, 429),
    openapi_extra={"requestBody": SPEC_BODY},
)
def submit_study(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    response: Response,
    body: Annotated[Any, Body()],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> StudyCreated:
    """Validate and store a spec with its trials; the scheduler launches it. 202 with the study's URL."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):  # else "not a JSON object" misled
        got = kind or "no Content-Type"  # FastAPI reads a body without one as bytes, not JSON
        raise InvalidInput("content-type", f"send the spec as JSON, with Content-Type: application/json (got {got})")
    study = submission.submit(engine, settings, body, idempotency_key=idempotency_key)
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:  # this process's scheduler launches it now, not at its next poll
        scheduler.wake()
    url = f"/api/v1/studies/{study.id}"
    response.headers["Location"] = url
    return StudyCreated(id=study.id, status=study.status, url=url, trials_total=study.trials_total)


@router.get("", response_model=StudiesPublic, responses=errors())
def list_studies(
    engine: EngineDep,
    status: StudyStatus | None = None,
    workload: str | None = None,
    name: str | None = None,
    offset: OffsetQuery = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    name_contains: Annotated[str | None, Query(max_length=200, description="a part of the name, any case")] = None,
) -> StudiesPublic:
    """Studies, newest first, filtered by status, workload and name (exact, or ``name_contains``, as the
    dashboard's search) (summaries: the spec is on each study's own page)."""
    with session_scope(engine, read_only=True) as session:
        rows, total = dal.list_studies(
            session,
            status=status,
            workload=workload,
            name=name,
            offset=offset,
            limit=limit,
            name_contains=name_contains,
        )
        data = [study_summary(s) for s in rows]
    return StudiesPublic(data=data, count=total, offset=offset, limit=limit)


@router.get("/{study_id}", response_model=StudyPublic, responses=errors(404))
def get_study(study_id: str, engine: EngineDep) -> StudyPublic:
    """Status, progress (done/total), timings, error and spec of one study."""
    with session_scope(engine, read_only=True) as session:
        return study_public(dal.get_study(session, study_id))


@router.post(
    "/{study_id}/cancel", response_model=StudyPublic, dependencies=[AuthDep], responses=errors(401, 404, 409, 429)
)
def cancel_study(study_id: str, engine: EngineDep, settings: SettingsDep) -> StudyPublic:
    """Cancel: pending trials become cancelled and the study's job is stopped within seconds."""
    return study_public(submission.cancel(engine, settings, study_id))


@router.delete("/{study_id}", status_code=204, dependencies=[AuthDep], responses=errors(401, 404, 409, 429))
def delete_study(study_id: str, engine: EngineDep, settings: SettingsDep) -> Response:
    """Delete a study with its trials, files (pack checkpoints, logs) and Optuna studies (refused with
    409 while it runs)."""
    with session_scope(engine) as session:
        dal.delete_study(session, study_id)
    delete_study_artefacts(settings, study_id)
    reports.forget(study_id)
    return Response(status_code=204)
