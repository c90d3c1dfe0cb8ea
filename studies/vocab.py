"""The words a study's results are queried with, typed once: splits, statistics, metrics and arms.

The spec, the HTTP routes' parameters and the response models all use these types, so each rule is
written in one place and the OpenAPI schema lists the valid values (a ``Literal`` is an ``enum``).
The arm and metric vocabularies come from the registries (``studies.arms``, ``studies.workloads``);
mypy sees them as ``str``, the runtime (pydantic, FastAPI) as the ``Literal`` of every name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from .arms import arm_names
from .workloads import WORKLOADS

__all__ = ["ARMS", "METRICS", "SPLITS", "STATS", "ArmName", "MetricName", "Split", "Stat"]

Split = Literal["val", "test"]
"""Which held-out split a score is read on."""

Stat = Literal["mean", "median", "min", "max"]
"""The statistic of a grid cell over its seeds."""

SPLITS: tuple[str, ...] = get_args(Split)
STATS: tuple[str, ...] = get_args(Stat)
ARMS: tuple[str, ...] = tuple(arm_names())
METRICS: tuple[str, ...] = tuple(sorted({cls.metric_name for cls in WORKLOADS.values()} | {"loss"}))

if TYPE_CHECKING:
    ArmName = str
    MetricName = str
else:
    ArmName = Literal[ARMS]
    MetricName = Literal[METRICS]
