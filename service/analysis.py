"""Queries that turn stored trials into grids, sensitivity figures, heatmaps, exports and robustness.

The figures themselves come from ``studies.metrics`` and ``studies.heatmaps`` (one implementation for
the CLI and the service); this module only fetches the per-seed rows and caches what is expensive.
Grids, sensitivity reports and heatmaps go through ``service.report_cache``: per (study, metric,
split, target...), recomputed when the study's progress changed but at most every few seconds while
it runs, one at a time at a low CPU priority; a finished study's reports are computed once.
"""

from __future__ import annotations

import io
import json
import logging
import math
import threading
from collections import OrderedDict
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from studies import vocab
from studies.vocab import MetricKind, StudyStatus

from .db import dal
from .db.engine import session_scope
from .db.models import Study
from .errors import Conflict, InvalidInput, NotFound, SpecUnreadable, spec_errors
from .report_cache import reports

__all__ = [
    "cached",
    "export",
    "export_metadata",
    "grid",
    "heatmap",
    "metric_kind",
    "progress_key",
    "robustness",
    "scores_frame",
    "sensitivity",
    "study_axes",
    "study_spec",
    "throttled_report",
]

log = logging.getLogger("demonlab.analysis")

_CACHE_SIZE = 256
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()


def cached(key: tuple[Any, ...], compute: Any) -> Any:
    """``compute()``'s value, kept under ``key`` (least recently used out past 256 entries): for
    answers that change only with a study's progress (put ``progress_key(study)`` in the key)."""
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = compute()
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def study_spec(study: Study) -> Any:
    """The stored spec as a ``StudySpec`` (re-validated; limits, and rules added since it was stored,
    were checked at submission: ``STORED``), or ``SpecUnreadable`` naming the fields this version
    cannot read (a spec stored by another release, or edited in the database): a 409, not a 500."""
    from pydantic import ValidationError

    from studies.spec import STORED, StudySpec

    try:
        return StudySpec.model_validate(study.spec, context={"max_trials": math.inf, STORED: True})
    except ValidationError as exc:
        raise SpecUnreadable(study.id, spec_errors(exc)) from None


def metric_kind(spec: Any, metric: str | None) -> tuple[str, MetricKind]:
    """Map a metric name (the workload's own, "loss", or None for the study's) to (name, column kind)."""
    name = metric or spec.metric_name
    workload_metric = vocab.workload_entry(spec.workload).metric_name
    if name not in (workload_metric, "loss"):
        raise InvalidInput("metric", f"unknown metric {name!r}; valid choices: {workload_metric}, loss")
    kind: MetricKind = "loss" if name == "loss" else "metric"
    return name, kind


def workload_metric(spec: Any) -> str:
    """The name of the workload's own metric (what a trial's ``*_metric`` columns hold), e.g. "error"."""
    return vocab.workload_entry(spec.workload).metric_name


def _check_split(split: str) -> None:
    problem = vocab.split_problem(split)
    if problem:
        raise InvalidInput("split", problem)


_FRAMES: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()
_FRAMES_KEPT = 2  # a 100,000-trial study's frame is ~10 MB: keep the last two only
_frames_lock = threading.Lock()
_frame_locks: dict[tuple[Any, ...], threading.Lock] = {}


def scores_frame(
    engine: Engine, study_id: str, kind: MetricKind, progress: tuple[Any, ...] | None = None
) -> pd.DataFrame:
    """The study's per-seed scores (callers have already looked the study up).

    With ``progress`` (``progress_key``), the frame is shared by the requests of one page (heatmaps
    and sensitivity arrive together): one read of the study's trials, not one per endpoint. Requests
    for the same frame wait for the first one's read; other studies' reads are not held up."""
    if progress is None:
        with session_scope(engine, read_only=True) as session:
            return dal.trial_scores_frame(session, study_id, metric=kind)
    key = (*progress, kind)
    with _frames_lock:
        if key in _FRAMES:
            return _FRAMES[key]
        lock = _frame_locks.setdefault(key, threading.Lock())
    with lock:
        with _frames_lock:
            if key in _FRAMES:
                return _FRAMES[key]
        with session_scope(engine, read_only=True) as session:
            frame = dal.trial_scores_frame(session, study_id, metric=kind)
        with _frames_lock:
            _FRAMES[key] = frame
            while len(_FRAMES) > _FRAMES_KEPT:
                _FRAMES.popitem(last=False)
            _frame_locks.pop(key, None)
        return frame


