"""Executors: run a study's trials and hand each result to a sink callback at once.

- ``InProcessExecutor``: sequential, in this process (the reference; no Ray).
- ``RayTuneExecutor``: a Ray Tune grid, with retries, resources per trial and trial packs.
- ``OptunaExecutor``: Optuna search through Ray Tune's ``OptunaSearch``.
- ``PackedExecutor``: packs of trials trained as one batched model (``execution.mode: packed``);
  on Ray a pack is one Tune trial of ``RayTuneExecutor(packed=True)``.

``execute_study`` picks the right one for a spec; the same trials give the same results whichever
executor runs them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from ..packed.checkpoint import checkpoint_dir
from ..results import TrialKey
from ..runner import TrialPlan
from ..spec import OptunaSearchSpec, StudySpec, expand_trials
from ..vocab import make_sampler, y_fail
from .base import RunSummary, Sink, StopCheck, never_stop, objective_value
from .inprocess import InProcessExecutor
from .packed import PackedExecutor, resolve_pack_size
from .ray_session import InfeasibleResources, check_feasible, ensure_ray, ray_temp_dir, shutdown_ray

ExecutorName = Literal["inprocess", "ray"]
_RAY_TUNE_NAMES = ("OptunaExecutor", "RayTuneExecutor")


def __getattr__(name: str) -> Any:
    """Ray Tune is imported on first use only: ``import studies.executors`` stays light."""
    if name in _RAY_TUNE_NAMES:
        from . import ray_tune

        return getattr(ray_tune, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def failure_value(spec: StudySpec) -> float:
    """y_fail for the spec's metric: the workload's chance-level metric or loss (``studies.vocab.y_fail``)."""
    return y_fail(spec.workload, spec.workload_params, spec.metric_kind)


def check_executor(spec: StudySpec, executor: ExecutorName) -> None:
    """Refuse (``ValueError``) what ``executor`` cannot run rather than running it elsewhere."""
    if isinstance(spec.search, OptunaSearchSpec) and executor == "inprocess":
        raise ValueError(
            "--executor inprocess runs grid studies only: search (Optuna) studies run through Ray Tune's "
            "OptunaSearch; use --executor ray"
        )


def _ray_workers(spec: StudySpec, resources: dict[str, Any]) -> int:
    """How many trials of the spec's size the Ray cluster runs at once (GPUs bound it when asked)."""
    slots = float(resources.get("CPU", 1)) / spec.resources.cpu
    if spec.resources.gpu > 0:
        slots = min(slots, float(resources.get("GPU", 0)) / spec.resources.gpu)
    return max(1, int(slots))


def execute_study(
    spec: StudySpec,
    sink: Sink,
    *,
    executor: ExecutorName = "ray",
    data_dir: str | Path = ".work",
    dataset_dir: str | Path | None = None,
    keys: Sequence[TrialKey] | None = None,
    should_stop: StopCheck = never_stop,
    study_id: str = "study",
    optuna_storage_url: str | None = None,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    on_trial_start: Callable[[list[TrialKey]], None] | None = None,
) -> RunSummary:
    """Run a study's trials (``keys``: the pending ones; default: all) and sink every result.

    Grid studies run on ``executor``; search studies run through Ray Tune's OptunaSearch, so asking for
    ``"inprocess"`` with one is a ``ValueError`` rather than a silent switch to Ray.
    ``data_dir`` holds Ray's temp dir and Tune's storage; ``dataset_dir`` the workloads' data.
    """
    from .ray_tune import OptunaExecutor, RayTuneExecutor

    check_executor(spec, executor)
    search = spec.search
    plan = TrialPlan.from_spec(spec, dataset_dir or Path(data_dir) / "datasets")
    if isinstance(search, OptunaSearchSpec):
        ensure_ray(address=ray_address, data_dir=data_dir, num_cpus=num_cpus)
        check_feasible({"cpu": spec.resources.cpu, "gpu": spec.resources.gpu, **spec.resources.custom})
        optuna_executor = OptunaExecutor(
            sampler=search.sampler,
            n_trials=search.n_trials,
            lr_range=(search.lr.min, search.lr.max),
            beta_range=(search.beta_init.min, search.beta_init.max),
            seed=search.seed,
            cpu=spec.resources.cpu,
            gpu=spec.resources.gpu,
            custom_resources=spec.resources.custom,
            max_failures=spec.max_failures,
            storage_url=optuna_storage_url,
            study_id=study_id,
            storage_dir=data_dir,
        )
        return optuna_executor.run(
            plan,
            [arm.name for arm in spec.arms],
            spec.seed_values,
            sink,
            metric_kind=spec.metric_kind,
            split="val",  # a search chooses on validation, always; spec.split is the split figures report
            y_fail=failure_value(spec),
            should_stop=should_stop,
        )
    todo = list(keys) if keys is not None else expand_trials(spec)
    packed = spec.execution.mode == "packed"
    if executor == "inprocess":
        if packed:
            workers = max(1, len(os.sched_getaffinity(0)) // max(1, int(spec.resources.cpu)))
            folder = checkpoint_dir(data_dir, study_id, plan)
            executor_ = PackedExecutor(spec.execution.pack_size, workers=workers, checkpoint_dir=folder)
            return executor_.run(plan, todo, sink, should_stop, on_trial_start)
        return InProcessExecutor().run(plan, todo, sink, should_stop)
    resources = ensure_ray(address=ray_address, data_dir=data_dir, num_cpus=num_cpus)
    check_feasible({"cpu": spec.resources.cpu, "gpu": spec.resources.gpu, **spec.resources.custom})
    per_task = spec.trials_per_task
    if packed and todo:
        per_task = resolve_pack_size(spec.execution.pack_size, plan, len(todo), _ray_workers(spec, resources))
    ray_executor = RayTuneExecutor(
        cpu=spec.resources.cpu,
        gpu=spec.resources.gpu,
        custom_resources=spec.resources.custom,
        max_failures=spec.max_failures,
        trials_per_task=per_task,
        storage_dir=data_dir,
        experiment_name=study_id,
        packed=packed,
        checkpoint_dir=str(checkpoint_dir(data_dir, study_id, plan)) if packed else None,
    )
    return ray_executor.run(plan, todo, sink, should_stop, on_trial_start)


__all__ = [
    "InProcessExecutor",
    "InfeasibleResources",
    "OptunaExecutor",
    "PackedExecutor",
    "RayTuneExecutor",
    "RunSummary",
    "Sink",
    "StopCheck",
    "check_executor",
    "check_feasible",
    "ensure_ray",
    "execute_study",
    "failure_value",
    "make_sampler",
    "objective_value",
    "ray_temp_dir",
    "shutdown_ray",
]
