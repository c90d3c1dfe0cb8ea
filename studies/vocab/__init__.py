"""The project's vocabulary, typed once and importable without torch, scipy or a database.

- ``statuses``: ``TrialStatus``, ``StudyStatus``.
- ``scores``: ``Split``, ``Stat``, ``MetricKind``, the y_fail imputation (``impute_scores``) and a
  score in words (``score_words``).
- ``arms``: the arm registry (kind, schedule, parameters, Nesterov rule, packed kernel, paper name).
- ``samplers``: the Optuna samplers a search may use.
- ``workloads``: each workload's torch-free declaration: metric, parameters, chance level (y_fail).

The spec, the HTTP routes' parameters and the response models all use these types, so each rule is
written in one place and the OpenAPI schema lists the valid values (a ``Literal`` is an ``enum``).
mypy sees ``ArmName`` and ``MetricName`` as ``str``, the runtime (pydantic, FastAPI) as the
``Literal`` of every registered name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import StringConstraints

from .arms import ARMS as ARM_REGISTRY
from .arms import Arm, arm, arm_names, check_arm, label_pattern
from .samplers import SAMPLERS, make_sampler, sampler_names
from .scores import (
    METRIC_KINDS,
    SPLITS,
    STATS,
    MetricKind,
    Split,
    Stat,
    impute_score,
    impute_scores,
    score_words,
    split_problem,
)
from .statuses import FINISHED_STUDY_STATUSES, StudyStatus, TrialStatus
from .workloads import METRICS, WorkloadError, workload_entry, workload_names, y_fail

__all__ = [
    "ARMS",
    "ARM_REGISTRY",
    "FINISHED_STUDY_STATUSES",
    "METRICS",
    "METRIC_KINDS",
    "SAMPLERS",
    "SPLITS",
    "STATS",
    "Arm",
    "ArmName",
    "MetricKind",
    "MetricName",
    "Split",
    "Stat",
    "StudyStatus",
    "TrialStatus",
    "WorkloadError",
    "arm",
    "arm_names",
    "check_arm",
    "impute_score",
    "impute_scores",
    "make_sampler",
    "sampler_names",
    "score_words",
    "split_problem",
    "workload_entry",
    "workload_names",
    "y_fail",
]

ARMS: tuple[str, ...] = tuple(arm_names())
"""Every registered arm name (at import: an arm registered later is validated, not in the enum)."""

if TYPE_CHECKING:
    ArmName = str
    MetricName = str
else:  # a registered name, or a labelled one (``demon_sgdm@delay0.25``: see ``arms``)
    ArmName = Literal[ARMS] | Annotated[str, StringConstraints(pattern=label_pattern(ARMS))]
    MetricName = Literal[METRICS]
