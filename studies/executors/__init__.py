"""Executors: run a study's trials and hand each result to a sink callback at once.

Every executor implements ``Executor`` (``base``): ``run(work, sink) -> RunSummary``, built for a
study by its ``for_study(spec, context)``:

- ``InProcessExecutor``: trials one after another in this process (the reference; no Ray).
- ``PackedExecutor``: packs of trials trained as one batched model, in this process or one forked
  process per core.
- ``RayTuneExecutor``: a Ray Tune grid with retries and resources per trial; each Tune trial is a
  trial or a run of trials.
- ``RayPackExecutor``: a packed study on Ray, each pack one Ray task with the spec's resources,
  its members' results streamed back as they finish (no Ray Tune: ``ray_packs``).
- ``OptunaExecutor``: Optuna search through Ray Tune's ``OptunaSearch``.

``execute_study`` picks one from ``EXECUTORS`` by where the study runs (``inprocess`` or ``ray``)
and how (``execution_mode``: ``packed``, ``per_trial`` or ``search``); the same trials give the same
results, bit for bit, whichever executor runs them. A spec's ``execution.mode: auto`` (the default)
packs wherever the workload packs; a workload that does not pack runs per trial, a search per trial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from ..results import TrialKey
from ..spec import StudySpec, expand_trials
from ..training import TrialPlan
from ..vocab import make_sampler
from .base import Context, Executor, RunSummary, Sink, StartHook, StopCheck, Work, never_stop, objective_value
from .inprocess import InProcessExecutor
from .modes import Mode, execution_mode
from .packed import PackedExecutor, resolve_pack_size
from .ray_session import InfeasibleResources, check_feasible, ensure_ray, ray_temp_dir, shutdown_ray, workers_for

Placement = Literal["inprocess", "ray"]
ExecutorName = Literal["auto", "inprocess", "ray"]
Factory = Callable[[StudySpec, Context], Executor]
_LAZY = {"OptunaExecutor": "ray_tune", "RayTuneExecutor": "ray_tune", "RayPackExecutor": "ray_packs"}


def __getattr__(name: str) -> Any:
    """Ray and Ray Tune are imported on first use only: ``import studies.executors`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _ray_tune(name: str) -> Factory:
    """The ``for_study`` of a Ray Tune executor, importing Ray Tune when a study asks for it."""

    def build(spec: StudySpec, context: Context) -> Executor:
        from . import ray_tune

        executor: Executor = getattr(ray_tune, name).for_study(spec, context)
        return executor

    return build


def _ray_packs(spec: StudySpec, context: Context) -> Executor:
    """The ``for_study`` of the Ray pack executor (Ray is imported when it runs, not here)."""
    from .ray_packs import RayPackExecutor

    return RayPackExecutor.for_study(spec, context)


EXECUTORS: dict[tuple[Placement, Mode], Factory] = {
    ("inprocess", "per_trial"): InProcessExecutor.for_study,
    ("inprocess", "packed"): PackedExecutor.for_study,
    ("ray", "per_trial"): _ray_tune("RayTuneExecutor"),
    ("ray", "packed"): _ray_packs,
    ("ray", "search"): _ray_tune("OptunaExecutor"),
}
"""The executor of each (placement, mode)."""

REFUSED: dict[tuple[Placement, Mode], str] = {
    ("inprocess", "search"): "--executor inprocess runs grid studies only: search (Optuna) studies run "
    "through Ray Tune's OptunaSearch; use --executor ray",
}
"""Why a (placement, mode) has no executor (a ``ValueError``, rather than running it elsewhere)."""

DEFAULT_PLACEMENT: dict[Mode, Placement] = {"packed": "inprocess", "per_trial": "ray", "search": "ray"}
"""``auto``: packs in this process (one forked pack per core: no Ray to start); per-trial grids on
Ray (every core, each trial its own task); searches through Ray Tune's OptunaSearch."""


def placement(spec: StudySpec, executor: ExecutorName) -> Placement:
    """Where the study runs: ``executor`` itself, or for ``auto`` the mode's ``DEFAULT_PLACEMENT``."""
    return DEFAULT_PLACEMENT[execution_mode(spec)] if executor == "auto" else executor


def check_executor(spec: StudySpec, executor: ExecutorName) -> None:
    """Refuse (``ValueError``) what ``executor`` cannot run rather than running it elsewhere."""
    choice = (placement(spec, executor), execution_mode(spec))
    if choice in REFUSED:
        raise ValueError(REFUSED[choice])


def executor_for(spec: StudySpec, executor: ExecutorName, context: Context) -> Executor:
    """The executor that runs ``spec`` at ``executor``'s placement (``EXECUTORS``)."""
    check_executor(spec, executor)
    return EXECUTORS[(placement(spec, executor), execution_mode(spec))](spec, context)


def execute_study(
    spec: StudySpec,
    sink: Sink,
    *,
    executor: ExecutorName = "auto",
    data_dir: str | Path = ".work",
    dataset_dir: str | Path | None = None,
    keys: Sequence[TrialKey] | None = None,
    should_stop: StopCheck = never_stop,
    study_id: str = "study",
    optuna_storage_url: str | None = None,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    on_trial_start: StartHook | None = None,
    device: str | None = None,
    while_waiting: Callable[[], None] | None = None,
) -> RunSummary:
    """Run a study's trials (``keys``: the pending ones of a grid; default: all) and sink every result.

    ``data_dir`` holds Ray's temp dir, Tune's storage and pack checkpoints; ``dataset_dir`` the
    workloads' data (default ``data_dir/datasets``). A search (Optuna) proposes its own trials.
    """
    context = Context(Path(data_dir), study_id, ray_address, num_cpus, optuna_storage_url, device)
    chosen = executor_for(spec, executor, context)
    plan = TrialPlan.from_spec(spec, dataset_dir or Path(data_dir) / "datasets")
    todo = () if spec.is_search else list(keys) if keys is not None else expand_trials(spec)
    return chosen.run(Work(plan, todo, should_stop, on_trial_start, while_waiting), sink)


__all__ = [
    "DEFAULT_PLACEMENT",
    "EXECUTORS",
    "Context",
    "Executor",
    "ExecutorName",
    "InProcessExecutor",
    "InfeasibleResources",
    "OptunaExecutor",
    "PackedExecutor",
    "RayPackExecutor",
    "RayTuneExecutor",
    "RunSummary",
    "Sink",
    "StopCheck",
    "Work",
    "check_executor",
    "check_feasible",
    "ensure_ray",
    "execute_study",
    "execution_mode",
    "executor_for",
    "make_sampler",
    "objective_value",
    "placement",
    "ray_temp_dir",
    "resolve_pack_size",
    "shutdown_ray",
    "workers_for",
]
