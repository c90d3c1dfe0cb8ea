"""Run one trial alone: its model, its torch optimizer and schedulers, trained to the budget.

The per-trial driver of ``studies.training``'s semantics (seeding, data order, loss, divergence,
evaluation, records): a trial is fully determined by its plan and key, so the same plan and key
give identical results whichever executor runs it, and equal, bit for bit, to the same trial as a
member of a pack (``studies.packed``). It runs any workload: a workload with its own ``loss`` and
``evaluate`` (a VAE, an LSTM, augmented images) trains here only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .arms import ArmRun, build_arm
from .results import EpochRecord, TrialKey, TrialResult, TrialStatus
from .training import (
    EVAL_BATCH_SIZE,
    Divergence,
    TrialLog,
    TrialPlan,
    batch_slices,
    epoch_order,
    failed_result,
    has_validation,
    load_data,
    node_name,
    pick_device,
    seed_trial,
    torch_threads,
)
from .workloads.base import Workload

__all__ = ["TrialPlan", "has_validation", "run_trial"]


def run_trial(plan: TrialPlan, key: TrialKey, *, device: str | None = None) -> TrialResult:
    """Train one trial to its budget and return its result; never raises for a trial's own failure."""
    started = time.perf_counter()
    torch_device = pick_device(device)
    log = TrialLog(key)
    with torch_threads(plan.threads):
        try:
            test = _train(plan, log, torch_device)
        except Exception as exc:
            return failed_result(key, exc, device=torch_device, log=log, wall_seconds=time.perf_counter() - started)
    return log.result(test=test, wall_seconds=time.perf_counter() - started, device=torch_device, node=node_name())


def _train(plan: TrialPlan, log: TrialLog, device: torch.device) -> tuple[float, float]:
    """Train ``log``'s trial, recording its epochs and status; (test loss, test metric) if completed."""
    workload, splits = load_data(plan)
    generator = seed_trial(log.key.seed)
    model = workload.build_model(log.key.seed).to(device)
    steps_per_epoch = plan.steps_per_epoch(len(splits.train))  # type: ignore[arg-type]
    arm = build_arm(
        log.key.arm,
        plan.arm_params.get(log.key.arm, {}),
        model.parameters(),
        lr=log.key.lr,
        beta_init=log.key.beta_init,
        total_steps=plan.epochs * steps_per_epoch,
        weight_decay=plan.weight_decay,
    )
    divergence = Divergence(workload.divergence_factor, math.inf)
    model.train()
    for epoch in range(plan.epochs):
        train_loss = _train_epoch(workload, model, arm, splits.train, plan.batch_size, generator, divergence, device)
        if train_loss is None:
            log.status = TrialStatus.DIVERGED
            return math.nan, math.nan
        val_loss, val_metric = math.nan, math.nan  # no validation split (full_train): nothing to check
        if has_validation(splits):
            val_loss, val_metric = _evaluate(workload, model, splits.val, device)
        log.epochs.append(EpochRecord(epoch + 1, train_loss, val_loss, val_metric))
        if has_validation(splits) and not divergence.within(val_loss):
            log.status = TrialStatus.DIVERGED
            return math.nan, math.nan
        arm.after_epoch(val_loss)
    log.status = TrialStatus.COMPLETED
    return _evaluate(workload, model, splits.test, device)


def _train_epoch(
    workload: Workload,
    model: nn.Module,
    arm: ArmRun,
    dataset: Dataset[Any],
    batch_size: int,
    generator: torch.Generator,
    divergence: Divergence[float],
    device: torch.device,
) -> float | None:
    """One epoch of steps; its mean training loss, or None when a step's loss diverged."""
    loss_sum, count = 0.0, 0
    for batch in _train_batches(dataset, batch_size, generator):
        arm.optimizer.zero_grad(set_to_none=True)
        loss = workload.loss(model, workload.move_batch(batch, device))
        value = float(loss.detach())
        if not divergence.train_step(value):
            return None
        loss.backward()
        arm.optimizer.step()
        arm.after_iteration()
        loss_sum += value
        count += 1
    return loss_sum / max(count, 1)


def _train_batches(dataset: Dataset[Any], batch_size: int, generator: torch.Generator) -> Iterator[Any]:
    """The epoch's batches in ``epoch_order``; in-memory tensor datasets are sliced directly (a
    DataLoader costs ~10× more), others go through a shuffling DataLoader."""
    if isinstance(dataset, TensorDataset):
        order = epoch_order(len(dataset), generator)
        for part in batch_slices(len(order), batch_size):
            index = order[part]
            yield tuple(t[index] for t in dataset.tensors)
        return
    yield from DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)


def _eval_batches(dataset: Dataset[Any]) -> Iterator[Any]:
    if isinstance(dataset, TensorDataset):
        for part in batch_slices(len(dataset), EVAL_BATCH_SIZE):
            yield tuple(t[part] for t in dataset.tensors)
        return
    yield from DataLoader(dataset, batch_size=EVAL_BATCH_SIZE, shuffle=False)


def _evaluate(workload: Workload, model: nn.Module, dataset: Dataset[Any], device: torch.device) -> tuple[float, float]:
    """(mean loss, metric) of ``model`` on ``dataset`` in eval mode (BatchNorm's running statistics)."""
    model.eval()
    try:
        return workload.evaluate(model, (workload.move_batch(b, device) for b in _eval_batches(dataset)))
    finally:
        model.train()
