"""The sensitivity report's types (``metrics_version`` 7): what the metric code returns, what the API
serves and what every renderer reads.

These pydantic models are the one definition of the report: ``studies.metrics`` builds them,
``service.schemas`` serves them (its response models derive from these, adding only the HTTP
context), and the printers — ``studies.report``, ``service.console``, ``service.dashboard.words`` —
read their attributes, so a renamed field fails mypy or a test instead of silently dropping a
sentence. The module needs only pydantic (no numpy, scipy or torch): the HTTP client imports it.

Conventions (``docs/metrics.md``): oriented scores are higher-is-better (y = −value) and their
``raw_*`` twins are in the workload's units (lower is better); a pair's Δ is positive when the first
arm (``arm_a``) is better; every interval states its ``level`` and ``status``; no NaN (null instead).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studies.units import Units

METRICS_VERSION = 7
LEVEL = 0.95
POSITIVE_MEANS = "arm_a is better"
DEFAULT_KS = (1, 2, 4, 8, 16)


def budgets(n_cells: int, ks: tuple[int, ...] = DEFAULT_KS) -> tuple[int, ...]:
    """The budgets k of q(k) a grid of ``n_cells`` reports: those of ``ks`` up to its size, and the
    whole grid (the peak). The report computes these; a spec's ``verdict.k`` must be one of them."""
    return tuple(sorted({int(k) for k in ks if k <= n_cells} | {n_cells}))


ORIENTATION = "higher is better (y = -value)"

