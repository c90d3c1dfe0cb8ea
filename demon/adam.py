"""Demon Adam: Algorithm 2 of Chen et al. (arXiv 1910.04952), β1 decayed each iteration, β2 fixed.

Same three layers as ``sgd.py``: the class gathers tensors, ``demon_adam`` picks a kernel, and the
per-tensor and ``torch._foreach_*`` kernels share one signature.
"""

from __future__ import annotations

import math
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

__all__ = ["DemonAdam", "demon_adam"]


class DemonAdam(DemonStepMixin, Optimizer):
    r"""Adam with decaying first-moment momentum (Demon Adam), Algorithm 2 of the paper.

    .. math::
        \beta_t &= \beta_{init}\,\frac{1 - t/T}{(1-\beta_{init}) + \beta_{init}(1 - t/T)}
                   \quad (\beta_t = 0 \text{ for } t \ge T) \\
        E_{k} &= \beta_2 E_{k-1} + (1 - \beta_2)\, g_t^2 \\
        m_t &= g_t + \beta_t\, m_{t-1} \qquad (\text{a plain sum: no } (1-\beta_t) \text{ factor}) \\
        \theta_{t+1} &= \theta_t - \eta\, \frac{m_t}{\sqrt{E_k / (1 - \beta_2^{k}) + \epsilon}}
        \qquad (m_t / (1 - \beta_t^{k}) \text{ with } \texttt{first\_moment\_correction})

    Only β1 decays; β2 stays fixed; ε sits *inside* the square root, as in the paper. The first
    moment is the paper's sum form ("a slightly adjusted Adam"), so the steady-state step per unit
    gradient is η/(1 − β_t): Demon also decays the effective learning rate. Ports that use Adam's
    EMA form m = βm + (1 − β)g lose this and are not the paper's algorithm; none is offered here.

    **Bias correction** (the paper leaves it out "for clarity"; this is our decision): the second
    moment is divided by (1 − β2^k), k the number of updates that parameter's E has had, because E
    starts at 0 and would otherwise make the first ~1/(1 − β2) = 1000 steps far too large.

    The first moment is *not* corrected by default, because Algorithm 2 has no correction. It is
    not free of zero-init bias either: under a constant gradient the sum form gives
    m_k = g (1 − β^k)/(1 − β), which ramps up towards its steady state g/(1 − β) exactly as Adam's
    EMA ramps up towards g (the same relative bias, 1 − β^k). Uncorrected, that ramp acts as a short
    warm-up: the first update is η·g/sqrt(Ê + ε), plain Adam's. ``first_moment_correction=True``
    divides m by (1 − β_t^k), β_t the current (decayed) β and k that parameter's update count, as
    torch's Adam does with whatever β1 it is given and as public Demon Adam ports do; the first
    update is then 1/(1 − β_init) times larger (10× at β_init = 0.9). Late in training β_t^k → 0
    and the correction vanishes.

    Weight decay λ is either added to the gradient (L2, the default) or, with
    ``decoupled_weight_decay=True``, applied as θ ← θ(1 − ηλ) before the step (AdamW style).
    The schedule may be delayed (``delay_steps``) and floored (``beta_min``): see ``demon_beta``.
    ``load_state_dict`` restores the checkpoint's ``total_steps`` (warning if that differs from the
    optimizer's); ``set_total_steps`` extends a resumed run.

    Reference: J. Chen, C. Wolfe, Z. Li, A. Kyrillidis, "Demon: Improved Neural Network Training with
    Momentum Decay", ICASSP 2022, arXiv 1910.04952.

    Args:
        params: parameters or param groups to optimise.
        lr: η (default 1e-3), constant: Demon replaces the learning-rate schedule.
        beta_init: β_init in [0, 1), β1 at t = 0 (default 0.9).
        beta2: β2 in [0, 1), fixed (default 0.999).
        eps: ε ≥ 0, added inside the square root (default 1e-8).
        total_steps: T ≥ 1, total iterations of the run (required, keyword-only).
        weight_decay: λ ≥ 0 (default 0).
        decoupled_weight_decay: AdamW-style decay instead of L2 (default False).
        delay_steps: t₀, iterations at β_init before the decay starts, 0 ≤ t₀ < T (default 0).
        beta_min: β_min, the floor the decay ends at, 0 ≤ β_min ≤ β_init (default 0).
        first_moment_correction: divide m by (1 − β_t^k) (default False, as in Algorithm 2).
        maximize: ascend the objective instead (default False).
        foreach: use the ``torch._foreach_*`` kernel (default None: torch's own rule).

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = DemonAdam(model.parameters(), lr=1e-3, total_steps=50)
        >>> for _ in range(50):
        ...     opt.zero_grad()
        ...     model(torch.ones(8, 4)).pow(2).mean().backward()
        ...     opt.step()
        >>> opt.current_betas()
        [0.0]
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        beta_init: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        *,
        total_steps: int,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        delay_steps: int = 0,
        beta_min: float = 0.0,
        first_moment_correction: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        check_lr(lr)
        check_demon_group(beta_init, total_steps, delay_steps, beta_min)
        _check_beta2(beta2)
        _check_eps(eps)
        check_weight_decay(weight_decay)
        defaults = {
            "lr": lr,
            "beta_init": beta_init,
            "beta2": beta2,
            "eps": eps,
            "total_steps": total_steps,
            "delay_steps": delay_steps,
            "beta_min": beta_min,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "first_moment_correction": first_moment_correction,
            "maximize": maximize,
            "foreach": foreach,
        }
        super().__init__(params, defaults)

    LATER_OPTIONS = DemonStepMixin.LATER_OPTIONS | {"first_moment_correction": False}

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_beta2(group["beta2"])
        _check_eps(group["eps"])

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
            moments: list[torch.Tensor] = []
            second_moments: list[torch.Tensor] = []
            counts: list[int] = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "moment" not in state:
                    state["moment"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["second_moment"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["step"] = 0
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                moments.append(state["moment"])
                second_moments.append(state["second_moment"])
                counts.append(state["step"])
            if not params:
                continue
            demon_adam(
                params,
                grads,
                moments,
                second_moments,
                counts,
                beta=group_beta(t, group),
                beta2=group["beta2"],
                lr=group["lr"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                decoupled_weight_decay=group["decoupled_weight_decay"],
                first_moment_correction=group["first_moment_correction"],
                maximize=group["maximize"],
                foreach=group["foreach"],
            )
        self._advance()
        return loss


def _check_beta2(beta2: Any) -> None:
    if isinstance(beta2, bool) or not isinstance(beta2, (int, float)) or not 0.0 <= beta2 < 1.0:
        raise ValueError(f"Invalid beta2 value: {beta2!r} (expected 0 <= beta2 < 1)")


def _check_eps(eps: Any) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"Invalid eps value: {eps!r} (expected a finite number >= 0)")


def demon_adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    moments: list[torch.Tensor],
    second_moments: list[torch.Tensor],
    counts: list[int],
    *,
    beta: float,
    beta2: float,
    lr: float,
    eps: float,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    first_moment_correction: bool = False,
    maximize: bool = False,
    foreach: bool | None = None,
) -> None:
    """Functional Demon Adam step with a given β_t (see ``DemonAdam``); updates tensors in place.

    ``counts[i]`` is k for tensor i: how many second-moment updates it has had, this one included.
    """
    run_kernel(
        "DemonAdam",
        _single_tensor_demon_adam,
        _multi_tensor_demon_adam,
        (params, grads, moments, second_moments, counts),
        foreach,
        beta=beta,
        beta2=beta2,
        lr=lr,
        eps=eps,
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay,
        first_moment_correction=first_moment_correction,
        maximize=maximize,
    )


def _single_tensor_demon_adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    moments: list[torch.Tensor],
    second_moments: list[torch.Tensor],
    counts: list[int],
    *,
    beta: float,
    beta2: float,
    lr: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    first_moment_correction: bool,
    maximize: bool,
) -> None:
    for param, grad, m, e, k in zip(params, grads, moments, second_moments, counts, strict=True):
        g = step_grad(param, grad, lr, weight_decay, decoupled_weight_decay, maximize)
        e.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)  # E_k = β2 E + (1 − β2) g²
        m.mul_(beta).add_(g)  # m_t = g_t + β_t m_{t−1}
        denom = (e / (1.0 - beta2**k)).add_(eps).sqrt_()  # sqrt(Ê + ε), ε inside
        param.addcdiv_(m, denom, value=-_step_size(lr, beta, k, first_moment_correction))


def _multi_tensor_demon_adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    moments: list[torch.Tensor],
    second_moments: list[torch.Tensor],
    counts: list[int],
    *,
    beta: float,
    beta2: float,
    lr: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    first_moment_correction: bool,
    maximize: bool,
) -> None:
    g = step_grads(params, grads, lr, weight_decay, decoupled_weight_decay, maximize)
    torch._foreach_mul_(second_moments, beta2)
    torch._foreach_addcmul_(second_moments, g, g, value=1.0 - beta2)
    torch._foreach_mul_(moments, beta)
    torch._foreach_add_(moments, g)
    corrections = [1.0 / (1.0 - beta2**k) for k in counts]
    denom = torch._foreach_mul(second_moments, corrections)
    torch._foreach_add_(denom, eps)
    torch._foreach_sqrt_(denom)
    if first_moment_correction:  # one step size per tensor: k may differ between parameters
        steps = [-_step_size(lr, beta, k, True) for k in counts]
        torch._foreach_addcdiv_(params, moments, denom, steps)
    else:
        torch._foreach_addcdiv_(params, moments, denom, value=-lr)


def _step_size(lr: float, beta: float, k: int, first_moment_correction: bool) -> float:
    """η, or η/(1 − β_t^k) when the first moment is bias-corrected (computed in float64)."""
    return lr / (1.0 - beta**k) if first_moment_correction else lr
