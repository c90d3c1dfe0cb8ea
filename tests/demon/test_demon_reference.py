"""DemonSGD and DemonAdam against the paper's equations, written here in plain float64 torch.

The references (``float64_reference.py``) are the paper's Algorithm 1 and Algorithm 2 transcribed line
by line (plus our documented decisions: Adam's second moment divided by 1 − β2^k with k the updates
of that parameter, no first-moment correction by default, ε inside the square root; SGD's Nesterov
look-ahead, not in the paper) and the variants of docs/demon.md (delay, floor, first-moment
correction, decoupled weight decay). They share no code with ``demon/``, not even the schedule. The
runs are long enough (240 steps) for one group's ``total_steps`` to end inside the run, so the clamp
β_t = 0 is exercised, while another group's ``total_steps`` lies beyond it. Some parameters skip
steps (no gradient) to pin down k and the lazy state. The other oracle is the paper's: with a
constant lr, Demon SGDM is torch's ``SGD(momentum=β_t, dampening=0)``.
"""

from __future__ import annotations

import doctest
from typing import Any

import pytest
import torch
from float64_reference import adam_step, reference_beta, sgd_step

import demon
from demon import DemonAdam, DemonSGD, demon_beta

STEPS = 240
SHAPES = [(3, 4), (5,), (2, 3, 2), (7,), (4, 4), (1,)]
# (indices into SHAPES, the group's own hyperparameters); defaults come from the case table.
LAYOUT: list[tuple[list[int], dict[str, Any]]] = [
    ([0, 1], {}),
    ([2, 3], {"beta_init": 0.5, "total_steps": 400, "lr": 0.03}),
    ([4, 5], {"beta_init": 0.95, "total_steps": 60, "lr": 0.002, "weight_decay": 0.0}),
]
SGD_DEFAULTS = {
    "lr": 0.01,
    "beta_init": 0.9,
    "total_steps": 150,
    "delay_steps": 0,
    "beta_min": 0.0,
    "weight_decay": 0.0,
    "decoupled_weight_decay": False,
    "nesterov": False,
    "maximize": False,
}
ADAM_DEFAULTS = {
    "lr": 1e-3,
    "beta_init": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "total_steps": 150,
    "delay_steps": 0,
    "beta_min": 0.0,
    "weight_decay": 0.0,
    "decoupled_weight_decay": False,
    "first_moment_correction": False,
    "maximize": False,
}
SGD_CASES = [
    {},
    {"weight_decay": 0.01},
    {"maximize": True},
    {"nesterov": True},
    {"nesterov": True, "weight_decay": 0.01, "maximize": True},
    {"beta_init": 0.0},
]
# The variants (docs/demon.md), each alone and together; 40 < every group's T, 0.3 ≤ every β_init.
SGD_VARIANTS = [
    {"delay_steps": 40},
    {"beta_min": 0.3},
    {"weight_decay": 0.01, "decoupled_weight_decay": True},
    {"delay_steps": 40, "beta_min": 0.3, "weight_decay": 0.05, "decoupled_weight_decay": True, "nesterov": True},
]
ADAM_CASES = [
    {},
    {"weight_decay": 0.01},
    {"weight_decay": 0.01, "decoupled_weight_decay": True},
    {"maximize": True},
    {"maximize": True, "weight_decay": 0.1, "decoupled_weight_decay": True},
    {"beta2": 0.99, "eps": 1e-6, "total_steps": 300},
]
ADAM_VARIANTS = [
    {"delay_steps": 40},
    {"beta_min": 0.3},
    {"first_moment_correction": True},
    {"delay_steps": 40, "beta_min": 0.3, "first_moment_correction": True, "weight_decay": 0.01},
]
OPTIMIZER_CASES = [(DemonSGD, case) for case in SGD_CASES + SGD_VARIANTS] + [
    (DemonAdam, case) for case in ADAM_CASES + ADAM_VARIANTS
]
DEFAULTS = {DemonSGD: SGD_DEFAULTS, DemonAdam: ADAM_DEFAULTS}

Grads = list[list[torch.Tensor | None]]


def make_problem(dtype: torch.dtype, seed: int = 0) -> tuple[list[torch.Tensor], Grads]:
    """Initial parameters and a gradient for every (step, parameter); None where it gets none."""
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for shape in SHAPES]
    grads: Grads = []
    for t in range(STEPS):
        row: list[torch.Tensor | None] = []
        for i, shape in enumerate(SHAPES):
            g = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
            skipped = (i == 3 and t % 3 == 0) or (i == 5 and t < 10)
            row.append(None if skipped else g)
        grads.append(row)
    return init, grads


