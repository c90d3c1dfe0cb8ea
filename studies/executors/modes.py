"""How a study's trials run: ``packed``, ``per_trial`` or ``search`` (the spec's ``execution.mode``
with ``auto`` resolved), read by the executor table (``studies.executors``) and the executors."""

from __future__ import annotations

from typing import Literal

from ..spec import StudySpec

Mode = Literal["per_trial", "packed", "search"]


def execution_mode(spec: StudySpec) -> Mode:
    """How the study's trials run: ``search`` for an Optuna search; else the spec's execution mode,
    ``auto`` resolved to ``packed`` when the workload packs and ``per_trial`` when it does not."""
    if spec.is_search:
        return "search"
    if spec.execution.mode != "auto":
        return spec.execution.mode
    from ..packed import packing_problem
    from ..workloads import get_workload

    return "per_trial" if packing_problem(get_workload(spec.workload, spec.workload_params)) else "packed"
