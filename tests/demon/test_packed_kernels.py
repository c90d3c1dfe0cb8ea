"""The packed kernels equal the per-trial optimizers member by member, step for step.

Each case runs K members with different lr, β (changing every step, as schedules do) and weight
decay through a packed kernel, and each member alone through its per-trial optimizer on the same
gradients. Tolerance: 4 ulp-scale relative error (rtol 2e-6, atol 1e-7) per tensor after 30
steps. The two compute the same float32 operations in the same order; they may differ only where a
vectorised loop fuses a multiply and an add (one rounding instead of two), a few ulp at most.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from demon import DemonAdam, DemonSGD
from demon._schedule import demon_beta
from demon.packed import packed_adam, packed_demon_adam, packed_demon_sgd, packed_sgd

STEPS = 30
LRS = [0.01, 0.1, 0.5]
BETAS = [0.0, 0.8, 0.95]
DECAYS = [0.0, 1e-3, 0.1]
SHAPES = [(4, 3), (3,), (2, 2, 3), (10, 64), (37,), (64, 64)]


def _momentum(kind: str, member: int, t: int) -> float:
    """β of member at step t: Demon's schedule for demon kinds, a made-up moving β otherwise."""
    if kind.startswith("demon"):
        return demon_beta(t, STEPS, BETAS[member])
    return BETAS[member] * (1.0 - t / (2 * STEPS))


def _reference(kind: str, member: int, params: list[torch.Tensor], nesterov: bool) -> torch.optim.Optimizer:
    lr, beta, wd = LRS[member], BETAS[member], DECAYS[member]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=beta, weight_decay=wd, nesterov=nesterov and beta > 0)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(beta, 0.999), weight_decay=wd)
    if kind == "demon_sgd":
        return DemonSGD(params, lr=lr, beta_init=beta, total_steps=STEPS, weight_decay=wd, nesterov=nesterov)
    return DemonAdam(params, lr=lr, beta_init=beta, total_steps=STEPS, weight_decay=wd)


def _set_beta(kind: str, optimizer: torch.optim.Optimizer, beta: float) -> None:
    for group in optimizer.param_groups:
        if kind == "sgd":
            group["momentum"] = beta
        elif kind == "adam":
            group["betas"] = (beta, 0.999)


def _packed_step(kind: str, nesterov: bool) -> Callable[..., None]:
    def step(params: list[torch.Tensor], grads: list[torch.Tensor], state: list[list[torch.Tensor]], t: int) -> None:
        lr = torch.tensor(LRS, dtype=torch.float64)
        beta = torch.tensor([_momentum(kind, k, t) for k in range(len(LRS))], dtype=torch.float64)
        wd = torch.tensor(DECAYS, dtype=torch.float64)
        common: dict[str, Any] = {"lr": lr, "weight_decay": wd}
        if kind == "sgd":
            packed_sgd(params, grads, state[0], momentum=beta, nesterov=nesterov, **common)
        elif kind == "demon_sgd":
            packed_demon_sgd(params, grads, state[0], beta=beta, nesterov=nesterov, **common)
        elif kind == "adam":
            packed_adam(params, grads, state[0], state[1], step=t + 1, beta1=beta, **common)
        else:
            packed_demon_adam(params, grads, state[0], state[1], step=t + 1, beta=beta, **common)

    return step


CASES = [
    ("sgd", False),
    ("sgd", True),
    ("demon_sgd", False),
    ("demon_sgd", True),
    ("adam", False),
    ("demon_adam", False),
]


@pytest.mark.parametrize(("kind", "nesterov"), CASES)
def test_packed_kernel_equals_per_trial_optimizer(kind: str, nesterov: bool) -> None:
    torch.manual_seed(0)
    members = len(LRS)
    stacked = [torch.randn(members, *shape) for shape in SHAPES]
    singles = [[s[k].clone().requires_grad_(True) for s in stacked] for k in range(members)]
    optimizers = [_reference(kind, k, singles[k], nesterov) for k in range(members)]
    state = [[torch.zeros_like(s) for s in stacked] for _ in range(2)]
    step = _packed_step(kind, nesterov)
    for t in range(STEPS):
        grads = [torch.randn_like(s) for s in stacked]
        step(stacked, grads, state, t)
        for k in range(members):
            for p, g in zip(singles[k], grads, strict=True):
                p.grad = g[k].clone()
            _set_beta(kind, optimizers[k], _momentum(kind, k, t))
            optimizers[k].step()
    for k in range(members):
        for packed, single in zip(stacked, singles[k], strict=True):
            assert torch.equal(packed[k], single.detach()), (kind, k)


def test_zeroed_member_stays_zero_and_finite() -> None:
    """A frozen (diverged) member is zeroed: with zero gradients every kernel keeps it at zero."""
    for kind, nesterov in CASES:
        params = [torch.zeros(3, 4)]
        state = [[torch.zeros(3, 4)], [torch.zeros(3, 4)]]
        for t in range(3):
            _packed_step(kind, nesterov)(params, [torch.zeros(3, 4)], state, t)
        assert torch.equal(params[0], torch.zeros(3, 4)), kind
