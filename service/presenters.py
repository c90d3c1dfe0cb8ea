"""Turn stored rows (as the data-access layer returns them) into the API's response models."""

from __future__ import annotations

import math

from .db.dal import TrialRecord
from .db.models import Study
from .schemas import EpochPublic, Progress, StudyPublic, StudySummary, TrialPublic


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


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
    """A trial record (``dal.TrialRecord``) → ``TrialPublic``."""
    curve = trial.curve
    return TrialPublic(
        arm=trial.arm,
        lr=trial.lr,
        beta_init=trial.beta_init,
        seed=trial.seed,
        status=trial.status,
        val_metric=_finite(trial.val_metric),
        val_loss=_finite(trial.val_loss),
        test_metric=_finite(trial.test_metric),
        test_loss=_finite(trial.test_loss),
        best_val_metric=_finite(trial.best_val_metric),
        epochs_done=int(trial.epochs_done or 0),
        wall_seconds=float(trial.wall_seconds or 0.0),
        node=trial.node,
        device=trial.device,
        error=trial.error,
        curve=None
        if curve is None
        else [
            EpochPublic(
                epoch=e.epoch,
                train_loss=_finite(e.train_loss),
                val_loss=_finite(e.val_loss),
                val_metric=_finite(e.val_metric),
            )
            for e in curve
        ],
    )
