"""Arms on torch: the optimizer and schedulers of one trial, built from the arm's declaration.

The arms themselves (kind, schedule, parameters, Nesterov rule) are declared once, torch-free, in
``studies.vocab.arms``; this module turns a declaration into torch objects:

- Demon arms: ``DemonSGD`` / ``DemonAdam`` with a constant learning rate (Demon replaces the schedule),
  and the variants the arm declares (delay, floor, decoupled weight decay, first-moment correction).
- LR schedules: torch's SGD(momentum) / Adam with torch's LR schedulers, stepped per iteration
  (plateau: per epoch on the validation loss).
- ``cosmom``, ``linmom``: SGD with its momentum decayed to 0 by a cosine or a line, the paper's
  momentum-schedule baselines (torch has no such scheduler, so these few lines are ours).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
)

from demon import DemonAdam, DemonSGD

from .schedules import MOMENTUM_SHAPES, Schedule, arm_schedules, demon_variants, scheduler_args
from .vocab.arms import Arm, arm, check_arm

__all__ = ["ArmRun", "MomentumSchedule", "build_arm", "check_arm", "demon_variants"]


@dataclass
class ArmRun:
    """An arm instantiated on a model: its optimizer and what to step after each iteration/epoch."""

    optimizer: Optimizer
    per_iteration: list[LRScheduler | MomentumSchedule] = field(default_factory=list)
    plateau: ReduceLROnPlateau | None = None

    def after_iteration(self) -> None:
        """Call once after every ``optimizer.step()``."""
        for scheduler in self.per_iteration:
            scheduler.step()

    def after_epoch(self, val_loss: float) -> None:
        """Call once after each epoch's validation."""
        if self.plateau is not None and math.isfinite(val_loss):
            self.plateau.step(val_loss)


class MomentumSchedule:
    """Write β_t of a momentum schedule (``studies.schedules``) into every group after each iteration:
    the paper's cosine and linear momentum decay, which torch has no scheduler for."""

    def __init__(self, optimizer: Optimizer, beta: Schedule) -> None:
        self.optimizer = optimizer
        self.beta = beta
        self.last_step = 0

    def step(self) -> None:
        self.last_step += 1
        for group in self.optimizer.param_groups:
            group["momentum"] = self.beta(self.last_step)


def build_arm(
    name: str,
    params: dict[str, Any],
    model_params: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    beta_init: float,
    total_steps: int,
    weight_decay: float = 0.0,
) -> ArmRun:
    """Instantiate arm ``name`` for one trial (``total_steps`` iterations in all)."""
    declared = arm(name)
    settings = declared.settings(params)
    nesterov = declared.nesterov(params, beta_init)
    if declared.demon:
        common: dict[str, Any] = {
            "lr": lr,
            "beta_init": beta_init,
            "total_steps": total_steps,
            "weight_decay": weight_decay,
        }
        common.update(demon_variants(settings, total_steps))
        if declared.kind == "sgdm":
            return ArmRun(DemonSGD(model_params, nesterov=nesterov, **common))
        return ArmRun(DemonAdam(model_params, **common))
    optimizer: Optimizer
    if declared.kind == "sgdm":
        optimizer = torch.optim.SGD(
            model_params, lr=lr, momentum=beta_init, weight_decay=weight_decay, nesterov=nesterov
        )
    else:
        optimizer = torch.optim.Adam(model_params, lr=lr, betas=(beta_init, 0.999), weight_decay=weight_decay)
    return _with_schedule(optimizer, declared, settings, lr, beta_init, total_steps)


_PER_ITERATION: dict[str, Callable[..., LRScheduler]] = {
    "step": MultiStepLR,
    "cosine": CosineAnnealingLR,
    "linear": LinearLR,
    "exp": ExponentialLR,
    "onecycle": OneCycleLR,
}


def _with_schedule(
    optimizer: Optimizer, declared: Arm, settings: dict[str, Any], lr: float, beta_init: float, total_steps: int
) -> ArmRun:
    """The arm's torch schedulers on ``optimizer``, built from ``scheduler_args`` (shared with the
    packs' schedules)."""
    run = ArmRun(optimizer)
    name = declared.schedule.name
    args = scheduler_args(name, settings, lr, beta_init, total_steps)
    if name in _PER_ITERATION:
        run.per_iteration.append(_PER_ITERATION[name](optimizer, **args))
    elif name == "plateau":
        run.plateau = ReduceLROnPlateau(optimizer, **args)
    elif name in MOMENTUM_SHAPES:
        _, beta = arm_schedules(declared, settings, lr=lr, beta_init=beta_init, total_steps=total_steps)
        run.per_iteration.append(MomentumSchedule(optimizer, beta))
    return run
