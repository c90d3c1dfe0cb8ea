"""One trial's training semantics, written once for both drivers.

A trial is trained either alone (``studies.runner.run_trial``: its ``nn.Module`` and its torch
optimizer) or as a member of a pack (``studies.packed``: K trials as stacked tensors). Both drivers
take every rule that decides a trial's result from here, so a trial's result depends only on its
plan and key, whichever drives it (bit for bit on the CPU: ``tests/studies/test_packed.py``):

- ``TrialPlan``: the study's fixed settings (a trial = plan + key); ``load_data`` its data, once per
  process;
- seeding: ``seed_trial`` seeds Python, NumPy and torch with the trial's seed (then the workload's
  ``build_model`` draws its initialisation) and returns the generator of its data order;
- data order: ``epoch_order`` (one ``randperm`` per epoch from that generator) cut into
  ``batch_slices`` of the plan's batch size;
- loss: the workload's batched ``member_loss`` hook (a trial is a pack of one for it);
- divergence: ``Divergence``, the test on each step's training loss (before the update) and each
  epoch's validation loss;
- evaluation: ``EVAL_BATCH_SIZE`` batches in order, the workload's ``member_scores`` summed in
  float64 (``studies.workloads.base.ScoreTotals``);
- records: ``TrialLog`` (the per-epoch curve) and its ``result``, the ``TrialResult``;
- threads and place: ``torch_threads``, ``pick_device``, ``node_name``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import random
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import torch

from .environment import hardware
from .results import EpochRecord, TrialKey, TrialResult, TrialStatus
from .workloads import get_workload

if TYPE_CHECKING:
    from .workloads.base import Splits, Workload

__all__ = [
    "EVAL_BATCH_SIZE",
    "Divergence",
    "TrialLog",
    "TrialPlan",
    "batch_slices",
    "epoch_order",
    "has_validation",
    "load_data",
    "node_name",
    "pick_device",
    "seed_trial",
    "torch_threads",
]

EVAL_BATCH_SIZE = 1024


@dataclass(frozen=True)
class TrialPlan:
    """Everything a trial needs besides its key; small and picklable (it travels to Ray workers).

    ``batch_size`` None: the workload's own (``resolved``); ``threads``: torch threads of one
    trial or pack, from the spec's CPUs per trial."""

    workload: str
    workload_params: dict[str, Any] = field(default_factory=dict)
    arm_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: int = 1
    batch_size: int = 32
    weight_decay: float = 0.0
    data_dir: str = "data"
    threads: int = 1

    @classmethod
    def from_spec(cls, spec: Any, data_dir: str | Path) -> TrialPlan:
        """The plan of a ``StudySpec`` (duck-typed: this module never imports the spec's)."""
        workload = get_workload(spec.workload, spec.workload_params)
        return cls(
            workload=spec.workload,
            workload_params=dict(spec.workload_params),
            arm_params={arm.name: dict(arm.params) for arm in spec.arms},
            epochs=spec.epochs,
            batch_size=spec.batch_size or workload.default_batch_size,
            weight_decay=spec.weight_decay,
            data_dir=str(data_dir),
            threads=max(1, int(spec.resources.cpu)),
        )

    def steps_per_epoch(self, n_train: int) -> int:
        """Optimizer steps in one epoch over ``n_train`` samples (the last batch may be short)."""
        return max(1, math.ceil(n_train / self.batch_size))


@lru_cache(maxsize=4)
def _cached_data(workload: str, params_key: str, data_dir: str) -> tuple[Workload, Splits]:
    instance = get_workload(workload, json.loads(params_key))
    return instance, instance.splits(Path(data_dir), 0)


def load_data(plan: TrialPlan) -> tuple[Workload, Splits]:
    """The plan's workload and its splits, loaded once per process (every trial sees the same)."""
    return _cached_data(plan.workload, json.dumps(plan.workload_params, sort_keys=True), plan.data_dir)


def has_validation(splits: Splits) -> bool:
    """Whether the workload held out a validation set (not with a spec's ``full_train``: then no
    validation figures are recorded and only the training loss can diverge)."""
    return len(splits.val) > 0  # type: ignore[arg-type]


