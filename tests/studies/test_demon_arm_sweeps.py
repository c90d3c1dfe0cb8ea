"""Demon's variants as arm parameters, and a study that sweeps them with labelled arms.

The registry declares ``delay``, ``beta_min`` and ``decoupled_weight_decay`` for both Demon arms and
``first_moment_correction`` for ``demon_adam``; ``build_arm`` turns them into the optimizer's
keywords; a spec runs one arm several times as ``<arm>@<tag>`` with its own parameters; per trial and
packed give each labelled arm its own schedule (and the same results as each other); the report
pairs every labelled Demon arm with the baseline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from demon import DemonAdam, DemonSGD, demon_beta
from studies.arms import build_arm
from studies.executors import execute_study
from studies.metrics._report import default_pairs
from studies.packed.schedules import MemberSchedules
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.spec import StudySpec
from studies.vocab import ArmName
from studies.vocab.arms import arm, check_arm

SWEEP_ARMS: list[Any] = [
    "demon_sgdm",
    {"name": "demon_sgdm@delay0.5", "params": {"delay": 0.5}},
    {"name": "demon_sgdm@floor0.5", "params": {"beta_min": 0.5}},
    {"name": "demon_adam@corrected", "params": {"first_moment_correction": True, "decoupled_weight_decay": True}},
    "sgdm_step",
]


def sweep_spec(**changes: Any) -> dict[str, Any]:
    base = {
        "name": "sweep",
        "workload": "synthetic",
        "arms": SWEEP_ARMS,
        "lr": [0.05],
        "beta_init": [0.6, 0.9],
        "seeds": 1,
        "epochs": 3,
        "batch_size": 32,
        "weight_decay": 1e-3,
    }
    return base | changes


def test_registry_declares_the_demon_variants() -> None:
    assert {p.name for p in arm("demon_sgdm").params} == {"nesterov", "delay", "beta_min", "decoupled_weight_decay"}
    assert {p.name for p in arm("demon_adam").params} == {
        "delay",
        "beta_min",
        "decoupled_weight_decay",
        "first_moment_correction",
    }
    assert arm("demon_sgdm@delay0.25") is arm("demon_sgdm")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("demon_sgdm", {"delay": 1.0}, "parameter 'delay' must lie in [0, 1)"),
        ("demon_sgdm", {"delay": -0.1}, "parameter 'delay' must lie in [0, 1)"),
        ("demon_adam", {"beta_min": 1.0}, "parameter 'beta_min' must lie in [0, 1)"),
        ("demon_sgdm", {"first_moment_correction": True}, "unknown parameter(s) ['first_moment_correction']"),
        ("demon_adam", {"decoupled_weight_decay": 1}, "parameter 'decoupled_weight_decay' must be true or false"),
        ("sgdm_step", {"delay": 0.5}, "unknown parameter(s) ['delay']"),
        ("demon_sgdm@a b", {}, "invalid arm label 'demon_sgdm@a b'"),
        ("demon_sgdm@", {}, "invalid arm label 'demon_sgdm@'"),
        ("nope@x", {}, "unknown arm 'nope@x'"),
    ],
)
def test_bad_variant_parameters_are_refused_naming_them(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_arm(name, params)


def test_build_arm_passes_the_variants_to_the_optimizer() -> None:
    sgd = build_arm(
        "demon_sgdm@v",
        {"delay": 0.25, "beta_min": 0.3, "decoupled_weight_decay": True},
        [torch.nn.Parameter(torch.zeros(2))],
        lr=0.1,
        beta_init=0.9,
        total_steps=200,
    ).optimizer
    assert isinstance(sgd, DemonSGD)
    group = sgd.param_groups[0]
    assert (group["delay_steps"], group["beta_min"], group["decoupled_weight_decay"]) == (50, 0.3, True)
    adam = build_arm(
        "demon_adam",
        {"delay": 0.9999, "first_moment_correction": True},
        [torch.nn.Parameter(torch.zeros(2))],
        lr=0.1,
        beta_init=0.9,
        total_steps=100,
    ).optimizer
    assert isinstance(adam, DemonAdam)
    assert adam.param_groups[0]["delay_steps"] == 99  # round(0.9999 · 100) = 100 is kept below T
    assert adam.param_groups[0]["first_moment_correction"] is True


def test_spec_refuses_duplicate_labels_and_floors_above_the_grid() -> None:
    with pytest.raises(ValidationError, match="arms must be unique"):
        StudySpec.model_validate(sweep_spec(arms=["demon_sgdm@a", "demon_sgdm@a"]))
    floor = [{"name": "demon_sgdm@f", "params": {"beta_min": 0.7}}]
    with pytest.raises(ValidationError, match=re.escape("'demon_sgdm@f' has beta_min 0.7 above the study's smallest")):
        StudySpec.model_validate(sweep_spec(arms=floor))
    search = {"mode": "optuna", "n_trials": 2, "lr": {"min": 0.01, "max": 0.1}, "beta_init": {"min": 0.5, "max": 0.9}}
    with pytest.raises(ValidationError, match=re.escape("smallest beta_init 0.5")):
        StudySpec.model_validate(sweep_spec(arms=floor, search=search, lr=[], beta_init=[]))
    assert StudySpec.model_validate(sweep_spec(arms=floor, beta_init=[0.7, 0.9])).arms[0].name == "demon_sgdm@f"


def run(spec: dict[str, Any], tmp_path: Path) -> dict[tuple[str, float], TrialResult]:
    results: list[TrialResult] = []
    execute_study(StudySpec.model_validate(spec), results.append, executor="inprocess", data_dir=tmp_path)
    return {(r.key.arm, r.key.beta_init): r for r in results}


def test_a_sweep_runs_each_labelled_arm_on_its_own_schedule_per_trial_and_packed(tmp_path: Path) -> None:
    per_trial = run(sweep_spec(), tmp_path)
    packed = run(sweep_spec(execution={"mode": "packed", "pack_size": 10}), tmp_path)
    labels = {"demon_sgdm", "demon_sgdm@delay0.5", "demon_sgdm@floor0.5", "demon_adam@corrected", "sgdm_step"}
    assert {arm_label for arm_label, _ in per_trial} == labels
    assert set(packed) == set(per_trial)
    for key, single in per_trial.items():
        assert single.status is TrialStatus.COMPLETED
        assert packed[key].test_loss == pytest.approx(single.test_loss, rel=1e-4)
    for beta in (0.6, 0.9):  # the variants change the training, not only the label
        plain = per_trial[("demon_sgdm", beta)].test_loss
        assert per_trial[("demon_sgdm@delay0.5", beta)].test_loss != plain
        assert per_trial[("demon_sgdm@floor0.5", beta)].test_loss != plain
    assert default_pairs(labels) == [
        ("demon_adam@corrected", "sgdm_step"),
        ("demon_sgdm", "sgdm_step"),
        ("demon_sgdm@delay0.5", "sgdm_step"),
        ("demon_sgdm@floor0.5", "sgdm_step"),
    ]


def test_the_floor_and_delay_reach_the_packed_schedule() -> None:
    """The pack's β table for a labelled arm is the variant's schedule."""
    keys = [TrialKey("demon_sgdm", 0.1, 0.9, 0), TrialKey("demon_sgdm@v", 0.1, 0.9, 0)]
    params = {"demon_sgdm@v": {"delay": 0.2, "beta_min": 0.5}}
    tables = MemberSchedules(keys, params, 100, torch.device("cpu"))
    betas = [tables.at(t)[1].tolist() for t in range(100)]
    assert [b[0] for b in betas] == [demon_beta(t, 100, 0.9) for t in range(100)]
    assert [b[1] for b in betas] == [demon_beta(t, 100, 0.9, delay_steps=20, beta_min=0.5) for t in range(100)]


def test_the_api_type_of_an_arm_name_takes_labels() -> None:
    """Trial rows, filters and grids of the HTTP API carry labelled arms (``studies.vocab.ArmName``)."""
    names = TypeAdapter(ArmName)
    assert names.validate_python("demon_sgdm@delay0.5") == "demon_sgdm@delay0.5"
    assert names.validate_python("sgdm_step") == "sgdm_step"
    for bad in ("nope@x", "demon_sgdm@", "demon_sgdm@a b", "demon_sgdm@" + "x" * 41):
        with pytest.raises(ValidationError):
            names.validate_python(bad)
