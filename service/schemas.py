"""The HTTP API's response models: one family per resource (``StudyPublic``, ``StudiesPublic``...).

Scores in responses are raw workload values where lower is better (an error rate, a loss), unless a
field says ``oriented``; the sensitivity figures follow ``studies.metrics`` (higher is better,
y = −value) and say so in their ``orientation`` field. Non-finite values appear as null.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
# Oriented scores: higher is better (y = -value); raw_* fields are the workload's units (lower is
# better). Every interval carries its level; every Δ is positive when the first arm is better.


class SeedInterval(BaseModel):
    """The order-statistic interval of a median over seeds, at the level it really has."""

    low: float | None = Field(description="oriented lower bound (higher is better)")
    high: float | None
    raw_low: float | None = Field(description="the same interval in raw units: raw_low = -high")
    raw_high: float | None
    level: float | None = Field(description="real coverage: 0.5 at 2 seeds, 0.75 at 3, ..., >= 0.95 from 6")
    status: str = Field(description="ok | reduced_level (fewer than 6 seeds) | too_few_seeds | no_results")
    method: str


class BootstrapInterval(BaseModel):
    """A percentile interval from the paired seed bootstrap (conservative: see min_level)."""

    low: float | None
    high: float | None
    min_level: float | None = Field(
        description="the interval covers the true figure at least this often (0.95); measured coverage is "
        "higher for some figures, so this is a bound, not an exact level; null without an interval"
    )
    status: str = Field(description="ok | too_few_seeds (under min_bootstrap_seeds seeds) | undefined")
    method: str


class GridAxesPublic(BaseModel):
    lrs: list[float]
    betas: list[float]
    seeds: list[int]


class CoveragePublic(BaseModel):
    """How much of the grid has results (counts on the analysis split)."""

    complete: bool
    n_cells: int
    n_cells_present: int
    n_trials_expected: int
    n_completed: int
    n_diverged: int
    n_missing: int
    missing_cells: list[dict[str, float]]


class PeakPublic(BaseModel):
    """The cell with the best validation median, reported by its median on the analysis split."""

    status: str
    lr: float | None
    beta_init: float | None
    val: float | None
    score: float | None = Field(description="oriented median on the analysis split")
    raw_val: float | None
    raw_score: float | None = Field(description="the chosen cell's median on the analysis split, raw units")
    score_interval: SeedInterval
    n_seeds: int
    divergence_rate: float | None


class EpsGoodPublic(BaseModel):
    """F_eps: the share of cells within eps of the best cell median on the same split."""

    status: str
    eps: float = Field(description="the eps used (absolute score units, or a fraction of |anchor| if relative)")
    relative: bool
    eps_source: str = Field(description="given | a default | the seed spread at the arms' peaks")
    anchor_rule: str
    anchor: float | None = Field(description="y*: the best cell median on the analysis split (oriented)")
    raw_anchor: float | None
    margin: float | None
    threshold: float | None
    raw_threshold: float | None = Field(description="the worst raw value still counted good")
    n_good: int | None
    n_cells: int
    fraction: float | None


class LrRunPublic(BaseModel):
    beta_init: float | None
    decades: float
    lr_low: float | None
    lr_high: float | None
    n_cells: int


class EpsGoodWidthPublic(BaseModel):
    """The longest run of eps-good cells along lr, in decades, per beta_init and for all."""

    status: str
    per_beta: list[LrRunPublic]
    mean_decades: float | None
    all_betas: LrRunPublic | None
    edge: bool | None
    edge_sides: list[str]


class ExpectedBestPublic(BaseModel):
    """q(k): expected score of the best-by-validation of k random cells."""

    status: str
    ks: list[int]
    without_replacement: list[float | None]
    with_replacement: list[float | None]
    raw_without_replacement: list[float | None]
    raw_with_replacement: list[float | None]


class LrSensitivityPublic(BaseModel):
    """Mean gap to the best lr (>= 0; lower is more robust)."""

    status: str
    per_beta: list[float | None]
    pooled: float | None
    joint: float | None


class AnovaShares(BaseModel):
    lr: float | None
    beta_init: float | None
    interaction: float | None
    seed: float | None = Field(description="mean within-cell sample variance (ddof 1) over the total")


class FanovaImportance(BaseModel):
    log10_lr: float | None
    beta_init: float | None


class VariancePublic(BaseModel):
    """Two-way ANOVA shares (complete grid) or Optuna fANOVA importance (incomplete): never mixed."""

    status: str
    method: str | None = Field(description="anova | optuna_fanova: which of the two blocks is filled")
    anova_shares: AnovaShares
    total_variance: float | None
    fanova_importance: FanovaImportance
    note: str | None


class ArmSensitivity(BaseModel):
    """Every per-arm figure of one arm."""

    arm: str
    orientation: str
    selected_on: str
    split: str
    y_fail: float
    grid: GridAxesPublic
    coverage: CoveragePublic
    peak: PeakPublic
    eps_good: EpsGoodPublic
    eps_good_lr_width: EpsGoodWidthPublic
    expected_best: ExpectedBestPublic
    lr_sensitivity: LrSensitivityPublic
    variance: VariancePublic


class DeltaPublic(BaseModel):
    """A figure of arm a minus arm b, oriented so that delta > 0 means arm a is better."""

    metric: str
    k: int | None
    status: str
    positive_means: str
    score_valued: bool
    delta: float | None = Field(
        description="positive = arm_a better (for score figures: raw_b - raw_a; for lr_sensitivity: b's gap - a's)"
    )
    interval: BootstrapInterval
    bootstrap_share_positive: float | None = Field(
        description="share of bootstrap replicates with delta > 0: not the probability that arm_a is better"
    )
    bootstrap_share_ties: float | None = Field(description="share of replicates with delta == 0")
    bootstrap_share_negative: float | None


class WinInterval(BootstrapInterval):
    k: int


class WinProbabilityPublic(BaseModel):
    """P(arm a's best-of-k random cells beats arm b's), per k, with paired-bootstrap intervals."""

    status: str
    definition: str
    ks: list[int]
    a_wins: list[float]
    intervals: list[WinInterval]


class ImprovementPublic(BaseModel):
    """P(X > Y) + 1/2 P(X = Y) over cell medians (Mann-Whitney U / (n m))."""

    definition: str
    matched: float | None
    n_matched: int
    distributions: float | None
    n_a: int
    n_b: int


class PairPublic(BaseModel):
    """Arm a against arm b on the same grid and seeds."""

    arm_a: str
    arm_b: str
    orientation: str
    positive_means: str
    split: str
    eps: float
    relative: bool
    resampling: str = Field(description="the bootstrap's unit: seeds, paired across cells, splits and arms")
    n_resamples: int
    min_level: float = Field(description="lower bound on the coverage of every pair interval")
    deltas: list[DeltaPublic]
    win_probability: WinProbabilityPublic
    probability_of_improvement: ImprovementPublic


class PairErrorPublic(BaseModel):
    """A default pair that cannot be compared (different grids or seeds)."""

    arm_a: str
    arm_b: str
    error: str


class SensitivityStudy(BaseModel):
    id: str
    metric: str
    split: str
    eps: float
    relative: bool
    status: str
    protocol: str | None = Field(
        default=None,
        description="set for a full_train study: trained without a validation split, so no cell is chosen",
    )


class SensitivityPublic(BaseModel):
    """METRICS.md figures per arm and per pair, oriented higher-is-better; see the README."""

    metrics_version: int = Field(description="bumped whenever a field's meaning changes (fields are then renamed)")
    orientation: str
    selected_on: str
    split: str
    y_fail: float
    eps: float
    relative: bool
    eps_source: str
    resampling: str
    n_resamples: int
    min_level: float = Field(description="lower bound on the coverage of every pair interval")
    min_bootstrap_seeds: int = Field(description="fewer seeds than this: pair intervals are null, too_few_seeds")
    positive_means: str
    grid: GridAxesPublic
    arms: dict[str, ArmSensitivity]
    pairs: list[PairPublic | PairErrorPublic]
    study: SensitivityStudy


class Stats(BaseModel):
    mean: float | None
    min: float | None
    max: float | None
    count: int


class KStats(Stats):
    k: int


class RobustnessGroup(BaseModel):
    """One arm's figures over the completed studies that share ``key``."""

    key: dict[str, Any] = Field(description="workload, epochs, lr_range, betas, seeds (list), metric, split, arm, eps")
    n_studies: int
    study_ids: list[str]
    peak_score: Stats
    raw_peak_score: Stats
    eps_good_fraction: Stats
    eps_good_lr_width_mean_decades: Stats
    eps_good_lr_width_all_betas_decades: Stats
    lr_sensitivity_pooled: Stats
    expected_best: list[KStats]
    raw_expected_best: list[KStats]


class RobustnessQuery(BaseModel):
    workload: str
    arm: str | None
    epochs: int | None
    studies: int


class RobustnessPublic(BaseModel):
    """Per-arm figures aggregated over completed studies (METRICS.md "Across studies")."""

    metrics_version: int
    orientation: str
    groups: list[RobustnessGroup]
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
