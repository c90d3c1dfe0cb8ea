"""The study spec: what to sweep, on what, how many seeds, and how to search.

A spec is a pydantic model, read from JSON or YAML. Validation errors name the field and list the
valid choices. ``expand_trials`` turns a grid spec into its trials deterministically, each with a
stable key (arm, lr, β_init, seed). Limits that depend on the deployment (the maximum number of
trials) come in through pydantic's validation context: ``StudySpec.model_validate(data,
context={"max_trials": 5000})``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .metrics.models import VerdictSpec, budgets
from .results import TrialKey
from .vocab.arms import arm, arm_names, check_arm, label_pattern
from .vocab.names import unknown_name
from .vocab.samplers import DEFAULT_SAMPLER, sampler_names
from .vocab.scores import MetricKind, Split
from .vocab.workload_params import PARAMS, validate_params
from .vocab.workloads import WorkloadEntry, packable_workloads, workload_entry, workload_names, y_fail

DEFAULT_MAX_TRIALS = 20_000
STORED = "stored"  # validation context: a spec read back from the database, not one submitted now
MAX_SEED = 2**31 - 1  # a trial's seed is a 32-bit INTEGER column; Optuna's sampler seed is bounded alike
MAX_VALUES = 1000  # learning rates or β_init values listed in one spec


EXAMPLE: dict[str, Any] = {
    "name": "example",
    "workload": "synthetic",
    "arms": ["demon_sgdm", "sgdm_step"],
    "lr": [0.01, 0.1],
    "beta_init": [0.9],
    "seeds": 1,
    "epochs": 1,
}


def _enum(names: list[str]) -> dict[str, JsonValue]:
    """A schema-only ``enum`` (the validators give their own message, with the valid choices)."""
    values: list[JsonValue] = [*names]
    return {"enum": values}


class _Strict(BaseModel):
    # strict: a JSON true is not the number 1, nor 2.0 a seed count (floats still take integers).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LogRange(_Strict):
    """``num`` learning rates log-spaced from ``min`` to ``max`` inclusive."""

    min: float = Field(gt=0, allow_inf_nan=False)
    max: float = Field(gt=0, allow_inf_nan=False)
    num: int = Field(ge=1, le=200)

    @model_validator(mode="after")
    def _ordered(self) -> LogRange:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        if self.num == 1 and self.max != self.min:
            raise ValueError("num must be >= 2 when max != min")
        values = self.values()
        if any(low >= high for low, high in itertools.pairwise(values)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            raise ValueError(
                f"{self.num} values from {self.min} to {self.max} repeat after rounding to 12 significant "
                f"digits ({', '.join(f'{v:g}' for v in repeated[:3])}): widen the range or lower num"
            )
        return self

    def values(self) -> list[float]:
        """The expanded, rounded values (12 significant digits, so keys stay stable)."""
        raw = np.geomspace(self.min, self.max, self.num)
        return [float(f"{v:.12g}") for v in raw]


def _lr_form(value: Any) -> str:
    """Which form of ``lr`` a value is: a mapping is a ``LogRange``, anything else a list (the tags are
    the branch names errors had before, which ``service.errors.field_name`` leaves out of a field)."""
    return "LogRange" if isinstance(value, dict | LogRange) else "list[float]"


class Range(_Strict):
    """A continuous range for search mode."""

    min: float = Field(allow_inf_nan=False)
    max: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be > min ({self.min})")
        return self


class ArmSpec(_Strict):
    """An arm by name, with optional parameters (e.g. ``{"milestones": [0.3, 0.6]}`` for a step arm).

    To run one arm several times with different parameters (a sweep of ``delay`` or ``beta_min``),
    label each run ``<arm>@<tag>`` (``demon_sgdm@delay0.25``): the label names it everywhere in the
    study's results, its parameters are its own.
    """

    name: str = Field(
        max_length=64,  # the trials table's arm column
        json_schema_extra={"anyOf": [_enum(arm_names()), {"pattern": label_pattern(tuple(arm_names()))}]},
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> ArmSpec:
        check_arm(self.name, self.params)
        return self


class GridSearch(_Strict):
    """Every cell of the grid, every seed."""

    mode: Literal["grid"] = "grid"


class OptunaSearchSpec(_Strict):
    """Optuna search: per arm, ``n_trials`` points (log-uniform lr, uniform β_init), each on every seed."""

    mode: Literal["optuna"]
    sampler: str = Field(default=DEFAULT_SAMPLER, json_schema_extra=_enum(sampler_names()))
    n_trials: int = Field(ge=1, le=100_000)
    lr: Range
    beta_init: Range
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="the sampler's seed")

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, value: str) -> str:
        if value not in sampler_names():
            raise ValueError(unknown_name("sampler", value, sampler_names()))
        return value

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, value: Range) -> Range:
        if value.min <= 0:
            raise ValueError(f"lr.min must be > 0 (got {value.min})")
        return value

    @field_validator("beta_init")
    @classmethod
    def _beta_range(cls, value: Range) -> Range:
        if value.min < 0 or value.max >= 1:
            raise ValueError(f"beta_init range must lie in [0, 1) (got [{value.min}, {value.max}])")
        return value


class Resources(_Strict):
    """Resources of one trial: CPUs and a GPU fraction (0.25 lets four trials share a GPU)."""

    cpu: float = Field(default=1.0, gt=0, le=64, allow_inf_nan=False)
    gpu: float = Field(default=0.0, ge=0, le=8, allow_inf_nan=False)
    custom: dict[str, Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=32
    )


class Execution(_Strict):
    """How trials run: ``packed`` K at once as one batched model, one at a time (``per_trial``), or
    ``auto`` (the default): packed wherever the workload packs, per trial where it does not (its
    own loss, dropout, residual or recurrent models) and for searches.

    ``pack_size``: members per pack, or ``auto`` (one pack per worker, at most the workload's
    ``pack_knee`` members, within memory; see ``studies.executors.packed``). A packed trial's result
    is its per-trial result bit for bit (same seed → same initialisation and data order; on the
    CPU, for workloads without convolutions); README "Packed execution" says when it pays.
    """

    mode: Literal["auto", "per_trial", "packed"] = "auto"
    pack_size: Literal["auto"] | Annotated[int, Field(ge=1, le=100_000)] = "auto"


FULL_TRAIN_NOTE = (
    "full-train replication (the paper's protocol): trained on the whole training set, with no validation "
    "split, so no cell is chosen on validation; the paper shows all cells and selects none"
)


def _check_full_train(spec: StudySpec) -> None:
    """``val_size: 0`` only with ``full_train``; ``full_train`` only where nothing needs a validation split."""
    val_size = spec.workload_params.get("val_size")
    if not spec.full_train:
        if val_size == 0:
            raise ValueError(
                "workload_params.val_size: 0 trains on the whole training set, allowed only with full_train: true "
                "(then no cell can be chosen on validation)"
            )
        return
    problems = []
    if "val_size" not in PARAMS[spec.workload].model_fields:
        problems.append(f"workload {spec.workload!r} has no validation holdout to give up (no val_size)")
    elif val_size != 0:
        problems.append(f"workload_params.val_size must be 0 (got {val_size})")
    if isinstance(spec.search, OptunaSearchSpec):
        problems.append("search must be grid (Optuna chooses points on validation)")
    if spec.split != "test":
        problems.append("split must be test (there is no validation split)")
    plateau = [a.name for a in spec.arms if arm(a.name).schedule.per_epoch]
    if plateau:
        problems.append(f"arms {plateau} step on the validation loss")
    if problems:
        raise ValueError("full_train: " + "; ".join(problems))


def _check_floors(spec: StudySpec) -> None:
    """A Demon arm's ``beta_min`` must not exceed any β_init it runs at (the floor would raise β)."""
    lowest = spec.search.beta_init.min if isinstance(spec.search, OptunaSearchSpec) else min(spec.beta_init)
    for entry in spec.arms:
        floor = entry.params.get("beta_min", 0.0)
        if floor > lowest:
            raise ValueError(
                f"arms: {entry.name!r} has beta_min {floor} above the study's smallest beta_init {lowest} "
                "(the floor must not exceed any beta_init it runs at)"
            )