def hyperparameters(defaults: dict[str, Any], case: dict[str, Any], index: int) -> dict[str, Any]:
    return {**defaults, **case, **LAYOUT[index][1]}


def reference_demon_sgd(
    init: list[torch.Tensor], grads: Grads, defaults: dict[str, Any], case: dict[str, Any]
) -> list[torch.Tensor]:
    """Algorithm 1 (``float64_reference.sgd_step``) over the layout's groups, β_t of each group."""
    theta = [p.clone() for p in init]
    v = [torch.zeros_like(p) for p in init]
    for t in range(STEPS):
        for index, (indices, _) in enumerate(LAYOUT):
            h = hyperparameters(defaults, case, index)
            beta = reference_beta(t, h["total_steps"], h["beta_init"], h["delay_steps"], h["beta_min"])
            for i in indices:
                grad = grads[t][i]
                if grad is None:
                    continue
                theta[i], v[i] = sgd_step(
                    theta[i],
                    v[i],
                    grad,
                    beta=beta,
                    lr=h["lr"],
                    weight_decay=h["weight_decay"],
                    decoupled=h["decoupled_weight_decay"],
                    nesterov=h["nesterov"],
                    maximize=h["maximize"],
                )
    return theta


def reference_demon_adam(
    init: list[torch.Tensor], grads: Grads, defaults: dict[str, Any], case: dict[str, Any]
) -> list[torch.Tensor]:
    """Algorithm 2 (``float64_reference.adam_step``): θ −= η m / sqrt(E / (1 − β2^k) + ε), m = g + β_t m."""
    theta = [p.clone() for p in init]
    second = [torch.zeros_like(p) for p in init]
    first = [torch.zeros_like(p) for p in init]
    updates = [0 for _ in init]
    for t in range(STEPS):
        for index, (indices, _) in enumerate(LAYOUT):
            h = hyperparameters(defaults, case, index)
            beta = reference_beta(t, h["total_steps"], h["beta_init"], h["delay_steps"], h["beta_min"])
            for i in indices:
                grad = grads[t][i]
                if grad is None:
                    continue
                updates[i] += 1
                theta[i], first[i], second[i] = adam_step(
                    theta[i],
                    first[i],
                    second[i],
                    grad,
                    updates[i],
                    beta=beta,
                    lr=h["lr"],
                    beta2=h["beta2"],
                    eps=h["eps"],
                    weight_decay=h["weight_decay"],
                    decoupled=h["decoupled_weight_decay"],
                    first_moment_correction=h["first_moment_correction"],
                    maximize=h["maximize"],
                )
    return theta


def run_demon(
    cls: type[torch.optim.Optimizer],
    init: list[torch.Tensor],
    grads: Grads,
    defaults: dict[str, Any],
    case: dict[str, Any],
    **extra: Any,
) -> list[torch.Tensor]:
    params = [p.clone() for p in init]
    groups = [{"params": [params[i] for i in indices], **own} for indices, own in LAYOUT]
    kwargs = {**defaults, **case}
    opt = cls(groups, **kwargs, **extra)
    for row in grads:
        for p, g in zip(params, row, strict=True):
            p.grad = None if g is None else g.clone()
        opt.step()
    assert opt.demon_step == STEPS  # type: ignore[attr-defined]
    return params


REFERENCES = {DemonSGD: reference_demon_sgd, DemonAdam: reference_demon_adam}


