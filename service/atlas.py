"""The atlas in the service: a named set of studies, submitted and read like any client's.

An atlas has no table of its own. It is identified by its key, ``{suite}-s{seeds}`` (with
``-w{mask}`` when it covers a subset of the suite's workloads, a bit per workload in suite order),
and its studies are found by their idempotency keys, ``atlas:{cell key}:seeds:{seeds}``, where the
cell key hashes the study spec without its seeds and name (``studies.atlas.suites``). So:

- **Resume.** Submitting an atlas again submits nothing that exists: its studies are queued, running
  (a study whose driver died is relaunched by the scheduler and resumes its packs) or finished.
- **More seeds, more workloads.** A cell needs seeds 0..N−1; the studies already holding some of
  them (of any atlas with the same cell) are reused and one new study runs the missing seeds. A
  cell's figures then come from the union of its studies' trials on exactly those seeds.
- A failed or cancelled study is not reused; its seeds run again in a new study (``:r1``, ``:r2``…).

Each finished cell's verdicts come from the sensitivity report (``service.analysis.sensitivity``,
the study page's own, for a cell of one study) and the answer across workloads from
``studies.atlas.summary``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from sqlalchemy.engine import Engine

from studies.atlas.models import AtlasResult, CellResult, PairVerdict, StudyRecord
from studies.atlas.suites import SUITES, AtlasCell, cell_spec, seed_label, suite_cells, suite_labels

from . import analysis, submission
from .db import dal
from .db.engine import session_scope
from .db.models import Study, StudyStatus
from .errors import InvalidInput, NotFound, SpecUnreadable
from .settings import Settings

KEY_PREFIX = "atlas:"
USABLE = (StudyStatus.QUEUED, StudyStatus.RUNNING, StudyStatus.COMPLETED, StudyStatus.COMPLETED_WITH_FAILURES)
FINISHED = (StudyStatus.COMPLETED, StudyStatus.COMPLETED_WITH_FAILURES)
MAX_SEEDS = 1000


@dataclass(frozen=True)
class AtlasId:
    """Which atlas: a suite, a seed count and the suite's workloads it covers (labels, suite order)."""

    suite: str
    seeds: int
    labels: tuple[str, ...]

    def key(self) -> str:
        """``cpu-s8``, or ``cpu-s8-w0f`` for a subset of the suite's workloads."""
        every = suite_labels(self.suite)
        if list(self.labels) == every:
            return f"{self.suite}-s{self.seeds}"
        mask = sum(1 << every.index(label) for label in self.labels)
        return f"{self.suite}-s{self.seeds}-w{mask:x}"

    def command(self) -> str:
        """The command that makes (or resumes) this atlas."""
        every = suite_labels(self.suite)
        subset = "" if list(self.labels) == every else " --workloads " + " ".join(f"'{x}'" for x in self.labels)
        return f"demonlab atlas --suite {self.suite} --seeds {self.seeds}{subset}"


def atlas_id(suite: str, seeds: int, labels: Sequence[str] | None = None) -> AtlasId:
    """A validated ``AtlasId`` (``InvalidInput`` naming the field otherwise)."""
    if suite not in SUITES:
        raise InvalidInput("suite", f"unknown suite {suite!r}; valid choices: {', '.join(SUITES)}")
    if not 2 <= seeds <= MAX_SEEDS:
        raise InvalidInput("seeds", f"must be between 2 and {MAX_SEEDS} (got {seeds})")
    every = suite_labels(suite)
    if labels is not None and not list(labels):  # ``--workloads`` with nothing after it: not "all of them"
        raise InvalidInput("workloads", "an empty list names no workload; leave it out for the whole suite")
    chosen = every if labels is None else list(labels)
    unknown = [label for label in chosen if label not in every]
    if unknown:
        raise InvalidInput("workloads", f"not in suite {suite!r}: {unknown}; valid choices: {', '.join(every)}")
    return AtlasId(suite, seeds, tuple(label for label in every if label in chosen))


