"""Per-member learning rate and momentum of a pack, read from each arm's own torch objects.

A pack needs, at every iteration t, each member's η_t and β_t as a tensor with a member dimension.
They come from exactly what the per-trial path runs (``studies.arms.build_arm``): for each member,
the arm's optimizer (``DemonSGD``, ``DemonAdam``, torch's SGD or Adam) built on one dummy parameter
with the member's lr, β_init and budget, and the arm's torch schedulers stepped after each of its
``step()`` calls. Reading ``param_groups`` (and ``current_betas()`` for Demon) before each step gives
the values the per-trial optimizer would use, so no schedule formula is written twice.

Schedules that depend only on (arm, lr, β_init, budget) are evaluated once per distinct input
(``schedule_inputs``: η of an LR schedule does not depend on β_init, β of Demon not on lr) and
stored as (iterations × members) tables. ``ReduceLROnPlateau`` depends on the member's own
validation losses, so each plateau member keeps its live dummy arm and is stepped after each epoch
with its own validation loss; its column is rewritten from the next iteration on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from demon import DemonAdam, DemonSGD

from ..arms import ArmRun, build_arm
from ..results import TrialKey
from ..vocab.arms import arm

KINDS = ("sgd", "demon_sgd", "adam", "demon_adam")


def optimizer_kind(name: str) -> str:
    """Which packed kernel runs arm ``name``: one of ``KINDS`` (``ValueError`` for an unknown arm)."""
    return arm(name).kernel


def _dummy_arm(key: TrialKey, arm_params: dict[str, Any], total_steps: int, weight_decay: float) -> ArmRun:
    dummy = torch.nn.Parameter(torch.zeros(1))
    return build_arm(
        key.arm,
        arm_params,
        [dummy],
        lr=key.lr,
        beta_init=key.beta_init,
        total_steps=total_steps,
        weight_decay=weight_decay,
    )


def _read(run: ArmRun) -> tuple[float, float]:
    """(η, β) the arm's optimizer would use at its next ``step()``."""
    optimizer = run.optimizer
    group = optimizer.param_groups[0]
    if isinstance(optimizer, (DemonSGD, DemonAdam)):
        return float(group["lr"]), optimizer.current_betas()[0]
    if "momentum" in group:
        return float(group["lr"]), float(group["momentum"])
    return float(group["lr"]), float(group["betas"][0])


def _trace(run: ArmRun, total_steps: int) -> tuple[list[float], list[float]]:
    """η_t and β_t for t = 0 … T−1, advancing the dummy optimizer and its schedulers as a trial does.

    Without a gradient a torch optimizer's ``step()`` changes nothing but the flag its schedulers
    check, so it is called once (30 µs a call would dominate); Demon's optimizers only advance
    their iteration counter, which ``_advance`` does directly.
    """
    optimizer = run.optimizer
    demon = isinstance(optimizer, (DemonSGD, DemonAdam))
    if not demon:
        optimizer.step()
    lrs: list[float] = []
    betas: list[float] = []
    for _ in range(total_steps):
        lr, beta = _read(run)
        lrs.append(lr)
        betas.append(beta)
        if isinstance(optimizer, (DemonSGD, DemonAdam)):
            optimizer._advance()
        run.after_iteration()
    return lrs, betas


def schedule_inputs(name: str) -> tuple[bool, bool]:
    """Whether arm's η_t schedule depends on lr and its β_t schedule on β_init (the arm's declared
    ``Schedule``). A trace is computed once per distinct input, not per member."""
    schedule = arm(name).schedule
    return schedule.moves_lr, schedule.moves_beta


class MemberSchedules:
    """η_t and β_t of every member: ``lr[t]`` and ``beta[t]`` are float64 tensors of shape (K,)."""

    def __init__(
        self,
        keys: Sequence[TrialKey],
        arm_params: dict[str, dict[str, Any]],
        total_steps: int,
        weight_decay: float,
    ) -> None:
        self.total_steps = total_steps
        columns: dict[tuple[str, float | None, float | None], tuple[list[float], list[float]]] = {}
        lr_columns: list[list[float]] = []
        beta_columns: list[list[float]] = []
        self.plateaus: dict[int, ArmRun] = {}
        for member, key in enumerate(keys):
            run_arm = _dummy_arm(key, arm_params.get(key.arm, {}), total_steps, weight_decay)
            if run_arm.plateau is not None:
                self.plateaus[member] = run_arm  # lives on: stepped per epoch on this member's val loss
                lr, beta = _read(run_arm)
                lr_columns.append([lr] * total_steps)
                beta_columns.append([beta] * total_steps)
                continue
            uses_lr, uses_beta = schedule_inputs(key.arm)
            inputs = (key.arm, key.lr if uses_lr else None, key.beta_init if uses_beta else None)
            if inputs not in columns:
                columns[inputs] = _trace(run_arm, total_steps)
            lrs, betas = columns[inputs]
            lr_columns.append(lrs if uses_lr else [key.lr] * total_steps)
            beta_columns.append(betas if uses_beta else [key.beta_init] * total_steps)
        self.lr = torch.tensor(lr_columns, dtype=torch.float64).T.contiguous()
        self.beta = torch.tensor(beta_columns, dtype=torch.float64).T.contiguous()

    def after_epoch(self, member: int, val_loss: float, next_step: int) -> None:
        """Feed a plateau member its validation loss; its η from ``next_step`` on is the new one."""
        run_arm = self.plateaus.get(member)
        if run_arm is None or not math.isfinite(val_loss):
            return
        run_arm.after_epoch(val_loss)
        lr, _ = _read(run_arm)
        self.lr[next_step:, member] = lr

    def to(self, device: torch.device) -> MemberSchedules:
        """Move the tables to ``device`` (read there every iteration)."""
        self.lr = self.lr.to(device)
        self.beta = self.beta.to(device)
        return self