def study_axes(spec: Any, frame: pd.DataFrame, study: Study | None = None) -> Any:
    """The grid the figures are drawn on: the spec's, or a search's sampled points (``Conflict`` while
    it has sampled none, or when ``study`` ended before it sampled any)."""
    from studies.report import grid_axes
    from studies.spec import OptunaSearchSpec

    if isinstance(spec.search, OptunaSearchSpec) and frame.empty:
        if study is not None and study.status.is_finished:
            raise Conflict(f"the search ended ({study.status.label}) before it sampled any point: it has no grid")
        raise Conflict("the search has sampled no points yet: try again once trials have finished")
    return grid_axes(spec, frame)


def throttled_report(
    what: str, study: Study, params: tuple[Any, ...], compute: Any, *, engine: Engine | None = None
) -> Any:
    """A report of ``study``, recomputed at most every few seconds while it runs (``service.report_cache``);
    with ``engine``, a finished study's report is also stored in the database (``service.db.report_store``).
    The key ends with the metrics version: a report stored before an upgrade that changed the figures
    or the verdict is computed again, not served."""
    from studies.metrics import models

    from .db.report_store import SqlReportStore

    key = (what, study.id, *params, f"metrics-v{models.METRICS_VERSION}")
    running = not study.status.is_finished
    store = SqlReportStore(engine, study.id) if engine is not None else None
    return reports.get(key, progress=progress_key(study), running=running, compute=compute, store=store)


def progress_key(study: Study) -> tuple[Any, ...]:
    """What changes whenever a study's results do: a key part for every cache of its answers."""
    return (study.id, study.status.value, study.trials_done, study.trials_failed, study.attempts)


def grid(
    engine: Engine, study_id: str, *, arm: str | None, metric: str | None, split: str, stat: str
) -> dict[str, Any]:
    """One arm's grid of a statistic over seeds, with n, diverged, missing and each cell median's
    order-statistic interval at the level it really has (cached per study progress)."""
    return _grid(engine, study_id, arm=arm, metric=metric, split=split, stat=stat)[0]


def _grid(
    engine: Engine, study_id: str, *, arm: str | None, metric: str | None, split: str, stat: str
) -> tuple[dict[str, Any], Study]:
    """``grid`` and its study as it was read."""
    from studies.metrics import cell_table

    _check_split(split)
    if stat not in vocab.STATS:
        raise InvalidInput("stat", f"unknown stat {stat!r}; valid choices: {', '.join(vocab.STATS)}")
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
    spec = study_spec(study)
    arms = [a.name for a in spec.arms]
    arm = arm or arms[0]
    if arm not in arms:
        raise InvalidInput("arm", f"study {study_id} has no arm {arm!r}; valid choices: {', '.join(arms)}")
    name, kind = metric_kind(spec, metric)

    def compute() -> dict[str, Any]:
        with session_scope(engine, read_only=True) as session:
            frame = dal.trial_scores_frame(session, study_id, metric=kind, arm=arm)
        # A search's grid is the points sampled for any arm: an arm not reached yet has them all missing.
        sampled = scores_frame(engine, study_id, kind, progress_key(study)) if spec.is_search else frame
        axes = study_axes(spec, sampled, study)
        table = cell_table(frame, axes, arm, spec.y_fail(kind), split=split, empty=True)
        matrix = _stat_matrix(frame, axes, table, split, stat, spec.y_fail(kind))
        return _grid_body(study_id, arm, name, split, stat, axes, table, matrix)

    result: dict[str, Any] = throttled_report("grid", study, (arm, name, split, stat), compute)
    return result, study


def grid_json(engine: Engine, study_id: str, *, arm: str | None, metric: str | None, split: str, stat: str) -> bytes:
    """``grid`` as the API's JSON, serialised once per computed grid (as ``sensitivity_json``)."""
    from .schemas import GridPublic

    key = _grid_key(study_id, arm, metric, split, stat)
    return _answer(key, lambda: _grid(engine, study_id, arm=arm, metric=metric, split=split, stat=stat), GridPublic)


def settled_grid_json(
    engine: Engine, study_id: str, *, arm: str | None, metric: str | None, split: str, stat: str
) -> bytes | None:
    """``grid_json`` without I/O when it is a settled answer (``_answer``), else None."""
    return reports.answers.get(_grid_key(study_id, arm, metric, split, stat), lambda: progress_now(engine, study_id))