class StudySpec(_Strict):
    """A sensitivity study: arms × lr × β_init × seeds on one workload, with a fixed epoch budget."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, json_schema_extra={"examples": [EXAMPLE]})

    name: str = Field(min_length=1, max_length=200)
    workload: str = Field(json_schema_extra=_enum(workload_names()))
    workload_params: dict[str, Any] = Field(
        default_factory=dict,
        description="the workload's parameters: the model for the chosen workload (unknown keys are refused)",
        json_schema_extra={
            "anyOf": [{**model.model_json_schema(), "title": name} for name, model in sorted(PARAMS.items())]
        },
    )
    arms: list[ArmSpec] = Field(min_length=1, max_length=64)
    lr: Annotated[
        Annotated[list[float], Field(max_length=MAX_VALUES), Tag("list[float]")] | Annotated[LogRange, Tag("LogRange")],
        Discriminator(_lr_form),  # one form's errors, not both: a range's reason is not buried under "not a list"
    ] = Field(default_factory=list)
    beta_init: list[float] = Field(default_factory=list, max_length=MAX_VALUES)
    seeds: int | list[int] = 1
    epochs: int = Field(ge=1, le=10_000)
    batch_size: int | None = Field(default=None, ge=1, le=65_536)
    weight_decay: float = Field(default=0.0, ge=0, le=10, allow_inf_nan=False)
    search: Annotated[GridSearch | OptunaSearchSpec, Field(discriminator="mode")] = GridSearch()
    resources: Resources = Resources()
    metric: str | None = None
    split: Split = Field(
        default="test",
        description="the split the study's figures and heatmaps report (metrics.json of `demonlab run`); "
        "cells are chosen on validation (none in a full_train study: it has no validation split)",
    )
    verdict: VerdictSpec | None = Field(
        default=None,
        description="what each pair's verdict compares, fixed before the data: the primary figure, the "
        "target error, the smallest difference worth detecting and the power (docs/statistics.md)",
    )
    max_failures: int = Field(default=2, ge=0, le=100)
    trials_per_task: int = Field(default=1, ge=1, le=1000)
    execution: Execution = Execution()
    full_train: bool = Field(
        default=False,
        description="the paper's protocol: train on the whole training set (workload_params.val_size 0, set "
        "when not given; workloads with a val_size only). There is then no validation split, so no cell can "
        "be chosen on validation: the paper shows all cells and selects none. Grid search, split test and "
        "no plateau arm only",
    )

    @model_validator(mode="before")
    @classmethod
    def _full_train_holdout(cls, data: Any) -> Any:
        """``full_train: true`` without a ``val_size`` means ``val_size: 0`` (where the workload has one)."""
        if not isinstance(data, dict) or data.get("full_train") is not True:
            return data
        params = data.get("workload_params", {})
        model = PARAMS.get(data.get("workload"))  # type: ignore[arg-type]
        if isinstance(params, dict) and "val_size" not in params and model and "val_size" in model.model_fields:
            return {**data, "workload_params": {**params, "val_size": 0}}
        return data

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        """A name of blanks only shows as nothing in every list and page (refused at submission; a
        study stored before the rule still reads: ``STORED``)."""
        if not value.strip() and not (info.context or {}).get(STORED):
            raise ValueError("only blanks; give the study a name that lists can show")
        return value

    @field_validator("arms", mode="before")
    @classmethod
    def _arm_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, value: list[ArmSpec]) -> list[ArmSpec]:
        names = [a.name for a in value]
        if len(set(names)) != len(names):
            raise ValueError(f"arms must be unique (got {names})")
        return value

    @field_validator("workload")
    @classmethod
    def _workload(cls, value: str) -> str:
        if value not in workload_names():
            raise ValueError(unknown_name("workload", value, workload_names()))
        return value

    @field_validator("workload_params", mode="before")
    @classmethod
    def _typed_params(cls, value: Any, info: ValidationInfo) -> Any:
        """Checked against the workload's parameter model: a bad value names its key
        (``workload_params.n_train``) at submission, not when a trial runs."""
        workload = info.data.get("workload")
        if workload not in PARAMS:  # an unknown workload: its own error is reported
            return value
        return validate_params(workload, value)

    @field_validator("lr")
    @classmethod
    def _lrs(cls, value: list[float] | LogRange) -> list[float] | LogRange:
        if isinstance(value, list):
            for lr in value:
                if not math.isfinite(lr) or lr <= 0:
                    raise ValueError(f"every lr must be a finite number > 0 (got {lr})")
            if len(set(value)) != len(value):
                raise ValueError("lr values must be unique")
            return sorted(value)
        return value

    @field_validator("beta_init")
    @classmethod
    def _betas(cls, value: list[float]) -> list[float]:
        for beta in value:
            if not math.isfinite(beta) or not 0 <= beta < 1:
                raise ValueError(f"every beta_init must lie in [0, 1) (got {beta})")
        if len(set(value)) != len(value):
            raise ValueError("beta_init values must be unique")
        return sorted(value)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int):
            if not 1 <= value <= 1000:
                raise ValueError(f"a seed count must be between 1 and 1000 (got {value})")
            return value
        if not value or len(set(value)) != len(value) or any(s < 0 for s in value):
            raise ValueError("seeds must be a non-empty list of unique integers >= 0")
        if len(value) > 1000 or max(value) > MAX_SEED:
            raise ValueError(f"at most 1000 seeds, each <= {MAX_SEED} (got {len(value)}, up to {max(value)})")
        return sorted(value)  # normalised like lr and beta_init, so spec_hash ignores the order

    @field_validator("execution")
    @classmethod
    def _packable(cls, value: Execution, info: ValidationInfo) -> Execution:
        if value.mode != "packed" or info.data.get("workload") not in workload_names():
            return value
        name = info.data["workload"]
        entry = workload_entry(name)
        if not entry.packs:
            raise ValueError(
                f"execution.mode 'packed' is not available for workload {name!r}: {entry.why_not_packed}; "
                f"workloads that pack: {', '.join(packable_workloads())}"
            )
        if isinstance(info.data.get("search"), OptunaSearchSpec):
            raise ValueError("execution.mode 'packed' runs grid studies; Optuna search proposes one point at a time")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> StudySpec:
        workload = _checked_workload(self.workload, self.workload_params)
        allowed = (workload.metric_name, "loss")
        if self.metric is not None and self.metric not in allowed:
            raise ValueError(f"metric: unknown metric {self.metric!r}; valid choices: {', '.join(allowed)}")
        if not self.is_search:
            if not self.lr_values:
                raise ValueError("lr: a grid study needs at least one learning rate")
            if not self.beta_init:
                raise ValueError("beta_init: a grid study needs at least one value")
        _check_floors(self)
        if not (info.context or {}).get(STORED):  # rules added after studies were stored: submission only
            _check_submitted_verdict(self)
        _check_verdict(self)
        _check_target(self, workload)
        _check_full_train(self)
        limit = (info.context or {}).get("max_trials", DEFAULT_MAX_TRIALS)
        if self.trial_count > limit:
            raise ValueError(
                f"the study has {self.trial_count} trials, more than the limit of {limit} "
                "(reduce arms, lr values, beta_init values or seeds)"
            )
        return self

    @property
    def is_search(self) -> bool:
        """Whether the study samples points (an Optuna search) rather than running every grid cell:
        a search has no grid, no verdict and no Ray Tune grid; its points are what it sampled."""
        return self.search.mode != "grid"

    @property
    def splits(self) -> tuple[Split, ...]:
        """The splits the study's figures can be on, test first (what pages show first): a
        ``full_train`` study has no validation split."""
        return ("test",) if self.full_train else ("test", "val")

    @property
    def protocol_note(self) -> str | None:
        """What every output of a ``full_train`` study says about choosing cells (None otherwise)."""
        return FULL_TRAIN_NOTE if self.full_train else None

    @property
    def lr_values(self) -> list[float]:
        """The learning rates of the grid, ascending."""
        return self.lr.values() if isinstance(self.lr, LogRange) else list(self.lr)

    @property
    def seed_values(self) -> list[int]:
        """The seeds: ``range(n)`` for a count."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else sorted(self.seeds)

    @property
    def metric_name(self) -> str:
        """The metric the study optimises and reports (default: the workload's own)."""
        return self.metric or workload_entry(self.workload).metric_name

    @property
    def metric_kind(self) -> MetricKind:
        """Which stored score the metric is: the workload's primary metric or its loss."""
        return "loss" if self.metric_name == "loss" else "metric"

    def y_fail(self, kind: MetricKind | None = None) -> float:
        """The failure score a diverged trial scores on the ``kind`` score (the spec's metric by
        default): the workload's chance-level metric or loss (``studies.vocab.y_fail``)."""
        return y_fail(self.workload, self.workload_params, kind or self.metric_kind)

    @property
    def trial_count(self) -> int:
        """How many trials the study runs in all."""
        seeds = len(self.seed_values)
        if isinstance(self.search, OptunaSearchSpec):
            return len(self.arms) * self.search.n_trials * seeds
        return len(self.arms) * len(self.lr_values) * len(self.beta_init) * seeds

    def spec_hash(self) -> str:
        """A hash of the normalised spec (what identifies "the same study")."""
        # The default execution is left out, so specs hashed before it existed keep their hash; so
        # is an explicit per_trial one (the default before auto): it gives the same results.
        same = self.execution.mode in ("auto", "per_trial") and self.execution.pack_size == "auto"
        exclude = {"execution"} if same else None
        canonical = json.dumps(self.model_dump(mode="json", exclude=exclude), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _check_submitted_verdict(spec: StudySpec) -> None:
    """Verdicts refused from version 7 of the metrics on (a study stored before still reads, and its
    report says why it has no verdict): q(k) as the primary of a study without a validation split,
    and a power below one half (its smallest detectable difference came out below 0)."""
    if spec.verdict is None:
        return
    if spec.full_train and spec.verdict.primary == "expected_best":
        raise ValueError(
            "verdict.primary: 'expected_best' chooses cells on the validation split, which a full_train study "
            "does not have (choose success_share, success_lr_width or lr_sensitivity)"
        )
    if spec.verdict.power < 0.5:
        raise ValueError(
            f"verdict.power: {spec.verdict.power:g} is below 0.5; a power under one half plans for a Δ smaller "
            "than the interval's own half-width, or below 0 (0.8 is the usual choice)"
        )


def _check_verdict(spec: StudySpec) -> None:
    """A verdict the report can give on this grid, checked before any trial runs: a primary figure that
    compares learning rates needs two of them, q(k) a validation split to choose on and a k the
    report computes (``budgets``)."""
    lr_figure = spec.verdict is not None and spec.verdict.primary in ("lr_sensitivity", "success_lr_width")
    if lr_figure and not spec.is_search and len(spec.lr_values) < 2:  # both compare learning rates
        assert spec.verdict is not None
        raise ValueError(
            f"verdict.primary: {spec.verdict.primary!r} compares learning rates; this grid has one (give lr "
            "at least two values, or choose success_share or expected_best)"
        )
    k = spec.verdict.k if spec.verdict else None
    if k is None or spec.is_search:
        return
    cells = len(spec.lr_values) * len(spec.beta_init)
    allowed = budgets(cells)
    if k not in allowed:
        raise ValueError(
            f"verdict.k: {k} is not a budget this grid of {cells} cells reports; choose one of "
            f"{', '.join(map(str, allowed))} (1, 2, 4, 8, 16 up to the number of cells, and that number)"
        )


def _check_target(spec: StudySpec, workload: WorkloadEntry) -> None:
    """A verdict target no run can miss is no target: it must be below the failure score."""
    target = spec.verdict.target if spec.verdict else None
    if target is None:
        return
    fail = spec.y_fail()
    if target >= fail:
        raise ValueError(
            f"verdict.target: {target:g} is not below the failure score {fail:g} of {spec.metric_name} "
            "(a diverged run's score): even a diverged run would count as a success"
        )


def _checked_workload(name: str, params: dict[str, Any]) -> WorkloadEntry:
    """The workload's entry, or a ``ValueError`` naming ``workload_params`` when they make its
    failure scores meaningless (e.g. ``classes: 0``) or contradict its data (``num_classes``)."""
    entry = workload_entry(name)
    try:
        fail_values = entry.chance_levels(params)
    except (TypeError, ValueError, ArithmeticError, KeyError) as exc:
        raise ValueError(f"workload_params: not valid for {name!r}: {exc}") from None
    if not all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in fail_values):
        raise ValueError(f"workload_params: not valid for {name!r}: chance-level scores {fail_values}")
    return entry


