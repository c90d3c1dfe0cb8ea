"""The ``Executor`` contract, run against every implementation (as Optuna tests its storages).

Each executor runs the same work, a grid of the smoke study plus a trial that diverges and one that
fails (its arm does not exist), or, for the search executor, its own proposed points, and:

- hands every result to the sink exactly once, announced first through ``on_start``;
- gives each trial its reference result, bit for bit (``run_trial`` of the same plan and key);
- counts in its summary exactly what reached the sink, and surfaces each failure's error;
- stops when ``should_stop`` turns true: ``cancelled`` set, fewer results, each still right;
- runs nothing for no work.

The Ray implementations share one local Ray (``ray_session``) and are marked slow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from test_packed import figures

from studies.executors import (
    Context,
    Executor,
    InProcessExecutor,
    PackedExecutor,
    RunSummary,
    Work,
    executor_for,
)
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.runner import run_trial
from studies.spec import StudySpec, expand_trials
from studies.training import TrialPlan

EXTRA_KEYS = [TrialKey("sgdm_step", 1e4, 0.9, 0), TrialKey("no_such_arm", 0.1, 0.9, 0)]
SEARCH = {
    "mode": "optuna",
    "sampler": "random",
    "n_trials": 2,
    "lr": {"min": 1e-3, "max": 10.0},
    "beta_init": {"min": 0.5, "max": 0.95},
}


@dataclass
class Case:
    """One implementation under the contract: how to build it, and whether it searches."""

    build: Callable[[Path], Executor]
    search: bool = False
    ray: bool = False


def _ray(spec_changes: dict[str, Any], **context: Any) -> Callable[[Path], Executor]:
    def build(tmp: Path) -> Executor:
        return executor_for(_spec(**spec_changes), "ray", Context(tmp, study_id=tmp.name, **context))

    return build


def _ray_pool(spec_changes: dict[str, Any]) -> Callable[[Path], Executor]:
    """A packed study in the warm pool of Ray actors (``RayPackExecutor(pool=True)``)."""

    def build(tmp: Path) -> Executor:
        from studies.executors import RayPackExecutor

        executor = RayPackExecutor.for_study(_spec(**spec_changes), Context(tmp, study_id=tmp.name))
        executor.pool = True
        return executor

    return build


CASES = {
    "inprocess": Case(lambda tmp: InProcessExecutor()),
    "packed": Case(lambda tmp: PackedExecutor(pack_size=5, checkpoint_dir=tmp / "packs")),
    "packed-forked": Case(lambda tmp: PackedExecutor(pack_size=5, workers=2, checkpoint_dir=tmp / "packs")),
    "ray": Case(_ray({"trials_per_task": 3, "execution": {"mode": "per_trial"}}), ray=True),
    "ray-packed": Case(_ray({"execution": {"mode": "packed", "pack_size": 6}}), ray=True),
    "ray-packed-pool": Case(_ray_pool({"execution": {"mode": "packed", "pack_size": 6}}), ray=True),
    "optuna": Case(
        _ray({"search": SEARCH, "arms": ["demon_sgdm", "sgdm_step"], "execution": {"mode": "auto"}}),
        search=True,
        ray=True,
    ),
}


def _spec(**changes: Any) -> StudySpec:
    data: dict[str, Any] = {
        "name": "contract",
        "workload": "synthetic",
        "arms": ["demon_sgdm", "sgdm_step"],
        "lr": [0.03, 0.3],
        "beta_init": [0.8, 0.9],
        "seeds": 2,
        "epochs": 2,
    }
    if "search" in changes:
        data.pop("lr")
        data.pop("beta_init")
    return StudySpec.model_validate(data | changes)


def _plan(tmp: Path) -> TrialPlan:
    return TrialPlan.from_spec(_spec(), tmp / "datasets")


@cache
def reference(key: TrialKey) -> TrialResult:
    """The trial alone, in this process: what every executor must give for it."""
    return run_trial(TrialPlan.from_spec(_spec(), "unused"), key)


@dataclass
class Ran:
    """What one run did: every result in sink order, every announcement, and the summary."""

    results: list[TrialResult] = field(default_factory=list)
    announced: list[TrialKey] = field(default_factory=list)
    announced_before: dict[TrialKey, bool] = field(default_factory=dict)
    summary: RunSummary = field(default_factory=RunSummary)

    def sink(self, result: TrialResult) -> None:
        self.announced_before[result.key] = result.key in self.announced
        self.results.append(result)

    def on_start(self, keys: list[TrialKey]) -> None:
        self.announced.extend(keys)


def _run(case: Case, tmp: Path, keys: list[TrialKey], should_stop: Callable[[Ran], bool] | None = None) -> Ran:
    ran = Ran()
    stop = (lambda: should_stop(ran)) if should_stop else (lambda: False)
    work = Work(_plan(tmp), [] if case.search else keys, stop, ran.on_start)
    ran.summary = case.build(tmp).run(work, ran.sink)
    return ran


def _params() -> list[Any]:
    """Every implementation; the Ray ones marked slow (they start the session's Ray)."""
    return [pytest.param(name, marks=[pytest.mark.slow] if case.ray else [], id=name) for name, case in CASES.items()]


def _case(name: str, request: pytest.FixtureRequest) -> Case:
    case = CASES[name]
    if case.ray:
        request.getfixturevalue("ray_session")
    return case


@pytest.fixture(scope="module", params=_params())
def full_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, Ran]:
    """Each implementation's run of the whole work, once per module."""
    case = _case(request.param, request)
    return case, _run(case, tmp_path_factory.mktemp(request.param), [*expand_trials(_spec()), *EXTRA_KEYS])