def parse_key(key: str) -> AtlasId:
    """The ``AtlasId`` of ``key`` (``NotFound`` for a key no atlas can have)."""
    parts = key.split("-")
    try:
        suite, seeds_part = parts[0], parts[1]
        if not seeds_part.startswith("s") or len(parts) > 3:
            raise ValueError(key)
        seeds = int(seeds_part[1:])
        every = suite_labels(suite)
        labels = every
        if len(parts) == 3:
            if not parts[2].startswith("w"):
                raise ValueError(key)
            mask = int(parts[2][1:], 16)
            labels = [label for n, label in enumerate(every) if mask >> n & 1]
            if not labels or mask >> len(every):
                raise ValueError(key)
        found = atlas_id(suite, seeds, labels)
    except (ValueError, IndexError, InvalidInput):
        raise NotFound("atlas", key) from None
    if found.key() != key:
        raise NotFound("atlas", key)
    return found


@dataclass
class CellPlan:
    """A cell, the seeds it needs, the existing studies that hold them, and what is still missing."""

    cell: AtlasCell
    seeds: list[int]
    studies: list[Study]
    missing: list[int]
    retries: int
    failed: list[Study]

    def missing_key(self) -> str:
        suffix = f":r{self.retries}" if self.retries else ""
        return f"{KEY_PREFIX}{self.cell.key()}:seeds:{seed_label(self.missing)}{suffix}"


def _study_seeds(study: Study) -> set[int]:
    seeds = study.spec.get("seeds", 1)
    return set(range(seeds)) if isinstance(seeds, int) else {int(s) for s in seeds}


def _seed_part(study: Study) -> str:
    """The seeds part of an atlas study's idempotency key, without its retry suffix."""
    return (study.idempotency_key or "").split(":seeds:")[-1].split(":r")[0]


def _next_retry(existing: Sequence[Study], seeds: str) -> int:
    """The retry number of the next study for ``seeds``: one past the highest among the studies that
    exist for them (0, no suffix, when none does). Counting them instead reused a retry's key once
    an earlier study was deleted, and the submission replayed that (cancelled) study for ever."""
    numbers = [_retry_number(s) for s in existing if _seed_part(s) == seeds]
    return max(numbers) + 1 if numbers else 0


def _retry_number(study: Study) -> int:
    """The ``:rN`` suffix of an atlas study's idempotency key (0 for none)."""
    tail = (study.idempotency_key or "").split(":seeds:")[-1]
    return int(tail.split(":r")[1]) if ":r" in tail else 0


def plan_cells(engine: Engine, aid: AtlasId) -> list[CellPlan]:
    """Every cell of the atlas with the existing studies that cover its seeds (oldest first)."""
    plans = []
    with session_scope(engine, read_only=True) as session:
        for cell in suite_cells(aid.suite, list(aid.labels)):
            needed = list(range(aid.seeds))
            existing = dal.studies_by_key_prefix(session, f"{KEY_PREFIX}{cell.key()}:")
            remaining, chosen = set(needed), []
            for study in existing:
                if study.status in USABLE and _study_seeds(study) & remaining:
                    chosen.append(study)
                    remaining -= _study_seeds(study)
            missing = sorted(remaining)
            retries = _next_retry(existing, seed_label(missing)) if missing else 0
            failed = [s for s in existing if s.status not in USABLE and _study_seeds(s) & remaining]
            plans.append(CellPlan(cell, needed, chosen, missing, retries, failed))
    return plans


