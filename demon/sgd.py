"""Demon SGDM: Algorithm 1 of Chen et al. (arXiv 1910.04952), with its momentum decayed each iteration.

The optimizer class validates and gathers tensors; ``demon_sgd`` picks an implementation; the two
private kernels (a readable per-tensor loop and a ``torch._foreach_*`` one) share one signature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from ._base import (
    DemonStepMixin,
    check_demon_group,
    check_lr,
    check_weight_decay,
    group_beta,
    run_kernel,
    step_grad,
    step_grads,
)

__all__ = ["DemonSGD", "demon_sgd"]


class DemonSGD(DemonStepMixin, Optimizer):
    r"""SGD with decaying momentum (Demon SGDM), exactly Algorithm 1 of the paper.

    .. math::
        \beta_t &= \beta_{init}\,\frac{1 - t/T}{(1-\beta_{init}) + \beta_{init}(1 - t/T)}
                   \quad (\beta_t = 0 \text{ for } t \ge T) \\
        g_t &\leftarrow \nabla f(\theta_t) + \lambda\,\theta_t \qquad (\text{weight decay } \lambda) \\
        v_{t+1} &= \beta_t v_t - \eta\, g_t \\
        \theta_{t+1} &= \theta_t + v_{t+1} = \theta_t - \eta g_t + \beta_t v_t

    This is the undamped *velocity* form: no dampening and no (1 − β) factor, with ``lr`` inside the
    velocity. Demon replaces the learning-rate schedule, so ``lr`` is meant to stay constant; with a
    constant ``lr`` the result equals ``torch.optim.SGD(momentum=β_t, dampening=0)``, whose buffer
    keeps ``lr`` outside (``v = -lr * buf``). If a scheduler changes ``lr`` the two forms differ and
    this class follows the paper. The steady-state step per unit gradient is η/(1 − β_t), so Demon
    also decays the effective learning rate, from 10η to η when β_init = 0.9.

    ``t`` counts ``step()`` calls (iterations, not epochs) and lives in optimizer state, so
    ``state_dict``/``load_state_dict`` resume on the same β. Each param group may carry its own
    ``beta_init``, ``total_steps``, ``delay_steps`` and ``beta_min``; the counter is shared and
    advances once per ``step()``. ``load_state_dict`` restores the checkpoint's ``total_steps``
    (warning if that differs from the optimizer's); ``set_total_steps`` extends a resumed run.

    Not in the paper (each off by default, each documented in ``docs/demon.md``): a delay t₀ and a
    floor β_min of the schedule (see ``demon_beta``), and decoupled weight decay
    θ ← θ(1 − ηλ) before the step instead of adding λθ to the gradient (as AdamW does for Adam:
    the decay is then not amplified by the momentum's 1/(1 − β_t)).

    Reference: J. Chen, C. Wolfe, Z. Li, A. Kyrillidis, "Demon: Improved Neural Network Training with
    Momentum Decay", ICASSP 2022, arXiv 1910.04952.

    Args:
        params: parameters or param groups to optimise.
        lr: η, the (constant) learning rate, ≥ 0.
        beta_init: β_init in [0, 1), the momentum at t = 0 (default 0.9).
        total_steps: T, the total number of iterations of the run, ≥ 1 (required, keyword-only).
        weight_decay: λ, L2 penalty added to the gradient (default 0).
        delay_steps: t₀, iterations at β_init before the decay starts, 0 ≤ t₀ < T (default 0).
        beta_min: β_min, the floor the decay ends at, 0 ≤ β_min ≤ β_init (default 0).
        decoupled_weight_decay: apply λ as θ ← θ(1 − ηλ) instead of L2 (default False).
        nesterov: Nesterov's look-ahead, ``θ += β_t v_{t+1} − η g_t`` (default False). **Not in the
            paper**; offered because torch's SGD has it.
        maximize: ascend the objective instead (default False).
        foreach: use the ``torch._foreach_*`` kernel (default None: torch's own rule, which picks it
            for tensors on CUDA and the per-tensor loop on the CPU).

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = DemonSGD(model.parameters(), lr=0.05, beta_init=0.9, total_steps=100)
        >>> for _ in range(100):
        ...     opt.zero_grad()
        ...     loss = model(torch.ones(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     opt.step()
        >>> opt.demon_step
        100
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        beta_init: float = 0.9,
        *,
        total_steps: int,
        weight_decay: float = 0.0,
        delay_steps: int = 0,
        beta_min: float = 0.0,
        decoupled_weight_decay: bool = False,
        nesterov: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        check_lr(lr)
        check_demon_group(beta_init, total_steps, delay_steps, beta_min)
        check_weight_decay(weight_decay)
        defaults = {
            "lr": lr,
            "beta_init": beta_init,
            "total_steps": total_steps,
            "delay_steps": delay_steps,
            "beta_min": beta_min,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
        }
        super().__init__(params, defaults)

    LATER_OPTIONS = DemonStepMixin.LATER_OPTIONS | {"nesterov": False}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one iteration with β_t of the current step count, then advance the count."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        t = self.demon_step
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            velocities: list[torch.Tensor] = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                params.append(p)
                grads.append(p.grad)
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                velocities.append(state["velocity"])
            if not params:
                continue
            demon_sgd(
                params,
                grads,
                velocities,
                beta=group_beta(t, group),
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                decoupled_weight_decay=group["decoupled_weight_decay"],
                nesterov=group["nesterov"],
                maximize=group["maximize"],
                foreach=group["foreach"],
            )
        self._advance()
        return loss


def demon_sgd(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    velocities: list[torch.Tensor],
    *,
    beta: float,
    lr: float,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    nesterov: bool = False,
    maximize: bool = False,
    foreach: bool | None = None,
) -> None:
    """Functional Demon SGDM step with a given β_t (see ``DemonSGD``); updates tensors in place."""
    run_kernel(
        "DemonSGD",
        _single_tensor_demon_sgd,
        _multi_tensor_demon_sgd,
        (params, grads, velocities),
        foreach,
        beta=beta,
        lr=lr,
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay,
        nesterov=nesterov,
        maximize=maximize,
    )


def _single_tensor_demon_sgd(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    velocities: list[torch.Tensor],
    *,
    beta: float,
    lr: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    nesterov: bool,
    maximize: bool,
) -> None:
    for param, grad, velocity in zip(params, grads, velocities, strict=True):
        g = step_grad(param, grad, lr, weight_decay, decoupled_weight_decay, maximize)
        velocity.mul_(beta).add_(g, alpha=-lr)  # v_{t+1} = β_t v_t − η g_t
        if nesterov:
            param.add_(velocity, alpha=beta).add_(g, alpha=-lr)
        else:
            param.add_(velocity)  # θ_{t+1} = θ_t + v_{t+1}


def _multi_tensor_demon_sgd(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    velocities: list[torch.Tensor],
    *,
    beta: float,
    lr: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    nesterov: bool,
    maximize: bool,
) -> None:
    g = step_grads(params, grads, lr, weight_decay, decoupled_weight_decay, maximize)
    torch._foreach_mul_(velocities, beta)
    torch._foreach_add_(velocities, g, alpha=-lr)
    if nesterov:
        torch._foreach_add_(params, velocities, alpha=beta)
        torch._foreach_add_(params, g, alpha=-lr)
    else:
        torch._foreach_add_(params, velocities)
