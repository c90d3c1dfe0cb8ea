"""The dashboard's HTML pages: studies (``/``), a study, compare, submit, and the study's figures in
words (an HTML fragment the study page reloads as results arrive).

Pages are Jinja2 templates with autoescape on: every value a user wrote (names, spec fields) is
escaped. Each page carries a Content-Security-Policy that allows scripts, styles, images and
connections from the app's own origin only, so nothing inline ever runs; the scripts are small
files in ``static/`` that read their parameters from ``data-*`` attributes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from studies.vocab import FINISHED_STUDY_STATUSES, StudyStatus, TrialStatus

from .. import analysis
from ..api.deps import EngineDep
from ..db import dal
from ..db.engine import session_scope
from ..errors import Conflict, InvalidInput, NotFound, SpecUnreadable
from ..presenters import study_public
from . import words

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent.parent / "studies" / "examples"
STATUSES: tuple[str, ...] = tuple(StudyStatus)
FINISHED = tuple(s.value for s in FINISHED_STUDY_STATUSES)  # nothing left to cancel
PAGE_SIZE = 25
DEFAULT_EXAMPLE = "synthetic_smoke"  # the submit page's text when no example is chosen: seconds to run

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True)
)
templates.env.filters["num"] = words.num
templates.env.filters["pct"] = words.pct
templates.env.filters["level"] = words.level_pct
router = APIRouter(include_in_schema=False)


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """Render a template with the security headers."""
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def _examples() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


@router.get("/", response_class=HTMLResponse)
def studies_page(
    request: Request,
    engine: EngineDep,
    status: str | None = None,
    workload: str | None = None,
    q: str | None = None,
    page_number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> Response:
    """Every study, newest first: filter by status and workload, search by name, page by page."""
    status = status or None
    workload = workload or None
    if status is not None and status not in STATUSES:
        raise InvalidInput("status", f"unknown status {status!r}; valid choices: {', '.join(STATUSES)}")
    with session_scope(engine, read_only=True) as session:
        rows, total = dal.list_studies(
            session,
            status=status,
            workload=workload,
            name_contains=q or None,
            offset=(page_number - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        workloads = dal.study_workloads(session)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return page(
        request,
        "studies.html",
        {
            "studies": [study_public(s) for s in rows],
            "total": total,
            "page": page_number,
            "pages": pages,
            "filters": {"status": status or "", "workload": workload or "", "q": q or ""},
            "statuses": STATUSES,
            "workloads": workloads,
        },
    )


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(request: Request, study_id: str, engine: EngineDep) -> Response:
    """One study: live progress, heatmaps, figures in words, spec, timings, where it ran, actions."""
    import yaml

    try:
        with session_scope(engine, read_only=True) as session:
            study = dal.get_study(session, study_id)
    except NotFound as exc:
        return page(request, "missing.html", {"message": str(exc)}, status_code=404)
    try:
        typed = analysis.study_spec(study)
    except SpecUnreadable as exc:  # the page needs the typed spec; the study's trials and export still read
        return page(request, "missing.html", {"title": "Cannot show this study", "message": str(exc)}, status_code=409)
    public = study_public(study)
    spec = study.spec
    return page(
        request,
        "study.html",
        {
            "study": public,
            # the sensitivity report's order (sorted), as the PNG and the CLI
            "arms": sorted(str(a.get("name", "?")) for a in spec.get("arms", [])),
            "spec_yaml": yaml.safe_dump(spec, sort_keys=False, allow_unicode=True),
            "is_search": typed.is_search,
            "metric": typed.metric_name,
            "workload_metric": analysis.workload_metric(typed),
            "finished": FINISHED,
            "trial_statuses": [s.value for s in TrialStatus],
        },
    )


@router.get("/studies/{study_id}/figures", response_class=HTMLResponse)
def figures_fragment(
    request: Request,
    study_id: str,
    engine: EngineDep,
    target: Annotated[float | None, Query(gt=0, allow_inf_nan=False)] = None,
    split: str = "test",
) -> Response:
    """Each pair's verdict, then the per-arm figures and pair comparisons in sentences (an HTML fragment)."""
    from studies.metrics import MetricsError

    try:
        report = analysis.sensitivity(engine, study_id, metric=None, split=split, target=target)
    except (Conflict, MetricsError) as exc:  # a search with no points (yet, or ever), too few cells: said in the page
        return page(
            request, "figures.html", {"error": str(exc), "ended": _ended(engine, study_id), "arms": [], "pairs": []}
        )
    if not words.has_results(report):  # "yet" only while more can come: a failed or cancelled study is over
        status = _status(engine, study_id)
        why = "no trial has a result yet"
        if status.is_finished:
            why = f"the study {status.label} before any trial had a result"
        return page(request, "figures.html", {"error": why, "ended": status.is_finished, "arms": [], "pairs": []})
    context = words.report_context(report)
    arms = [{"arm": name, "lines": words.arm_lines(figures, context)} for name, figures in report.arms.items()]
    pairs = [{"title": f"{p.arm_a} vs {p.arm_b}", "lines": words.pair_lines(p, context)} for p in report.pairs]
    return page(
        request,
        "figures.html",
        {"error": None, "context": context, "arms": arms, "pairs": pairs, "version": report.metrics_version},
    )


def _status(engine: Engine, study_id: str) -> StudyStatus:
    with session_scope(engine, read_only=True) as session:
        return dal.get_study(session, study_id).status


def _ended(engine: Engine, study_id: str) -> bool:
    """Whether the study is over (no more results will come: the page drops its "yet")."""
    return _status(engine, study_id).is_finished


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, engine: EngineDep, studies: str = "", arm: str | None = None, workload: str | None = None
) -> Response:
    """The same arm across studies, and the cross-study robustness aggregate."""
    ids = [s.strip() for s in studies.split(",") if s.strip()]
    rows = []
    with session_scope(engine, read_only=True) as session:
        for study_id in ids[:12]:
            try:
                rows.append(study_public(dal.get_study(session, study_id)))
            except NotFound as exc:
                return page(request, "missing.html", {"message": str(exc)}, status_code=404)
    # the robustness aggregate is asked for, never filled in silently: the studies' shared workload is offered
    shared = {s.workload for s in rows}
    return page(
        request,
        "compare.html",
        {
            "studies": rows,
            "ids": ",".join(s.id for s in rows),
            "arm": arm or "",
            "workload": workload or "",
            "suggested_workload": shared.pop() if len(shared) == 1 and not workload else "",
        },
    )


@router.get("/submit", response_class=HTMLResponse)
def submit_page(request: Request, example: str | None = None) -> Response:
    """Paste or upload a spec, or start from an example."""
    examples = _examples()
    if example and example not in examples:
        raise InvalidInput("example", f"unknown example {example!r}; valid choices: {', '.join(examples)}")
    # the text always matches the select: the chosen example, else the default one (a quick study)
    example = example or (DEFAULT_EXAMPLE if DEFAULT_EXAMPLE in examples else (examples or [""])[0])
    text = (EXAMPLES / f"{example}.yaml").read_text() if example else ""
    return page(request, "submit.html", {"examples": examples, "example": example, "text": text})
