"""The cross-study query: how robust is an arm on a workload (docs/metrics.md "Across studies")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from studies.vocab import ArmName, workload_names

from ... import analysis
from ...schemas import RobustnessPublic
from ..deps import EngineDep
from ..responses import errors

router = APIRouter(tags=["robustness"])


@router.get("/robustness", response_model=RobustnessPublic, responses=errors())
def get_robustness(
    engine: EngineDep,
    # The schema lists the workloads (the route gives its own error, with a suggestion, for others).
    workload: Annotated[str, Query(description="a workload's name", json_schema_extra={"enum": workload_names()})],
    arm: ArmName | None = None,
    epochs: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> RobustnessPublic:
    """Each arm's figures over every completed study on ``workload``, study by study with their
    intervals, and the range of the estimates (docs/metrics.md, "Across studies")."""
    result: RobustnessPublic = analysis.robustness(engine, workload=workload, arm=arm, epochs=epochs)
    return result
