"""Executors: in-process and Ray Tune give the same results; sinks, packs, cancel, and Optuna search.

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

from studies.executors import InProcessExecutor, execute_study, failure_value, make_sampler, objective_value
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus
from studies.runner import TrialPlan
from studies.spec import StudySpec, expand_trials

# Beyond the grid: a trial that diverges and one that fails (its arm does not exist).
EXTRA_KEYS = [TrialKey("sgdm_step", 1e4, 0.9, 0), TrialKey("no_such_arm", 0.1, 0.9, 0)]


def comparable(result: TrialResult) -> tuple[Any, ...]:
    """Everything a trial computes (not where or how long it ran)."""
    return (
        result.status,
        result.epochs,
        result.val_metric,
        result.val_loss,
        result.test_metric,
        result.test_loss,
        result.best_val_metric,
        result.epochs_done,
        (result.error or "").splitlines()[:1],
    )


def run_collecting(spec: StudySpec, tmp_path: Path, **kwargs: Any) -> tuple[dict[TrialKey, TrialResult], Any]:
    results: list[TrialResult] = []
    summary = execute_study(spec, results.append, data_dir=tmp_path, **kwargs)
    by_key = {r.key: r for r in results}
    assert len(by_key) == len(results), "a trial reached the sink twice"
    assert summary.total == len(results)
    return by_key, summary


@pytest.fixture(scope="module")
def inprocess_results(
    tmp_path_factory: pytest.TempPathFactory, smoke_spec_data: dict[str, Any]
) -> dict[TrialKey, TrialResult]:
    """The reference: every smoke trial (plus the extra keys) run in this process."""
    spec = StudySpec.model_validate(smoke_spec_data)
    keys = [*expand_trials(spec), *EXTRA_KEYS]
    results, summary = run_collecting(spec, tmp_path_factory.mktemp("inproc"), executor="inprocess", keys=keys)
    assert list(results) == keys  # in order, each reaching the sink once
    assert (summary.completed, summary.diverged, summary.failed) == (16, 1, 1)
    assert not summary.cancelled
    assert summary.errors == [
        f"{EXTRA_KEYS[1].token()}: ValueError: unknown arm 'no_such_arm'; valid choices: "
        + summary.errors[0].split("valid choices: ")[1]
    ]
    return results


def test_inprocess_runs_every_key(inprocess_results: dict[TrialKey, TrialResult]) -> None:
    assert inprocess_results[EXTRA_KEYS[0]].status is TrialStatus.DIVERGED
    assert inprocess_results[EXTRA_KEYS[1]].status is TrialStatus.FAILED
    assert all(r.epochs_done == 2 for r in inprocess_results.values() if r.status is TrialStatus.COMPLETED)


def test_inprocess_stops_when_asked(smoke_spec: StudySpec, tmp_path: Path) -> None:
    results: list[TrialResult] = []
    plan = TrialPlan.from_spec(smoke_spec, tmp_path)
    summary = InProcessExecutor().run(plan, expand_trials(smoke_spec), results.append, lambda: len(results) >= 5)
    assert summary.cancelled
    assert len(results) == summary.total == 5


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("trials_per_task", [1, 3])
def test_ray_gives_the_same_results_as_inprocess(
    inprocess_results: dict[TrialKey, TrialResult],
    smoke_spec_data: dict[str, Any],
    tmp_path: Path,
    trials_per_task: int,
) -> None:
    spec = StudySpec.model_validate({**smoke_spec_data, "trials_per_task": trials_per_task})
    keys = [*expand_trials(spec), *EXTRA_KEYS]
    started: list[list[TrialKey]] = []
    results, summary = run_collecting(
        spec, tmp_path, executor="ray", keys=keys, study_id=f"pack{trials_per_task}", on_trial_start=started.append
    )
    assert set(results) == set(keys)
    assert sorted(k for unit in started for k in unit) == sorted(keys), "each unit announced once as it starts"
    assert all(len(unit) <= trials_per_task for unit in started)
    assert (summary.completed, summary.diverged, summary.failed) == (16, 1, 1)
    assert not summary.cancelled
    for key in keys:
        assert comparable(results[key]) == comparable(inprocess_results[key]), key
    assert results[EXTRA_KEYS[1]].error
    assert "unknown arm 'no_such_arm'" in results[EXTRA_KEYS[1]].error


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_ray_stops_when_asked(smoke_spec: StudySpec, tmp_path: Path) -> None:
    results: list[TrialResult] = []
    summary = execute_study(
        smoke_spec,
        results.append,
        executor="ray",
        data_dir=tmp_path,
        should_stop=lambda: len(results) >= 1,
        study_id="cancel",
    )
    assert summary.cancelled
    assert 1 <= len(results) == summary.total < smoke_spec.trial_count


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
    y_fail = failure_value(first_spec)
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
    summary = executor.run(plan, keys, results.append)
    assert sorted(r.key.seed for r in results) == [0, 1, 2]
    assert all(r.status is TrialStatus.FAILED for r in results)
    assert all("errored after its retries" in (r.error or "") for r in results)
    assert summary.failed == 3
    assert summary.errors  # surfaced, not swallowed
