"""JSON the dashboard draws from: the heatmaps' coloured grids (computed by
``service.heatmap_grids``), where the trials ran, a search's sampled points, and specs parsed as the
page's editor types them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from studies.vocab import MetricName, Split, TrialStatus, impute_scores

from .. import analysis
from ..api.deps import EngineDep
from ..api.ratelimit import limit_spec_parsing
from ..api.responses import errors
from ..api.text_limits import TextTooCostly, check_text_cost, yaml_loader
from ..db import dal
from ..db.engine import session_scope
from ..heatmap_grids import SCORE_CMAP, cell_colours, colour_norm, heatmaps, hex_colour, legend_values
from .models import HeatmapsPublic, ParsedSpec, PlacementPublic, PointsPublic, SpecText

router = APIRouter(prefix="/studies/{study_id}", tags=["dashboard"], responses=errors(404))


@router.get("/placement", response_model=PlacementPublic)
def get_placement(study_id: str, engine: EngineDep) -> dict[str, Any]:
    """Where the study's trials ran: trials and wall seconds per (node, device), and in all (cached per
    study progress; the study page loads it after its first paint)."""
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)

    def compute() -> dict[str, Any]:
        with session_scope(engine, read_only=True) as session:
            return dal.trial_placement(session, study_id)

    return dict(analysis.cached(("placement", *analysis.progress_key(study)), compute))


@router.get("/heatmaps", response_model=HeatmapsPublic, responses=errors(409))
def get_heatmaps(
    study_id: str,
    engine: EngineDep,
    metric: MetricName | None = None,
    split: Split = "test",
) -> dict[str, Any]:
    """Every arm's lr × β_init median grid on one shared colour scale (raw values, lower is better),
    with per-cell seed counts, diverged counts, the median's interval and its level, and the
    divergence-rate map: what the dashboard's heatmaps draw."""
    return heatmaps(engine, study_id, metric=metric, split=split)


MAX_POINTS = 5000  # per arm, for the search scatter


def points(engine: Engine, study_id: str, *, split: Split) -> dict[str, Any]:
    """A search study's sampled trials per arm, coloured by score on one scale, with the parameter
    importances Optuna's PED-ANOVA evaluator computes from them (``IMPORTANCE_METHOD``; the sensitivity
    report's variance figure uses fANOVA on the same points, so the two need not agree)."""
    from matplotlib import colormaps

    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
    spec = analysis.study_spec(study)
    name, kind = analysis.metric_kind(spec, None)  # the spec's metric: its loss when it says `metric: loss`
    with session_scope(engine, read_only=True) as session:
        frame = dal.trial_scores_frame(session, study_id, metric=kind)
    fail = spec.y_fail(kind)
    frame = frame.assign(score=impute_scores(frame[split], frame["status"], fail))
    frame = frame[frame["status"].isin([s.value for s in TrialStatus if s.is_done])]
    frame = frame.assign(diverged=(frame["status"] == TrialStatus.DIVERGED.value).astype(int), seeds=1)
    # One point per sampled (lr, β_init): the median over its seeds, as a grid cell.
    grouped = (
        frame.groupby(["arm", "lr", "beta_init"], sort=True)
        .agg(score=("score", "median"), seeds=("seeds", "sum"), diverged=("diverged", "sum"))
        .reset_index()
    )
    finite = [float(v) for v in grouped["score"] if math.isfinite(v)]
    from studies.units import is_percent

    percent = is_percent(name, np.asarray(finite or [np.nan], dtype=float), fail)  # the PNG's rule, as /heatmaps
    norm = colour_norm(finite, percent)
    cmap = colormaps[SCORE_CMAP]
    arms = []
    for arm in sorted(a.name for a in spec.arms):
        rows = grouped[grouped["arm"] == arm].head(MAX_POINTS)
        values = rows["score"].to_numpy(dtype=float)
        colours = cell_colours(cmap, norm(np.ma.masked_invalid(values))[None, :], values[None, :])[0]
        pts = [
            {
                "lr": float(r.lr),
                "beta_init": float(r.beta_init),
                "value": float(r.score) if math.isfinite(r.score) else None,
                "seeds": int(r.seeds),
                "diverged": int(r.diverged),
                "colour": colour,
            }
            for r, colour in zip(rows.itertuples(), colours, strict=True)
        ]
        importances, note = _importances(pts)
        arms.append(
            {
                "arm": arm,
                "points": pts,
                "importances": importances,
                "importance_method": IMPORTANCE_METHOD,
                "importance_note": note,
            }
        )
    legend = [{"value": v, "colour": hex_colour(cmap(float(norm(v))))} for v in legend_values(norm, finite)]
    return {"study_id": study_id, "split": split, "metric": name, "percent": percent, "legend": legend, "arms": arms}


IMPORTANCE_METHOD = "Optuna's PED-ANOVA"


