"""Arms: named optimizer recipes built from ``demon`` and torch's own schedulers.

- ``demon_sgdm``, ``demon_adam``: Demon with a constant learning rate (Demon replaces the schedule).
- ``sgdm_<schedule>``, ``adam_<schedule>`` for schedule ∈ {none, step, cosine, linear, exp, onecycle,
  plateau}: torch's SGD(momentum) / Adam with torch's LR schedulers, stepped per iteration (plateau:
  per epoch on the validation loss).
- ``sgdm_cosmom``, ``sgdm_linmom``: SGD with its momentum decayed to 0 by a cosine or a line, the
  paper's momentum-schedule baselines (torch has no such scheduler, so these few lines are ours).

For every arm β_init is the (initial) momentum or β1, so grids of different arms line up cell by cell.
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

SCHEDULES = ("none", "step", "cosine", "linear", "exp", "onecycle", "plateau")
MOMENTUM_SCHEDULES = ("cosmom", "linmom")

# Parameters each schedule accepts, with defaults (fractions are of the total iterations).
SCHEDULE_PARAMS: dict[str, dict[str, Any]] = {
    "none": {},
    "step": {"milestones": [0.5, 0.75], "gamma": 0.1},
    "cosine": {"eta_min": 0.0},
    "linear": {"end_factor": 0.0},
    "exp": {"final_factor": 0.01},
    "onecycle": {"pct_start": 0.3, "div_factor": 10.0, "final_div_factor": 1.0, "momentum_span": 0.1},
    "plateau": {"factor": 0.1, "patience": 2},
    "cosmom": {},
    "linmom": {},
}
COMMON_PARAMS = {"nesterov": False}


def arm_names() -> list[str]:
    """Every valid arm name."""
    names = ["demon_sgdm", "demon_adam"]
    names += [f"{base}_{s}" for base in ("sgdm", "adam") for s in SCHEDULES]
    names += [f"sgdm_{m}" for m in MOMENTUM_SCHEDULES]
    return names


def _split(name: str) -> tuple[str, str]:
    base, _, schedule = name.partition("_")
    return base, schedule


def check_arm(name: str, params: dict[str, Any]) -> None:
    """Raise ``ValueError`` for an unknown arm or parameter, listing the valid choices."""
    if name not in arm_names():
        raise ValueError(f"unknown arm {name!r}; valid choices: {', '.join(arm_names())}")
    base, schedule = _split(name)
    allowed = dict(COMMON_PARAMS) if "sgdm" in (base, schedule) else {}
    if base != "demon":
        allowed.update(SCHEDULE_PARAMS[schedule])
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        choices = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"arm {name!r}: unknown parameter(s) {unknown}; valid parameters: {choices}")
    for param, value in params.items():
        problem = _param_problem(param, value)
        if problem:
            raise ValueError(f"arm {name!r}: parameter {param!r} {problem} (got {value!r})")


# Valid range of each numeric schedule parameter: (low, high, low inclusive, high inclusive).
PARAM_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "gamma": (0.0, 1.0, False, True),
    "eta_min": (0.0, math.inf, True, False),
    "end_factor": (0.0, 1.0, True, True),
    "final_factor": (0.0, 1.0, False, True),
    "pct_start": (0.0, 1.0, False, False),
    "div_factor": (0.0, math.inf, False, False),
    "final_div_factor": (0.0, math.inf, False, False),
    "momentum_span": (0.0, 1.0, True, True),
    "factor": (0.0, 1.0, False, False),
    "patience": (0.0, 10_000.0, True, True),
}


def _param_problem(param: str, value: Any) -> str | None:
    """Why ``value`` is not valid for ``param``, or None."""
    if param == "nesterov":
        return None if isinstance(value, bool) else "must be true or false"
    if param == "milestones":
        fractions = isinstance(value, list) and value and all(_number(m) and 0 < m < 1 for m in value)
        return None if fractions else "must be a non-empty list of fractions of training in (0, 1)"
    low, high, low_in, high_in = PARAM_RANGES[param]
    if not _number(value):
        return "must be a number"
    if param == "patience" and value != int(value):
        return "must be a whole number of epochs"
    above = value >= low if low_in else value > low
    below = value <= high if high_in else value < high
    interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
    return None if above and below else f"must lie in {interval}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    check_arm(name, params)
    base, schedule = _split(name)
    nesterov = bool(params.get("nesterov", False))
    if name == "demon_sgdm":
        sgd = DemonSGD(
            model_params,
            lr=lr,
            beta_init=beta_init,
            total_steps=total_steps,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        return ArmRun(sgd)
    if name == "demon_adam":
        adam = DemonAdam(model_params, lr=lr, beta_init=beta_init, total_steps=total_steps, weight_decay=weight_decay)
        return ArmRun(adam)
    optimizer: Optimizer
    if base == "sgdm":
        optimizer = torch.optim.SGD(
            model_params,
            lr=lr,
            momentum=beta_init,
            weight_decay=weight_decay,
            nesterov=nesterov and beta_init > 0,
        )
    else:
        optimizer = torch.optim.Adam(model_params, lr=lr, betas=(beta_init, 0.999), weight_decay=weight_decay)
    settings = {**SCHEDULE_PARAMS[schedule], **params}
    return _with_schedule(optimizer, schedule, settings, lr, beta_init, total_steps)


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