def _grid_key(study_id: str, arm: str | None, metric: str | None, split: str, stat: str) -> tuple[Any, ...]:
    return ("grid", study_id, arm, metric, split, stat)  # the request's own words: only answers are kept


def _stat_matrix(frame: pd.DataFrame, axes: Any, table: Any, split: str, stat: str, fail: float) -> Any:
    """The statistic per cell in raw units; diverged seeds count at y_fail, as in every sensitivity figure."""
    import numpy as np

    if stat == "mean":
        return table.raw_mean
    if stat == "median":
        return table.raw_median
    rows = frame.assign(score=vocab.impute_scores(frame[split], frame["status"], fail))
    values = rows.dropna(subset=["score"]).groupby(["lr", "beta_init"])["score"].agg(stat)
    return np.array([[values.get((lr, beta), np.nan) for beta in axes.betas] for lr in axes.lrs], dtype=float)


def _grid_body(
    study_id: str, arm: str, metric: str, split: str, stat: str, axes: Any, table: Any, matrix: Any
) -> dict[str, Any]:
    """The /grid response: raw (lower-is-better) values, counts and the seed intervals per cell.

    ``median_low``/``median_high`` bound each cell's median at ``median_level`` (per cell: the
    order-statistic interval's real coverage; null where a cell has fewer than two results)."""
    import numpy as np

    return {
        "study_id": study_id,
        "arm": arm,
        "metric": metric,
        "split": split,
        "stat": stat,
        "lrs": list(axes.lrs),
        "betas": list(axes.betas),
        "values": [[_clean(v) for v in row] for row in np.asarray(matrix)],
        "n": np.asarray(table.n_results).astype(int).tolist(),
        "diverged": np.asarray(table.n_diverged).astype(int).tolist(),
        "missing": np.asarray(table.n_missing).astype(int).tolist(),
        "median_low": [[_clean(v) for v in row] for row in np.asarray(table.raw_interval_low)],
        "median_high": [[_clean(v) for v in row] for row in np.asarray(table.raw_interval_high)],
        "median_level": [
            [
                _clean(level) if status in ("ok", "reduced_level") else None
                for level, status in zip(row, states, strict=True)
            ]
            for row, states in zip(np.asarray(table.interval_level), table.interval_status, strict=True)
        ],
    }


