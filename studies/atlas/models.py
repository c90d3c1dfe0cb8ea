"""The atlas's result types: what the API serves and what the report, the page and the CLI render.

Orientation everywhere: a pair is (Demon arm, baseline) and Δ > 0 means the Demon arm is better
(less sensitive, for the verdict's primary figure).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from studies.metrics.models import Outcome as Outcome  # a study's verdict outcomes: the atlas has no others

CellStatus = Literal["missing", "queued", "running", "done", "failed"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PairVerdict(_Model):
    """One study's verdict on one (Demon arm ``arm_a``, baseline ``arm_b``) pair, as its report gave it."""

    arm_a: str
    arm_b: str
    outcome: Outcome
    statement: str
    figure: str = Field(description="the primary figure the verdict rests on")
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    level: float | None = None
    n_seeds: int = 0
    n_cells: int = 1
    seeds_needed: int | None = None
    smallest_detectable: float | None = None
    source: Literal["verdict", "legacy_v3"] = "verdict"


class StudyRecord(_Model):
    """A study of the atlas and the reproducibility record it stored (software, hardware, commit)."""

    id: str
    name: str
    status: str
    seeds: list[int]
    trials_total: int
    trials_done: int
    spec: dict[str, Any] = {}
    environment: dict[str, Any] | None = None


class CellResult(_Model):
    """One (workload, family) cell: its studies (one per block of seeds) and its pairs' verdicts."""

    label: str
    family: str
    workload: str
    workload_params: dict[str, Any]
    arms: list[str]
    epochs: int
    lrs: list[float]
    betas: list[float]
    seeds: list[int]
    status: CellStatus
    studies: list[StudyRecord]
    verdicts: list[PairVerdict] = []
    cut: str = ""
    error: str | None = None


class WorkloadRow(_Model):
    """One workload's line in a comparison's forest plot."""

    label: str
    outcome: Outcome | None = Field(description="null while the study has not finished")
    statement: str = ""
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    level: float | None = None
    n_seeds: int = 0
    pooled: bool = Field(description="whether this row enters the pooled estimate")
    study_ids: list[str] = []


class PooledEstimate(_Model):
    """The random-effects summary over workloads: what ``studies.atlas.pooling.pool`` returns."""

    status: str  # "ok", "single_workload", "no_estimates"
    k: int
    estimate: float | None
    low: float | None
    high: float | None
    level: float
    tau: float | None
    i2: float | None
    method: str


class Counts(_Model):
    """How many workloads gave each outcome (and how many have no verdict yet)."""

    a_less_sensitive: int = 0
    no_detectable_difference: int = 0
    b_less_sensitive: int = 0
    inconclusive_too_few_seeds: int = 0
    never_trained: int = 0
    flatter_but_worse: int = 0
    pending: int = 0


class ComparisonSummary(_Model):
    """One comparison (Demon arm vs one baseline) across every workload of the atlas."""

    demon: str
    baseline: str
    figure: str
    rows: list[WorkloadRow]
    pooled: PooledEstimate
    counts: Counts
    headline: str
    fails: list[str] = Field(description="workloads where the baseline is less sensitive than Demon")
    not_shown: list[str] = Field(description="workloads where Demon is not shown less sensitive, other than fails")


class AtlasResult(_Model):
    """The whole atlas: its identity, where it stands, the answer per comparison, every cell."""

    key: str
    suite: str
    seeds: int
    labels: list[str]
    status: Literal["missing", "running", "done", "failed"]
    command: str
    progress: dict[str, int]
    comparisons: list[ComparisonSummary]
    cells: list[CellResult]
    claim_fails: list[str] = Field(description="'workload: baseline' where Demon is more sensitive")
    wall_seconds: float | None = Field(default=None, description="first study start to last study end")
    trials: int = 0
    pooling: str
    notes: list[str] = []
