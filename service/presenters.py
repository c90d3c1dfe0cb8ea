"""Turn stored rows (as the data-access layer returns them) into the API's response models."""

from __future__ import annotations

from .db.dal import TrialRecord
from .db.models import Study
from .schemas import Progress, StudyPublic, StudySummary, TrialPublic


def study_summary(study: Study) -> StudySummary:
    """A study row → ``StudySummary`` (what a list shows: no spec)."""
    total = int(study.trials_total or 0)
    done = int(study.trials_done or 0)
    return StudySummary(
        id=study.id,
        name=study.name,
        workload=study.workload,
        status=study.status,
        launcher=study.launcher,
        job_id=study.job_id,
        attempts=int(study.attempts or 0),
        progress=Progress(
            done=done,
            total=total,
            diverged=int(study.trials_diverged or 0),
            failed=int(study.trials_failed or 0),
            fraction=(done / total) if total else 0.0,
        ),
        created_at=study.created_at,
        started_at=study.started_at,
        finished_at=study.finished_at,
        heartbeat_at=study.heartbeat_at,
        error=study.error,
    )


def study_public(study: Study) -> StudyPublic:
    """A study row → ``StudyPublic`` (its summary and its spec)."""
    return StudyPublic(**dict(study_summary(study)), spec=study.spec, environment=study.environment)


def trial_public(trial: TrialRecord) -> TrialPublic:
    """A trial record (``dal.TrialRecord``) → ``TrialPublic``: the fields they share, non-finite
    scores as null, the curve as ``EpochPublic`` points."""
    return TrialPublic.model_validate(trial, from_attributes=True)
