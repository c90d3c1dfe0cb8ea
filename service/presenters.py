"""Turn stored rows (as the data-access layer returns them) into the API's response models."""

from __future__ import annotations

import math
from typing import Any

from .schemas import EpochPublic, Progress, StudyPublic, TrialPublic


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def study_public(study: Any) -> StudyPublic:
    """A study row → ``StudyPublic``."""
    total = int(study.trials_total or 0)
    done = int(study.trials_done or 0)
    return StudyPublic(
        id=study.id,
        name=study.name,
        workload=study.workload,
        status=str(study.status.value if hasattr(study.status, "value") else study.status),
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
        spec=study.spec,
        environment=getattr(study, "environment", None),
    )


def trial_public(trial: Any) -> TrialPublic:
    """A trial record (``dal.TrialRecord``) → ``TrialPublic``."""
    curve = getattr(trial, "curve", None)
    return TrialPublic(
        arm=trial.arm,
        lr=trial.lr,
        beta_init=trial.beta_init,
        seed=trial.seed,
        status=str(trial.status.value if hasattr(trial.status, "value") else trial.status),
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
