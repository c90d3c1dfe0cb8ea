"""Submitting and cancelling studies: the one place where a request becomes stored rows or a stop.

The HTTP routes, the CLI's in-process paths and the benchmarks all call these, so a study is
checked and stored the same way whichever door it comes in by:

* ``validate_spec`` — the spec model (with the deployment's trial limit) and what the database
  cannot store; every error names its field (``SpecInvalid``).
* ``check_runnable`` — what this service can tell at submission about whether the study can ever
  run: with the local launcher (the driver runs on this machine, sees the same dataset dir) the
  dataset's files must be there and the trial's resources must exist here. On a cluster the driver
  checks the same things once when it starts (``service.jobs.driver``).
* ``store_study`` / ``submit`` — the spec and its trials in one transaction (idempotent by key).
* ``cancel`` — pending trials cancelled, the study's job stopped.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from studies.spec import StudySpec, expand_trials
from studies.workloads import WorkloadError, get_workload

from .db import dal
from .db.engine import session_scope
from .db.models import Study
from .errors import InvalidInput, SpecInvalid, spec_errors
from .settings import Settings

__all__ = ["cancel", "check_runnable", "store_study", "submit", "validate_spec"]


def validate_spec(body: Any, settings: Settings) -> StudySpec:
    """``body`` (a JSON object) as a ``StudySpec`` within this deployment's limits, or ``SpecInvalid``."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "a study spec must be a JSON object")
    try:
        spec = StudySpec.model_validate(body, context={"max_trials": settings.max_trials_per_study})
    except ValidationError as exc:
        raise SpecInvalid(spec_errors(exc)) from exc
    if "\x00" in spec.name:  # what the spec allows but PostgreSQL cannot store: no 500 at insert
        raise InvalidInput("name", "must not contain NUL characters")
    return spec


def runs_here(settings: Settings) -> bool:
    """Whether the study's driver runs on this machine (the local launcher, no cluster)."""
    return settings.launcher == "local" and not settings.ray_address


def check_runnable(spec: StudySpec, settings: Settings) -> None:
    """With the local launcher and no cluster, refuse at submission what this machine can never run:
    a dataset that is not in the dataset dir, custom resources, a GPU it does not have."""
    if not runs_here(settings):
        return
    try:
        get_workload(spec.workload, spec.workload_params).check_data(settings.datasets)
    except WorkloadError as exc:
        raise InvalidInput("workload", f"the dataset of {spec.workload!r} is not available here: {exc}") from exc
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


def store_study(
    session: Session,
    spec: StudySpec,
    *,
    launcher: str,
    idempotency_key: str | None = None,
    with_trials: bool = True,
) -> Study:
    """Store a validated spec as a queued study and, for a grid, its trials (``with_trials=False``
    leaves the trial rows to the caller, as a bulk loader does)."""
    keys = expand_trials(spec)
    return dal.create_study(
        session,
        name=spec.name,
        workload=spec.workload,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec.spec_hash(),
        trial_keys=keys if with_trials else [],
        trials_total=spec.trial_count,
        idempotency_key=idempotency_key,
        launcher=launcher,
    )


def submit(engine: Engine, settings: Settings, body: Any, *, idempotency_key: str | None = None) -> Study:
    """Validate ``body``, check it can run here, and store it queued; the scheduler launches it."""
    spec = validate_spec(body, settings)
    check_runnable(spec, settings)
    with session_scope(engine) as session:
        return store_study(session, spec, launcher=settings.launcher, idempotency_key=idempotency_key)


def cancel(engine: Engine, settings: Settings, study_id: str) -> Study:
    """Cancel a study: pending trials become cancelled and its job (if launched) is stopped."""
    from .jobs.launchers import stop_job

    with session_scope(engine) as session:
        study = dal.cancel_study(session, study_id)
    if study.job_id:
        stop_job(settings, study.job_id)
    return study