def _clean(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def sensitivity(engine: Engine, study_id: str, *, metric: str | None, split: str, target: float | None = None) -> Any:
    """Each pair's verdict and the figures per arm and per pair (a ``SensitivityPublic``; cached per
    study progress).

    ``target`` (raw units) overrides the spec's ``verdict.target``; without either the report takes
    the default target rule. The primary figure, difference of interest and power are the spec's
    ``verdict`` (``studies.metrics.VerdictSpec`` defaults without one)."""
    from .schemas import SensitivityPublic

    return SensitivityPublic.model_validate(_sensitivity_body(engine, study_id, metric, split, target)[0])


def sensitivity_json(
    engine: Engine, study_id: str, *, metric: str | None, split: str, target: float | None = None
) -> bytes:
    """``sensitivity`` as the API's JSON, serialised once per computed report: the route answers
    these bytes, where validating and serialising the report again on every request was most of a
    cached request's CPU (20 readers of a running study: bench/api_latency.py's landing part)."""
    from .schemas import SensitivityPublic

    key = _sensitivity_key(study_id, metric, split, target)
    return _answer(key, lambda: _sensitivity_body(engine, study_id, metric, split, target), SensitivityPublic)


def settled_sensitivity_json(
    engine: Engine, study_id: str, *, metric: str | None, split: str, target: float | None
) -> bytes | None:
    """``sensitivity_json`` without I/O when it is a settled answer (``_answer``), else None."""
    key = _sensitivity_key(study_id, metric, split, target)
    return reports.answers.get(key, lambda: progress_now(engine, study_id))


def _sensitivity_key(study_id: str, metric: str | None, split: str, target: float | None) -> tuple[Any, ...]:
    return ("sensitivity", study_id, metric, split, target)


def _answer(key: tuple[Any, ...], build: Any, model: Any) -> bytes:
    """``build()``'s body (with its study as read) as ``model``'s JSON; a finished study's is kept as
    a settled answer (``service.report_cache.SettledAnswers``), which the routes serve from memory
    on the event loop, with no query and no thread hop, while the study's progress stays as it was
    (checked in the background every few seconds): a cached ``/grid`` cost ~2.8 ms of server CPU,
    ~0.8 ms so (bench/api_latency.py)."""
    body, study = build()
    data = _json_once(body, model)
    if study.status.is_finished:
        reports.answers.put(key, progress_key(study), data)
    return data


def progress_now(engine: Engine, study_id: str) -> tuple[Any, ...] | None:
    """The study's ``progress_key`` as the database has it now; None when it is gone."""
    try:
        with session_scope(engine, read_only=True) as session:
            return progress_key(dal.get_study(session, study_id))
    except NotFound:
        return None


def _json_once(body: dict[str, Any], model: Any) -> bytes:
    """``body`` (a cached report: the same object while its cache holds it) as ``model``'s JSON,
    validated and serialised once per object."""
    with _JSON_LOCK:
        found = _JSON_OF.get(id(body))
        if found is not None and found[0] is body:
            _JSON_OF.move_to_end(id(body))
            return found[1]
    data: bytes = model.model_validate(body).model_dump_json().encode()
    with _JSON_LOCK:
        _JSON_OF[id(body)] = (body, data)  # the body is kept with its bytes, so its id is not reused
        while len(_JSON_OF) > _JSON_KEPT:
            _JSON_OF.popitem(last=False)
    return data


_JSON_KEPT = 256
_JSON_OF: OrderedDict[int, tuple[dict[str, Any], bytes]] = OrderedDict()
_JSON_LOCK = threading.Lock()


def _sensitivity_body(
    engine: Engine, study_id: str, metric: str | None, split: str, target: float | None
) -> tuple[dict[str, Any], Study]:
    """The cached report as JSON-ready data (the same object while the cache holds it), and its
    study as it was read."""
    from studies.metrics import sensitivity_report
    from studies.report import verdict_spec

    from .schemas import SensitivityPublic, SensitivityStudy

    _check_split(split)
    if target is not None and (not math.isfinite(target) or target <= 0):
        raise InvalidInput("target", f"must be a finite number > 0 (got {target})")
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
    spec = study_spec(study)
    name, kind = metric_kind(spec, metric)
    choices = verdict_spec(spec, name)
    fail = spec.y_fail(kind)
    if target is not None and target >= fail:
        raise InvalidInput("target", f"must be below the failure score {fail:g} of {name} (got {target})")

    def compute() -> dict[str, Any]:  # JSON: what the report store keeps across restarts
        frame = scores_frame(engine, study_id, kind, progress_key(study))
        axes = study_axes(spec, frame, study)
        report = sensitivity_report(
            frame,
            axes,
            fail,
            target=target,
            verdict=choices,
            split=split,
            metric=name,
            sampled=spec.is_search,  # a search's points: no verdict (the study page says so)
        )
        about = SensitivityStudy(
            id=study_id, metric=name, split=split, status=study.status.value, protocol=spec.protocol_note
        )
        return SensitivityPublic(**dict(report), study=about).model_dump(mode="json")

    body: dict[str, Any] = throttled_report("sensitivity", study, (name, split, target), compute, engine=engine)
    return body, study


def replication(engine: Engine, study_id: str, *, paper: str) -> Any:
    """The study beside one panel of the paper's Fig. 2 (``studies.replicate``, docs/replication.md)."""
    from studies.replicate import StudyInfo, replication_report

    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
        frame = dal.trials_export_frame(session, study_id)
        info = StudyInfo.from_spec(study.id, study.status.value, study.spec)
    try:
        return replication_report(frame, info, paper=paper)
    except ValueError as exc:  # the study lacks the panel's arms
        raise InvalidInput("paper", str(exc)) from exc


def heatmap(
    engine: Engine, study_id: str, *, metric: str | None, split: str, arms: list[str] | None, fmt: str
) -> bytes:
    """The study's heatmaps (arms side by side, one colour scale, a divergence map) as PNG or SVG."""
    from studies.heatmaps import render_heatmap

    _check_split(split)
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
    spec = study_spec(study)
    known = [a.name for a in spec.arms]
    for arm in arms or []:
        if arm not in known:
            raise InvalidInput("arms", f"study {study_id} has no arm {arm!r}; valid choices: {', '.join(known)}")
    name, kind = metric_kind(spec, metric)

    def compute() -> bytes:
        frame = scores_frame(engine, study_id, kind)
        return bytes(
            render_heatmap(
                frame,
                study_axes(spec, frame, study),
                spec.y_fail(kind),
                arms=arms,
                split=split,
                metric_label=name,
                fmt=fmt,
            )
        )

    data: bytes = throttled_report("heatmap", study, (name, split, tuple(arms or ()), fmt), compute)
    return data


def export(engine: Engine, study_id: str, fmt: str) -> bytes:
    """Every trial of a study as CSV or Parquet (one row per trial, raw scores)."""
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
        frame = dal.trials_export_frame(session, study_id)
        about = export_metadata(study)
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    schema_metadata = dict(table.schema.metadata or {})
    schema_metadata[EXPORT_METADATA_KEY] = json.dumps(about).encode()
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(schema_metadata), buffer)
    return buffer.getvalue()