def _importances(pts: list[dict[str, Any]]) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances of lr and β_init for the score (lower is better)."""
    import optuna

    usable = [p for p in pts if p["value"] is not None]
    if len(usable) < 4 or len({p["lr"] for p in usable}) < 2 or len({p["beta_init"] for p in usable}) < 2:
        return {}, "importances need at least 4 results spread over both parameters"
    distributions: dict[str, optuna.distributions.BaseDistribution] = {
        "lr": optuna.distributions.FloatDistribution(
            min(p["lr"] for p in usable), max(p["lr"] for p in usable), log=True
        ),
        "beta_init": optuna.distributions.FloatDistribution(
            min(p["beta_init"] for p in usable), max(p["beta_init"] for p in usable)
        ),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={"lr": p["lr"], "beta_init": p["beta_init"]}, distributions=distributions, value=p["value"]
            )
            for p in usable
        ]
    )
    try:
        # named, not Optuna's default (which changed from fANOVA to PED-ANOVA), so the page's label holds
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:
        return {}, f"importances not computable: {exc}"
    if any("select the same set of trials" in str(w.message) for w in caught):  # every importance equal
        return {}, f"too few points for importances ({len(usable)}: PED-ANOVA's top and region quantiles coincide)"
    return {k: float(v) for k, v in importances.items()}, ""


@router.get("/points", response_model=PointsPublic, responses=errors(409))
def get_points(study_id: str, engine: EngineDep, split: Split = "test") -> dict[str, Any]:
    """A search study's sampled points per arm with colours on one scale and parameter importances."""
    return points(engine, study_id, split=split)


specs_router = APIRouter(prefix="/specs", tags=["dashboard"])

MAX_FIELDS = 100_000  # YAML aliases can make a small text a huge tree: bound the walk


def field_lines(node: Any) -> dict[str, int]:
    """Every field's dotted path (``arms.0.name``) → its line (1-based), from a composed YAML node.

    ``ValueError`` past ``MAX_FIELDS`` fields (counted through aliases, which repeat a node), or for
    an alias inside its own anchor (a cycle, which JSON cannot hold)."""
    import yaml

    lines: dict[str, int] = {}
    path_nodes: set[int] = set()  # the nodes from the root to here: an alias back to one is a cycle
    walked = [0]  # fields walked, repeated keys and aliases included

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            children = [(f"{prefix}{key.value}", key, value) for key, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            children = [(f"{prefix}{index}", item, item) for index, item in enumerate(node.value)]
        else:
            return
        if id(node) in path_nodes:
            cycle = ValueError("an alias refers to a field that holds it")
            cycle.line = node.start_mark.line + 1  # type: ignore[attr-defined]  # the answer's `line`
            raise cycle
        walked[0] += len(children)
        if walked[0] > MAX_FIELDS:
            raise ValueError(f"more than {MAX_FIELDS} fields")
        path_nodes.add(id(node))
        for path, marked, value in children:
            lines[path] = marked.start_mark.line + 1
            walk(value, path + ".")
        path_nodes.discard(id(node))

    walk(node, "")
    return lines


def _json_value(value: Any) -> Any:
    """What YAML reads but JSON lacks: dates as ISO text; anything else is ``TypeError``."""
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} value has no JSON form")


def _problem(exc: Any) -> str:
    return str(getattr(exc, "problem", None) or exc)


def _line(exc: Any) -> int | None:
    mark = getattr(exc, "problem_mark", None)
    return int(mark.line) + 1 if mark is not None else None


@specs_router.post(
    "/parse", response_model=ParsedSpec, responses=errors(413, 429), dependencies=[Depends(limit_spec_parsing)]
)
def parse_spec(body: SpecText) -> Any:
    """YAML or JSON text → the spec object and each field's line (what the submit page sends next).
    Text that is not a JSON-like mapping is a 422 naming the line where known."""
    import yaml

    def invalid(reason: str, line: int | None = None) -> JSONResponse:
        where = f" (line {line})" if line else ""
        content = {"detail": f"invalid spec: {reason}{where}", "field": "spec", "line": line}
        return JSONResponse(status_code=422, content=content)

    from studies.spec import read_spec_data

    if not body.text.strip():
        return invalid("the spec is empty")
    try:  # bounded work before anything is built (service.api.text_limits)
        check_text_cost(body.text)
    except TextTooCostly as exc:
        return invalid(exc.reason, exc.line)
    try:
        # the fields' lines from the document's structure (scalar types do not move a line), the values
        # from the spec's own reader, as the CLI reads a spec file: one parser (``1e-4`` is a number)
        node = yaml.compose(body.text, Loader=yaml_loader())
        spec = read_spec_data(body.text)
    except yaml.YAMLError as exc:
        return invalid(f"not valid YAML or JSON: {_problem(exc)}", _line(exc))
    except ValueError as exc:  # a scalar YAML cannot build: a date like 2026-13-01, an int of 5000 digits
        cause = exc.__cause__
        if isinstance(cause, yaml.YAMLError):
            return invalid(f"not valid YAML or JSON: {_problem(cause)}", _line(cause))
        return invalid(f"not valid YAML or JSON: {exc}")
    except RecursionError:
        return invalid("nested too deeply")
    if not isinstance(spec, dict):
        return invalid("a spec must be a mapping of fields (name, workload, arms, ...)", 1)
    try:
        lines = field_lines(node)
        # the spec as JSON will send it: keys as text, dates as ISO text; NaN and infinities have no JSON
        spec = json.loads(json.dumps(spec, allow_nan=False, default=_json_value))
    except (TypeError, ValueError) as exc:  # too many fields, a cycle, a value JSON lacks
        reason = "numbers must be finite" if str(exc).startswith("Out of range") else str(exc)
        return invalid(reason, getattr(exc, "line", None))
    except RecursionError:
        return invalid("nested too deeply")
    return {"spec": spec, "lines": lines}
