"""Studies: submit, list, show, cancel, delete."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import ValidationError

from ...db import dal
from ...db.engine import session_scope
from ...errors import InvalidInput, field_name, reason
from ...presenters import study_public
from ...schemas import StudiesPublic, StudyCreated, StudyPublic
from ..deps import AuthDep, EngineDep, SettingsDep

router = APIRouter(prefix="/studies", tags=["studies"])

STATUSES = ("queued", "running", "completed", "failed", "cancelled")
MAX_SEED = 2**31 - 1  # trials.seed is an INTEGER column (32 bits on PostgreSQL)


def _validate(body: Any, max_trials: int) -> Any:
    from studies.spec import StudySpec

    if not isinstance(body, dict):
        raise InvalidInput("body", "a study spec must be a JSON object")
    try:
        spec = StudySpec.model_validate(body, context={"max_trials": max_trials})
    except ValidationError as exc:
        raise SpecInvalid(exc) from exc
    # What the spec allows but the database cannot store (both engines alike): no 500 at insert.
    if max(spec.seed_values, default=0) > MAX_SEED:
        raise InvalidInput("seeds", f"every seed must be <= {MAX_SEED} (got {max(spec.seed_values)})")
    if "\x00" in spec.name:
        raise InvalidInput("name", "must not contain NUL characters")
    return spec


def _check_local_resources(spec: Any, settings: Any) -> None:
    """With the local launcher and no cluster, refuse at submission what this machine can never run.

    On a cluster (``ray_address`` set) the driver checks every node and fails the study at once with
    the cluster's resources in the message, so nothing ever waits silently.
    """
    if settings.launcher != "local" or settings.ray_address:
        return
    if spec.resources.custom:
        names = ", ".join(sorted(spec.resources.custom))
        raise InvalidInput(
            "resources.custom", f"the local Ray has no custom resources ({names}); run on a cluster (RAY_ADDRESS)"
        )
    if spec.resources.gpu > 0:
        import torch

        if torch.cuda.device_count() == 0:
            raise InvalidInput(
                "resources.gpu",
                f"the spec asks for {spec.resources.gpu:g} GPU per trial but this machine has none; "
                "set resources.gpu to 0 or run on a cluster with GPU workers (RAY_ADDRESS)",
            )


def _spec_error(error: Any) -> dict[str, str]:
    """A spec validation error as {field, reason}; a whole-spec check names its field in the message
    ("metric: unknown metric ..."), so that field is reported."""
    message = reason(str(error["msg"]))
    field = field_name(error["loc"], default="")
    if not field:
        named = re.match(r"^([a-z_]+(?:\.[a-z_0-9]+)*): (.+)$", message, re.DOTALL)
        field, message = (named.group(1), named.group(2)) if named else ("spec", message)
    return {"field": field, "reason": message}


class SpecInvalid(InvalidInput):
    """A spec that fails validation: every error, each naming its field."""

    def __init__(self, exc: ValidationError) -> None:
        errors = [_spec_error(e) for e in exc.errors()]
        first = errors[0] if errors else {"field": "spec", "reason": "invalid"}
        super().__init__(first["field"], first["reason"])
        self.errors = errors


@router.post("", status_code=202, response_model=StudyCreated, dependencies=[AuthDep])
def submit_study(
    engine: EngineDep,
    settings: SettingsDep,
    response: Response,
    body: Annotated[Any, Body(description="a study spec (see studies/examples)")],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> StudyCreated:
    """Validate and store a spec with its trials; the scheduler launches it. 202 with the study's URL."""
    from studies.spec import expand_trials

    spec = _validate(body, settings.max_trials_per_study)
    _check_local_resources(spec, settings)
    with session_scope(engine) as session:
        study = dal.create_study(
            session,
            name=spec.name,
            workload=spec.workload,
            spec=spec.model_dump(mode="json"),
            spec_hash=spec.spec_hash(),
            trial_keys=expand_trials(spec),
            trials_total=spec.trial_count,
            idempotency_key=idempotency_key,
            launcher=settings.launcher,
        )
    url = f"/api/v1/studies/{study.id}"
    response.headers["Location"] = url
    return StudyCreated(id=study.id, status=study.status.value, url=url, trials_total=study.trials_total)


@router.get("", response_model=StudiesPublic)
def list_studies(
    engine: EngineDep,
    status: Annotated[str | None, Query(description=f"one of {', '.join(STATUSES)}")] = None,
    workload: str | None = None,
    name: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> StudiesPublic:
    """Studies, newest first, filtered by status, workload and name."""
    if status is not None and status not in STATUSES:
        raise InvalidInput("status", f"unknown status {status!r}; valid choices: {', '.join(STATUSES)}")
    with session_scope(engine, read_only=True) as session:
        rows, total = dal.list_studies(session, status=status, workload=workload, name=name, offset=offset, limit=limit)
    return StudiesPublic(data=[study_public(s) for s in rows], count=total, offset=offset, limit=limit)


@router.get("/{study_id}", response_model=StudyPublic)
def get_study(study_id: str, engine: EngineDep) -> StudyPublic:
    """Status, progress (done/total), timings and error of one study."""
    with session_scope(engine, read_only=True) as session:
        return study_public(dal.get_study(session, study_id))


@router.post("/{study_id}/cancel", response_model=StudyPublic, dependencies=[AuthDep])
def cancel_study(study_id: str, engine: EngineDep, settings: SettingsDep) -> StudyPublic:
    """Cancel: pending trials become cancelled and the study's job is stopped within seconds."""
    from ...jobs.launchers import stop_job

    with session_scope(engine) as session:
        study = dal.cancel_study(session, study_id)
    if study.job_id:
        stop_job(settings, study.job_id)
    return study_public(study)


@router.delete("/{study_id}", status_code=204, dependencies=[AuthDep])
def delete_study(study_id: str, engine: EngineDep) -> Response:
    """Delete a study and its trials (refused with 409 while it runs)."""
    with session_scope(engine) as session:
        dal.delete_study(session, study_id)
    return Response(status_code=204)
