"""Per-member learning rate and momentum of a pack, from each arm's declared schedule.

A pack needs, at every iteration t, each member's η_t and β_t as a tensor with a member dimension.
They come from ``studies.schedules.arm_schedules``, the pure functions of t that equal the arm's
torch schedulers bit for bit. Schedules depend only on (arm, its parameters, lr, β_init, budget),
η_t is the constant lr unless the schedule moves it (``Schedule.moves_lr``), β_t the constant
β_init unless it moves it (``moves_beta``), and η never depends on β_init nor β on lr: so each
distinct input is tabulated once, as a column of an (iterations × columns) float64 table, and
``at(t)`` gathers every member's value from its column.

``ReduceLROnPlateau`` depends on the member's own validation losses: each plateau member has its
own η column and its own torch ``ReduceLROnPlateau``, stepped after each epoch on its validation
loss; the η it sets holds from the next iteration on. Its state is part of the pack's checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..results import TrialKey
from ..schedules import arm_schedules, scheduler_args
from ..vocab.arms import arm

__all__ = ["MemberSchedules", "Plateau"]


class Plateau:
    """One member's ``ReduceLROnPlateau``. The scheduler needs an ``Optimizer`` to read and write η:
    it gets a bare one holding the member's η in its only group, which is never stepped (the pack's
    kernels do the steps)."""

    def __init__(self, lr: float, args: dict[str, Any]) -> None:
        self.holder = Optimizer([torch.empty(0)], {"lr": lr})
        self.scheduler = ReduceLROnPlateau(self.holder, **args)

    @property
    def lr(self) -> float:
        """The member's η now."""
        return float(self.holder.param_groups[0]["lr"])

    def step(self, val_loss: float) -> None:
        """One epoch's validation loss (non-finite ones are not fed, as ``ArmRun.after_epoch``)."""
        if math.isfinite(val_loss):
            self.scheduler.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state and the η it set."""
        return {"scheduler": self.scheduler.state_dict(), "lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.scheduler.load_state_dict(state["scheduler"])
        self.holder.param_groups[0]["lr"] = float(state["lr"])


class MemberSchedules:
    """η_t and β_t of every member of a pack: ``at(t)`` gives two float64 tensors of shape (K,)."""

    def __init__(
        self, keys: Sequence[TrialKey], arm_params: dict[str, dict[str, Any]], total_steps: int, device: torch.device
    ) -> None:
        self.total_steps = total_steps
        lr_columns: dict[tuple[Any, ...], int] = {}
        beta_columns: dict[tuple[Any, ...], int] = {}
        lr_values: list[list[float]] = []
        beta_values: list[list[float]] = []
        lr_index: list[int] = []
        beta_index: list[int] = []
        self.plateaus: dict[int, Plateau] = {}
        for member, key in enumerate(keys):
            declared = arm(key.arm)
            settings = declared.settings(arm_params.get(key.arm, {}))
            schedule = declared.schedule
            lr_at, beta_at = arm_schedules(
                declared, settings, lr=key.lr, beta_init=key.beta_init, total_steps=total_steps
            )
            lr_input: tuple[Any, ...] = (key.arm if schedule.moves_lr else "constant", key.lr)
            if schedule.per_epoch:  # its own column, rewritten as its validation losses come in
                lr_input = ("plateau", member)
                args = scheduler_args(schedule.name, settings, key.lr, key.beta_init, total_steps)
                self.plateaus[member] = Plateau(key.lr, args)
            beta_input = (key.arm if schedule.moves_beta else "constant", key.beta_init)
            lr_index.append(_column(lr_columns, lr_values, lr_input, lr_at, total_steps))
            beta_index.append(_column(beta_columns, beta_values, beta_input, beta_at, total_steps))
        self.lr = torch.tensor(lr_values, dtype=torch.float64).T.contiguous().to(device)
        self.beta = torch.tensor(beta_values, dtype=torch.float64).T.contiguous().to(device)
        self.lr_index = torch.tensor(lr_index, dtype=torch.long, device=device)
        self.beta_index = torch.tensor(beta_index, dtype=torch.long, device=device)
        self.plateau_columns = {member: lr_index[member] for member in self.plateaus}

    def at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(η_t, β_t) of every member at iteration ``step``."""
        return self.lr[step].index_select(0, self.lr_index), self.beta[step].index_select(0, self.beta_index)

    def after_epoch(self, member: int, val_loss: float, next_step: int) -> None:
        """Feed a plateau member its validation loss; its η from ``next_step`` on is the new one."""
        plateau = self.plateaus.get(member)
        if plateau is None:
            return
        plateau.step(val_loss)
        self.lr[next_step:, self.plateau_columns[member]] = plateau.lr

    def state_dict(self) -> dict[int, dict[str, Any]]:
        """What is not a function of t: each plateau member's scheduler."""
        return {member: plateau.state_dict() for member, plateau in self.plateaus.items()}

    def load_state_dict(self, state: dict[int, dict[str, Any]], next_step: int) -> None:
        """Restore the plateau members of ``state_dict``; their η holds from ``next_step`` on."""
        for member, saved in state.items():
            plateau = self.plateaus[int(member)]
            plateau.load_state_dict(saved)
            self.lr[next_step:, self.plateau_columns[int(member)]] = plateau.lr


def _column(
    columns: dict[tuple[Any, ...], int],
    values: list[list[float]],
    inputs: tuple[Any, ...],
    schedule: Any,
    total_steps: int,
) -> int:
    """The index of the column of ``inputs``, tabulating ``schedule`` the first time it is seen."""
    if inputs not in columns:
        columns[inputs] = len(values)
        values.append([schedule(t) for t in range(total_steps)])
    return columns[inputs]
