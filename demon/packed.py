"""Packed kernels: one optimizer step for K independent models stacked along a leading member dim.

A *pack* trains K copies of one architecture at once (studies' packed execution): every parameter
is a tensor of shape ``(K, ...)`` whose slice ``[k]`` is member k's parameter, and every
hyperparameter that may differ between members (lr, β_t, weight decay) is a tensor of shape
``(K,)``. Each kernel computes, for every member, exactly the update of the per-trial optimizer it
names, in the same order of operations:

- ``packed_sgd``: ``torch.optim.SGD`` (momentum, dampening 0, optional Nesterov, L2 weight decay),
  lr outside the buffer: buf = β buf + g; θ −= lr·buf.
- ``packed_demon_sgd``: ``DemonSGD`` (Algorithm 1, velocity form): v = β_t v − η g; θ += v;
  optionally with decoupled weight decay θ ← θ(1 − ηλ).
- ``packed_adam``: ``torch.optim.Adam`` (L2 weight decay, no AMSGrad), per-member β1.
- ``packed_demon_adam``: ``DemonAdam`` (Algorithm 2): E = β2 E + (1 − β2) g²; m = g + β_t m;
  θ −= η m / sqrt(E / (1 − β2^k) + ε); optionally decoupled weight decay and m /(1 − β_t^k).

The schedule's delay and floor need nothing here: β_t arrives per member, from ``demon_beta``.

Scalars that torch's and demon's per-trial kernels take as Python floats are computed here in
float64 per member and cast to the parameter dtype, as torch casts a Python scalar, and every
expression is evaluated in the per-trial kernel's order (``addcdiv(m, d, value=v)`` is
``θ + (v · m) / d``), so each member's step equals its per-trial step bit for bit on the CPU
(tests/demon/test_packed_kernels.py).

These are functions, not ``Optimizer`` classes: the pack owns its state tensors, and ``demon``'s
public optimizers stay as they are. They only touch tensors; no Python work per member.
"""

from __future__ import annotations

import torch

__all__ = ["packed_adam", "packed_demon_adam", "packed_demon_sgd", "packed_sgd", "per_member"]


