"""The packed kernels equal the per-trial optimizers member by member, step for step, and the paper's
equations (with the variants of docs/demon.md) in float64.

Each case runs K members with different lr, β (changing every step, as schedules do) and weight
decay through a packed kernel, and each member alone through its per-trial optimizer on the same
gradients: after 30 steps they are equal bit for bit (the packed kernels evaluate every expression
in the per-trial kernel's order), on tensor sizes that exercise vectorised loops and their tails.
The float64 test runs the Demon kernels against ``float64_reference``'s transcriptions, with each
member's β_t from the reference schedule (delayed and floored where the case says so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from float64_reference import adam_step, reference_beta, sgd_step

from demon import DemonAdam, DemonSGD
from demon._schedule import demon_beta
from demon.packed import packed_adam, packed_demon_adam, packed_demon_sgd, packed_sgd

STEPS = 30
LRS = [0.01, 0.1, 0.5]
BETAS = [0.0, 0.8, 0.95]
FLOORS = [0.0, 0.3, 0.5]  # each member's β_min when a case asks for a floor (≤ its β_init)
DECAYS = [0.0, 1e-3, 0.1]
SHAPES = [(4, 3), (3,), (2, 2, 3), (10, 64), (37,), (64, 64)]  # vectorised loops and their tails
SCHEDULE_OPTIONS = ("delay_steps", "beta_min")


def _schedule(options: dict[str, Any], member: int) -> dict[str, Any]:
    """The member's delay and floor (``demon_beta``'s keywords) for a case's options."""
    return {
        "delay_steps": options.get("delay_steps", 0),
        "beta_min": FLOORS[member] if options.get("beta_min") else 0.0,
    }


def _momentum(kind: str, member: int, t: int, options: dict[str, Any]) -> float:
    """β of member at step t: Demon's schedule for demon kinds, a made-up moving β otherwise."""
    if kind.startswith("demon"):
        return demon_beta(t, STEPS, BETAS[member], **_schedule(options, member))
    return BETAS[member] * (1.0 - t / (2 * STEPS))


def _kernel_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in SCHEDULE_OPTIONS}


def _reference(kind: str, member: int, params: list[torch.Tensor], options: dict[str, Any]) -> torch.optim.Optimizer:
    lr, beta, wd = LRS[member], BETAS[member], DECAYS[member]
    nesterov = options.get("nesterov", False)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=beta, weight_decay=wd, nesterov=nesterov and beta > 0)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(beta, 0.999), weight_decay=wd)
    demon = {"lr": lr, "beta_init": beta, "total_steps": STEPS, "weight_decay": wd, **_schedule(options, member)}
    if kind == "demon_sgd":
        return DemonSGD(params, **demon, **_kernel_options(options))
    return DemonAdam(params, **demon, **_kernel_options(options))


def _set_beta(kind: str, optimizer: torch.optim.Optimizer, beta: float) -> None:
    for group in optimizer.param_groups:
        if kind == "sgd":
            group["momentum"] = beta
        elif kind == "adam":
            group["betas"] = (beta, 0.999)


def _packed_step(kind: str, options: dict[str, Any]) -> Callable[..., None]:
    kernel_options = _kernel_options(options)

    def step(params: list[torch.Tensor], grads: list[torch.Tensor], state: list[list[torch.Tensor]], t: int) -> None:
        lr = torch.tensor(LRS, dtype=torch.float64)
        beta = torch.tensor([_momentum(kind, k, t, options) for k in range(len(LRS))], dtype=torch.float64)
        wd = torch.tensor(DECAYS, dtype=torch.float64)
        common: dict[str, Any] = {"lr": lr, "weight_decay": wd, **kernel_options}
        if kind == "sgd":
            packed_sgd(params, grads, state[0], momentum=beta, **common)
        elif kind == "demon_sgd":
            packed_demon_sgd(params, grads, state[0], beta=beta, **common)
        elif kind == "adam":
            packed_adam(params, grads, state[0], state[1], step=t + 1, beta1=beta, **common)
        else:
            packed_demon_adam(params, grads, state[0], state[1], step=t + 1, beta=beta, **common)

    return step


