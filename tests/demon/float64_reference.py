"""The paper's equations and our documented variants, transcribed line by line in plain Python/torch.

Shared by the optimizer tests (``test_demon_reference.py``, ``test_demon_variants.py``) and the
packed-kernel tests: one transcription, written from DEMON.md and docs/demon.md, sharing no code
with ``demon/`` (not even the schedule). Each step function returns new tensors (no in-place ops),
so it reads as the equations do.
"""

from __future__ import annotations

import torch


def reference_beta(t: int, total_steps: int, beta_init: float, delay_steps: int = 0, beta_min: float = 0.0) -> float:
    """β_t: β_init until t₀; then β/(1 − β) interpolated linearly from β_init's ratio to β_min's; β_min from T.

    Without delay and floor: DEMON.md's second closed form β_init (T − t) / (T − β_init t).
    """
    if t >= total_steps:
        return beta_min
    if t < delay_steps:
        return beta_init
    if delay_steps == 0 and beta_min == 0.0:
        return beta_init * (total_steps - t) / (total_steps - beta_init * t)
    left = (total_steps - t) / (total_steps - delay_steps)  # fraction of the decay still to come
    ratio = left * beta_init / (1 - beta_init) + (1 - left) * beta_min / (1 - beta_min)
    return ratio / (1 + ratio)


def sgd_step(
    theta: torch.Tensor,
    v: torch.Tensor,
    grad: torch.Tensor,
    *,
    beta: float,
    lr: float,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    nesterov: bool = False,
    maximize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1: θ_{t+1} = θ_t − η g_t + β_t v_t;  v_{t+1} = β_t v_t − η g_t (returns θ, v)."""
    g = -grad if maximize else grad
    if decoupled:  # θ ← θ(1 − ηλ) first, the gradient untouched
        theta = theta * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * theta
    v_next = beta * v - lr * g
    if nesterov:  # not in the paper: θ += β_t v_{t+1} − η g_t
        return theta + beta * v_next - lr * g, v_next
    return theta - lr * g + beta * v, v_next


def adam_step(
    theta: torch.Tensor,
    m: torch.Tensor,
    e: torch.Tensor,
    grad: torch.Tensor,
    k: int,
    *,
    beta: float,
    lr: float,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    first_moment_correction: bool = False,
    maximize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 2 with our corrections: E /(1 − β2^k) always, m /(1 − β_t^k) if asked (returns θ, m, E).

    ``k`` counts this parameter's updates, this one included.
    """
    g = -grad if maximize else grad
    if decoupled:
        theta = theta * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * theta
    e = beta2 * e + (1 - beta2) * g * g
    m = g + beta * m
    m_hat = m / (1 - beta**k) if first_moment_correction else m
    return theta - lr * m_hat / torch.sqrt(e / (1 - beta2**k) + eps), m, e


def ema_adam_step(
    theta: torch.Tensor,
    m: torch.Tensor,
    e: torch.Tensor,
    grad: torch.Tensor,
    k: int,
    *,
    beta: float,
    lr: float,
    beta2: float = 0.999,
    eps: float = 1e-8,
    correction_beta: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The public ports' EMA-form Demon Adam: m = β_t m + (1 − β_t) g, Adam's corrections, ε outside.

    ``correction_beta``: the β of the first-moment correction 1 − β^k (default β_t, as torch's Adam
    does with the β1 it is given; one port uses β_init instead).
    """
    e = beta2 * e + (1 - beta2) * grad * grad
    m = beta * m + (1 - beta) * grad
    c = beta if correction_beta is None else correction_beta
    m_hat = m / (1 - c**k)
    e_hat = e / (1 - beta2**k)
    return theta - lr * m_hat / (torch.sqrt(e_hat) + eps), m, e
