"""Schedules as values: an arm's η_t and β_t as pure functions of the iteration t (optax style).

A trial steps torch's own schedulers (``studies.arms.build_arm``); a pack has no torch optimizer per
member and needs each member's η_t and β_t as numbers. ``arm_schedules`` gives them from the arm's
declaration (``studies.vocab.arms``): two functions ``t ↦ η_t`` and ``t ↦ β_t``, the values the
per-trial optimizer uses at its step t (t = 0 … T − 1). Each one computes exactly the float torch's
scheduler writes into ``param_groups``, in torch's own arithmetic: the recursive ("chainable") forms
of ``CosineAnnealingLR``, ``LinearLR``, ``ExponentialLR`` and ``MultiStepLR`` are evaluated as the
same recurrence (a scan from t = 0, memoised), ``OneCycleLR`` in its closed form, Demon's β by
``demon_beta`` itself. ``tests/studies/test_schedules.py`` steps each torch scheduler beside its
function, bit for bit, for every arm.

The arguments torch's schedulers are built with (milestones in iterations, the exponential γ,
OneCycle's phases) are derived here once, by ``scheduler_args``, for ``build_arm`` and for these
functions alike. ``plateau`` is not a function of t (it follows the trial's validation losses): its
η here is the constant starting value, and a pack steps torch's ``ReduceLROnPlateau`` per member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from demon import demon_beta

from .vocab.arms import Arm

__all__ = ["Schedule", "arm_schedules", "demon_variants", "scheduler_args"]

Schedule = Callable[[int], float]
"""A value per iteration t ≥ 0."""


def scheduler_args(
    schedule: str, settings: Mapping[str, Any], lr: float, beta_init: float, total_steps: int
) -> dict[str, Any]:
    """The keyword arguments of the torch scheduler that runs ``schedule`` over ``total_steps``
    iterations (the arm's ``settings`` resolved: fractions of training become iterations)."""
    if schedule == "step":
        milestones = sorted({max(1, round(m * total_steps)) for m in settings["milestones"]})
        return {"milestones": milestones, "gamma": settings["gamma"]}
    if schedule == "cosine":
        return {"T_max": total_steps, "eta_min": settings["eta_min"]}
    if schedule == "linear":
        return {"start_factor": 1.0, "end_factor": settings["end_factor"], "total_iters": total_steps}
    if schedule == "exp":
        return {"gamma": settings["final_factor"] ** (1.0 / total_steps)}
    if schedule == "onecycle":
        # Paper: lr 0.1η → η → 0.1η, momentum β_init → β_init − span → β_init (0.95 → 0.85 → 0.95).
        return {
            "max_lr": lr,
            "total_steps": total_steps + 1,  # torch raises when stepped past total_steps
            "pct_start": settings["pct_start"],
            "div_factor": settings["div_factor"],
            "final_div_factor": settings["final_div_factor"],
            "anneal_strategy": "linear",
            "cycle_momentum": beta_init > 0,
            "base_momentum": max(0.0, beta_init - settings["momentum_span"]),
            "max_momentum": beta_init,
        }
    if schedule == "plateau":
        return {"mode": "min", "factor": settings["factor"], "patience": settings["patience"]}
    return {}


class _Scan:
    """``t ↦ x_t`` of a recurrence ``x_t = step(x_{t−1}, t)`` from ``x_0``, memoised (a torch
    scheduler's chainable form, evaluated in its own order so every value has its bits)."""

    def __init__(self, first: float, step: Callable[[float, int], float]) -> None:
        self.values = [first]
        self.step = step

    def __call__(self, t: int) -> float:
        while len(self.values) <= t:
            self.values.append(self.step(self.values[-1], len(self.values)))
        return self.values[t]


def _constant(value: float) -> Schedule:
    return lambda t: value


def _multistep(lr: float, milestones: list[int], gamma: float) -> Schedule:
    counts = {m: milestones.count(m) for m in milestones}  # torch keeps a Counter of the milestones
    return _Scan(lr, lambda previous, t: previous * gamma ** counts[t] if t in counts else previous)


def _cosine(lr: float, T_max: int, eta_min: float) -> Schedule:
    def step(previous: float, t: int) -> float:
        if (t - 1 - T_max) % (2 * T_max) == 0:
            return previous + (lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
        ratio = (1 + math.cos(math.pi * t / T_max)) / (1 + math.cos(math.pi * (t - 1) / T_max))
        return ratio * (previous - eta_min) + eta_min

    return _Scan(lr, step)


def _linear(lr: float, start_factor: float, end_factor: float, total_iters: int) -> Schedule:
    def step(previous: float, t: int) -> float:
        if t > total_iters:
            return previous
        span = end_factor - start_factor
        return previous * (1.0 + span / (total_iters * start_factor + (t - 1) * span))

    return _Scan(lr * start_factor, step)


def _exponential(lr: float, gamma: float) -> Schedule:
    return _Scan(lr, lambda previous, t: previous * gamma)


def _onecycle(args: Mapping[str, Any], start: str, peak: str, end: str) -> Schedule:
    """OneCycleLR's two linear phases (``anneal_strategy="linear"``) between the named values."""
    total = args["total_steps"]
    first_end = float(args["pct_start"] * total) - 1
    last_end = total - 1

    def value(t: int) -> float:
        if t <= first_end:
            return (peak_value - start_value) * ((t - 0.0) / (first_end - 0.0)) + start_value
        return (end_value - peak_value) * ((t - first_end) / (last_end - first_end)) + peak_value

    initial_lr = args["max_lr"] / args["div_factor"]
    named = {
        "initial_lr": initial_lr,
        "max_lr": args["max_lr"],
        "min_lr": initial_lr / args["final_div_factor"],
        "max_momentum": args["max_momentum"],
        "base_momentum": args["base_momentum"],
    }
    start_value, peak_value, end_value = named[start], named[peak], named[end]
    return value


def _momentum_decay(beta_init: float, total_steps: int, shape: Callable[[float], float]) -> Schedule:
    """β_init · shape(t/T) after the first step (``studies.arms.MomentumSchedule`` writes these)."""
    return lambda t: beta_init if t == 0 else beta_init * shape(min(t / total_steps, 1.0))


MOMENTUM_SHAPES: dict[str, Callable[[float], float]] = {
    "cosmom": lambda f: 0.5 * (1 + math.cos(math.pi * f)),
    "linmom": lambda f: 1.0 - f,
}
"""The paper's momentum-schedule baselines: the fraction of β_init kept at a fraction f of training."""


def demon_variants(settings: Mapping[str, Any], total_steps: int) -> dict[str, Any]:
    """A Demon arm's variant parameters as optimizer keywords: ``delay`` (a fraction of training)
    becomes ``delay_steps`` = round(delay · T), kept below T; the others pass as they are."""
    variants = {k: v for k, v in settings.items() if k not in ("delay", "nesterov")}
    variants["delay_steps"] = min(round(settings.get("delay", 0.0) * total_steps), total_steps - 1)
    return variants


_LR: dict[str, Callable[[float, dict[str, Any]], Schedule]] = {
    "step": lambda lr, a: _multistep(lr, **a),
    "cosine": lambda lr, a: _cosine(lr, **a),
    "linear": lambda lr, a: _linear(lr, **a),
    "exp": lambda lr, a: _exponential(lr, **a),
    "onecycle": lambda lr, a: _onecycle(a, "initial_lr", "max_lr", "min_lr"),
}


def arm_schedules(
    declared: Arm, settings: Mapping[str, Any], *, lr: float, beta_init: float, total_steps: int
) -> tuple[Schedule, Schedule]:
    """(t ↦ η_t, t ↦ β_t) of one trial of ``declared`` (its ``settings`` already resolved)."""
    name = declared.schedule.name
    args = scheduler_args(name, settings, lr, beta_init, total_steps)
    lr_schedule = _LR[name](lr, args) if name in _LR else _constant(lr)
    if declared.demon:
        variants = demon_variants(settings, total_steps)
        delay, floor = variants["delay_steps"], variants.get("beta_min", 0.0)
        return lr_schedule, lambda t: demon_beta(t, total_steps, beta_init, delay_steps=delay, beta_min=floor)
    if name in MOMENTUM_SHAPES:
        return lr_schedule, _momentum_decay(beta_init, total_steps, MOMENTUM_SHAPES[name])
    if name == "onecycle" and args["cycle_momentum"]:
        return lr_schedule, _onecycle(args, "max_momentum", "base_momentum", "max_momentum")
    return lr_schedule, _constant(beta_init)
