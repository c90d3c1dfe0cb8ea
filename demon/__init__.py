"""Demon: decaying momentum optimizers for PyTorch, exactly as Chen et al. (arXiv 1910.04952) specify.

- ``demon_beta(step, total_steps, beta_init)``: the schedule β_t, clamped to 0 past T.
- ``DemonSGD``: Algorithm 1 (Demon SGDM), undamped velocity form, constant lr.
- ``DemonAdam``: Algorithm 2 (Demon Adam), sum-form first moment, ε inside the square root.
- ``DemonMomentum``: a scheduler that writes β_t into any torch optimizer's momentum or β1.

This package imports torch and nothing else of the project.
"""

from __future__ import annotations

from ._schedule import demon_beta
from .adam import DemonAdam, demon_adam
from .momentum import DemonMomentum
from .sgd import DemonSGD, demon_sgd

__all__ = ["DemonAdam", "DemonMomentum", "DemonSGD", "demon_adam", "demon_beta", "demon_sgd"]
