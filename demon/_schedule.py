"""The Demon momentum schedule as a plain function of the iteration.

Demon (Chen, Wolfe, Li, Kyrillidis, arXiv 1910.04952) lets the total future contribution of a
gradient, β/(1 − β), fall linearly to zero over training:

    β_t / (1 − β_t) = (1 − t/T) · β_init / (1 − β_init)

which gives

    β_t = β_init · (1 − t/T) / ((1 − β_init) + β_init · (1 − t/T))

with ``t`` counted in optimizer iterations from 0 and ``T`` the total number of iterations. Past
``T`` the closed form turns negative, has a pole at ``t = T / β_init`` and then exceeds 1, so it is
clamped: ``β_t = 0`` for ``t ≥ T``.
"""

from __future__ import annotations

import math

__all__ = ["check_beta_init", "check_total_steps", "demon_beta"]


def check_beta_init(beta_init: float) -> None:
    """Raise ``ValueError`` unless ``0 ≤ beta_init < 1`` (β_init = 0 is plain SGD)."""
    if isinstance(beta_init, bool) or not isinstance(beta_init, (int, float)):
        raise ValueError(f"Invalid beta_init value: {beta_init!r} (expected a number in [0, 1))")
    if not math.isfinite(beta_init) or not 0.0 <= beta_init < 1.0:
        raise ValueError(f"Invalid beta_init value: {beta_init} (expected 0 <= beta_init < 1)")


def check_total_steps(total_steps: int) -> None:
    """Raise ``ValueError`` unless ``total_steps`` is an integer ≥ 1."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"Invalid total_steps value: {total_steps!r} (expected an integer >= 1)")


def demon_beta(step: int, total_steps: int, beta_init: float) -> float:
    """Return Demon's momentum coefficient β_t at iteration ``step`` of ``total_steps``.

    Args:
        step: the iteration t, counted from 0 (an integer ≥ 0).
        total_steps: T, the total number of iterations of the run (an integer ≥ 1).
        beta_init: β_init, the momentum at t = 0, in [0, 1).

    Returns:
        β_t in [0, β_init]; exactly ``beta_init`` at t = 0 and 0 for every t ≥ T.

    Raises:
        ValueError: naming the bad value, for β_init outside [0, 1), T < 1 or t < 0.

    Example:
        >>> round(demon_beta(500, 1000, 0.9), 3)
        0.818
        >>> demon_beta(1000, 1000, 0.9), demon_beta(5000, 1000, 0.9)
        (0.0, 0.0)
    """
    check_beta_init(beta_init)
    check_total_steps(total_steps)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"Invalid step value: {step!r} (expected an integer >= 0)")
    if step >= total_steps:
        return 0.0
    remaining = 1.0 - step / total_steps
    return beta_init * remaining / ((1.0 - beta_init) + beta_init * remaining)