FigureStatus = Literal["ok", "never_trained", "incomplete", "undefined", "no_results"]
IntervalStatus = Literal[
    "ok", "reduced_level", "too_few_seeds", "no_results", "tied", "never_trained", "incomplete", "undefined"
]
ArmStatus = Literal["ok", "never_trained", "no_results"]
Outcome = Literal[
    "a_less_sensitive",
    "b_less_sensitive",
    "no_detectable_difference",
    "inconclusive_too_few_seeds",
    "never_trained",
    "flatter_but_worse",
]
PairFigure = Literal[
    "success_share",
    "success_lr_width",
    "expected_best",
    "lr_sensitivity",
    "win_probability",
    "improvement_matched",
    "improvement_any",
]
PrimaryFigure = Literal["success_share", "success_lr_width", "expected_best", "lr_sensitivity"]
Role = Literal["primary", "exploratory"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- the spec's choices -------------------------------------------------------------------------


class VerdictSpec(BaseModel):
    """What a study's verdict compares, chosen before the data (a spec's ``verdict:`` block).

    ``primary``: the figure whose Δ decides each pair's verdict (default ``success_share``: the
    share of the grid whose runs reach the target; ``docs/statistics.md`` says why). ``target``:
    the error (or loss) a run must reach (at most), in the metric's raw units; none = the default rule (the
    lower quartile of every trained run's validation score, pooled over the study's arms).
    ``difference_of_interest``: the smallest Δ of the primary figure worth detecting (default 0.1
    of the grid for ``success_share``, 0.5 decades for ``success_lr_width``; required for the
    score-valued figures). ``power``: the chance of detecting it that seed planning asks for.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    primary: PrimaryFigure = "success_share"
    k: int | None = Field(default=None, ge=1, description="the budget k when primary is expected_best (default 1)")
    target: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    difference_of_interest: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    power: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="the chance of detecting difference_of_interest that seed planning asks for; a spec "
        "takes 0.5 to 1 (below a half the smallest detectable difference shrinks below the interval's own "
        "half-width, or below 0)",
    )

    @model_validator(mode="after")
    def _difference_known(self) -> VerdictSpec:
        if self.difference_of_interest is None and self.primary in ("expected_best", "lr_sensitivity"):
            raise ValueError(
                f"verdict.difference_of_interest is required when verdict.primary is {self.primary!r} "
                "(its Δ is in the metric's units)"
            )
        if self.k is not None and self.primary != "expected_best":
            raise ValueError("verdict.k applies only when verdict.primary is 'expected_best'")
        if self.primary == "success_share" and (self.difference_of_interest or 0) > 1:
            raise ValueError(
                f"verdict.difference_of_interest: {self.difference_of_interest:g} is more than the whole grid "
                "(a share's Δ lies in [-1, 1]: 0.1 is a tenth of the grid)"
            )
        return self

    @property
    def primary_k(self) -> int | None:
        return (self.k or 1) if self.primary == "expected_best" else None

    @property
    def difference(self) -> float:
        """The difference of interest, with the unit-free figures' defaults."""
        if self.difference_of_interest is not None:
            return self.difference_of_interest
        return 0.5 if self.primary == "success_lr_width" else 0.1


# --- intervals and estimates --------------------------------------------------------------------


class Interval(_Model):
    """An interval at its stated ``level`` (null bounds and level where ``status`` is not ok).

    For a score, ``low``/``high`` are oriented and ``raw_low``/``raw_high`` the same interval in
    raw units (``raw_low = -high``); otherwise the raw bounds are null.
    """

    low: float | None = None
    high: float | None = None
    raw_low: float | None = None
    raw_high: float | None = None
    level: float | None = Field(
        default=None,
        description="the stated coverage; the coverage measured on six simulated landscapes is in "
        "docs/statistics.md (every interval given covers >= 93% there at 95%)",
    )
    status: IntervalStatus = "undefined"
    method: str = ""


class Estimate(_Model):
    """A figure's estimate with its interval. For a seed-wise figure, ``value`` is the mean over
    ``n_seeds`` seeds of the figure on each seed's grid; ``raw_value`` is set for scores."""

    value: float | None = None
    raw_value: float | None = None
    interval: Interval = Interval()
    n_seeds: int = 0


# --- per arm ------------------------------------------------------------------------------------


class GridAxesModel(_Model):
    lrs: list[float]
    betas: list[float]
    seeds: list[int]


class LrBeta(_Model):
    lr: float
    beta_init: float


class Coverage(_Model):
    """How much of the grid has results (counts on the analysis split). A cell is present with a
    result (completed or diverged) on validation and on the split; it trained when its median on
    the split beats the failure score. A run trained when its score beats it."""

    complete: bool
    n_cells: int
    n_cells_present: int
    n_cells_trained: int
    n_runs_trained: int = Field(description="runs whose score beats the failure score; none: the arm never trained")
    n_trials_expected: int
    n_completed: int
    n_diverged: int
    n_missing: int
    missing_cells: list[LrBeta]


class Peak(_Model):
    """The cell with the best validation median, reported by its median on the analysis split.

    Cells tied on validation are one choice made at random: ``score`` is their mean split median
    (the rule q(k) uses), the cell named is the first in grid order and ``n_tied`` says how many
    tied; a tie has no single cell's interval (``status: "tied"``)."""

    status: FigureStatus
    lr: float | None = None
    beta_init: float | None = None
    n_tied: int = 0
    val: float | None = None
    score: float | None = None
    raw_val: float | None = None
    raw_score: float | None = None
    score_interval: Interval = Interval()
    n_seeds: int = 0
    divergence_rate: float | None = None


class BetaShare(_Model):
    beta_init: float
    share: Estimate


class Success(_Model):
    """The paper's form of the claim: how much of the grid reaches the target.

    ``share``: per seed, the share of the grid's cells whose run reaches the target (a diverged or
    failed run never does), averaged over seeds — the expected share of configurations that
    succeed with one run each. ``per_beta``: the same per β_init column. ``lr_width``: per seed
    and β_init, the longest run of succeeding cells along lr in decades, averaged over β_init and
    seeds. ``n_seeds_touching_lr_edge``: seeds whose succeeding cells reach the lowest or highest lr
    (a count: the good range may extend beyond the grid)."""

    status: FigureStatus
    raw_target: float | None = None
    share: Estimate = Estimate()
    per_beta: list[BetaShare] = []
    lr_width: Estimate = Estimate()
    n_seeds_touching_lr_edge: int | None = None


class KEstimate(_Model):
    k: int
    estimate: Estimate


class ExpectedBest(_Model):
    """q(k), per seed: the expected split score of the best-by-validation cell among k cells
    drawn at random from the seed's grid (ties count as a random choice), averaged over seeds.
    k = the number of cells is the seed's peak. Oriented (``raw_*`` in the estimates)."""

    status: FigureStatus
    values: list[KEstimate] = []


class LrSensitivity(_Model):
    """Per seed, the mean gap of a cell to the best lr of its β_init column (Wortsman et al.
    2023; score units, >= 0, lower is more robust), averaged over seeds."""

    status: FigureStatus
    pooled: Estimate = Estimate()


class AnovaShares(_Model):
    lr: float | None = None
    beta_init: float | None = None
    interaction: float | None = None
    seed: float | None = None


class FanovaImportance(_Model):
    log10_lr: float | None = None
    beta_init: float | None = None


class Variance(_Model):
    """What drives the variation of this study's cell means: a description of these runs, with no
    interval and no claim beyond them. ``method`` anova (complete grid: shares of lr, β_init, their
    interaction and seed noise) or optuna_fanova (incomplete grid: importances); never mixed."""

    status: FigureStatus
    descriptive: bool = True
    method: str | None = None
    anova_shares: AnovaShares = AnovaShares()
    total_variance: float | None = None
    fanova_importance: FanovaImportance = FanovaImportance()
    note: str | None = None


class ArmReport(_Model):
    """Every figure of one arm. ``status`` never_trained: no run beat the failure score,
    so no landscape figure is given (failure is never robustness)."""

    arm: str
    status: ArmStatus
    orientation: str = ORIENTATION
    selected_on: Literal["val"] | None = Field(
        default="val", description="null when the study has no validation split (full_train): no cell is chosen"
    )
    split: str
    y_fail: float
    grid: GridAxesModel
    coverage: Coverage
    peak: Peak
    success: Success
    expected_best: ExpectedBest
    lr_sensitivity: LrSensitivity
    variance: Variance


# --- per pair -----------------------------------------------------------------------------------


class Delta(_Model):
    """One compared figure of a pair. For a Δ (``null`` 0) positive means arm a is better; for a
    probability (win_probability, improvement_*; ``null`` 0.5) it is a's chance of being better.
    ``p_value`` tests value = null with the interval's t statistic; an exploratory figure's
    ``holm_p_value`` is adjusted over the pair's family (Holm), and ``significant`` says whether
    it is below 0.05 after that adjustment (the primary: whether its interval excludes the null)."""

    figure: PairFigure
    k: int | None = None
    role: Role
    status: FigureStatus
    null: float = 0.0
    value: float | None = None
    interval: Interval = Interval()
    n_seeds: int = 0
    p_value: float | None = None
    holm_p_value: float | None = None
    significant: bool | None = None


class Verdict(_Model):
    """The pair's answer in words and numbers, from the primary figure.

    ``outcome``: a_less_sensitive / b_less_sensitive (the interval excludes 0),
    no_detectable_difference (it contains 0 and the study could detect the difference of interest:
    ``smallest_detectable_difference`` says the smallest Δ it detects with ``power``),
    inconclusive_too_few_seeds (too few seeds for an interval, or one too wide to rule out the
    difference of interest: ``seeds_needed`` says how many would do), never_trained (an arm has no
    trained run: ``winner`` is the arm that trains, if one does), flatter_but_worse (the primary is
    lr sensitivity, a gap to each arm's own best, and the arm it favours is worse at its best: its
    flatness comes from training less, so no arm is called less sensitive; ``flatter`` names it)."""

    outcome: Outcome
    statement: str
    winner: str | None = None
    flatter: str | None = None
    never_trained: list[str] = []
    primary: PrimaryFigure
    k: int | None = None
    delta: float | None = None
    interval: Interval = Interval()
    level: float = LEVEL
    n_seeds: int = 0
    difference_of_interest: float
    power: float
    smallest_detectable_difference: float | None = None
    seeds_needed: int | None = None


class PairReport(_Model):
    """Arm a against arm b on the same grid and seeds: the verdict first, then the primary figure and
    the exploratory ones."""

    arm_a: str
    arm_b: str
    orientation: str = ORIENTATION
    positive_means: str = POSITIVE_MEANS
    split: str
    raw_target: float | None
    verdict: Verdict
    primary: Delta
    exploratory: list[Delta]
    family: str = Field(description="the multiplicity statement that goes with every 'significant'")


class PairError(_Model):
    """A default pair that cannot be compared (different grids or seeds)."""

    arm_a: str
    arm_b: str
    error: str


class Target(_Model):
    """The error (or loss) a run must reach (at most) to count as a success, and where it came from."""

    raw_value: float | None = Field(description="raw units (lower is better); null when no run trained")
    value: float | None = Field(description="oriented (-raw_value)")
    source: str = Field(description="'given' (spec or query) or the default rule")
    chosen_on: Literal["val", "test", "given"] = Field(
        description="the split the default target was taken on (validation; the split itself when the study has "
        "no validation split), or 'given'"
    )


class SensitivityReport(_Model):
    """Every arm's figures and every pair's comparison (``docs/metrics.md``)."""

    metrics_version: int = METRICS_VERSION
    orientation: str = ORIENTATION
    selected_on: Literal["val"] | None = Field(
        default="val",
        description="null when the study has no validation split (full_train): no figure that chooses a cell "
        "(the peak, q(k), win probabilities) is given",
    )
    split: str
    y_fail: float
    score_unit: Literal["percent", "raw"] = Field(
        default="raw",
        description="how people read the scores: 'percent' for an error rate (shown in percent, its "
        "differences in percentage points, as the statements are worded); every number here stays a raw fraction",
    )
    target: Target
    level: float = LEVEL
    min_interval_seeds: int = Field(description="fewer seeds than this: no interval (too_few_seeds)")
    interval_method: str
    estimand: str
    positive_means: str = POSITIVE_MEANS
    primary: PrimaryFigure
    grid: GridAxesModel
    arms: dict[str, ArmReport]
    pairs: list[PairReport | PairError]

    @property
    def units(self) -> Units:
        """How the report's numbers read for people (``score_unit``; ``studies.units``)."""
        return Units(percent=self.score_unit == "percent")


# --- across studies -----------------------------------------------------------------------------


class StudyValue(_Model):
    study_id: Any = None
    value: float | None
    interval: Interval


class AcrossStudies(_Model):
    """One figure over the studies of a group: each study's estimate with its own interval, and the
    range of those estimates (a range of point estimates over ``n_studies``, not an interval)."""

    n_studies: int
    studies: list[StudyValue]
    range_low: float | None = None
    range_high: float | None = None


class RobustnessGroup(_Model):
    """One arm's figures over the finished studies that share ``key``."""

    key: dict[str, Any]
    n_studies: int
    study_ids: list[Any]
    n_never_trained: int = Field(description="studies where this arm never trained (a count)")
    raw_peak_score: AcrossStudies
    success_share: AcrossStudies
    success_lr_width: AcrossStudies
    lr_sensitivity: AcrossStudies


class RobustnessReport(_Model):
    """Per-arm figures over completed studies (``docs/metrics.md``, "Across studies")."""

    metrics_version: int = METRICS_VERSION
    orientation: str = ORIENTATION
    groups: list[RobustnessGroup]
