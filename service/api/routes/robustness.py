"""The cross-study query: how robust is an arm on a workload (METRICS.md "Across studies")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ... import analysis
from ...schemas import RobustnessPublic
from ..deps import EngineDep

router = APIRouter(tags=["robustness"])


@router.get("/robustness", response_model=RobustnessPublic)
def get_robustness(
    engine: EngineDep,
    workload: str,
    arm: str | None = None,
    epochs: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Per-arm sensitivity figures aggregated over every completed study on ``workload``."""
    return analysis.robustness(engine, workload=workload, arm=arm, epochs=epochs)