def _yaml_loader() -> Any:
    """PyYAML's safe loader that also reads ``1e-4`` as a float: YAML 1.1 wants ``1.0e-4``, and the spec's
    types are strict (a string is not a number), so a learning rate written the usual way must parse.
    A key written twice in one mapping is an error: PyYAML keeps the last silently (``seeds: 8`` then,
    further down, ``seeds: 2`` ran 2 seeds). Keys merged in with ``<<`` may be overridden, as YAML says."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    if isinstance(key, (str, int, float, bool)) or key is None:
                        if key in seen:
                            raise yaml.constructor.ConstructorError(
                                "while reading a mapping",
                                node.start_mark,
                                f"found the key {key!r} twice",
                                key_node.start_mark,
                            )
                        seen.add(key)
            return super().construct_mapping(node, deep=deep)

    number = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", number, list("-+0123456789"))
    return Loader


def expand_trials(spec: StudySpec) -> list[TrialKey]:
    """Every trial of a grid study, in a fixed order: arm (as listed), lr, β_init, seed ascending."""
    if isinstance(spec.search, OptunaSearchSpec):
        return []
    return [
        TrialKey(arm=arm.name, lr=lr, beta_init=beta, seed=seed)
        for arm in spec.arms
        for lr in spec.lr_values
        for beta in spec.beta_init
        for seed in spec.seed_values
    ]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key written twice (``json`` keeps the last silently)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the spec is not valid JSON: the key {key!r} is written twice in one object")
        found[key] = value
    return found


def load_spec(path: str | Path, *, max_trials: int = DEFAULT_MAX_TRIALS) -> StudySpec:
    """Read a spec from a ``.json``, ``.yaml`` or ``.yml`` file."""
    return parse_spec_text(Path(path).read_text(), suffix=Path(path).suffix, max_trials=max_trials)


def read_spec_data(text: str, *, suffix: str = ".yaml") -> Any:
    """Spec text as plain data, not yet validated (JSON is valid YAML, so YAML parsing covers both
    unless ``suffix`` is .json); ``ValueError`` for text that is neither."""
    if suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the spec is not valid JSON: {exc}") from exc
        except RecursionError:
            raise ValueError("the spec is not valid JSON: nested too deeply") from None
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:  # one line: the problem and where (the dashboard reads the cause's mark)
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ValueError(f"the spec is not valid YAML: {problem}{where}") from exc
    except RecursionError:
        raise ValueError("the spec is not valid YAML: nested too deeply") from None


def parse_spec_text(text: str, *, suffix: str = ".yaml", max_trials: int = DEFAULT_MAX_TRIALS) -> StudySpec:
    """Parse and validate spec text (see ``read_spec_data``)."""
    data = read_spec_data(text, suffix=suffix)
    return StudySpec.model_validate(data, context={"max_trials": max_trials})


__all__ = [
    "ArmSpec",
    "Execution",
    "GridSearch",
    "LogRange",
    "OptunaSearchSpec",
    "Range",
    "Resources",
    "StudySpec",
    "arm_names",
    "expand_trials",
    "load_spec",
    "parse_spec_text",
    "read_spec_data",
]
