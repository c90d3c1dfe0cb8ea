"""A trial's fields, typed once: the base of the data-access layer's record and of the API's view.

``TrialFields`` is what a stored trial says about itself: its key (arm, lr, β_init, seed), status,
final scores (raw workload units, lower is better), epochs, wall time and where it ran.
``service.db.dal.TrialRecord`` extends it with the row's bookkeeping (id, attempts, update time,
extras, the decoded curve; scores may be non-finite there), and ``service.schemas.TrialPublic`` with
the public curve (non-finite scores as null). The SQL model (``service.db.models.Trial``) stores
each score as a value/kind pair; a test checks that it has a column for every field here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from studies.vocab import TrialStatus

__all__ = ["SCORE_NAMES", "TrialFields"]

SCORE_NAMES = ("val_metric", "val_loss", "test_metric", "test_loss", "best_val_metric")
"""The final scores of a trial (each stored as a value and a kind, so NaN and ±inf survive)."""


class TrialFields(BaseModel):
    """One trial: its key, status and final scores (raw, lower is better), and where it ran."""

    model_config = ConfigDict(frozen=True)

    arm: str
    lr: float
    beta_init: float
    seed: int
    status: TrialStatus
    val_metric: float | None
    val_loss: float | None
    test_metric: float | None
    test_loss: float | None
    best_val_metric: float | None
    epochs_done: int
    wall_seconds: float
    node: str | None
    device: str | None
    error: str | None
