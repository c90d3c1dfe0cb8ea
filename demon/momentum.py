"""A momentum scheduler that applies Demon's β schedule to any torch optimizer.

It only writes into ``param_groups``, the way ``OneCycleLR(cycle_momentum=True)`` does, so it works
with torch's SGD, Adam and AdamW in every implementation (single-tensor, ``foreach=True``,
``fused=True``) without touching their kernels.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.optim import Optimizer

from ._schedule import check_beta_init, check_beta_min, check_delay_steps, check_total_steps, demon_beta

__all__ = ["DemonMomentum"]


class DemonMomentum:
    r"""Decay an optimizer's momentum (``momentum``, or β1 of ``betas``) with Demon's schedule.

    .. math::
        \beta_t = \beta_{init}\,\frac{1 - t/T}{(1-\beta_{init}) + \beta_{init}(1 - t/T)},
        \qquad \beta_t = 0 \text{ for } t \ge T

    (optionally delayed by t₀ and floored at β_min: see ``demon_beta``). Call ``step()`` once after
    each ``optimizer.step()``, like an LR scheduler. On construction it sets β_0 = β_init in every
    group; after k calls the groups carry β_k.

    **It keeps its own state.** The iteration count t, T and the base βs live in this object, not
    in the optimizer (whose ``state_dict`` holds only the β last written). To resume, save
    ``scheduler.state_dict()`` beside ``optimizer.state_dict()`` and load both, as with torch's LR
    schedulers; a fresh scheduler on a loaded optimizer would start again at t = 0.
    ``load_state_dict`` restores the saved T (warning if it differs from this one's);
    ``set_total_steps`` extends a resumed run.

    **How the result differs from** ``DemonSGD`` / ``DemonAdam`` (the paper's algorithms):

    - torch's ``SGD(momentum=β_t, dampening=0)`` keeps lr outside the buffer (buf = β buf + g;
      θ −= lr·buf). With a constant lr that is exactly ``DemonSGD``; if an LR scheduler also changes
      lr, past gradients are rescaled by the new lr, which the paper's velocity form does not do.
      ``dampening`` other than 0 multiplies every gradient by (1 − dampening): not the paper's.
    - torch's ``Adam``/``AdamW`` use the EMA form m = β1 m + (1 − β1) g and correct it by
      (1 − β1^k) using the *current* β1, whereas Demon Adam uses the plain sum m = g + β_t m with no
      first-moment correction. ``DemonMomentum(torch.optim.Adam(...))`` is therefore the EMA-form
      "Demon Adam" of the public ports, not Algorithm 2 (docs/demon.md gives the measured
      agreement). Its steady-state step per unit gradient is η, where Algorithm 2's is η/(1 − β_t):
      the two reach the same step when the EMA form's lr is 1/(1 − β_t) times larger (10× at
      β = 0.9, 1× once β has decayed to 0), so the best lr of a heatmap shifts between them.

    Args:
        optimizer: a torch optimizer whose groups carry ``momentum`` or ``betas``.
        total_steps: T ≥ 1, the total number of iterations (``step()`` calls).
        beta_init: β_init in [0, 1) for every group; default None takes each group's own initial
            ``momentum`` / ``betas[0]``.
        delay_steps: t₀, iterations at β_init before the decay starts, 0 ≤ t₀ < T (default 0).
        beta_min: β_min, the floor the decay ends at, at most every group's β_init (default 0).

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> sched = DemonMomentum(opt, total_steps=4)
        >>> for _ in range(2):
        ...     opt.step()
        ...     sched.step()
        >>> round(opt.param_groups[0]["momentum"], 3)
        0.818
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        beta_init: float | None = None,
        *,
        delay_steps: int = 0,
        beta_min: float = 0.0,
    ) -> None:
        check_total_steps(total_steps)
        check_delay_steps(delay_steps, total_steps)
        if beta_init is not None:
            check_beta_init(beta_init)
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.delay_steps = delay_steps
        self.beta_min = beta_min
        self.last_step = 0
        self.base_betas: list[float] = []
        for index, group in enumerate(optimizer.param_groups):
            current = _read_beta(group, index)
            base = float(current) if beta_init is None else beta_init
            check_beta_init(base)
            check_beta_min(beta_min, base)
            self.base_betas.append(base)
        self._apply()

    def step(self) -> None:
        """Advance one iteration and write β_t into every group."""
        self.last_step += 1
        self._apply()

    def get_last_beta(self) -> list[float]:
        """The β each group carries now."""
        return [
            demon_beta(self.last_step, self.total_steps, b, delay_steps=self.delay_steps, beta_min=self.beta_min)
            for b in self.base_betas
        ]

    def set_total_steps(self, total_steps: int) -> None:
        """Set T (e.g. to extend a resumed run) and write β_t of the new schedule into the groups.

        As ``DemonSGD.set_total_steps``: from now on β follows a run planned for ``total_steps``.
        """
        check_total_steps(total_steps)
        check_delay_steps(self.delay_steps, total_steps)
        self.total_steps = total_steps
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: T, the delay, the floor, the base βs and the iteration count."""
        return {
            "total_steps": self.total_steps,
            "delay_steps": self.delay_steps,
            "beta_min": self.beta_min,
            "base_betas": list(self.base_betas),
            "last_step": self.last_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict`` and write the matching β into the optimizer's groups.

        Warns when the saved T replaces a different one (call ``set_total_steps`` after loading to
        extend the run). A state saved before the delay and floor existed loads with neither.
        """
        base_betas = list(state_dict["base_betas"])
        if len(base_betas) != len(self.optimizer.param_groups):
            raise ValueError(
                f"Invalid state_dict: {len(base_betas)} base_betas for {len(self.optimizer.param_groups)} param groups"
            )
        total_steps = int(state_dict["total_steps"])
        if total_steps != self.total_steps:
            warnings.warn(
                f"DemonMomentum.load_state_dict: the saved total_steps {total_steps} replace this scheduler's "
                f"{self.total_steps}; to extend the schedule call set_total_steps(T) after loading",
                UserWarning,
                stacklevel=2,
            )
        self.total_steps = total_steps
        self.delay_steps = int(state_dict.get("delay_steps", 0))
        self.beta_min = float(state_dict.get("beta_min", 0.0))
        self.base_betas = base_betas
        self.last_step = int(state_dict["last_step"])
        self._apply()

    def _apply(self) -> None:
        for group, beta in zip(self.optimizer.param_groups, self.get_last_beta(), strict=True):
            _write_beta(group, beta)


def _read_beta(group: dict[str, Any], index: int) -> float:
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:
        return float(group["betas"][0])
    raise ValueError(
        f"Invalid optimizer: param group {index} has neither 'momentum' nor 'betas' "
        "(DemonMomentum drives SGD-, Adam- and AdamW-style optimizers)"
    )


def _write_beta(group: dict[str, Any], beta: float) -> None:
    if "momentum" in group:
        group["momentum"] = beta
        return
    beta1, beta2 = group["betas"]
    if isinstance(beta1, torch.Tensor):
        beta1.fill_(beta)
    else:
        group["betas"] = (beta, beta2)
