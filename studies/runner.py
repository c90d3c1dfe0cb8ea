"""Run one trial: build the workload and the arm, train for the budget, score, report.

A trial is fully determined by its plan (the study's fixed settings) and its key (arm, lr, β_init,
seed): same plan and key → identical results on the CPU, whichever executor runs it. The thread
count is set from the plan's CPU resources so an in-process run and a Ray worker compute alike.
"""

from __future__ import annotations

import math
import platform
import random
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .arms import build_arm
from .environment import hardware
from .results import EpochRecord, TrialKey, TrialResult, TrialStatus
from .spec import StudySpec
from .workloads import Splits, Workload, get_workload

EVAL_BATCH_SIZE = 1024


@dataclass(frozen=True)
class TrialPlan:
    """Everything a trial needs besides its key; small and picklable (it travels to Ray workers)."""

    workload: str
    workload_params: dict[str, Any] = field(default_factory=dict)
    arm_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: int = 1
    batch_size: int = 32
    weight_decay: float = 0.0
    data_dir: str = "data"
    threads: int = 1

    @classmethod
    def from_spec(cls, spec: StudySpec, data_dir: str | Path) -> TrialPlan:
        """The plan of a study: batch size defaults to the workload's own."""
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


class Diverged(Exception):
    """Training produced a non-finite loss or one above the workload's ceiling."""


@lru_cache(maxsize=4)
def _cached_splits(workload: str, params_key: str, data_dir: str) -> tuple[Workload, Splits]:
    import json

    instance = get_workload(workload, json.loads(params_key))
    return instance, instance.splits(Path(data_dir), 0)


def _load(plan: TrialPlan) -> tuple[Workload, Splits]:
    import json

    key = json.dumps(plan.workload_params, sort_keys=True)
    return _cached_splits(plan.workload, key, plan.data_dir)


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _train_batches(dataset: Dataset[Any], batch_size: int, generator: torch.Generator) -> Iterator[Any]:
    """Shuffled batches; in-memory tensor datasets are sliced directly (a DataLoader costs ~10× more)."""
    if isinstance(dataset, TensorDataset):
        order = torch.randperm(len(dataset), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield tuple(t[index] for t in dataset.tensors)
        return
    yield from DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)


def _eval_batches(dataset: Dataset[Any]) -> Iterator[Any]:
    if isinstance(dataset, TensorDataset):
        n = len(dataset)
        for start in range(0, n, EVAL_BATCH_SIZE):
            yield tuple(t[start : start + EVAL_BATCH_SIZE] for t in dataset.tensors)
        return
    yield from DataLoader(dataset, batch_size=EVAL_BATCH_SIZE, shuffle=False)


def _evaluate(workload: Workload, model: nn.Module, dataset: Dataset[Any], device: torch.device) -> tuple[float, float]:
    model.eval()
    try:
        return workload.evaluate(model, (workload.move_batch(b, device) for b in _eval_batches(dataset)))
    finally:
        model.train()


def has_validation(splits: Splits) -> bool:
    """Whether the workload held out a validation set (not with a spec's ``full_train``)."""
    return len(splits.val) > 0  # type: ignore[arg-type]


def pick_device(device: str | None = None) -> torch.device:
    """The given device, else the GPU Ray (or the user) made visible, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def node_name() -> str:
    """The Ray node id when inside Ray, else the host name."""
    try:
        import ray

        if ray.is_initialized():
            return f"{platform.node()}/{ray.get_runtime_context().get_node_id()[:12]}"
    except Exception:
        pass
    return platform.node()


def run_trial(plan: TrialPlan, key: TrialKey, *, device: str | None = None) -> TrialResult:
    """Train one trial to its budget and return its result; never raises for a trial's own failure."""
    started = time.perf_counter()
    torch_device = pick_device(device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    epochs: list[EpochRecord] = []
    try:
        return _train(plan, key, torch_device, epochs, started)
    except Exception as exc:
        return TrialResult(
            key=key,
            status=TrialStatus.FAILED,
            epochs=tuple(epochs),
            epochs_done=len(epochs),
            wall_seconds=time.perf_counter() - started,
            device=str(torch_device),
            node=node_name(),
            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
            extra={"hardware": hardware(str(torch_device))},
        )
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    plan: TrialPlan, key: TrialKey, device: torch.device, epochs: list[EpochRecord], started: float
) -> TrialResult:
    workload, splits = _load(plan)
    generator = _seed_everything(key.seed)
    model = workload.build_model(key.seed).to(device)
    n_train = len(splits.train)  # type: ignore[arg-type]
    steps_per_epoch = max(1, math.ceil(n_train / plan.batch_size))
    arm = build_arm(
        key.arm,
        plan.arm_params.get(key.arm, {}),
        model.parameters(),
        lr=key.lr,
        beta_init=key.beta_init,
        total_steps=plan.epochs * steps_per_epoch,
        weight_decay=plan.weight_decay,
    )
    ceiling = math.inf
    status = TrialStatus.COMPLETED
    model.train()
    try:
        for epoch in range(plan.epochs):
            loss_sum, count = 0.0, 0
            for batch in _train_batches(splits.train, plan.batch_size, generator):
                arm.optimizer.zero_grad(set_to_none=True)
                loss = workload.loss(model, workload.move_batch(batch, device))
                value = float(loss.detach())
                if not math.isfinite(value) or value > ceiling:
                    raise Diverged(f"train loss {value} at epoch {epoch}")
                if ceiling == math.inf:
                    ceiling = workload.divergence_factor * max(value, 1e-8)
                loss.backward()
                arm.optimizer.step()
                arm.after_iteration()
                loss_sum += value
                count += 1
            val_loss, val_metric = math.nan, math.nan  # no validation split (full_train): nothing to check
            if has_validation(splits):
                val_loss, val_metric = _evaluate(workload, model, splits.val, device)
                if not math.isfinite(val_loss) or val_loss > ceiling:
                    raise Diverged(f"validation loss {val_loss} at epoch {epoch + 1}")
            epochs.append(EpochRecord(epoch + 1, loss_sum / max(count, 1), val_loss, val_metric))
            arm.after_epoch(val_loss)
    except Diverged:
        status = TrialStatus.DIVERGED
    test_loss, test_metric = (math.nan, math.nan)
    if status is TrialStatus.COMPLETED:
        test_loss, test_metric = _evaluate(workload, model, splits.test, device)
    last = epochs[-1] if epochs else None
    finite_vals = [e.val_metric for e in epochs if math.isfinite(e.val_metric)]
    return TrialResult(
        key=key,
        status=status,
        epochs=tuple(epochs),
        val_metric=last.val_metric if last and status is TrialStatus.COMPLETED else None,
        val_loss=last.val_loss if last and status is TrialStatus.COMPLETED else None,
        test_metric=test_metric if status is TrialStatus.COMPLETED else None,
        test_loss=test_loss if status is TrialStatus.COMPLETED else None,
        best_val_metric=min(finite_vals) if finite_vals else None,
        epochs_done=len(epochs),
        wall_seconds=time.perf_counter() - started,
        device=str(device),
        node=node_name(),
        extra={"hardware": hardware(str(device))},
    )
