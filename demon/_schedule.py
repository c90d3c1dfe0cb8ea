"""The Demon momentum schedule as a plain function of the iteration.

Demon (Chen, Wolfe, Li, Kyrillidis, arXiv 1910.04952) lets the total future contribution of a
gradient, β/(1 − β), fall linearly to zero over training:

    β_t / (1 − β_t) = (1 − t/T) · β_init / (1 − β_init)

which gives

    β_t = β_init · (1 − t/T) / ((1 − β_init) + β_init · (1 − t/T))

with ``t`` counted in optimizer iterations from 0 and ``T`` the total number of iterations. Past
``T`` the closed form turns negative, has a pole at ``t = T / β_init`` and then exceeds 1, so it is
clamped: ``β_t = 0`` for ``t ≥ T``.

Two variants, both off by default (then the formula above, bit for bit):

- **a delay** t₀ (``delay_steps``): β_t = β_init while t ≤ t₀, then the decay above runs over
  [t₀, T] instead of [0, T]. The paper's v2 reports gains from delaying the decay; one public port
  has it as ``T_init``.
- **a floor** β_min (``beta_min``): the future contribution falls linearly from
  β_init/(1 − β_init) at t₀ to β_min/(1 − β_min) at T (instead of to 0), and β_t = β_min from T on.
  This keeps the schedule's defining property (a contribution that falls linearly) and ends exactly
  at β_min, where clamping ``max(β_t, β_min)`` would flatten the curve early.

In general, with τ = (t − t₀)/(T − t₀) the elapsed fraction of the decay:

    β_t / (1 − β_t) = (1 − τ) · β_init/(1 − β_init) + τ · β_min/(1 − β_min)
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_beta_init", "check_beta_min", "check_delay_steps", "check_total_steps", "demon_beta"]


def check_beta_init(beta_init: Any) -> None:
    """Raise ``ValueError`` unless ``0 ≤ beta_init < 1`` (β_init = 0 is plain SGD)."""
    if isinstance(beta_init, bool) or not isinstance(beta_init, (int, float)):
        raise ValueError(f"Invalid beta_init value: {beta_init!r} (expected a number in [0, 1))")
    if not math.isfinite(beta_init) or not 0.0 <= beta_init < 1.0:
        raise ValueError(f"Invalid beta_init value: {beta_init} (expected 0 <= beta_init < 1)")


def check_total_steps(total_steps: Any) -> None:
    """Raise ``ValueError`` unless ``total_steps`` is an integer ≥ 1."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"Invalid total_steps value: {total_steps!r} (expected an integer >= 1)")


def check_delay_steps(delay_steps: Any, total_steps: int) -> None:
    """Raise ``ValueError`` unless ``0 ≤ delay_steps < total_steps`` (an integer)."""
    if isinstance(delay_steps, bool) or not isinstance(delay_steps, int) or not 0 <= delay_steps < total_steps:
        raise ValueError(
            f"Invalid delay_steps value: {delay_steps!r} (expected an integer with 0 <= delay_steps < "
            f"total_steps = {total_steps})"
        )


def check_beta_min(beta_min: Any, beta_init: float) -> None:
    """Raise ``ValueError`` unless ``0 ≤ beta_min ≤ beta_init`` (a floor above β_init would raise β)."""
    if isinstance(beta_min, bool) or not isinstance(beta_min, (int, float)):
        raise ValueError(f"Invalid beta_min value: {beta_min!r} (expected a number in [0, beta_init])")
    if not math.isfinite(beta_min) or not 0.0 <= beta_min <= beta_init:
        raise ValueError(f"Invalid beta_min value: {beta_min} (expected 0 <= beta_min <= beta_init = {beta_init})")


def demon_beta(step: int, total_steps: int, beta_init: float, *, delay_steps: int = 0, beta_min: float = 0.0) -> float:
    """Return Demon's momentum coefficient β_t at iteration ``step`` of ``total_steps``.

    Args:
        step: the iteration t, counted from 0 (an integer ≥ 0).
        total_steps: T, the total number of iterations of the run (an integer ≥ 1).
        beta_init: β_init, the momentum at t = 0, in [0, 1).
        delay_steps: t₀, iterations at β_init before the decay starts (0 ≤ t₀ < T; default 0).
        beta_min: β_min, the floor reached at T and kept after it (0 ≤ β_min ≤ β_init; default 0).

    Returns:
        β_t in [β_min, β_init]; exactly ``beta_init`` for t ≤ t₀ and ``beta_min`` for every t ≥ T.

    Raises:
        ValueError: naming the bad value, for β_init outside [0, 1), T < 1, t < 0, t₀ outside
            [0, T) or β_min outside [0, β_init].

    Example:
        >>> round(demon_beta(500, 1000, 0.9), 3)
        0.818
        >>> demon_beta(1000, 1000, 0.9), demon_beta(5000, 1000, 0.9)
        (0.0, 0.0)
        >>> demon_beta(400, 1000, 0.9, delay_steps=500), round(demon_beta(750, 1000, 0.9, delay_steps=500), 3)
        (0.9, 0.818)
        >>> demon_beta(1000, 1000, 0.9, beta_min=0.5)
        0.5
    """
    check_beta_init(beta_init)
    check_total_steps(total_steps)
    check_delay_steps(delay_steps, total_steps)
    check_beta_min(beta_min, beta_init)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"Invalid step value: {step!r} (expected an integer >= 0)")
    if step >= total_steps:
        return float(beta_min)
    if step <= delay_steps:  # the formula gives β_init at t₀ too (elapsed 0); exact this way
        return float(beta_init)
    elapsed = (step - delay_steps) / (total_steps - delay_steps)
    remaining = 1.0 - elapsed
    # β/(1−β) interpolated linearly, times (1 − β_init)(1 − β_min). With β_min = 0 and t₀ = 0 every
    # extra term is an exact ×1 or +0, so the result is the paper's closed form bit for bit.
    scaled = beta_init * remaining * (1.0 - beta_min) + beta_min * (1.0 - beta_init) * elapsed
    return scaled / ((1.0 - beta_init) * (1.0 - beta_min) + scaled)
