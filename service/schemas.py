"""The HTTP API's response models: one family per resource (``StudyPublic``, ``StudiesPublic``...).

Scores in responses are raw workload values where lower is better (an error rate, a loss), unless a
field says ``oriented``; the sensitivity figures are ``studies.metrics.models`` (higher is better,
y = −value, ``raw_*`` in workload units) and say so in their ``orientation`` field. Non-finite values
appear as null.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from studies.metrics.models import RobustnessReport, SensitivityReport
from studies.vocab import ArmName, MetricName, Split, Stat, StudyStatus

from .trials import SCORE_NAMES, TrialFields


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
    environment: dict[str, Any] | None = Field(
        default=None,
        description="what the study ran on: software versions and git commit, the driver's and the trial "
        "nodes' CPU and GPU models, and the seeds (set by its driver; null before it starts)",
    )


class StudiesPublic(BaseModel):
    """A page of studies (summaries, without their specs) and the total count matching the filters."""

    data: list[StudySummary]
    count: int
    offset: int
    limit: int


def _finite_or_none(value: Any) -> Any:
    """Non-finite numbers as null (JSON has none); everything else as it is."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class EpochPublic(BaseModel):
    """One point of a learning curve."""

    model_config = ConfigDict(from_attributes=True)

    epoch: int
    train_loss: float | None
    val_loss: float | None
    val_metric: float | None

    _finite = field_validator("train_loss", "val_loss", "val_metric", mode="before")(_finite_or_none)


class TrialPublic(TrialFields):
    """One trial and its final scores (raw, lower is better; non-finite ones as null)."""

    model_config = ConfigDict(from_attributes=True)

    curve: list[EpochPublic] | None = None

    _finite = field_validator(*SCORE_NAMES, mode="before")(_finite_or_none)


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
    median_low: list[list[float | None]] = Field(
        description="lower bound of each cell's median over seeds (order-statistic interval), null under 2 results"
    )
    median_high: list[list[float | None]] = Field(description="upper bound of the same interval")
    median_level: list[list[float | None]] = Field(
        description="the real coverage of each cell's interval: 1 - 2^(1-n) for n <= 5 results (0.5 at 2 seeds), "
        ">= 0.95 from 6; null where there is no interval"
    )


# --- sensitivity figures (GET /studies/{id}/sensitivity) and robustness (GET /robustness) -----------
# The report's types are ``studies.metrics.models`` (metrics_version 7): these responses are those
# models plus the HTTP context, never a restatement of them (docs/metrics.md defines every field).


class SensitivityStudy(BaseModel):
    """Which study, metric and split the report describes, and the study's status when computed."""

    id: str
    metric: str
    split: str
    status: str
    protocol: str | None = Field(
        default=None,
        description="set for a full_train study: trained without a validation split, so no cell is chosen",
    )


class SensitivityPublic(SensitivityReport):
    """Each pair's verdict, its primary and exploratory figures, and every arm's figures (docs/metrics.md)."""

    study: SensitivityStudy


class RobustnessQuery(BaseModel):
    workload: str
    arm: str | None
    epochs: int | None
    studies: int
    unreadable: list[str] = Field(
        default_factory=list,
        description="finished studies of the workload left out: this version cannot read their stored spec",
    )


class RobustnessPublic(RobustnessReport):
    """Per-arm figures over completed studies, study by study with their intervals (docs/metrics.md)."""

    query: RobustnessQuery


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
    line: int | None = Field(default=None, description="the line of a spec's text at fault (POST /specs/parse)")


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the database answers and its schema is at the migrations' head."""

    status: Literal["ready", "not ready"]
    database: str = Field(description='"ok" or "unavailable: <error type>"')
    migrations: Literal["head", "behind"] | None = None