def per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` of shape ``(K,)`` reshaped to broadcast over ``like`` (``(K, ...)``), in its dtype."""
    return values.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _decayed(grad: torch.Tensor, param: torch.Tensor, weight_decay: torch.Tensor | None) -> torch.Tensor:
    """g + λθ per member (torch's L2 weight decay), or g itself when there is none."""
    if weight_decay is None:
        return grad
    return grad.addcmul(param, per_member(weight_decay, param))


def _corrections(beta: torch.Tensor, step: int) -> torch.Tensor:
    """1 − β^step per member in float64, by Python's ``**`` as the per-trial kernels compute it (a
    float64 tensor's ``pow`` may round the last bit differently)."""
    values = [1.0 - b**step for b in beta.tolist()]
    return torch.tensor(values, dtype=torch.float64, device=beta.device)


def _shrink_factors(lr: torch.Tensor, weight_decay: torch.Tensor | None) -> torch.Tensor | None:
    """1 − ηλ per member in float64 (as the per-trial kernels compute it in Python), or None."""
    if weight_decay is None:
        return None
    return 1.0 - lr.to(torch.float64) * weight_decay.to(torch.float64)


def _prepare(
    grad: torch.Tensor,
    param: torch.Tensor,
    weight_decay: torch.Tensor | None,
    shrink: torch.Tensor | None,
) -> torch.Tensor:
    """Weight decay of one tensor: decoupled (θ ← θ(1 − ηλ) in place, g unchanged) or L2 (g + λθ)."""
    if shrink is not None:
        param.mul_(per_member(shrink, param))
        return grad
    return _decayed(grad, param, weight_decay)


def packed_sgd(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: list[torch.Tensor],
    *,
    lr: torch.Tensor,
    momentum: torch.Tensor,
    weight_decay: torch.Tensor | None = None,
    nesterov: bool = False,
) -> None:
    """torch's SGD with momentum per member; ``buffers`` start at zero (β·0 + g = g, torch's first step)."""
    for param, grad, buf in zip(params, grads, buffers, strict=True):
        g = _decayed(grad, param, weight_decay)
        beta = per_member(momentum, param)
        buf.mul_(beta).add_(g)  # buf = β buf + g (dampening 0)
        direction = g.addcmul(buf, beta) if nesterov else buf
        param.addcmul_(direction, per_member(-lr, param))  # θ −= lr · direction


def packed_demon_sgd(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    velocities: list[torch.Tensor],
    *,
    lr: torch.Tensor,
    beta: torch.Tensor,
    weight_decay: torch.Tensor | None = None,
    decoupled_weight_decay: bool = False,
    nesterov: bool = False,
) -> None:
    """Demon SGDM (Algorithm 1, velocity form) per member with its own β_t and η."""
    shrink = _shrink_factors(lr, weight_decay) if decoupled_weight_decay else None
    for param, grad, velocity in zip(params, grads, velocities, strict=True):
        g = _prepare(grad, param, weight_decay, shrink)
        b = per_member(beta, param)
        neg_lr = per_member(-lr, param)
        velocity.mul_(b).addcmul_(g, neg_lr)  # v_{t+1} = β_t v_t − η g_t
        if nesterov:
            param.addcmul_(velocity, b).addcmul_(g, neg_lr)
        else:
            param.add_(velocity)  # θ_{t+1} = θ_t + v_{t+1}


def packed_adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    *,
    step: int,
    lr: torch.Tensor,
    beta1: torch.Tensor,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: torch.Tensor | None = None,
) -> None:
    """torch's Adam per member (``step`` = this update's count, from 1), β1 per member, β2 shared.

    Bias corrections are Python floats per member, as torch computes them (``β1 ** step`` of a
    float64 tensor may round differently from Python's), and the update is ``addcdiv``'s
    ``θ + (−step_size · m) / denom``, in that order."""
    beta1_64 = beta1.to(torch.float64)
    step_size = lr.to(torch.float64) / _corrections(beta1, step)
    bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
    for param, grad, exp_avg, exp_avg_sq in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
        g = _decayed(grad, param, weight_decay)
        exp_avg.lerp_(g, per_member(1.0 - beta1_64, param))
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        param.add_(exp_avg.mul(per_member(-step_size, param)).div_(denom))


def packed_demon_adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    moments: list[torch.Tensor],
    second_moments: list[torch.Tensor],
    *,
    step: int,
    lr: torch.Tensor,
    beta: torch.Tensor,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: torch.Tensor | None = None,
    decoupled_weight_decay: bool = False,
    first_moment_correction: bool = False,
) -> None:
    """Demon Adam (Algorithm 2, ``DemonAdam``'s bias correction of E) per member; ``step`` = k from 1.

    ``first_moment_correction``: η/(1 − β_t^k) per member, computed in float64 as ``DemonAdam`` does.
    """
    correction = 1.0 - beta2**step
    shrink = _shrink_factors(lr, weight_decay) if decoupled_weight_decay else None
    step_size = lr
    if first_moment_correction:  # η/(1 − β_t^k) per member, in Python floats as DemonAdam computes it
        sizes = [rate / (1.0 - b**step) for rate, b in zip(lr.tolist(), beta.tolist(), strict=True)]
        step_size = torch.tensor(sizes, dtype=torch.float64, device=lr.device)
    for param, grad, m, e in zip(params, grads, moments, second_moments, strict=True):
        g = _prepare(grad, param, weight_decay, shrink)
        e.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)  # E_k = β2 E + (1 − β2) g²
        m.mul_(per_member(beta, param)).add_(g)  # m_t = g_t + β_t m_{t−1}
        denom = (e / correction).add_(eps).sqrt_()  # sqrt(Ê + ε), ε inside
        param.add_(m.mul(per_member(-step_size, param)).div_(denom))  # addcdiv's θ + (−η · m) / denom
