"""JSON the dashboard draws from: every arm's heatmap cells on one shared colour scale, and each
pair's difference map.

The server sends grids, never every trial: one ``/grid`` per arm (cached per study progress by
``service.analysis``), coloured here with matplotlib's colour maps (``viridis_r`` for scores, as the
PNG heatmaps; ``Reds`` for divergence rates; ``RdBu_r`` for differences), so the page only paints
rectangles. Arms come in the sensitivity report's order (sorted, as the PNG and the CLI) and an
error metric is shown in percent where the PNG shows it so (``percent``).
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
from .models import HeatmapsPublic, ParsedSpec, PlacementPublic, PointsPublic, SpecText

router = APIRouter(prefix="/studies/{study_id}", tags=["dashboard"], responses=errors(404))

SCORE_CMAP = "viridis_r"  # as studies.heatmaps: bright is good (low raw values)
RATE_CMAP = "Reds"
DIFFERENCE_CMAP = "RdBu_r"  # below 0 (first arm lower, i.e. better) blue, above 0 red, white at 0
MISSING = "#d9d9d9"
LEGEND_STOPS = 17  # colour-bar stops: enough for a smooth gradient on a log scale


def hex_colour(rgba: Any) -> str:
    r, g, b = (round(float(c) * 255) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def colour_norm(values: list[float], percent: bool) -> Any:
    """The PNG heatmaps' rule: a log scale when the values are positive and span 10× or more; one value
    alone is padded by half a unit of what is shown (half a point for a percent: the PNG pads after
    converting to percent, and ±0.5 of a fraction read 16.7 … 117% on the page)."""
    from matplotlib.colors import LogNorm, Normalize

    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high <= low:
        pad = 0.005 if percent else 0.5
        low, high = low - pad, high + pad
    return LogNorm(low, high) if low > 0 and high / low >= 10 else Normalize(low, high)


def heatmaps(engine: Engine, study_id: str, *, metric: str | None, split: Split) -> dict[str, Any]:
    """Every arm's median grid, coloured on one scale, and its divergence-rate map (cached per study
    progress, like every results endpoint)."""
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
    spec = analysis.study_spec(study)
    name, kind = analysis.metric_kind(spec, metric)
    progress = analysis.progress_key(study)
    compute = lambda: _heatmaps(engine, study, spec, name, kind, split, progress)  # noqa: E731
    return dict(analysis.throttled_report("dashboard-heatmaps", study, (name, split), compute, engine=engine))


def _heatmaps(
    engine: Engine, study: Any, spec: Any, name: str, kind: Any, split: str, progress: tuple[Any, ...]
) -> dict[str, Any]:
    from matplotlib import colormaps

    from studies.metrics import cell_tables, default_pairs
    from studies.units import is_percent

    frame = analysis.scores_frame(engine, study.id, kind, progress)  # shared with /sensitivity of the same page
    axes = analysis.study_axes(spec, frame, study)
    arms = sorted(a.name for a in spec.arms)  # the order of the sensitivity report, the PNG and the CLI
    fail = analysis.y_fail(spec, kind)
    tables = cell_tables(frame, axes, fail, arms, split=split, empty=True)  # an arm not sampled yet: missing cells
    medians = {arm: np.asarray(tables[arm].raw_median, dtype=float) for arm in arms}
    finite = [float(v) for m in medians.values() for v in m.ravel() if math.isfinite(v)]
    percent = is_percent(name, np.stack(list(medians.values())), fail)
    norm = colour_norm(finite, percent)
    scores, rates = colormaps[SCORE_CMAP], colormaps[RATE_CMAP]
    body_arms = [_arm_body(arm, tables[arm], medians[arm], scores, rates, norm) for arm in arms]
    return {
        "study_id": study.id,
        "status": study.status.value,
        "metric": name,
        "split": split,
        "stat": "median",
        "lower_is_better": True,
        "percent": percent,
        "y_fail": fail,
        "seeds": len(axes.seeds),
        "lrs": [float(v) for v in axes.lrs],
        "betas": [float(v) for v in axes.betas],
        "scale": {
            "min": min(finite) if finite else None,
            "max": max(finite) if finite else None,
            "log": type(norm).__name__ == "LogNorm",
            "legend": [{"value": v, "colour": hex_colour(scores(float(norm(v))))} for v in legend_values(norm, finite)],
        },
        "rate_legend": [{"value": v, "colour": hex_colour(rates(v))} for v in np.linspace(0.0, 1.0, LEGEND_STOPS)],
        "missing_colour": MISSING,
        "arms": body_arms,
        "differences": _differences([(a, b) for a, b in default_pairs(arms)], medians),
    }


def _arm_body(arm: str, table: Any, values: Any, scores: Any, rates: Any, norm: Any) -> dict[str, Any]:
    """One arm's cells: medians and their colours, counts, the median's interval, divergence rates."""
    n = np.asarray(table.n_results, dtype=float)
    rate = np.divide(np.asarray(table.n_diverged, dtype=float), n, out=np.full(n.shape, np.nan), where=n > 0)
    return {
        "arm": arm,
        "values": matrix(values),
        "colours": cell_colours(scores, norm(np.ma.masked_invalid(values)), values),
        "n": np.asarray(table.n_results).astype(int).tolist(),
        "diverged": np.asarray(table.n_diverged).astype(int).tolist(),
        "missing": np.asarray(table.n_missing).astype(int).tolist(),
        "interval_low": matrix(table.raw_interval_low),
        "interval_high": matrix(table.raw_interval_high),
        # the level only where there is an interval (as /grid's median_level): null, not 0
        "interval_level": matrix(
            np.where(
                np.isin(np.asarray(table.interval_status), ("ok", "reduced_level")),
                table.interval_level,
                np.nan,
            )
        ),
        "divergence_rate": matrix(rate),
        "divergence_colours": cell_colours(rates, rate, rate),
    }


def _differences(pairs: list[tuple[str, str]], medians: dict[str, Any]) -> dict[str, Any]:
    """Each default pair's cell-by-cell difference of medians, first arm − second (raw units: below 0 the
    first arm's score is lower, i.e. better), on one symmetric diverging scale for every pair."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    values = {pair: medians[pair[0]] - medians[pair[1]] for pair in pairs}
    finite = [abs(float(v)) for d in values.values() for v in d.ravel() if math.isfinite(v)]
    bound = max(finite) if finite and max(finite) > 0 else 1.0
    norm, cmap = Normalize(-bound, bound), colormaps[DIFFERENCE_CMAP]
    return {
        "max_abs": max(finite) if finite else None,
        "legend": [
            {"value": float(v), "colour": hex_colour(cmap(norm(v)))} for v in np.linspace(-bound, bound, LEGEND_STOPS)
        ],
        "pairs": [
            {"arm_a": a, "arm_b": b, "values": matrix(d), "colours": cell_colours(cmap, norm(d), d)}
            for (a, b), d in values.items()
        ],
    }


def matrix(values: Any) -> list[list[float | None]]:
    """A float matrix as JSON: NaN and infinities as null."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in np.asarray(values, dtype=float)]


def cell_colours(cmap: Any, normed: Any, values: Any) -> list[list[str]]:
    """Hex colours of a matrix (one colour-map call for all cells); grey where the value is missing."""
    rgba = cmap(np.ma.filled(np.ma.asarray(normed, dtype=float), np.nan))
    return [
        [MISSING if math.isnan(values[i][j]) else hex_colour(rgba[i][j]) for j in range(len(values[i]))]
        for i in range(len(values))
    ]


def legend_values(norm: Any, finite: list[float], steps: int = LEGEND_STOPS) -> list[float]:
    if not finite:
        return []
    return [float(norm.inverse(i / (steps - 1))) for i in range(steps)]


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
    fail = analysis.y_fail(spec, kind)
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


@router.get("/points", response_model=PointsPublic)
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
