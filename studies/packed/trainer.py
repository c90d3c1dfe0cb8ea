"""Train a pack: K trials of one study at once, each with its own seed, arm, lr and β_init.

``run_pack`` is the packed driver of ``studies.training``'s semantics, as ``studies.runner.run_trial``
is the per-trial one, so member k's result is, bit for bit, the per-trial result of its key:

- initialisation: the workload's ``build_model`` after ``seed_trial`` of the member's seed;
- data order: each member's own generator, one ``epoch_order`` per epoch, cut into the same
  ``batch_slices`` (gathered into a ``(K, B, ...)`` batch);
- loss: the workload's ``member_loss`` hook on the pack's ``(K, B, ...)`` outputs; the backward
  pass of the active members' sum gives each member the gradient of its own loss (members share
  no weights);
- update: ``demon.packed`` kernels, members sorted by kernel so that each is one contiguous
  slice, with η_t and β_t from ``MemberSchedules`` (the arms' schedules as functions of t);
- divergence: ``Divergence`` on every member's step loss before its update and on its validation
  loss after each epoch. A diverged member is recorded at that step, then zeroed (weights,
  gradients, state) so it stays finite and never moves again; the others are unaffected.

Results leave through ``emit`` the moment a member is done: a diverged member at once, the
completed ones after the test evaluation.

Durability: with a ``checkpoint`` path the pack saves its ``PackState`` there at epoch boundaries,
at most every ``checkpoint_seconds`` (``checkpoint_cadence``) and when ``should_stop`` stops it,
and resumes from it when the file holds the same members and plan: a killed pack loses at most
that much training, and the resumed results equal the uninterrupted ones. ``should_stop`` is polled
after each epoch: a stopped pack returns its finished members only and keeps its checkpoint for a
relaunch. The file is deleted at the end.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from demon.packed import packed_adam, packed_demon_adam, packed_demon_sgd, packed_sgd

from ..results import EpochRecord, TrialKey, TrialResult, TrialStatus
from ..training import (
    EVAL_BATCH_SIZE,
    Divergence,
    TrialLog,
    TrialPlan,
    batch_slices,
    epoch_order,
    failed_result,
    load_data,
    node_name,
    pick_device,
    seed_trial,
    torch_threads,
)
from ..vocab.arms import arm
from ..workloads.base import ScoreTotals
from .checkpoint import PackState, plan_digest
from .models import PackedNet, packing_problem
from .schedules import MemberSchedules

Emit = Callable[[TrialResult], None]
EVAL_ELEMENTS = 1 << 20  # activation elements per evaluation chunk of members (4 MiB in float32): a
# pack's memory peaks in evaluation (a split for every member at once), so it is evaluated in chunks
CHECKPOINT_SECONDS = 30.0  # the default cadence of a pack's checkpoints (DEMONLAB_CHECKPOINT_SECONDS)
KERNELS = ("sgd", "demon_sgd", "adam", "demon_adam")  # the order members are sorted in
_log = logging.getLogger(__name__)


def checkpoint_cadence() -> float:
    """Seconds between a pack's checkpoints: ``DEMONLAB_CHECKPOINT_SECONDS`` (0: every epoch), else
    ``CHECKPOINT_SECONDS``. Each save costs a few percent of a small pack's epoch: every 30 s bounds
    a kill's loss without paying that each epoch."""
    value = os.environ.get("DEMONLAB_CHECKPOINT_SECONDS", "")
    try:
        return max(0.0, float(value)) if value else CHECKPOINT_SECONDS
    except ValueError:
        raise ValueError(f"DEMONLAB_CHECKPOINT_SECONDS must be a number of seconds (got {value!r})") from None


class PackError(RuntimeError):
    """A pack cannot run: the workload does not pack, or its data is not in memory tensors."""


