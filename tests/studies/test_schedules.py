"""``studies.schedules``: every arm's η_t and β_t as pure functions of t, equal bit for bit to what
the arm's own torch optimizer and schedulers use at each of their steps, and right by hand; and
``studies.packed.schedules``, a pack's tables of them (plateau members stepped on their own)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from demon import DemonAdam, DemonSGD, demon_beta
from studies.arms import build_arm
from studies.packed.schedules import MemberSchedules
from studies.results import TrialKey
from studies.schedules import arm_schedules
from studies.vocab import arm, arm_names

SETTINGS: list[dict[str, dict[str, Any]]] = [
    {},  # every arm's defaults
    {
        "sgdm_step": {"milestones": [0.3, 0.3000001, 0.9], "gamma": 0.5},
        "adam_step": {"milestones": [0.01], "gamma": 0.7},
        "sgdm_cosine": {"eta_min": 0.001},
        "adam_linear": {"end_factor": 0.25},
        "sgdm_exp": {"final_factor": 0.5},
        "sgdm_onecycle": {"pct_start": 0.45, "div_factor": 25.0, "final_div_factor": 10.0, "momentum_span": 0.3},
        "adam_onecycle": {"pct_start": 0.1, "momentum_span": 0.0},
        "demon_sgdm": {"delay": 0.25, "beta_min": 0.3, "decoupled_weight_decay": True},
        "demon_adam": {"delay": 0.6, "first_moment_correction": True},
    },
]


def _torch_values(run: Any, declared_demon: bool) -> tuple[float, float]:
    """(η, β) the per-trial optimizer uses at its next step."""
    optimizer = run.optimizer
    group = optimizer.param_groups[0]
    if isinstance(optimizer, (DemonSGD, DemonAdam)):
        assert declared_demon
        return group["lr"], optimizer.current_betas()[0]
    return group["lr"], group["momentum"] if "momentum" in group else group["betas"][0]


@pytest.mark.parametrize("total_steps", [1, 2, 7, 40, 333])
@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "custom"])
def test_every_arm_equals_its_torch_schedulers_bit_for_bit(total_steps: int, settings: dict[str, Any]) -> None:
    for name in arm_names():
        declared = arm(name)
        params = settings.get(name, {})
        resolved = declared.settings(params)
        for lr, beta_init in ((0.1, 0.9), (0.37, 0.0), (3.0, 0.95)):
            if resolved.get("beta_min", 0.0) > beta_init:
                continue  # a floor above β_init is refused (demon.check_beta_min)
            weight = torch.nn.Parameter(torch.zeros(2))
            run = build_arm(name, params, [weight], lr=lr, beta_init=beta_init, total_steps=total_steps)
            lr_at, beta_at = arm_schedules(declared, resolved, lr=lr, beta_init=beta_init, total_steps=total_steps)
            for t in range(total_steps):
                expected = _torch_values(run, declared.demon)
                assert (lr_at(t), beta_at(t)) == expected, (name, params, lr, beta_init, total_steps, t)
                weight.grad = torch.zeros(2)
                run.optimizer.step()
                run.after_iteration()


def test_schedules_are_pure_functions_of_t() -> None:
    """Asked out of order, or twice, a schedule gives the same value (the memoised scan is hidden)."""
    declared = arm("sgdm_cosine")
    lr_at, _ = arm_schedules(declared, declared.settings({}), lr=0.1, beta_init=0.9, total_steps=50)
    late = lr_at(37)
    assert [lr_at(t) for t in range(50)][37] == late == lr_at(37)


def test_schedules_by_hand() -> None:
    def values(name: str, params: dict[str, Any], total: int = 100) -> tuple[list[float], list[float]]:
        declared = arm(name)
        lr_at, beta_at = arm_schedules(declared, declared.settings(params), lr=0.1, beta_init=0.9, total_steps=total)
        return [lr_at(t) for t in range(total)], [beta_at(t) for t in range(total)]

    lrs, betas = values("sgdm_step", {})
    assert lrs[49] == 0.1
    assert lrs[50] == pytest.approx(0.01)
    assert lrs[75] == pytest.approx(0.001)
    assert set(betas) == {0.9}
    lrs, _ = values("sgdm_cosine", {})
    assert lrs[0] == 0.1
    assert lrs[50] == pytest.approx(0.05)
    assert lrs[99] == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.99)) / 2)
    lrs, _ = values("adam_linear", {"end_factor": 0.5})
    assert lrs[50] == pytest.approx(0.075)
    lrs, betas = values("sgdm_onecycle", {})
    assert lrs[0] == pytest.approx(0.01)
    assert max(lrs) == pytest.approx(0.1, rel=0.01)
    assert betas[0] == 0.9
    assert min(betas) == pytest.approx(0.8, abs=0.001)
    assert lrs.index(max(lrs)) == betas.index(min(betas))
    lrs, betas = values("sgdm_linmom", {})
    assert set(lrs) == {0.1}
    assert betas[50] == pytest.approx(0.45)
    _, betas = values("demon_sgdm", {})
    assert betas == [demon_beta(t, 100, 0.9) for t in range(100)]


def test_a_packs_tables_give_each_member_its_own_schedule() -> None:
    """``MemberSchedules.at(t)``: every member's (η_t, β_t), whichever columns members share."""
    total = 23
    keys = [
        TrialKey(name, lr, beta, seed)
        for name in arm_names()
        for lr in (0.1, 0.3)
        for beta in (0.0, 0.9)
        for seed in (0, 1)
    ]
    params = {"sgdm_step": {"gamma": 0.5}}
    schedules = MemberSchedules(keys, params, total, torch.device("cpu"))
    assert schedules.lr.shape[1] < len(keys)
    assert schedules.beta.shape[1] < len(keys)
    for member, key in enumerate(keys):
        declared = arm(key.arm)
        settings = declared.settings(params.get(key.arm, {}))
        lr_at, beta_at = arm_schedules(declared, settings, lr=key.lr, beta_init=key.beta_init, total_steps=total)
        for t in range(total):
            lr, beta = schedules.at(t)
            assert (float(lr[member]), float(beta[member])) == (lr_at(t), beta_at(t)), (key, t)


def test_plateau_members_follow_their_own_validation_losses() -> None:
    """Each plateau member steps torch's ReduceLROnPlateau on its own losses; its η holds from the
    next step on; its state round-trips (a resumed pack's)."""
    keys = [TrialKey("sgdm_plateau", 0.1, 0.9, 0), TrialKey("sgdm_plateau", 0.1, 0.9, 1)]
    params = {"sgdm_plateau": {"patience": 0}}
    schedules = MemberSchedules(keys, params, 10, torch.device("cpu"))
    for epoch in range(3):
        schedules.after_epoch(0, 1.0, 3 * (epoch + 1))  # member 0 never improves after the first
        schedules.after_epoch(1, 1.0 - epoch, 3 * (epoch + 1))  # member 1 always improves
    assert [float(schedules.at(t)[0][1]) for t in range(10)] == [0.1] * 10
    assert [float(schedules.at(t)[0][0]) for t in (2, 3, 6, 9)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    restored = MemberSchedules(keys, params, 10, torch.device("cpu"))
    restored.load_state_dict(schedules.state_dict(), 9)
    assert float(restored.at(9)[0][0]) == float(schedules.at(9)[0][0])
    reference = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(reference, factor=0.1, patience=0)
    for loss in (1.0, 1.0, 1.0):
        plateau.step(loss)
    assert float(schedules.at(9)[0][0]) == reference.param_groups[0]["lr"]
