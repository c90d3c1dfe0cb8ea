"""The HTTP API's response models: one family per resource (``StudyPublic``, ``StudiesPublic``...).

Scores in responses are raw workload values where lower is better (an error rate, a loss), unless a
field says ``oriented``; the sensitivity figures follow ``studies.metrics`` (higher is better,
y = −value) and say so in their ``orientation`` field. Non-finite values appear as null.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from studies.results import TrialStatus
from studies.vocab import ArmName, MetricName, Split, Stat

from .db.models import StudyStatus


class StudyCreated(BaseModel):
    """The answer to a submission: where to follow the study."""

    id: str
    status: StudyStatus
    url: str
    trials_total: int


class Progress(BaseModel):
    """Trials done (completed or diverged) out of the total, and the others by kind."""

    done: int
    total: int
    diverged: int
    failed: int
    fraction: float


class StudySummary(BaseModel):
    """One study as a list shows it: status, progress, timings and error (the spec is on its own page)."""

    id: str
    name: str
    workload: str
    status: StudyStatus = Field(
        description="completed_with_failures: some trials failed (see progress.failed and error); "
        "failed: every trial failed, or the study could not run"
    )
    launcher: str
    job_id: str | None
    attempts: int
    progress: Progress
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    error: str | None


class StudyPublic(StudySummary):
    """One study: its summary and its spec."""

    spec: dict[str, Any]


class StudiesPublic(BaseModel):
    """A page of studies (summaries, without their specs) and the total count matching the filters."""

    data: list[StudySummary]
    count: int
    offset: int
    limit: int


class EpochPublic(BaseModel):
    """One point of a learning curve."""

    epoch: int
    train_loss: float | None
    val_loss: float | None
    val_metric: float | None


class TrialPublic(BaseModel):
    """One trial and its final scores (raw, lower is better)."""

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
    curve: list[EpochPublic] | None = None


class TrialsPublic(BaseModel):
    """A page of trials."""

    data: list[TrialPublic]
    count: int
    offset: int
    limit: int


class GridPublic(BaseModel):
    """One arm's grid: rows are learning rates, columns β_init; values raw (lower is better)."""

    study_id: str
    arm: ArmName
    metric: MetricName
    split: Split
    stat: Stat
    lrs: list[float]
    betas: list[float]
    values: list[list[float | None]] = Field(description="the statistic per cell over its seeds")
    n: list[list[int]] = Field(description="completed + diverged seeds per cell")
    diverged: list[list[int]]
    missing: list[list[int]]
    ci_low: list[list[float | None]]
    ci_high: list[list[float | None]]


class TokenCreated(BaseModel):
    """A new API token: the secret is shown once and stored only as a hash."""

    name: str
    token: str


class FieldError(BaseModel):
    """One validation error: the field as the user wrote it (``lr.0``, ``workload_params.n_train``)."""

    field: str
    reason: str


class ErrorBody(BaseModel):
    """Every error response (4xx, 5xx): a message, the field at fault where there is one, and for a
    validation error (422) the list of every error."""

    detail: str
    field: str | None = None
    errors: list[FieldError] | None = None


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the database answers and its schema is at the migrations' head."""

    status: Literal["ready", "not ready"]
    database: str = Field(description='"ok" or "unavailable: <error type>"')
    migrations: Literal["head", "behind"] | None = None