def submit_atlas(engine: Engine, settings: Settings, aid: AtlasId) -> AtlasResult:
    """Submit every missing study of the atlas (nothing that exists is submitted again); its state."""
    plans = plan_cells(engine, aid)
    todo = [plan for plan in plans if plan.missing]
    for plan in todo:
        _check_seed_count(plan, aid, settings.max_trials_per_study)
    specs = [(plan, submission.validate_spec(cell_spec(plan.cell, plan.missing), settings)) for plan in todo]
    for _, spec in specs:  # every study checked before any is stored: all or nothing
        submission.check_runnable(spec, settings)
    for plan, spec in specs:
        with session_scope(engine) as session:
            submission.store_study(session, spec, launcher=settings.launcher, idempotency_key=plan.missing_key())
    return atlas_result(engine, aid, with_verdicts=False)


def _check_seed_count(plan: CellPlan, aid: AtlasId, limit: int) -> None:
    """Refuse, naming ``seeds``, new seeds whose study would pass the per-study trial limit (the spec's
    own message names fields an atlas request cannot set)."""
    from studies.spec import StudySpec

    per_seed = StudySpec.model_validate(cell_spec(plan.cell, [0]), context={"max_trials": math.inf}).trial_count
    if per_seed * len(plan.missing) > limit:
        most = limit // per_seed
        raise InvalidInput(
            "seeds",
            f"{aid.seeds} seeds would submit {len(plan.missing)} new seeds of {plan.cell.label} "
            f"({per_seed} trials a seed: {per_seed * len(plan.missing):,} trials), more than the limit of "
            f"{limit:,} trials a study: add at most {most} seeds at a time (up to "
            f"{aid.seeds - len(plan.missing) + most} seeds now)",
        )


def atlas_result(engine: Engine, aid: AtlasId, *, with_verdicts: bool = True) -> AtlasResult:
    """Where the atlas stands and, for its finished cells, the verdicts and the answer across workloads."""
    from studies.atlas.pooling import METHOD
    from studies.atlas.summary import comparisons

    plans = plan_cells(engine, aid)
    if not any(plan.studies or plan.failed for plan in plans):  # an atlas whose studies all ended badly is one
        raise NotFound("atlas", aid.key())
    cells = [_cell_result(engine, plan, with_verdicts) for plan in plans]
    statuses = {cell.status for cell in cells}
    status: Literal["missing", "running", "done", "failed"] = "running"
    if statuses == {"done"}:
        status = "done"
    elif "failed" in statuses:
        status = "failed"
    elif "missing" in statuses:
        status = "missing"
    chosen = [study for plan in plans for study in plan.studies]
    summaries = comparisons(cells)
    return AtlasResult(
        key=aid.key(),
        suite=aid.suite,
        seeds=aid.seeds,
        labels=list(aid.labels),
        status=status,
        command=aid.command(),
        progress={
            "studies": len(cells),
            "studies_done": sum(1 for c in cells if c.status == "done"),
            "trials_total": sum(s.trials_total for s in chosen),
            "trials_done": sum(s.trials_done for s in chosen),
        },
        comparisons=summaries,
        cells=cells,
        claim_fails=[f"{label}: {s.baseline}" for s in summaries for label in s.fails],
        wall_seconds=_wall_seconds(chosen),
        trials=sum(s.trials_total for s in chosen),
        pooling=METHOD,
        notes=[cell.cut for cell in cells if cell.cut],
    )


def _wall_seconds(studies: Sequence[Study]) -> float | None:
    starts = [s.started_at for s in studies if s.started_at is not None]
    ends = [s.finished_at for s in studies if s.finished_at is not None]
    if not starts or len(ends) < len(studies):
        return None
    return (max(ends) - min(starts)) / dt.timedelta(seconds=1)


def _cell_status(plan: CellPlan) -> str:
    if plan.missing:  # never submitted, or its study failed or was cancelled (submit again to retry)
        return "failed" if plan.failed else "missing"
    if all(s.status in FINISHED for s in plan.studies):
        return "done"
    return "queued" if all(s.status is StudyStatus.QUEUED for s in plan.studies) else "running"