def run_pack(
    plan: TrialPlan,
    keys: Sequence[TrialKey],
    *,
    device: str | None = None,
    emit: Emit | None = None,
    checkpoint: Path | None = None,
    checkpoint_seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    deliver: Collection[TrialKey] | None = None,
) -> list[TrialResult]:
    """Train ``keys`` as one pack; return (and ``emit``) one result per key, in ``keys``' order.

    Like ``run_trial`` it never raises for the trials' own failure: an error fails every member
    not yet done, with the error text. ``checkpoint``: save there (at most every
    ``checkpoint_seconds``, at epoch ends) and resume from it; ``should_stop``: polled after each
    epoch, a stopped pack returns only its finished members; ``deliver``: the keys whose results
    are wanted (a resumed pack's others already reached the sink).
    """
    torch_device = pick_device(device)
    done: dict[TrialKey, TrialResult] = {}

    def finish(result: TrialResult) -> None:
        if deliver is not None and result.key not in deliver:
            return
        done[result.key] = result
        if emit is not None:
            emit(result)

    with torch_threads(plan.threads):
        members = [key for key in keys if not _refused(plan, key, torch_device, finish)]
        pack: _Pack | None = None
        try:
            cadence = checkpoint_cadence() if checkpoint_seconds is None else checkpoint_seconds
            pack = _Pack(plan, members, torch_device, finish, checkpoint, cadence) if members else None
            if pack is not None and pack.train(should_stop) and checkpoint is not None:
                checkpoint.unlink(missing_ok=True)
        except Exception as exc:
            logs = {} if pack is None else dict(zip(pack.keys, pack.state.logs, strict=True))
            for key in members:
                if key not in done:
                    finish(failed_result(key, exc, device=torch_device, log=logs.get(key)))
    return [done[key] for key in keys if key in done]


def _kernel_group(key: TrialKey, arm_params: dict[str, dict[str, Any]]) -> tuple[int, tuple[tuple[str, bool], ...]]:
    """Members that share a kernel and its flags (the arm registry's ``kernel_options``) step together."""
    declared = arm(key.arm)
    options = declared.kernel_options(arm_params.get(key.arm, {}), key.beta_init)
    return KERNELS.index(declared.kernel), tuple(sorted(options.items()))


def _refused(plan: TrialPlan, key: TrialKey, device: torch.device, finish: Emit) -> bool:
    """Fail a member whose arm cannot be built (unknown, bad parameters) on its own, as its trial
    alone fails, rather than failing the whole pack; True when it was refused."""
    try:
        arm(key.arm).check(plan.arm_params.get(key.arm, {}))
    except ValueError as exc:
        finish(failed_result(key, exc, device=device))
        return True
    return False