CASES: list[tuple[str, dict[str, Any]]] = [
    ("sgd", {}),
    ("sgd", {"nesterov": True}),
    ("demon_sgd", {}),
    ("demon_sgd", {"nesterov": True}),
    ("adam", {}),
    ("demon_adam", {}),
]
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("demon_sgd", {"decoupled_weight_decay": True}),
    ("demon_sgd", {"delay_steps": 12, "beta_min": True}),
    ("demon_sgd", {"delay_steps": 5, "beta_min": True, "decoupled_weight_decay": True, "nesterov": True}),
    ("demon_adam", {"decoupled_weight_decay": True}),
    ("demon_adam", {"first_moment_correction": True}),
    ("demon_adam", {"delay_steps": 12, "beta_min": True}),
    (
        "demon_adam",
        {"delay_steps": 5, "beta_min": True, "first_moment_correction": True, "decoupled_weight_decay": True},
    ),
]


def case_id(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "plain"
    return str(value)


@pytest.mark.parametrize(("kind", "options"), CASES + VARIANTS, ids=case_id)
def test_packed_kernel_equals_per_trial_optimizer(kind: str, options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    members = len(LRS)
    stacked = [torch.randn(members, *shape) for shape in SHAPES]
    singles = [[s[k].clone().requires_grad_(True) for s in stacked] for k in range(members)]
    optimizers = [_reference(kind, k, singles[k], options) for k in range(members)]
    state = [[torch.zeros_like(s) for s in stacked] for _ in range(2)]
    step = _packed_step(kind, options)
    for t in range(STEPS):
        grads = [torch.randn_like(s) for s in stacked]
        step(stacked, grads, state, t)
        for k in range(members):
            for p, g in zip(singles[k], grads, strict=True):
                p.grad = g[k].clone()
            _set_beta(kind, optimizers[k], _momentum(kind, k, t, options))
            optimizers[k].step()
    for k in range(members):
        for packed, single in zip(stacked, singles[k], strict=True):
            assert torch.equal(packed[k], single.detach()), (kind, options, k)


def _reference_member(
    kind: str, member: int, init: list[torch.Tensor], grads: list[list[torch.Tensor]], options: dict[str, Any]
) -> list[torch.Tensor]:
    """One member's trajectory by the float64 transcription, β_t from the reference schedule."""
    schedule = _schedule(options, member)
    common: dict[str, Any] = {
        "lr": LRS[member],
        "weight_decay": DECAYS[member],
        "decoupled": options.get("decoupled_weight_decay", False),
    }
    theta = [p.clone() for p in init]
    first = [torch.zeros_like(p) for p in init]
    second = [torch.zeros_like(p) for p in init]
    for t, row in enumerate(grads):
        beta = reference_beta(t, STEPS, BETAS[member], schedule["delay_steps"], schedule["beta_min"])
        for i, g in enumerate(row):
            if kind == "demon_sgd":
                theta[i], first[i] = sgd_step(
                    theta[i], first[i], g[member], beta=beta, nesterov=options.get("nesterov", False), **common
                )
            else:
                theta[i], first[i], second[i] = adam_step(
                    theta[i],
                    first[i],
                    second[i],
                    g[member],
                    t + 1,
                    beta=beta,
                    first_moment_correction=options.get("first_moment_correction", False),
                    **common,
                )
    return theta


@pytest.mark.parametrize(("kind", "options"), [c for c in CASES + VARIANTS if c[0].startswith("demon")], ids=case_id)
def test_packed_demon_kernel_matches_float64_reference(kind: str, options: dict[str, Any]) -> None:
    gen = torch.Generator().manual_seed(1)
    members = len(LRS)
    stacked = [torch.randn(members, *shape, generator=gen, dtype=torch.float64) for shape in SHAPES]
    init = [s.clone() for s in stacked]
    grads = [
        [torch.randn(members, *shape, generator=gen, dtype=torch.float64) for shape in SHAPES] for _ in range(STEPS)
    ]
    state = [[torch.zeros_like(s) for s in stacked] for _ in range(2)]
    step = _packed_step(kind, options)
    for t, row in enumerate(grads):
        step(stacked, row, state, t)
    for k in range(members):
        expected = _reference_member(kind, k, [p[k] for p in init], grads, options)
        for packed, reference in zip(stacked, expected, strict=True):
            torch.testing.assert_close(packed[k], reference, rtol=1e-10, atol=1e-12)


def test_zeroed_member_stays_zero_and_finite() -> None:
    """A frozen (diverged) member is zeroed: with zero gradients every kernel keeps it at zero."""
    for kind, options in CASES + VARIANTS:
        params = [torch.zeros(3, 4)]
        state = [[torch.zeros(3, 4)], [torch.zeros(3, 4)]]
        for t in range(3):
            _packed_step(kind, options)(params, [torch.zeros(3, 4)], state, t)
        assert torch.equal(params[0], torch.zeros(3, 4)), kind