def _cell_result(engine: Engine, plan: CellPlan, with_verdicts: bool) -> CellResult:
    from studies.atlas.suites import CPU_WORKLOADS, AtlasWorkload
    from studies.atlas.verdicts import pair_verdicts
    from studies.spec import StudySpec

    cell = plan.cell
    # The cell's seeds may span several studies, each within the per-study trial limit (more seeds
    # submit only the missing ones), so the limit does not apply to the cell as a whole.
    spec = StudySpec.model_validate(cell_spec(cell, plan.seeds), context={"max_trials": math.inf})
    status = _cell_status(plan)
    verdicts: list[PairVerdict] = []
    error = None
    if with_verdicts and status == "done":
        try:
            verdicts = pair_verdicts(cell_report(engine, plan))
        except Exception as exc:  # a cell whose report fails is reported, not the whole atlas lost
            error, status = f"{type(exc).__name__}: {exc}", "failed"
    if status == "failed" and error is None:
        ended = ", ".join(f"{s.id} {s.status.value}" for s in plan.failed)
        error = f"seeds {seed_label(plan.missing)} have no usable study ({ended}): submit the atlas again to retry them"
    workload: AtlasWorkload | None = next((w for w in CPU_WORKLOADS if w.label == cell.label), None)
    return CellResult(
        label=cell.label,
        family=cell.family,
        workload=spec.workload,
        workload_params=dict(spec.workload_params),
        arms=cell.arms,
        epochs=spec.epochs,
        lrs=spec.lr_values,
        betas=list(spec.beta_init),
        seeds=plan.seeds,
        status=status,  # type: ignore[arg-type]
        studies=[_record(s) for s in [*plan.studies, *plan.failed]],  # the failed ones too: what to look at
        verdicts=verdicts,
        cut=workload.cut if workload is not None and cell.suite == "cpu" else "",
        error=error,
    )


def _record(study: Study) -> StudyRecord:
    return StudyRecord(
        id=study.id,
        name=study.name,
        status=study.status.value,
        seeds=sorted(_study_seeds(study)),
        trials_total=int(study.trials_total or 0),
        trials_done=int(study.trials_done or 0),
        spec=dict(study.spec),
        environment=study.environment,
    )


def cell_report(engine: Engine, plan: CellPlan) -> dict[str, Any]:
    """The cell's sensitivity report: its study's own (cached, as the study page shows it) when one
    study holds exactly its seeds, else computed the same way on the union of its studies' trials."""
    if len(plan.studies) == 1 and _study_seeds(plan.studies[0]) == set(plan.seeds):
        public = analysis.sensitivity(engine, plan.studies[0].id, metric=None, split="test")
        study_report: dict[str, Any] = public.model_dump(mode="json")
        return study_report
    report: dict[str, Any] = analysis.cached(("union", _state([plan])), lambda: _union_report(engine, plan))
    return report


def _union_report(engine: Engine, plan: CellPlan) -> dict[str, Any]:
    from studies.metrics import sensitivity_report
    from studies.report import verdict_spec

    spec = analysis.study_spec(plan.studies[0])
    name, kind = analysis.metric_kind(spec, None)
    frame = cell_frame(engine, plan, kind)
    fail, choices = spec.y_fail(kind), verdict_spec(spec, name)
    report = sensitivity_report(frame, _axes(spec, plan.seeds), fail, verdict=choices, split="test", metric=name)
    union: dict[str, Any] = report.model_dump(mode="json")
    return union


def cell_frame(engine: Engine, plan: CellPlan, kind: str = "metric") -> pd.DataFrame:
    """The per-seed scores of the cell: its studies' trials on the cell's seeds only."""
    frames = []
    with session_scope(engine, read_only=True) as session:
        for study in plan.studies:
            frames.append(dal.trial_scores_frame(session, study.id, metric=kind))  # type: ignore[arg-type]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame[frame["seed"].isin(plan.seeds)].reset_index(drop=True) if not frame.empty else frame