EXPORT_METADATA_KEY = b"demonlab"


def export_metadata(study: Any) -> dict[str, Any]:
    """What the Parquet export carries in its schema metadata (key ``demonlab``): the study, its spec and
    the environment it ran on (``pyarrow.parquet.read_schema(path).metadata[b"demonlab"]``)."""
    return {
        "study_id": study.id,
        "name": study.name,
        "workload": study.workload,
        "status": study.status.value,
        "spec": study.spec,
        "environment": study.environment,
    }


def _comparable(spec: Any, report: Any) -> dict[str, Any]:
    """What studies must share for one arm's figures to sit in one group: the problem (workload and
    its parameters), the training (epochs, batch size, weight decay, the protocol), the grid itself
    (every lr, not only its ends), the seeds, the metric and the target rule. Two synthetic studies
    of other class counts, batch sizes and weight decays were pooled as one."""
    return {
        "workload": spec.workload,
        # a parameter written at its default value is the default: {} and {"classes": 3} are one problem
        "workload_params": vocab.workload_entry(spec.workload)
        .params(spec.workload_params)
        .model_dump(mode="json", exclude_defaults=True),
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "weight_decay": spec.weight_decay,
        "full_train": spec.full_train,
        "lr_range": [min(spec.lr_values, default=None), max(spec.lr_values, default=None)],
        "lrs": list(spec.lr_values),
        "betas": list(spec.beta_init),
        "seeds": list(spec.seed_values),
        "metric": spec.metric_name,
        "split": "test",
        # a default target differs per study by design: studies group by the rule
        "target": report.target.raw_value if report.target.chosen_on == "given" else "default",
    }


def robustness(engine: Engine, *, workload: str, arm: str | None, epochs: int | None) -> Any:
    """How robust is each arm on ``workload``: per-arm figures over finished studies (``completed``,
    and ``completed_with_failures``, whose failed trials count as missing), study by study with
    their intervals (a ``RobustnessPublic``). Grid studies only: a search's sampled points have no
    grid figures (its report gives no verdict either). A study whose stored spec this version cannot
    read is left out, and named in ``query.unreadable``."""
    from studies.metrics import aggregate_robustness

    try:
        vocab.workload_entry(workload)
    except vocab.WorkloadError as exc:  # "digits": did you mean digits_cnn or digits_mlp?
        raise InvalidInput("workload", str(exc)) from None
    from .schemas import RobustnessPublic, RobustnessQuery

    with session_scope(engine, read_only=True) as session:
        studies = [
            study
            for status in StudyStatus
            if status.has_results
            for study in dal.list_studies(session, status=status, workload=workload, offset=0, limit=10_000)[0]
        ]
    entries = []
    counted = set()
    unreadable = []
    for study in studies:
        try:
            spec = study_spec(study)
        except SpecUnreadable as exc:  # one such study must not fail the whole workload's answer
            log.warning("robustness on %s leaves out %s", workload, exc)
            unreadable.append(study.id)
            continue
        if spec.is_search or (epochs is not None and spec.epochs != epochs):
            continue
        if arm is not None and arm not in [a.name for a in spec.arms]:
            continue
        report = sensitivity(engine, study.id, metric=None, split="test")
        counted.add(study.id)
        for declared in spec.arms:  # an arm groups with the same arm, parameters included, of a study like this
            if declared.name in report.arms and (arm is None or declared.name == arm):
                key = _comparable(spec, report) | {"arm_params": declared.params}
                entries.append({"study_id": study.id, "key": key, "arms": {declared.name: report.arms[declared.name]}})
    result = aggregate_robustness(entries)
    query = RobustnessQuery(workload=workload, arm=arm, epochs=epochs, studies=len(counted), unreadable=unreadable)
    return RobustnessPublic(**dict(result), query=query)
