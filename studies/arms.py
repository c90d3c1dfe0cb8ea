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

from .vocab.arms import arm, check_arm

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
    """Write ``beta_init · shape(t / T)`` into every group's momentum after each iteration."""

    def __init__(self, optimizer: Optimizer, total_steps: int, shape: Callable[[float], float]) -> None:
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.shape = shape
        self.last_step = 0
        self.base = [float(g["momentum"]) for g in optimizer.param_groups]

    def step(self) -> None:
        self.last_step += 1
        fraction = min(self.last_step / self.total_steps, 1.0)
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            group["momentum"] = base * self.shape(fraction)


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
    return _with_schedule(optimizer, declared.schedule.name, settings, lr, beta_init, total_steps)


def demon_variants(settings: dict[str, Any], total_steps: int) -> dict[str, Any]:
    """A Demon arm's variant parameters as optimizer keywords: ``delay`` (a fraction of training)
    becomes ``delay_steps`` = round(delay · T), kept below T; the others pass as they are."""
    variants = {k: v for k, v in settings.items() if k not in ("delay", "nesterov")}
    variants["delay_steps"] = min(round(settings.get("delay", 0.0) * total_steps), total_steps - 1)
    return variants


def _with_schedule(
    optimizer: Optimizer,
    schedule: str,
    settings: dict[str, Any],
    lr: float,
    beta_init: float,
    total_steps: int,
) -> ArmRun:
    run = ArmRun(optimizer)
    if schedule == "step":
        milestones = sorted({max(1, round(m * total_steps)) for m in settings["milestones"]})
        run.per_iteration.append(MultiStepLR(optimizer, milestones=milestones, gamma=settings["gamma"]))
    elif schedule == "cosine":
        run.per_iteration.append(CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=settings["eta_min"]))
    elif schedule == "linear":
        run.per_iteration.append(
            LinearLR(optimizer, start_factor=1.0, end_factor=settings["end_factor"], total_iters=total_steps)
        )
    elif schedule == "exp":
        gamma = settings["final_factor"] ** (1.0 / total_steps)
        run.per_iteration.append(ExponentialLR(optimizer, gamma=gamma))
    elif schedule == "onecycle":
        # Paper: lr 0.1η → η → 0.1η, momentum β_init → β_init − span → β_init (0.95 → 0.85 → 0.95).
        run.per_iteration.append(
            OneCycleLR(
                optimizer,
                max_lr=lr,
                total_steps=total_steps + 1,  # torch raises when stepped past total_steps
                pct_start=settings["pct_start"],
                div_factor=settings["div_factor"],
                final_div_factor=settings["final_div_factor"],
                anneal_strategy="linear",
                cycle_momentum=beta_init > 0,
                base_momentum=max(0.0, beta_init - settings["momentum_span"]),
                max_momentum=beta_init,
            )
        )
    elif schedule == "plateau":
        run.plateau = ReduceLROnPlateau(optimizer, mode="min", factor=settings["factor"], patience=settings["patience"])
    elif schedule == "cosmom":
        run.per_iteration.append(MomentumSchedule(optimizer, total_steps, lambda f: 0.5 * (1 + math.cos(math.pi * f))))
    elif schedule == "linmom":
        run.per_iteration.append(MomentumSchedule(optimizer, total_steps, lambda f: 1.0 - f))
    return run