def case_id(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "plain"
    return ""


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize(("cls", "case"), OPTIMIZER_CASES, ids=case_id)
def test_matches_float64_reference(cls: type[torch.optim.Optimizer], case: dict[str, Any], foreach: bool) -> None:
    defaults = DEFAULTS[cls]
    init, grads = make_problem(torch.float64)
    expected = REFERENCES[cls](init, grads, defaults, case)
    actual = run_demon(cls, init, grads, defaults, case, foreach=foreach)
    for a, e, p0 in zip(actual, expected, init, strict=True):
        assert not torch.equal(a, p0)  # every parameter moved
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("cls", "case"), OPTIMIZER_CASES, ids=case_id)
def test_foreach_matches_loop(cls: type[torch.optim.Optimizer], case: dict[str, Any]) -> None:
    defaults = DEFAULTS[cls]
    init, grads = make_problem(torch.float32, seed=1)
    loop = run_demon(cls, init, grads, defaults, case, foreach=False)
    multi = run_demon(cls, init, grads, defaults, case, foreach=True)
    for a, b in zip(multi, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("case", SGD_CASES, ids=case_id)
def test_sgd_equals_torch_sgd_with_scheduled_momentum(case: dict[str, Any], foreach: bool) -> None:
    """DEMON.md's oracle: constant lr, torch's buf = β buf + g; θ −= η buf, with β = β_t each step."""
    init, grads = make_problem(torch.float64, seed=2)
    expected = run_demon(DemonSGD, init, grads, SGD_DEFAULTS, case, foreach=foreach)
    params = [p.clone() for p in init]
    groups = []
    for index, (indices, _) in enumerate(LAYOUT):
        h = hyperparameters(SGD_DEFAULTS, case, index)
        groups.append(
            {
                "params": [params[i] for i in indices],
                "lr": h["lr"],
                "momentum": h["beta_init"],
                "weight_decay": h["weight_decay"],
            }
        )
    h = {**SGD_DEFAULTS, **case}
    nesterov = h["nesterov"] and h["beta_init"] > 0  # torch refuses Nesterov without momentum
    sgd = torch.optim.SGD(
        groups, lr=h["lr"], momentum=h["beta_init"], dampening=0, nesterov=nesterov, maximize=h["maximize"]
    )
    for t, row in enumerate(grads):
        for index, group in enumerate(sgd.param_groups):
            own = hyperparameters(SGD_DEFAULTS, case, index)
            group["momentum"] = demon_beta(t, own["total_steps"], own["beta_init"])
        for p, g in zip(params, row, strict=True):
            p.grad = None if g is None else g.clone()
        sgd.step()
    for a, e in zip(params, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("cls", [DemonSGD, DemonAdam], ids=case_id)
def test_counter_advances_once_per_step_whatever_the_groups(cls: type[torch.optim.Optimizer], foreach: bool) -> None:
    """Regression: a public port advanced t once per group, so k groups decayed k times too fast."""
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(4, generator=gen) for _ in range(4)]
    grads = [[torch.randn(4, generator=gen) for _ in init] for _ in range(12)]
    one = [p.clone() for p in init]
    many = [p.clone() for p in init]
    single = cls([{"params": one}], lr=0.01, total_steps=20, foreach=foreach)
    grouped = cls([{"params": [p]} for p in many], lr=0.01, total_steps=20, foreach=foreach)
    for t, row in enumerate(grads):
        assert grouped.demon_step == t  # type: ignore[attr-defined]
        assert grouped.current_betas() == [demon_beta(t, 20, 0.9)] * 4  # type: ignore[attr-defined]
        for a, b, g in zip(one, many, row, strict=True):
            a.grad, b.grad = g.clone(), g.clone()
        many[3].grad = None  # a group without gradients this step must not change the count
        single.step()
        grouped.step()
    assert grouped.demon_step == len(grads)  # type: ignore[attr-defined]
    for a, b in zip(one[:3], many[:3], strict=True):
        assert torch.equal(a, b)


def test_step_without_any_gradient_still_counts() -> None:
    p = torch.zeros(3)
    opt = DemonSGD([p], lr=0.1, total_steps=10)
    opt.step()
    assert opt.demon_step == 1
    assert opt.current_betas() == [demon_beta(1, 10, 0.9)]


@pytest.mark.parametrize("cls", [DemonSGD, DemonAdam], ids=case_id)
def test_undamped_form_decays_the_effective_lr(cls: type[torch.optim.Optimizer]) -> None:
    """DEMON.md: under a constant gradient the step per unit gradient tends to η/(1 − β) = 10η.

    An EMA first moment (m = βm + (1 − β)g, as in many ports) would give η instead.
    """
    p = torch.zeros(1, dtype=torch.float64)
    opt = cls([p], lr=1e-3, beta_init=0.9, total_steps=10**9)  # β stays ≈ 0.9 for the whole run
    for _ in range(400):
        p.grad = torch.ones_like(p)
        before = p.clone()
        opt.step()
    step = (before - p).item()
    assert step == pytest.approx(10 * 1e-3, rel=1e-4)


@pytest.mark.parametrize("module", [demon._schedule, demon.sgd, demon.adam, demon.momentum], ids=lambda m: m.__name__)
def test_docstring_examples_run(module: Any) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