def _expected_count(case: Case) -> int:
    return 2 * 2 * 2 if case.search else 16 + len(EXTRA_KEYS)  # search: arms × n_trials × seeds


def test_every_trial_reaches_the_sink_once_announced_first(full_run: tuple[Case, Ran]) -> None:
    case, ran = full_run
    keys = [r.key for r in ran.results]
    assert len(keys) == len(set(keys)) == _expected_count(case)
    if not case.search:
        assert set(keys) == {*expand_trials(_spec()), *EXTRA_KEYS}
    assert all(ran.announced_before.values()), "a result reached the sink before its trial was announced"
    assert not ran.summary.cancelled


def test_every_result_is_its_trials_reference_bit_for_bit(full_run: tuple[Case, Ran]) -> None:
    _, ran = full_run
    for result in ran.results:
        assert figures(result) == figures(reference(result.key))
        if result.status is TrialStatus.FAILED:
            first_line = (reference(result.key).error or "").splitlines()[0]
            assert (result.error or "").splitlines()[0] == first_line


def test_the_summary_counts_the_sink_and_surfaces_failures(full_run: tuple[Case, Ran]) -> None:
    case, ran = full_run
    by_status = {s: sum(r.status is s for r in ran.results) for s in TrialStatus}
    summary = ran.summary
    assert (summary.completed, summary.diverged, summary.failed) == (
        by_status[TrialStatus.COMPLETED],
        by_status[TrialStatus.DIVERGED],
        by_status[TrialStatus.FAILED],
    )
    if not case.search:
        assert (by_status[TrialStatus.DIVERGED] >= 1, by_status[TrialStatus.FAILED]) == (True, 1)
        assert any("unknown arm 'no_such_arm'" in error for error in summary.errors)


@pytest.mark.parametrize("name", _params())
def test_a_stop_cancels_and_what_arrived_is_right(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    case = _case(name, request)
    ran = _run(case, tmp_path, expand_trials(_spec()), should_stop=lambda ran: len(ran.results) >= 1)
    assert ran.summary.cancelled
    assert len(ran.results) == ran.summary.total < _expected_count(case)
    assert len({r.key for r in ran.results}) == len(ran.results)
    for result in ran.results:
        assert figures(result) == figures(reference(result.key))


@pytest.mark.parametrize("name", [p for p in _params() if not CASES[p.values[0]].search])
def test_no_work_runs_nothing(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    ran = _run(_case(name, request), tmp_path, [])
    assert ran.results == []
    assert ran.announced == []
    assert ran.summary.total == 0
    assert not ran.summary.cancelled