class _Pack:
    """One pack: its data, model, schedules and ``PackState``; ``train`` runs it to the end."""

    def __init__(
        self,
        plan: TrialPlan,
        keys: Sequence[TrialKey],
        device: torch.device,
        finish: Emit,
        checkpoint: Path | None,
        checkpoint_seconds: float,
    ) -> None:
        self.workload, self.splits = load_data(plan)
        problem = packing_problem(self.workload)
        if problem:
            raise PackError(f"workload {plan.workload!r} cannot run packed: {problem}")
        if not isinstance(self.splits.train, TensorDataset):
            raise PackError(f"workload {plan.workload!r} cannot run packed: its data is not in memory tensors")
        self.plan, self.device, self.finish = plan, device, finish
        self.keys = sorted(keys, key=lambda k: _kernel_group(k, plan.arm_params))  # stable: keys' order within
        self.node = node_name()
        x_train, y_train = self.splits.train.tensors
        self.x_train, self.y_train = x_train.to(device), y_train.to(device)
        self.steps_per_epoch = plan.steps_per_epoch(len(x_train))
        total_steps = plan.epochs * self.steps_per_epoch
        self.schedules = MemberSchedules(self.keys, plan.arm_params, total_steps, device)
        self.net, self.state = self._fresh()
        self.checkpoint, self.checkpoint_seconds = checkpoint, checkpoint_seconds
        if checkpoint is not None:
            self._resume(checkpoint)
        self.divergence = Divergence(self.workload.divergence_factor, self.state.ceiling, self.state.step > 0)
        self.groups = self._kernel_groups()
        self.decay = None  # L2 weight decay per member (one value for the study), None without
        if plan.weight_decay != 0:
            self.decay = torch.full((len(self.keys),), plan.weight_decay, dtype=torch.float64, device=device)
        self.started = time.perf_counter() - self.state.elapsed
        self.saved = time.perf_counter()

    def _fresh(self) -> tuple[PackedNet, PackState]:
        """The pack at step 0: each member's model built after the runner's own seeding."""
        generators, models = [], {}
        for key in self.keys:
            generators.append(seed_trial(key.seed))
            if key.seed not in models:
                models[key.seed] = self.workload.build_model(key.seed)
        net = PackedNet([models[k.seed] for k in self.keys], self.device)
        size = len(self.keys)
        state = PackState(
            plan=plan_digest(self.plan),
            keys=[k.token() for k in self.keys],
            params=net.params,
            running=net.running,
            moments=[[torch.zeros_like(p) for p in net.params] for _ in range(2)],
            generators=generators,
            logs=[TrialLog(k) for k in self.keys],
            active=torch.ones(size, dtype=torch.bool, device=self.device),
            ceiling=torch.full((size,), math.inf, dtype=torch.float64, device=self.device),
        )
        return net, state

    def _resume(self, path: Path) -> None:
        """Continue from the state saved at ``path`` if it is this pack's; deliver its finished members."""
        saved = PackState.load(path, self.device)
        if saved is None or saved.plan != self.state.plan or saved.keys != self.state.keys:
            return  # none, or another pack's or another plan's: start afresh (and overwrite it)
        self.net.adopt(saved.params, saved.running)
        saved.params = self.net.params
        saved.resumed_from = saved.epoch
        self.schedules.load_state_dict(saved.plateaus, saved.step)
        torch.set_rng_state(saved.rng)
        self.state = saved
        for result in saved.results.values():
            self.finish(result)

    def _kernel_groups(self) -> list[tuple[str, slice, dict[str, bool]]]:
        """(kernel, contiguous member slice, the kernel's flags) runs of the sorted members."""
        groups: list[tuple[str, slice, dict[str, bool]]] = []
        start = 0
        for index in range(1, len(self.keys) + 1):
            if index == len(self.keys) or self._group_of(index) != self._group_of(start):
                kernel, options = self._group_of(start)
                groups.append((KERNELS[kernel], slice(start, index), dict(options)))
                start = index
        return groups

    def _group_of(self, index: int) -> tuple[int, tuple[tuple[str, bool], ...]]:
        return _kernel_group(self.keys[index], self.plan.arm_params)

    def train(self, should_stop: Callable[[], bool] | None = None) -> bool:
        """Train the remaining epochs and test; False when ``should_stop`` stopped it first."""
        state = self.state
        while state.epoch < self.plan.epochs and bool(state.active.any()):
            loss_sum = self._train_epoch()
            self._end_epoch(loss_sum)
            state.epoch += 1
            stop = should_stop is not None and should_stop()
            due = stop or time.perf_counter() - self.saved >= self.checkpoint_seconds
            if self.checkpoint is not None and state.epoch < self.plan.epochs and due:
                self._save(self.checkpoint)
            if stop:
                return False
        self._test()
        return True

    def _save(self, path: Path) -> None:
        self.state.elapsed = time.perf_counter() - self.started
        self.state.plateaus = self.schedules.state_dict()
        self.state.rng = torch.get_rng_state()
        self.state.ceiling = self.divergence.ceiling
        try:
            self.state.save(path)
        except OSError as exc:  # a full disk: the checkpoint only saves work, so train on without it
            _log.warning("pack checkpoint %s not saved (%s): training goes on; the next save tries again", path, exc)
        self.saved = time.perf_counter()

    def _train_epoch(self) -> torch.Tensor:
        state = self.state
        orders = torch.stack([epoch_order(len(self.x_train), g) for g in state.generators]).to(self.device)
        loss_sum = torch.zeros(len(self.keys), dtype=torch.float64, device=self.device)
        for part in batch_slices(orders.shape[1], self.plan.batch_size):
            index = orders[:, part]
            for p in self.net.params:
                p.grad = None
            losses = self.workload.member_loss(self.net.forward(self.x_train[index]), self.y_train[index])
            values = losses.detach().to(torch.float64)
            bad = state.active & ~self.divergence.train_step(values)
            diverged = bool(bad.any())
            if diverged:
                state.active &= ~bad
            torch.where(state.active, losses, torch.zeros_like(losses)).sum().backward()
            if diverged:
                self._freeze(bad)
                if not bool(state.active.any()):
                    break
            self._update()
            loss_sum += values
            state.step += 1
        return loss_sum

    def _update(self) -> None:
        params = self.net.params
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        lr, beta = self.schedules.at(self.state.step)
        decay = self.decay
        with torch.no_grad():
            for kernel, part, options in self.groups:
                p = [x[part] for x in params]
                g = [x[part] for x in grads]
                first, second = ([s[part] for s in moments] for moments in self.state.moments)
                wd = decay[part] if decay is not None else None
                step = self.state.step + 1
                if kernel == "sgd":
                    packed_sgd(p, g, first, lr=lr[part], momentum=beta[part], weight_decay=wd, **options)
                elif kernel == "demon_sgd":
                    packed_demon_sgd(p, g, first, lr=lr[part], beta=beta[part], weight_decay=wd, **options)
                elif kernel == "adam":
                    packed_adam(p, g, first, second, step=step, lr=lr[part], beta1=beta[part], weight_decay=wd)
                else:
                    rate, momentum = lr[part], beta[part]
                    packed_demon_adam(
                        p, g, first, second, step=step, lr=rate, beta=momentum, weight_decay=wd, **options
                    )

    def _freeze(self, bad: torch.Tensor) -> None:
        """Record ``bad`` members as diverged now, then zero them so they stay finite and still."""
        indices = bad.nonzero().flatten()
        self.net.zero_members(indices)
        with torch.no_grad():
            for moments in self.state.moments:
                for s in moments:
                    s[indices] = 0
        for index in indices.tolist():
            self.state.logs[index].status = TrialStatus.DIVERGED
            self._finished(index)

    def _end_epoch(self, loss_sum: torch.Tensor) -> None:
        state = self.state
        val_loss, val_metric = self._evaluate(self.splits.val.tensors)  # type: ignore[attr-defined]
        for index in state.active.nonzero().flatten().tolist():
            record = EpochRecord(
                state.epoch + 1,
                float(loss_sum[index]) / self.steps_per_epoch,
                float(val_loss[index]),
                float(val_metric[index]),
            )
            state.logs[index].epochs.append(record)
        bad = state.active & ~self.divergence.within(val_loss)
        for index in (state.active & ~bad).nonzero().flatten().tolist():
            self.schedules.after_epoch(index, float(val_loss[index]), state.step)
        if bool(bad.any()):
            state.active &= ~bad
            self._freeze(bad)

    @torch.no_grad()
    def _evaluate(self, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, metric) per member over a split in the runner's evaluation batches (in eval
        mode: BatchNorm's running statistics), members in chunks that bound the activations."""
        inputs, targets = (t.to(self.device) for t in tensors)
        size = len(self.keys)
        totals = ScoreTotals(size, self.device)
        self.net.training = False
        try:
            for batch in batch_slices(len(targets), EVAL_BATCH_SIZE):
                x, y = inputs[batch], targets[batch]
                chunk = max(1, min(size, EVAL_ELEMENTS // max(1, len(y) * self.net.widest)))
                for first in range(0, size, chunk):
                    part = slice(first, min(size, first + chunk))
                    k = part.stop - first
                    logits = self.net.forward(x.unsqueeze(0).expand(k, *x.shape), part)
                    sums = self.workload.member_scores(logits, y.unsqueeze(0).expand(k, *y.shape))
                    totals.add(*sums, len(y) if first == 0 else 0, part)
        finally:
            self.net.training = True
        return totals.means()

    def _test(self) -> None:
        state = self.state
        if not bool(state.active.any()):
            return
        test_loss, test_metric = self._evaluate(self.splits.test.tensors)  # type: ignore[attr-defined]
        for index in state.active.nonzero().flatten().tolist():
            state.logs[index].status = TrialStatus.COMPLETED
            self._finished(index, (float(test_loss[index]), float(test_metric[index])))

    def _finished(self, index: int, test: tuple[float, float] = (math.nan, math.nan)) -> None:
        """Member ``index``'s result (its status set), kept in the state and handed to ``finish``."""
        elapsed = time.perf_counter() - self.started
        extra = {"pack_size": len(self.keys), "pack_wall_seconds": round(elapsed, 3)}
        if self.state.resumed_from:
            extra["resumed_from_epoch"] = self.state.resumed_from
        log = self.state.logs[index]
        result = log.result(
            test=test, wall_seconds=elapsed / len(self.keys), device=self.device, node=self.node, extra=extra
        )
        self.state.results[index] = result
        self.finish(result)
