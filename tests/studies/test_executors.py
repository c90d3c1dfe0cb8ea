"""Executors beyond their shared contract (``test_executor_contract.py``): which executor runs a
study, the search's objective, samplers and storage, and a Ray trial that errors outside its trial.

The Ray tests share one local Ray (``ray_session`` in conftest.py) and run real Tune trials of the
``synthetic`` workload; each ``Tuner.fit`` costs a few seconds of worker start-up, so they are few.
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from studies.executors import (
    EXECUTORS,
    Context,
    InProcessExecutor,
    PackedExecutor,
    Work,
    execute_study,
    execution_mode,
    executor_for,
    make_sampler,
    objective_value,
    placement,
)
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus
from studies.spec import StudySpec
from studies.training import TrialPlan


def run_collecting(spec: StudySpec, tmp_path: Path, **kwargs: Any) -> tuple[dict[TrialKey, TrialResult], Any]:
    results: list[TrialResult] = []
    summary = execute_study(spec, results.append, data_dir=tmp_path, **kwargs)
    by_key = {r.key: r for r in results}
    assert len(by_key) == len(results), "a trial reached the sink twice"
    assert summary.total == len(results)
    return by_key, summary


def _spec(**changes: Any) -> StudySpec:
    base = {"name": "x", "workload": "synthetic", "arms": ["demon_sgdm"], "lr": [0.1], "beta_init": [0.9], "epochs": 1}
    return StudySpec.model_validate(base | changes)


SEARCH = {"mode": "optuna", "n_trials": 2, "lr": {"min": 0.01, "max": 0.1}, "beta_init": {"min": 0.5, "max": 0.95}}


def test_auto_packs_where_the_workload_packs_and_searches_per_trial() -> None:
    assert execution_mode(_spec()) == "packed"
    assert execution_mode(_spec(workload="mnist_vae")) == "per_trial"  # its own loss: does not pack
    assert execution_mode(_spec(execution={"mode": "per_trial"})) == "per_trial"
    search = {k: v for k, v in _spec().model_dump().items() if k not in ("lr", "beta_init")} | {"search": SEARCH}
    assert execution_mode(StudySpec.model_validate(search)) == "search"


def test_each_placement_and_mode_has_its_executor(tmp_path: Path) -> None:
    context = Context(tmp_path)
    assert isinstance(executor_for(_spec(), "auto", context), PackedExecutor)
    assert isinstance(executor_for(_spec(), "inprocess", context), PackedExecutor)
    per_trial = _spec(execution={"mode": "per_trial"})
    assert isinstance(executor_for(per_trial, "inprocess", context), InProcessExecutor)
    assert placement(per_trial, "auto") == "ray"
    assert placement(_spec(workload="mnist_vae"), "auto") == "ray"
    assert {mode for _, mode in EXECUTORS} == {"per_trial", "packed", "search"}
    search = {k: v for k, v in _spec().model_dump().items() if k not in ("lr", "beta_init")} | {"search": SEARCH}
    with pytest.raises(ValueError, match="--executor inprocess runs grid studies only"):
        executor_for(StudySpec.model_validate(search), "inprocess", context)


def test_objective_value_imputes_failures() -> None:
    key = TrialKey("demon_sgdm", 0.1, 0.9, 0)
    curve = (EpochRecord(1, 0.5, 0.4, 0.2),)

    def result(status: TrialStatus, **scores: Any) -> TrialResult:
        return TrialResult(key=key, status=status, epochs=curve, **scores)

    y_fail = 0.9
    assert (
        objective_value(result(TrialStatus.COMPLETED, val_metric=0.2, test_metric=0.3), "metric", "val", y_fail) == 0.2
    )
    assert (
        objective_value(result(TrialStatus.COMPLETED, val_metric=0.2, test_metric=0.3), "metric", "test", y_fail) == 0.3
    )
    assert objective_value(result(TrialStatus.COMPLETED, val_loss=0.7), "loss", "val", y_fail) == 0.7
    assert objective_value(result(TrialStatus.COMPLETED, val_loss=5.0), "loss", "val", y_fail) == y_fail
    assert objective_value(result(TrialStatus.COMPLETED, val_metric=math.nan), "metric", "val", y_fail) == y_fail
    assert objective_value(result(TrialStatus.COMPLETED), "metric", "val", y_fail) == y_fail
    # A diverged trial scores y_fail even if a finite value was kept.
    assert objective_value(result(TrialStatus.DIVERGED, val_metric=0.1), "metric", "val", y_fail) == y_fail
    assert objective_value(result(TrialStatus.FAILED, error="boom"), "metric", "val", y_fail) == y_fail


@pytest.mark.parametrize("name", ["tpe", "gp", "cmaes", "random", "qmc"])
def test_every_sampler_builds(name: str) -> None:
    assert make_sampler(name, seed=1) is not None


def test_unknown_sampler() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'grid'; valid choices: tpe, gp, cmaes, random, qmc"):
        make_sampler("grid", seed=0)


def optuna_spec(sampler: str, n_trials: int, arms: list[str], seeds: int, lr_max: float = 1.0) -> StudySpec:
    search = {
        "mode": "optuna",
        "sampler": sampler,
        "n_trials": n_trials,
        "seed": 7,
        "lr": {"min": 1e-3, "max": lr_max},
        "beta_init": {"min": 0.5, "max": 0.95},
    }
    return StudySpec.model_validate(
        {
            "name": "search",
            "workload": "synthetic",
            "arms": arms,
            "seeds": seeds,
            "epochs": 2,
            "search": search,
        }
    )


def points_by_arm(results: dict[TrialKey, TrialResult]) -> dict[str, dict[tuple[float, float], set[int]]]:
    """arm → (lr, β_init) → the seeds that ran there."""
    points: dict[str, dict[tuple[float, float], set[int]]] = defaultdict(lambda: defaultdict(set))
    for key in results:
        points[key.arm][(key.lr, key.beta_init)].add(key.seed)
    return points


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize(("sampler", "arms"), [("random", ["demon_sgdm", "sgdm_cosine"]), ("tpe", ["demon_adam"])])
def test_optuna_runs_n_trials_per_arm_on_every_seed(tmp_path: Path, sampler: str, arms: list[str]) -> None:
    spec = optuna_spec(sampler, n_trials=3, arms=arms, seeds=2)
    results, summary = run_collecting(spec, tmp_path, executor="ray", study_id=f"search-{sampler}")
    assert len(results) == spec.trial_count == len(arms) * 3 * 2
    assert summary.failed == 0
    assert not summary.cancelled
    points = points_by_arm(results)
    assert sorted(points) == sorted(arms)
    for arm_points in points.values():
        assert len(arm_points) == 3
        assert all(seeds == {0, 1} for seeds in arm_points.values())
        assert all(1e-3 <= lr <= 1.0 and 0.5 <= beta <= 0.95 for lr, beta in arm_points)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_optuna_storage_resumes_a_study(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first_spec = optuna_spec("tpe", n_trials=3, arms=["sgdm_none"], seeds=2, lr_max=1e4)
    first, _ = run_collecting(first_spec, tmp_path, executor="ray", study_id="s1", optuna_storage_url=url)
    assert len(first) == 3 * 2

    second_spec = optuna_spec("tpe", n_trials=5, arms=["sgdm_none"], seeds=2, lr_max=1e4)
    second, _ = run_collecting(second_spec, tmp_path, executor="ray", study_id="s1", optuna_storage_url=url)
    assert len(second) == 2 * 2  # only the remaining points
    assert not set(first) & set(second)

    study = optuna.load_study(study_name="s1:sgdm_none", storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 5
    # Optuna saw the mean over seeds of the imputed objective (y_fail for a diverged seed).
    y_fail = first_spec.y_fail()
    by_point: dict[tuple[float, float], list[float]] = defaultdict(list)
    for result in [*first.values(), *second.values()]:
        by_point[(result.key.lr, result.key.beta_init)].append(objective_value(result, "metric", "val", y_fail))
    assert {(t.params["lr"], t.params["beta_init"]): t.value for t in complete} == {
        point: pytest.approx(sum(values) / len(values)) for point, values in by_point.items()
    }

    third, _ = run_collecting(second_spec, tmp_path, executor="ray", study_id="s1", optuna_storage_url=url)
    assert third == {}  # nothing left to run


def test_a_relaunch_fails_trials_left_running(tmp_path: Path) -> None:
    import optuna

    from studies.executors.ray_tune import _finished_and_clear, optuna_storage

    storage = optuna_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert _finished_and_clear("s:demon_sgdm", storage) == (0, 0)
    study = optuna.create_study(study_name="s:demon_sgdm", storage=storage)
    for value in (0.3, 0.2):
        trial = study.ask()
        study.tell(trial, value)
    orphan = study.ask()  # its driver died before telling
    assert _finished_and_clear("s:demon_sgdm", storage) == (2, 3)
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL


class _FailsToUnpickle:
    def __reduce__(self) -> tuple[Any, tuple[int, int]]:
        return operator.truediv, (1, 0)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_ray_trial_that_errors_becomes_failed_results(tmp_path: Path) -> None:
    from studies.executors import RayTuneExecutor

    # A plan the worker cannot unpickle: the Ray trial itself errors, outside run_trial.
    plan = TrialPlan(workload="synthetic", workload_params={"bad": _FailsToUnpickle()}, data_dir=str(tmp_path))
    keys = [TrialKey("demon_sgdm", 0.1, 0.9, seed) for seed in range(3)]
    results: list[TrialResult] = []
    executor = RayTuneExecutor(max_failures=0, trials_per_task=2, storage_dir=tmp_path, experiment_name="errors")
    summary = executor.run(Work(plan, keys), results.append)
    assert sorted(r.key.seed for r in results) == [0, 1, 2]
    assert all(r.status is TrialStatus.FAILED for r in results)
    assert all("errored after its retries" in (r.error or "") for r in results)
    assert summary.failed == 3
    assert summary.errors  # surfaced, not swallowed


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_pack_whose_ray_task_fails_is_retried_then_its_members_fail(tmp_path: Path) -> None:
    from studies.executors import RayPackExecutor

    # A plan the worker cannot unpickle: the pack's task fails outside run_pack, on every attempt.
    plan = TrialPlan(workload="synthetic", workload_params={"bad": _FailsToUnpickle()}, data_dir=str(tmp_path))
    keys = [TrialKey("demon_sgdm", 0.1, 0.9, seed) for seed in range(3)]
    results: list[TrialResult] = []
    started: list[TrialKey] = []
    executor = RayPackExecutor(max_failures=1, pack_size=2)
    summary = executor.run(Work(plan, keys, on_start=started.extend), results.append)
    assert sorted(r.key.seed for r in results) == [0, 1, 2]
    assert all(r.status is TrialStatus.FAILED for r in results)
    assert all("failed after 2 attempt(s)" in (r.error or "") for r in results), results[0].error
    assert all("ZeroDivisionError" in (r.error or "") for r in results), results[0].error
    assert started == []  # no pack ever started
    assert summary.failed == 3
    assert summary.errors  # surfaced, not swallowed


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_workers_for_counts_what_each_node_can_run_at_once() -> None:
    from studies.executors import workers_for

    assert workers_for({"cpu": 1, "gpu": 0}) == 2  # the session's Ray: one node of 2 CPUs
    assert workers_for({"cpu": 2, "gpu": 0}) == 1
    assert workers_for({"cpu": 0.5, "gpu": 0}) == 4
    assert workers_for({"cpu": 1, "gpu": 0, "special": 1}) == 1  # none can: at least one (check_feasible says why)
