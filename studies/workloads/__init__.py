"""The workload registry: name → ``Workload`` class.

Each workload gives a model, train/val/test data, a loss, a metric and a divergence ceiling.
``get_workload`` raises ``WorkloadError`` listing the valid names for an unknown one.
"""

from __future__ import annotations

from typing import Any

from .base import Splits, Workload, WorkloadError
from .digits import DigitsMLP
from .synthetic import Synthetic

WORKLOADS: dict[str, type[Workload]] = {
    cls.name: cls
    for cls in (
        Synthetic,
        DigitsMLP,
    )
}


def workload_names() -> list[str]:
    """Registered workload names, sorted."""
    return sorted(WORKLOADS)


def get_workload(name: str, params: dict[str, Any] | None = None) -> Workload:
    """Instantiate the workload ``name`` with its ``params``."""
    try:
        cls = WORKLOADS[name]
    except KeyError:
        raise WorkloadError(
            f"unknown workload {name!r}; valid choices: {', '.join(workload_names())}"
        ) from None
    return cls(params)


__all__ = ["WORKLOADS", "Splits", "Workload", "WorkloadError", "get_workload", "workload_names"]