def seed_trial(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch for the trial's initialisation; return its data-order generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if _accelerator():
        torch.manual_seed(seed)  # also queues the seeding of every accelerator's generators
    else:  # the same CPU generator state, without the ~1 ms torch.manual_seed spends on absent devices
        torch.default_generator.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@lru_cache(maxsize=1)
def _accelerator() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def epoch_order(n: int, generator: torch.Generator) -> torch.Tensor:
    """The order of the ``n`` training samples in the next epoch."""
    return torch.randperm(n, generator=generator)


def batch_slices(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive batches of an epoch's order (or of an evaluation split): the last may be short."""
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


Losses = TypeVar("Losses", float, torch.Tensor)


class Divergence(Generic[Losses]):
    """The divergence test, of one trial (``Divergence(factor, math.inf)``: Python floats, no tensor
    op per step) or of a pack's K members (a float64 tensor of K ceilings).

    A trial diverges when a training loss (tested before its update) or a validation loss is not
    finite or exceeds ``factor`` × its first training loss (``Workload.divergence_factor``). The
    test is written once, with operators that floats and tensors share: ``within`` is True (per
    member) when the loss is finite and at most the ceiling (a NaN compares False).
    """

    def __init__(self, factor: float, ceiling: Losses, started: bool = False) -> None:
        self.factor = factor
        self.ceiling: Losses = ceiling
        self.started = started  # the first step's losses have set the ceilings

    def within(self, losses: Losses) -> Losses:
        """Per member, whether ``losses`` are finite and at most the ceiling (float64 values)."""
        return (losses > -math.inf) & (losses < math.inf) & (losses <= self.ceiling)

    def train_step(self, losses: Losses) -> Losses:
        """``within`` for one step's training losses; the first step's set the ceilings."""
        ok = self.within(losses)
        if not self.started:
            floor = losses.clamp_min(1e-8) if isinstance(losses, torch.Tensor) else max(losses, 1e-8)
            self.ceiling = self.factor * floor
            self.started = True
        return ok


@dataclass
class TrialLog:
    """One trial's record while it trains: its curve and, once decided, its status."""

    key: TrialKey
    epochs: list[EpochRecord] = field(default_factory=list)
    status: TrialStatus | None = None  # None while training

    def result(
        self,
        *,
        test: tuple[float, float] = (math.nan, math.nan),
        wall_seconds: float,
        device: torch.device | str,
        node: str,
        extra: dict[str, Any] | None = None,
    ) -> TrialResult:
        """The ``TrialResult`` of a finished trial: final figures only for a completed one
        (``test``: its test loss and metric), the curve for all, the best validation metric for a
        result (completed or diverged; a failed trial is missing data)."""
        completed = self.status is TrialStatus.COMPLETED
        last = self.epochs[-1] if self.epochs and completed else None
        done = self.status is not None and self.status.is_done
        finite_vals = [e.val_metric for e in self.epochs if math.isfinite(e.val_metric)] if done else []
        return TrialResult(
            key=self.key,
            status=self.status or TrialStatus.FAILED,
            epochs=tuple(self.epochs),
            val_metric=last.val_metric if last else None,
            val_loss=last.val_loss if last else None,
            test_metric=test[1] if completed else None,
            test_loss=test[0] if completed else None,
            best_val_metric=min(finite_vals) if finite_vals else None,
            epochs_done=len(self.epochs),
            wall_seconds=wall_seconds,
            device=str(device),
            node=node,
            extra={**(extra or {}), "hardware": hardware(str(device))},
        )


def failed_result(
    key: TrialKey,
    exc: BaseException,
    *,
    device: torch.device | str,
    log: TrialLog | None = None,
    wall_seconds: float = 0.0,
) -> TrialResult:
    """The result of a trial that raised, for the per-trial runner and the pack alike: its epochs so
    far (``log``), where it ran (node, device, hardware), and the error with its traceback."""
    log = log if log is not None else TrialLog(key)
    log.status = TrialStatus.FAILED
    failed = log.result(wall_seconds=wall_seconds, device=device, node=node_name())
    return dataclasses.replace(failed, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch threads (the plan's), restoring the caller's count after: an
    in-process run and a Ray worker compute alike."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pick_device(device: str | None = None) -> torch.device:
    """The given device, else the GPU Ray (or the user) made visible, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def node_name() -> str:
    """The Ray node id when inside Ray, else the host name (Ray is not imported to learn that it is
    not running: that import alone costs about a second)."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            return f"{platform.node()}/{ray.get_runtime_context().get_node_id()[:12]}"
    return platform.node()
