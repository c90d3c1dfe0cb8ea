"""Atlases: one study per (workload, optimizer family) of a suite, and the answer across workloads.

``POST /atlases`` submits the studies an atlas still lacks (nothing that exists is submitted again,
see ``service.atlas``) and answers 202 with where the atlas stands; ``GET /atlases/{key}`` gives its
progress, every finished study's verdicts and the pooled answer; ``report.html`` is the
self-contained report; ``figures/{name}.{png,svg}`` each figure of it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from studies.atlas.models import AtlasResult
from studies.atlas.suites import DEFAULT_SEEDS

from ... import atlas
from ..deps import AuthDep, EngineDep, SettingsDep
from ..responses import errors

router = APIRouter(prefix="/atlases", tags=["atlases"])
KeyPath = Annotated[str, Path(max_length=100, pattern=r"^[a-z]+-s[0-9]+(-w[0-9a-f]+)?$")]


class AtlasCreate(BaseModel):
    """Which atlas: a suite, seeds per cell, and optionally a subset of the suite's workloads."""

    model_config = ConfigDict(extra="forbid")

    suite: Literal["cpu", "paper", "smoke"] = "cpu"
    seeds: int = Field(default=DEFAULT_SEEDS, ge=2, le=atlas.MAX_SEEDS)
    workloads: list[Annotated[str, Field(max_length=200)]] | None = Field(default=None, max_length=64)


@router.post("", status_code=202, response_model=AtlasResult, dependencies=[AuthDep], responses=errors(401, 413, 429))
def create_atlas(body: AtlasCreate, engine: EngineDep, settings: SettingsDep, response: Response) -> AtlasResult:
    """Submit the atlas's missing studies (202); resubmitting resumes it and reuses every study that exists."""
    aid = atlas.atlas_id(body.suite, body.seeds, body.workloads)
    result = atlas.submit_atlas(engine, settings, aid)
    response.headers["Location"] = f"/api/v1/atlases/{aid.key()}"
    return result


@router.get("/{key}", response_model=AtlasResult, responses=errors(404))
def get_atlas(key: KeyPath, engine: EngineDep) -> AtlasResult:
    """Progress, each finished study's verdicts, and per comparison the counts and the pooled Δ."""
    return atlas.atlas_result(engine, atlas.parse_key(key))


@router.get(
    "/{key}/report.html",
    response_class=Response,
    responses={**errors(404), 200: {"content": {"text/html": {}}}},
)
def get_report(key: KeyPath, engine: EngineDep) -> Response:
    """The report as one HTML file: no external asset, every figure inlined; it opens offline."""
    return HTMLResponse(atlas.atlas_report_html(engine, atlas.parse_key(key)))


@router.get(
    "/{key}/figures/{name}.{fmt}",
    response_class=Response,
    responses={**errors(404), 200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
def get_figure(
    key: KeyPath,
    name: Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9_-]+$")],
    fmt: Literal["png", "svg"],
    engine: EngineDep,
) -> Response:
    """One figure of the report (the overview, a comparison's forest plot, a workload's heatmaps)."""
    data = atlas.atlas_figure(engine, atlas.parse_key(key), name, fmt)
    media = "image/svg+xml" if fmt == "svg" else "image/png"
    return Response(data, media_type=media)