def _axes(spec: Any, seeds: list[int]) -> Any:
    from studies.metrics import GridAxes

    return GridAxes(lrs=tuple(spec.lr_values), betas=tuple(spec.beta_init), seeds=tuple(seeds))


# ------------------------------------------------------------------------------------- figures, report


def _state(plans: Sequence[CellPlan]) -> tuple[Any, ...]:
    return tuple(
        (p.cell.key(), tuple(p.seeds), tuple((s.id, s.status.value, s.trials_done, s.attempts) for s in p.studies))
        for p in plans
    )


def atlas_figure(engine: Engine, aid: AtlasId, name: str, fmt: str) -> bytes:
    """One figure of the atlas (``studies.atlas.report.figure_names``) as PNG or SVG bytes."""
    from studies.atlas.figures import FORMATS, forest_plot, overview_plot
    from studies.atlas.report import forest_name

    if fmt not in FORMATS:
        raise InvalidInput("fmt", f"unknown format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    if name.startswith("heatmap-"):
        return _heatmap(engine, aid, name, fmt)
    result = atlas_result(engine, aid)
    if name == "overview":
        return bytes(overview_plot(result.comparisons, fmt))
    for summary in result.comparisons:
        if forest_name(summary) == name:
            return bytes(forest_plot(summary, fmt))
    raise NotFound("figure", name)


def _heatmap(engine: Engine, aid: AtlasId, name: str, fmt: str) -> bytes:
    """A workload's heatmaps for one family, on the colour scale shared by all of that workload's arms."""
    from studies.heatmaps import render_heatmap
    from studies.metrics import cell_tables

    parts = name.split("-")
    if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(aid.labels):
        raise NotFound("figure", name)
    label = aid.labels[int(parts[1])]
    plans = [p for p in plan_cells(engine, aid) if p.cell.label == label and p.studies]
    plan = next((p for p in plans if p.cell.family == parts[2]), None)
    if plan is None:
        raise NotFound("figure", name)

    def compute() -> bytes:
        spec = analysis.study_spec(plan.studies[0])  # this cell's own: unreadable, the figure is a 409
        fail = spec.y_fail("metric")
        frames = {}
        for p in plans:  # the workload's other cells set the shared colour scale: one unreadable is left out
            try:
                frames[p.cell.family] = (cell_frame(engine, p), _axes(analysis.study_spec(p.studies[0]), p.seeds))
            except SpecUnreadable:
                continue
        medians = [
            table.raw_median
            for frame, axes in frames.values()
            if not frame.empty
            for table in cell_tables(frame, axes, fail, None, split="test").values()
        ]
        finite = [float(v) for m in medians for v in m.ravel() if v == v]
        value_range = (min(finite), max(finite)) if finite else None
        frame, axes = frames[plan.cell.family]
        if frame.empty:
            raise NotFound("figure", f"{name} (no results yet)")
        return bytes(
            render_heatmap(
                frame, axes, fail, split="test", metric_label=spec.metric_name, fmt=fmt, value_range=value_range
            )
        )

    data: bytes = analysis.cached(("heatmap", name, fmt, _state(plans)), compute)
    return data


def atlas_report_html(engine: Engine, aid: AtlasId, *, exports: str | None = None) -> str:
    """The self-contained report (every figure inlined); ``exports``: a folder (relative URL) where
    the PNG/SVG files lie beside it, linked under each figure."""
    from studies.atlas.report import data_uri, render_report

    result = atlas_result(engine, aid)

    def figure(name: str, fmt: str) -> str:
        try:
            return data_uri(atlas_figure(engine, aid, name, fmt), fmt)
        except (NotFound, SpecUnreadable):  # no results yet; a study this version cannot read (its cell says so)
            return ""

    export = (lambda name, fmt: f"{exports}/{name}.{fmt}") if exports else None
    return render_report(result, figure, export)
