"""Tests of ``DemonMomentum``, the scheduler that writes Demon's β_t into a torch optimizer.

It must drive torch's SGD, Adam and AdamW in each of their implementations (single-tensor,
``foreach=True``, ``fused=True`` where the CPU build has it), take each group's own starting β when
``beta_init`` is None, refuse optimizers with no momentum to decay, and round-trip its state. The
written β must reach the kernels: SGD + DemonMomentum with a constant lr is DemonSGD.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from demon import DemonMomentum, DemonSGD, demon_beta

TOTAL_STEPS = 30
RUN = 45  # past TOTAL_STEPS, so the clamp is written too

SGD, Adam, AdamW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
# (optimizer class, kwargs); groups carry lr and their own starting β (see make_optimizer).
CASES: list[tuple[type[torch.optim.Optimizer], dict[str, Any]]] = [
    (SGD, {"foreach": False}),
    (SGD, {"foreach": True}),
    (SGD, {"fused": True}),
    (SGD, {"foreach": True, "nesterov": True, "weight_decay": 0.01}),
    (Adam, {"foreach": False}),
    (Adam, {"foreach": True}),
    (Adam, {"fused": True}),
    (AdamW, {"foreach": True}),
    (AdamW, {"fused": True}),
]


def case_id(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    return ",".join(f"{k}={v}" for k, v in value.items())


def fused_on_cpu(cls: type[torch.optim.Optimizer]) -> bool:
    """Whether this torch build runs ``cls(fused=True)`` on the CPU."""
    p = torch.zeros(2, requires_grad=True)
    try:
        opt = cls([p], lr=0.1, fused=True)
        p.grad = torch.ones(2)
        opt.step()
    except (RuntimeError, ValueError):
        return False
    return True


def skip_unsupported(cls: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> None:
    if kwargs.get("fused") and not fused_on_cpu(cls):
        pytest.skip(f"{cls.__name__}(fused=True) is not supported on the CPU in this torch")


def make_params(seed: int = 0, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=dtype) for shape in [(4, 3), (3,), (5,), (2, 2)]]


def make_grads(seed: int, dtype: torch.dtype = torch.float32) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [p.shape for p in make_params()]
    return [[torch.randn(s, generator=gen, dtype=dtype) for s in shapes] for _ in range(RUN)]


def make_optimizer(
    cls: type[torch.optim.Optimizer], params: list[torch.Tensor], kwargs: dict[str, Any]
) -> torch.optim.Optimizer:
    """Two groups with their own lr and starting β: 0.9 and 0.5."""
    if cls is SGD:
        groups = [
            {"params": params[:2], "lr": 0.01, "momentum": 0.9},
            {"params": params[2:], "lr": 0.05, "momentum": 0.5},
        ]
        return cls(groups, lr=0.01, momentum=0.9, **kwargs)
    groups = [
        {"params": params[:2], "lr": 1e-3, "betas": (0.9, 0.999)},
        {"params": params[2:], "lr": 3e-3, "betas": (0.5, 0.99)},
    ]
    return cls(groups, lr=1e-3, **kwargs)


def read_beta(group: dict[str, Any]) -> float:
    return float(group["momentum"]) if "momentum" in group else float(group["betas"][0])


def run(
    opt: torch.optim.Optimizer,
    params: list[torch.Tensor],
    grads: list[list[torch.Tensor]],
    sched: DemonMomentum | None,
) -> None:
    for row in grads:
        for p, g in zip(params, row, strict=True):
            p.grad = g.clone()
        opt.step()
        if sched is not None:
            sched.step()


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=case_id)
def test_writes_the_schedule_into_every_group(cls: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> None:
    skip_unsupported(cls, kwargs)
    params = make_params()
    opt = make_optimizer(cls, params, kwargs)
    second = [g["betas"][1] for g in opt.param_groups] if cls is not SGD else []
    sched = DemonMomentum(opt, total_steps=TOTAL_STEPS)
    assert sched.base_betas == [0.9, 0.5]  # beta_init=None: each group's own starting β
    for t, row in enumerate(make_grads(1)):
        for group, base in zip(opt.param_groups, [0.9, 0.5], strict=True):
            assert read_beta(group) == demon_beta(t, TOTAL_STEPS, base)
        assert sched.get_last_beta() == [demon_beta(t, TOTAL_STEPS, b) for b in (0.9, 0.5)]
        for p, g in zip(params, row, strict=True):
            p.grad = g
        opt.step()
        sched.step()
    assert [read_beta(g) for g in opt.param_groups] == [0.0, 0.0]
    if second:  # β2 is never touched
        assert [g["betas"][1] for g in opt.param_groups] == second


@pytest.mark.parametrize(("cls", "kwargs"), [c for c in CASES if c[0] is SGD], ids=case_id)
def test_sgd_with_scheduler_is_demon_sgd(cls: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> None:
    """The written β reaches every SGD kernel: with a constant lr the result is Algorithm 1."""
    skip_unsupported(cls, kwargs)
    grads = make_grads(2, torch.float64)
    ours = make_params(dtype=torch.float64)
    theirs = make_params(dtype=torch.float64)
    opt = make_optimizer(cls, theirs, kwargs)
    sched = DemonMomentum(opt, total_steps=TOTAL_STEPS)
    shared = {"weight_decay": kwargs.get("weight_decay", 0.0), "nesterov": kwargs.get("nesterov", False)}
    demon_sgd = DemonSGD(
        [
            {"params": ours[:2], "lr": 0.01, "beta_init": 0.9},
            {"params": ours[2:], "lr": 0.05, "beta_init": 0.5},
        ],
        lr=0.01,
        total_steps=TOTAL_STEPS,
        **shared,
    )
    run(opt, theirs, grads, sched)
    run(demon_sgd, ours, grads, None)
    for a, b in zip(theirs, ours, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("cls", "kwargs"), [c for c in CASES if c[0] is not SGD], ids=case_id)
def test_adam_implementations_agree_under_the_scheduler(
    cls: type[torch.optim.Optimizer], kwargs: dict[str, Any]
) -> None:
    """foreach and fused Adam/AdamW read the written β1 each step, as the single-tensor one does."""
    skip_unsupported(cls, kwargs)
    grads = make_grads(3)
    results = []
    for variant in ({"foreach": False}, kwargs):
        params = make_params()
        opt = make_optimizer(cls, params, variant)
        run(opt, params, grads, DemonMomentum(opt, total_steps=TOTAL_STEPS))
        results.append(params)
    unscheduled = make_params()
    opt = make_optimizer(cls, unscheduled, kwargs)
    run(opt, unscheduled, grads, None)
    for a, b, c in zip(*results, unscheduled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(b, c)  # the schedule made a difference


def test_fused_adam_with_tensor_betas_is_filled_in_place() -> None:
    if not fused_on_cpu(Adam):
        pytest.skip("Adam(fused=True) is not supported on the CPU in this torch")
    beta1, beta2 = torch.tensor(0.9), torch.tensor(0.999)
    p = torch.zeros(3)
    opt = Adam([p], lr=1e-3, betas=(beta1, beta2), fused=True)
    sched = DemonMomentum(opt, total_steps=10)
    for t in range(12):
        assert opt.param_groups[0]["betas"][0] is beta1
        assert beta1.item() == pytest.approx(demon_beta(t, 10, 0.9))
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
    assert beta2.item() == pytest.approx(0.999)


@pytest.mark.parametrize(("cls", "kwargs"), [CASES[1], CASES[6]], ids=case_id)
def test_explicit_beta_init_overrides_every_group(cls: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> None:
    skip_unsupported(cls, kwargs)
    opt = make_optimizer(cls, make_params(), kwargs)
    sched = DemonMomentum(opt, total_steps=TOTAL_STEPS, beta_init=0.8)
    assert sched.base_betas == [0.8, 0.8]
    assert [read_beta(g) for g in opt.param_groups] == [0.8, 0.8]


@pytest.mark.parametrize(("cls", "kwargs"), [CASES[1], CASES[2], CASES[5], CASES[6]], ids=case_id)
def test_state_dict_round_trip(cls: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> None:
    skip_unsupported(cls, kwargs)
    opt = make_optimizer(cls, make_params(), kwargs)
    sched = DemonMomentum(opt, total_steps=TOTAL_STEPS)
    for _ in range(7):
        sched.step()
    state = sched.state_dict()
    fresh_opt = make_optimizer(cls, make_params(), kwargs)
    fresh = DemonMomentum(fresh_opt, total_steps=5, beta_init=0.3)
    with pytest.warns(UserWarning, match=re.escape("saved total_steps 30 replace this scheduler's 5")):
        fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    assert state == {
        "total_steps": TOTAL_STEPS,
        "delay_steps": 0,
        "beta_min": 0.0,
        "base_betas": [0.9, 0.5],
        "last_step": 7,
    }
    assert [read_beta(g) for g in fresh_opt.param_groups] == [read_beta(g) for g in opt.param_groups]
    fresh.step()
    sched.step()
    assert fresh.get_last_beta() == sched.get_last_beta()


def test_load_state_dict_with_other_group_count_raises() -> None:
    sched = DemonMomentum(make_optimizer(SGD, make_params(), {}), total_steps=TOTAL_STEPS)
    single = DemonMomentum(SGD(make_params(), lr=0.1, momentum=0.9), total_steps=TOTAL_STEPS)
    with pytest.raises(ValueError, match=re.escape("1 base_betas for 2 param groups")):
        sched.load_state_dict(single.state_dict())


def test_optimizer_without_momentum_raises() -> None:
    opt = torch.optim.Adagrad(make_params(), lr=0.1)
    assert all("momentum" not in g and "betas" not in g for g in opt.param_groups)
    with pytest.raises(ValueError, match="neither 'momentum' nor 'betas'"):
        DemonMomentum(opt, total_steps=TOTAL_STEPS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total_steps": 0}, "Invalid total_steps value: 0"),
        ({"total_steps": 1.5}, "Invalid total_steps value: 1.5"),
        ({"total_steps": 10, "beta_init": 1.0}, "Invalid beta_init value: 1.0"),
        ({"total_steps": 10, "beta_init": -0.1}, "Invalid beta_init value: -0.1"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, Any], message: str) -> None:
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=re.escape(message)):
        DemonMomentum(opt, **kwargs)
