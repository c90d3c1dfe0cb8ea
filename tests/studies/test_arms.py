"""Arms: every recipe builds and trains; schedules put lr and momentum where the paper says.

Schedules are checked by reading ``param_groups`` after an exact number of iterations: after k calls
of ``after_iteration`` the group holds the lr (and momentum) of iteration k + 1.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from demon import DemonAdam, DemonSGD
from studies.arms import ArmRun, build_arm
from studies.vocab.arms import arm_names, check_arm

LR = 0.5
BETA = 0.9


def make_arm(name: str, total_steps: int, params: dict[str, Any] | None = None, **kwargs: Any) -> ArmRun:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    settings = {"lr": LR, "beta_init": BETA, **kwargs}
    return build_arm(name, params or {}, model.parameters(), total_steps=total_steps, **settings)


def advance(arm: ArmRun, iterations: int) -> None:
    """``iterations`` real optimizer steps on a fixed least-squares problem, schedules stepped after each."""
    params = [p for group in arm.optimizer.param_groups for p in group["params"]]
    weight, bias = params
    inputs = torch.linspace(-1, 1, 32).reshape(8, 4)
    for _ in range(iterations):
        arm.optimizer.zero_grad(set_to_none=True)
        loss = ((inputs @ weight.T + bias) ** 2).mean()
        loss.backward()
        arm.optimizer.step()
        arm.after_iteration()


def lr_of(arm: ArmRun) -> float:
    return float(arm.optimizer.param_groups[0]["lr"])


def momentum_of(arm: ArmRun) -> float:
    group = arm.optimizer.param_groups[0]
    return float(group["betas"][0] if "betas" in group else group["momentum"])


@pytest.mark.parametrize("name", arm_names())
def test_every_arm_trains_ten_iterations(name: str) -> None:
    arm = make_arm(name, total_steps=10, weight_decay=1e-4)
    advance(arm, 10)
    arm.after_epoch(0.5)
    arm.after_epoch(math.nan)  # a non-finite validation loss is ignored, not fed to the scheduler
    params = [p for group in arm.optimizer.param_groups for p in group["params"]]
    assert all(torch.isfinite(p).all() for p in params)
    assert math.isfinite(lr_of(arm))
    assert lr_of(arm) >= 0


BASELINES = [name for name in arm_names() if not name.startswith("demon_")]


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("beta_init", [0.0, 0.7, 0.95])
def test_baseline_beta_init_is_initial_momentum(name: str, beta_init: float) -> None:
    arm = make_arm(name, total_steps=100, beta_init=beta_init)
    expected_type = torch.optim.SGD if name.startswith("sgdm_") else torch.optim.Adam
    assert type(arm.optimizer) is expected_type
    assert momentum_of(arm) == pytest.approx(beta_init, abs=1e-12)
    if name.startswith("adam_"):
        assert arm.optimizer.param_groups[0]["betas"][1] == 0.999


@pytest.mark.parametrize(("name", "optimizer_type"), [("demon_sgdm", DemonSGD), ("demon_adam", DemonAdam)])
def test_demon_arms_use_demon_with_a_constant_lr(name: str, optimizer_type: type) -> None:
    arm = make_arm(name, total_steps=20)
    assert type(arm.optimizer) is optimizer_type
    assert arm.per_iteration == []
    assert arm.plateau is None
    group = arm.optimizer.param_groups[0]
    assert group["beta_init"] == BETA
    assert group["total_steps"] == 20
    assert arm.optimizer.current_betas() == [pytest.approx(BETA)]
    advance(arm, 20)
    arm.after_epoch(1.0)
    assert lr_of(arm) == LR
    assert arm.optimizer.demon_step == 20
    assert arm.optimizer.current_betas() == [pytest.approx(0.0, abs=1e-12)]


def test_step_arm_decays_by_ten_at_half_and_three_quarters() -> None:
    arm = make_arm("sgdm_step", total_steps=20)
    lrs = [lr_of(arm)]
    for _ in range(20):
        advance(arm, 1)
        lrs.append(lr_of(arm))
    # lrs[k] is the lr of iteration k + 1: iterations 1–10 at η, 11–15 at 0.1η, 16–20 at 0.01η.
    assert lrs[:10] == [LR] * 10
    assert lrs[10:15] == pytest.approx([0.1 * LR] * 5)
    assert lrs[15:] == pytest.approx([0.01 * LR] * 6)


def test_step_arm_milestones_and_gamma_are_parameters() -> None:
    arm = make_arm("sgdm_step", total_steps=10, params={"milestones": [0.3], "gamma": 0.5})
    advance(arm, 2)
    assert lr_of(arm) == LR
    advance(arm, 1)
    assert lr_of(arm) == pytest.approx(0.5 * LR)
    advance(arm, 7)
    assert lr_of(arm) == pytest.approx(0.5 * LR)


@pytest.mark.parametrize("base", ["sgdm", "adam"])
@pytest.mark.parametrize(
    ("schedule", "final_factor"),
    [("none", 1.0), ("step", 0.01), ("cosine", 0.0), ("linear", 0.0), ("exp", 0.01), ("onecycle", 0.1)],
)
def test_lr_at_the_end_of_training(base: str, schedule: str, final_factor: float) -> None:
    arm = make_arm(f"{base}_{schedule}", total_steps=40)
    advance(arm, 40)
    assert lr_of(arm) == pytest.approx(final_factor * LR, abs=1e-12)


def test_cosine_is_half_way_at_the_middle() -> None:
    arm = make_arm("sgdm_cosine", total_steps=40)
    advance(arm, 20)
    assert lr_of(arm) == pytest.approx(0.5 * LR)
    advance(arm, 19)
    assert 0 < lr_of(arm) < 0.01 * LR


@pytest.mark.parametrize("base", ["sgdm", "adam"])
def test_onecycle_lr_and_momentum_cycle(base: str) -> None:
    # total_steps 99 → torch's OneCycleLR sees 100 steps; phase 1 ends at step 0.3·100 − 1 = 29.
    arm = make_arm(f"{base}_onecycle", total_steps=99)
    assert lr_of(arm) == pytest.approx(0.1 * LR)
    assert momentum_of(arm) == pytest.approx(BETA)
    advance(arm, 29)
    assert lr_of(arm) == pytest.approx(LR)
    assert momentum_of(arm) == pytest.approx(BETA - 0.1)
    advance(arm, 70)
    assert lr_of(arm) == pytest.approx(0.1 * LR)
    assert momentum_of(arm) == pytest.approx(BETA)


def test_onecycle_without_momentum_leaves_it_at_zero() -> None:
    arm = make_arm("sgdm_onecycle", total_steps=20, beta_init=0.0)
    advance(arm, 10)
    assert momentum_of(arm) == 0.0


@pytest.mark.parametrize(("name", "middle"), [("sgdm_cosmom", 0.5), ("sgdm_linmom", 0.5)])
def test_momentum_schedules_decay_to_zero(name: str, middle: float) -> None:
    arm = make_arm(name, total_steps=40)
    assert momentum_of(arm) == BETA
    advance(arm, 10)
    quarter = momentum_of(arm)
    expected_quarter = BETA * (0.5 * (1 + math.cos(math.pi / 4)) if name == "sgdm_cosmom" else 0.75)
    assert quarter == pytest.approx(expected_quarter)
    advance(arm, 10)
    assert momentum_of(arm) == pytest.approx(middle * BETA)
    advance(arm, 20)
    assert momentum_of(arm) == pytest.approx(0.0, abs=1e-12)
    assert lr_of(arm) == LR


@pytest.mark.parametrize("base", ["sgdm", "adam"])
def test_plateau_reduces_lr_after_patience_epochs_without_improvement(base: str) -> None:
    arm = make_arm(f"{base}_plateau", total_steps=100, params={"patience": 2})
    advance(arm, 5)
    assert lr_of(arm) == LR  # plateau is per epoch only
    arm.after_epoch(1.0)  # the baseline
    arm.after_epoch(0.5)  # an improvement
    arm.after_epoch(0.6)  # bad epoch 1
    arm.after_epoch(math.inf)  # ignored
    arm.after_epoch(0.5)  # bad epoch 2 (no improvement): still within patience
    assert lr_of(arm) == LR
    arm.after_epoch(0.5)  # bad epoch 3 > patience: reduce
    assert lr_of(arm) == pytest.approx(0.1 * LR)
    arm.after_epoch(0.1)
    assert lr_of(arm) == pytest.approx(0.1 * LR)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sgd", {}, r"unknown arm 'sgd' \(did you mean sgdm_cosine or .*\); valid choices: demon_sgdm"),
        ("sgdm_cosine", {"gamma": 0.1}, r"valid parameters: eta_min, nesterov"),
        ("adam_step", {"nesterov": True}, r"valid parameters: gamma, milestones$"),
        ("sgdm_step", {"milestones": 0.5}, r"milestones. must be a non-empty list of fractions"),
        ("sgdm_step", {"milestones": [0.0]}, r"milestones. must be a non-empty list of fractions"),
    ],
)
def test_check_arm_errors(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_arm(name, params)
    with pytest.raises(ValueError, match=message):
        make_arm(name, total_steps=10, params=params)


def test_nesterov_is_passed_through_for_sgdm() -> None:
    assert make_arm("sgdm_none", 10, params={"nesterov": True}).optimizer.param_groups[0]["nesterov"]
    assert make_arm("demon_sgdm", 10, params={"nesterov": True}).optimizer.param_groups[0]["nesterov"]
    # torch's SGD rejects nesterov without momentum, so β_init = 0 turns it off rather than failing.
    no_momentum = make_arm("sgdm_none", 10, params={"nesterov": True}, beta_init=0.0)
    assert not no_momentum.optimizer.param_groups[0]["nesterov"]
