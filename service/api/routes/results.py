"""A study's results: trials, grids, sensitivity figures, heatmaps and exports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from studies.replicate import PanelKey, ReplicationReport
from studies.results import TrialStatus
from studies.vocab import ArmName, MetricName, Split, Stat

from ... import analysis
from ...db import dal
from ...db.engine import session_scope
from ...errors import InvalidInput
from ...presenters import trial_public
from ...schemas import GridPublic, SensitivityPublic, TrialsPublic
from ..deps import EngineDep, OffsetQuery
from ..responses import errors

router = APIRouter(prefix="/studies/{study_id}", tags=["results"], responses=errors(404))


@router.get("/trials", response_model=TrialsPublic)
def list_trials(
    study_id: str,
    engine: EngineDep,
    arm: ArmName | None = None,
    status: TrialStatus | None = None,
    lr: Annotated[float | None, Query(gt=0, allow_inf_nan=False)] = None,
    beta_init: Annotated[float | None, Query(ge=0, lt=1, allow_inf_nan=False)] = None,
    offset: OffsetQuery = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    curves: bool = False,
    sort: Annotated[
        str | None,
        Query(
            max_length=20,
            pattern=r"^-?[a-z_]+$",
            description="a column to sort by, '-' first for descending: " + ", ".join(dal.TRIAL_SORTS),
        ),
    ] = None,
) -> Response:
    """Trials of a study, filtered and sorted; ``curves=true`` adds each trial's per-epoch curve."""
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
        arms = [a["name"] for a in study.spec.get("arms", [])]
        if arm is not None and arm not in arms:  # a typo is an error, not an empty page
            raise InvalidInput("arm", f"study {study_id} has no arm {arm!r}; valid choices: {', '.join(arms)}")
        rows, total = dal.list_trials(
            session,
            study_id,
            arm=arm,
            status=status,
            lr=lr,
            beta_init=beta_init,
            offset=offset,
            limit=limit,
            with_curves=curves,
            sort=sort,
        )
    page = TrialsPublic(data=[trial_public(t) for t in rows], count=total, offset=offset, limit=limit)
    # Validated above: returned as a model, FastAPI would validate every row again to serialise it.
    return Response(content=page.model_dump_json(), media_type="application/json")


@router.get("/grid", response_model=GridPublic, responses=errors(409))
async def get_grid(
    study_id: str,
    engine: EngineDep,
    arm: ArmName | None = None,
    metric: MetricName | None = None,
    split: Split = "test",
    stat: Stat = "median",
) -> Response:
    """One arm's lr × β_init grid of a statistic over seeds (raw values, lower is better)."""
    body = analysis.settled_grid_json(engine, study_id, arm=arm, metric=metric, split=split, stat=stat)
    if body is None:  # the database is read in the thread pool, never on the event loop
        body = await run_in_threadpool(
            analysis.grid_json, engine, study_id, arm=arm, metric=metric, split=split, stat=stat
        )
    return Response(content=body, media_type="application/json")  # serialised once per grid


@router.get("/sensitivity", response_model=SensitivityPublic, responses=errors(409))
async def get_sensitivity(
    study_id: str,
    engine: EngineDep,
    target: Annotated[
        float | None,
        Query(gt=0, allow_inf_nan=False, description="the error (or loss) a run must reach (at most), raw units"),
    ] = None,
    metric: MetricName | None = None,
    split: Split = "test",
) -> Response:
    """Each pair's verdict, then the figures per arm and per pair (docs/metrics.md; oriented: higher
    is better, y = −value; ``raw_*`` in the metric's units).

    Cells are always chosen on the validation split; ``split`` is the one the figures report.
    ``target`` overrides the spec's ``verdict.target`` (default: the lower quartile of every trained
    run's validation score).
    """
    body = analysis.settled_sensitivity_json(engine, study_id, metric=metric, split=split, target=target)
    if body is None:  # the database is read in the thread pool, never on the event loop
        body = await run_in_threadpool(
            analysis.sensitivity_json, engine, study_id, metric=metric, split=split, target=target
        )
    return Response(content=body, media_type="application/json")  # serialised once per report


@router.get("/replication", response_model=ReplicationReport)
def get_replication(study_id: str, engine: EngineDep, paper: PanelKey) -> Any:
    """The study beside one panel of the paper's Fig. 2 (docs/replication.md): the paper's claim
    recomputed per seed with a t-interval and a verdict, each arm's cells beside the paper's with
    their difference, and notes on where the study departs from the paper. 422 when the study lacks
    the panel's arms. ``demonlab replicate`` prints the same report."""
    return analysis.replication(engine, study_id, paper=paper)


def _arms(arms: str | None) -> list[str] | None:
    """``arms=a,b`` → ["a", "b"]; absent or empty (``arms=,``) means every arm."""
    return [a for a in (arms or "").split(",") if a] or None


@router.get("/heatmap.png", response_class=Response, responses={200: {"content": {"image/png": {}}}, **errors(409)})
def heatmap_png(
    study_id: str,
    engine: EngineDep,
    metric: MetricName | None = None,
    split: Split = "test",
    arms: Annotated[str | None, Query(description="comma-separated arm names (default: every arm)")] = None,
) -> Response:
    """Heatmaps of the arms side by side, one colour scale, plus the divergence-rate map (PNG)."""
    data = analysis.heatmap(engine, study_id, metric=metric, split=split, arms=_arms(arms), fmt="png")
    return Response(content=data, media_type="image/png")


@router.get("/heatmap.svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}, **errors(409)})
def heatmap_svg(
    study_id: str,
    engine: EngineDep,
    metric: MetricName | None = None,
    split: Split = "test",
    arms: Annotated[str | None, Query(description="comma-separated arm names (default: every arm)")] = None,
) -> Response:
    """The same heatmaps as SVG."""
    data = analysis.heatmap(engine, study_id, metric=metric, split=split, arms=_arms(arms), fmt="svg")
    return Response(content=data, media_type="image/svg+xml")


@router.get("/export.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_csv(study_id: str, engine: EngineDep) -> Response:
    """Every trial as CSV."""
    data = analysis.export(engine, study_id, "csv")
    headers = {"Content-Disposition": f'attachment; filename="{study_id}.csv"'}
    return Response(content=data, media_type="text/csv", headers=headers)


@router.get(
    "/export.parquet",
    response_class=Response,
    responses={200: {"content": {"application/vnd.apache.parquet": {}}}},
)
def export_parquet(study_id: str, engine: EngineDep) -> Response:
    """Every trial as Parquet."""
    data = analysis.export(engine, study_id, "parquet")
    headers = {"Content-Disposition": f'attachment; filename="{study_id}.parquet"'}
    return Response(content=data, media_type="application/vnd.apache.parquet", headers=headers)
