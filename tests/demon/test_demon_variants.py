"""The Demon variants of docs/demon.md, property by property: the schedule's delay and floor,
DemonAdam's optional first-moment correction (and what the sum form's ramp-up really is), extending T
on resume, and ``DemonMomentum(torch.optim.Adam)`` as the ports' EMA-form Demon Adam.

Trajectory equality against the float64 transcriptions lives in ``test_demon_reference.py`` (its
case tables include every variant); here each variant's defining property is checked on its own.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from typing import Any

import pytest
import torch
from float64_reference import ema_adam_step, reference_beta

from demon import DemonAdam, DemonMomentum, DemonSGD, demon_beta

T = 1000


def old_closed_form(step: int, total_steps: int, beta_init: float) -> float:
    """The schedule as it was before the variants (the paper's closed form, clamped), bit for bit."""
    if step >= total_steps:
        return 0.0
    remaining = 1.0 - step / total_steps
    return beta_init * remaining / ((1.0 - beta_init) + beta_init * remaining)


@pytest.mark.parametrize("beta_init", [0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("total_steps", [1, 7, 391, 1000])
def test_defaults_are_the_paper_schedule_bit_for_bit(beta_init: float, total_steps: int) -> None:
    for step in range(total_steps + 3):
        assert demon_beta(step, total_steps, beta_init) == old_closed_form(step, total_steps, beta_init)


# (t, t₀, β_min, expected β_t) for β_init = 0.9, T = 1000, worked out by hand:
# with a delay the table of DEMON.md is replayed over [t₀, T]; with a floor 0.5 (ratio 1) the ratio
# 9 falls to 1, e.g. halfway 5 → β = 5/6.
HAND_COMPUTED = [
    (0, 500, 0.0, 0.9),
    (499, 500, 0.0, 0.9),
    (500, 500, 0.0, 0.9),
    (750, 500, 0.0, 0.818),  # halfway through the decay: DEMON.md's t/T = 0.5
    (875, 500, 0.0, 0.692),  # three quarters: 0.75
    (1000, 500, 0.0, 0.0),
    (0, 0, 0.5, 0.9),
    (500, 0, 0.5, 0.833),  # ratio 5
    (750, 0, 0.5, 0.75),  # ratio 3
    (1000, 0, 0.5, 0.5),
    (5000, 0, 0.5, 0.5),  # the floor stays past T
    (750, 500, 0.5, 0.833),  # both: halfway through the delayed decay
]


@pytest.mark.parametrize(("step", "delay", "floor", "expected"), HAND_COMPUTED)
def test_delay_and_floor_match_hand_computed_values(step: int, delay: int, floor: float, expected: float) -> None:
    beta = demon_beta(step, T, 0.9, delay_steps=delay, beta_min=floor)
    assert round(beta, 3) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("delay", "floor"), itertools.product([0, 1, 250, 999], [0.0, 0.2, 0.6, 0.9]))
def test_delayed_floored_schedule_is_monotone_between_its_ends(delay: int, floor: float) -> None:
    betas = [demon_beta(t, T, 0.9, delay_steps=delay, beta_min=floor) for t in range(T + 50)]
    assert betas[: delay + 1] == [0.9] * (delay + 1)
    assert betas[T:] == [floor] * 50
    assert all(later <= earlier for earlier, later in itertools.pairwise(betas))
    for t in range(0, T + 50, 37):  # the independent transcription (ratio interpolated linearly)
        assert betas[t] == pytest.approx(reference_beta(t, T, 0.9, delay, floor), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("floor", [0.0, 0.3, 0.8])
@pytest.mark.parametrize("fraction", [0.1, 0.4, 0.7, 0.95])
def test_future_contribution_falls_linearly_to_the_floor(floor: float, fraction: float) -> None:
    """β/(1 − β) runs linearly from β_init's ratio at t₀ to β_min's at T: the defining property kept."""
    delay = 200
    step = delay + round(fraction * (T - delay))
    beta = demon_beta(step, T, 0.9, delay_steps=delay, beta_min=floor)
    expected = (1 - fraction) * 0.9 / 0.1 + fraction * floor / (1 - floor)
    assert beta / (1 - beta) == pytest.approx(expected, rel=1e-12)


BAD_VARIANTS = [
    ({"delay_steps": T}, f"Invalid delay_steps value: {T} (expected an integer with 0 <= delay_steps < total_steps"),
    ({"delay_steps": -1}, "Invalid delay_steps value: -1"),
    ({"delay_steps": 2.0}, "Invalid delay_steps value: 2.0"),
    ({"delay_steps": True}, "Invalid delay_steps value: True"),
    ({"beta_min": 0.95}, "Invalid beta_min value: 0.95 (expected 0 <= beta_min <= beta_init = 0.9)"),
    ({"beta_min": -0.1}, "Invalid beta_min value: -0.1"),
    ({"beta_min": math.nan}, "Invalid beta_min value: nan"),
    ({"beta_min": "0.1"}, "Invalid beta_min value: '0.1'"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_VARIANTS)
def test_bad_variant_arguments_raise_naming_the_value(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        demon_beta(0, T, 0.9, **kwargs)
    for cls in (DemonSGD, DemonAdam):
        with pytest.raises(ValueError, match=re.escape(message)):
            cls([torch.zeros(2)], lr=0.1, beta_init=0.9, total_steps=T, **kwargs)
        opt = cls([torch.zeros(2)], lr=0.1, beta_init=0.9, total_steps=T)
        with pytest.raises(ValueError, match=re.escape(message)):
            opt.add_param_group({"params": [torch.zeros(3)], **kwargs})
        assert len(opt.param_groups) == 1
    opt = torch.optim.SGD([torch.zeros(2)], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=re.escape(message)):
        DemonMomentum(opt, total_steps=T, **kwargs)


def constant_gradient_steps(opt: torch.optim.Optimizer, p: torch.Tensor, n: int) -> list[float]:
    """The size of each of n steps under the gradient 1 (p in float64)."""
    sizes = []
    for _ in range(n):
        p.grad = torch.ones_like(p)
        before = p.clone()
        opt.step()
        sizes.append((before - p).item())
    return sizes


def test_sum_form_ramps_up_like_the_ema() -> None:
    """The docstring's corrected claim: m_k = g (1 − β^k)/(1 − β), the EMA's relative bias 1 − β^k."""
    p = torch.zeros(1, dtype=torch.float64)
    opt = DemonAdam([p], lr=1e-3, beta_init=0.9, total_steps=10**12)  # β stays 0.9 to 1e-10
    for k in range(1, 30):
        p.grad = torch.full_like(p, 2.0)
        opt.step()
        m = opt.state[p]["moment"].item()
        assert m == pytest.approx(2.0 * (1 - 0.9**k) / (1 - 0.9), rel=1e-8)


@pytest.mark.parametrize("beta_init", [0.5, 0.9, 0.95])
def test_first_moment_correction_enlarges_the_first_update_then_vanishes(beta_init: float) -> None:
    plain, corrected = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    kwargs: dict[str, Any] = {"lr": 1e-3, "beta_init": beta_init, "total_steps": 10**12, "eps": 0.0}
    paper = constant_gradient_steps(DemonAdam([plain], **kwargs), plain, 600)
    ours = constant_gradient_steps(DemonAdam([corrected], first_moment_correction=True, **kwargs), corrected, 600)
    assert paper[0] == pytest.approx(1e-3, rel=1e-12)  # uncorrected: plain Adam's first step, η
    assert ours[0] / paper[0] == pytest.approx(1 / (1 - beta_init), rel=1e-9)  # 10× at β_init = 0.9
    assert all(o >= p * (1 - 1e-12) for o, p in zip(ours, paper, strict=True))
    assert ours[-1] == pytest.approx(paper[-1], rel=1e-12)  # β^k → 0: the correction is gone
    assert paper[-1] == pytest.approx(1e-3 / (1 - beta_init), rel=1e-9)  # both at η/(1 − β)


def test_decoupled_weight_decay_is_not_amplified_by_momentum() -> None:
    """Zero gradients: decoupled decay shrinks θ by exactly (1 − ηλ) a step; L2 goes through v."""
    decoupled, coupled = torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    kwargs: dict[str, Any] = {"lr": 0.1, "beta_init": 0.9, "total_steps": 10**9, "weight_decay": 0.01}
    opt_d = DemonSGD([decoupled], decoupled_weight_decay=True, **kwargs)
    opt_c = DemonSGD([coupled], **kwargs)
    for _ in range(50):
        decoupled.grad, coupled.grad = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        opt_d.step()
        opt_c.step()
    assert torch.allclose(decoupled, torch.full((3,), 0.999**50, dtype=torch.float64), rtol=1e-12)
    assert torch.equal(opt_d.state[decoupled]["velocity"], torch.zeros(3, dtype=torch.float64))
    assert (coupled < decoupled).all()  # L2 decay accumulates in the velocity: up to 1/(1 − β) faster


def save_and_load(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer)
    return loaded


@pytest.mark.parametrize("cls", [DemonSGD, DemonAdam], ids=lambda c: c.__name__)
def test_extending_total_steps_on_resume(cls: type[DemonSGD] | type[DemonAdam]) -> None:
    """A run planned for 100 steps, checkpointed at 60, resumed as a 300-step run.

    Loading alone keeps the checkpoint's T (and says so); ``set_total_steps`` then puts the run on
    the 300-step schedule from t = 60 on, in every group; the resumed trajectory equals the
    uninterrupted run extended the same way.
    """
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, generator=gen, dtype=torch.float64) for _ in range(120)]
    p = torch.ones(4, dtype=torch.float64)
    first = cls([{"params": [p]}, {"params": [], "beta_init": 0.5}], lr=0.01, total_steps=100, delay_steps=10)
    for g in grads[:60]:
        p.grad = g.clone()
        first.step()
    saved = save_and_load({"p": p, "opt": first.state_dict()})
    first.set_total_steps(300)
    resumed_p = saved["p"].clone()
    resumed = cls([{"params": [resumed_p]}, {"params": [], "beta_init": 0.5}], lr=0.01, total_steps=300)
    with pytest.warns(
        UserWarning, match=re.escape("the checkpoint's total_steps [100, 100] replace this optimizer's [300, 300]")
    ):
        resumed.load_state_dict(saved["opt"])
    assert resumed.current_betas() == [
        demon_beta(60, 100, 0.9, delay_steps=10),
        demon_beta(60, 100, 0.5, delay_steps=10),
    ]
    resumed.set_total_steps(300)
    for t, g in enumerate(grads[60:], start=60):
        assert resumed.current_betas() == [demon_beta(t, 300, b, delay_steps=10) for b in (0.9, 0.5)]
        p.grad, resumed_p.grad = g.clone(), g.clone()
        first.step()
        resumed.step()
    assert torch.equal(resumed_p, p)


@pytest.mark.parametrize("cls", [DemonSGD, DemonAdam], ids=lambda c: c.__name__)
def test_same_total_steps_loads_without_warning(cls: type[DemonSGD] | type[DemonAdam]) -> None:
    opt = cls([torch.ones(2)], lr=0.01, total_steps=50)
    fresh = cls([torch.ones(2)], lr=0.01, total_steps=50)
    fresh.load_state_dict(save_and_load(opt.state_dict()))  # warnings are errors in this suite
    assert fresh.param_groups[0]["total_steps"] == 50


@pytest.mark.parametrize(
    ("total_steps", "message"),
    [
        (0, "Invalid total_steps value: 0"),
        (2.5, "Invalid total_steps value: 2.5"),
        (20, "Invalid delay_steps value: 20"),
    ],
)
def test_set_total_steps_refuses_bad_values_and_changes_nothing(total_steps: Any, message: str) -> None:
    opt = DemonSGD([{"params": [torch.ones(2)]}, {"params": [], "delay_steps": 20}], lr=0.01, total_steps=50)
    with pytest.raises(ValueError, match=re.escape(message)):
        opt.set_total_steps(total_steps)
    assert [g["total_steps"] for g in opt.param_groups] == [50, 50]
    sched = DemonMomentum(torch.optim.SGD([torch.ones(2)], lr=0.1, momentum=0.9), total_steps=50, delay_steps=20)
    with pytest.raises(ValueError, match=re.escape(message)):
        sched.set_total_steps(total_steps)
    assert sched.total_steps == 50


def test_demon_momentum_extends_and_keeps_delay_and_floor_across_a_resume() -> None:
    opt = torch.optim.SGD([torch.ones(2)], lr=0.1, momentum=0.9)
    sched = DemonMomentum(opt, total_steps=100, delay_steps=10, beta_min=0.2)
    for _ in range(60):
        sched.step()
    saved = save_and_load(sched.state_dict())
    fresh_opt = torch.optim.SGD([torch.ones(2)], lr=0.1, momentum=0.9)
    fresh = DemonMomentum(fresh_opt, total_steps=300)
    with pytest.warns(UserWarning, match="saved total_steps 100 replace this scheduler's 300"):
        fresh.load_state_dict(saved)
    assert fresh_opt.param_groups[0]["momentum"] == demon_beta(60, 100, 0.9, delay_steps=10, beta_min=0.2)
    fresh.set_total_steps(300)
    assert fresh_opt.param_groups[0]["momentum"] == demon_beta(60, 300, 0.9, delay_steps=10, beta_min=0.2)
    for _ in range(300):
        fresh.step()
    assert fresh_opt.param_groups[0]["momentum"] == 0.2


def test_demon_momentum_on_adam_is_the_ports_ema_form() -> None:
    """``DemonMomentum(torch.optim.Adam)`` = m = β_t m + (1 − β_t) g, corrected by 1 − β_t^k (float64)."""
    gen = torch.Generator().manual_seed(4)
    grads = [torch.randn(6, generator=gen, dtype=torch.float64) for _ in range(200)]
    p = torch.randn(6, generator=gen, dtype=torch.float64)
    theta, m, e = p.clone(), torch.zeros_like(p), torch.zeros_like(p)
    adam = torch.optim.Adam([p], lr=3e-3, betas=(0.9, 0.999), foreach=False)
    sched = DemonMomentum(adam, total_steps=150)
    for t, g in enumerate(grads):
        theta, m, e = ema_adam_step(theta, m, e, g, t + 1, beta=reference_beta(t, 150, 0.9), lr=3e-3)
        p.grad = g.clone()
        adam.step()
        sched.step()
    torch.testing.assert_close(p, theta, rtol=1e-10, atol=1e-12)
