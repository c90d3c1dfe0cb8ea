"""Train a pack: K trials of one study at once, each with its own seed, arm, lr and β_init.

``run_pack`` is the packed counterpart of ``studies.runner.run_trial``, and follows it line by
line so that member k's result is the per-trial result of its key:

- initialisation: the workload's ``build_model`` after the runner's own seeding, per member seed;
- data order: one ``torch.Generator`` per member seeded like the runner's, one ``randperm`` each
  per epoch, so member k sees its per-trial batches (gathered into a ``(K, B, ...)`` batch);
- loss: each member's mean cross-entropy; the backward pass of their sum gives each member the
  gradient of its own loss (members share no weights);
- update: ``demon.packed`` kernels, members sorted by optimizer kind so that each kind is one
  contiguous slice, with η_t and β_t from ``MemberSchedules`` (the arm's own torch objects);
- divergence: the runner's test (non-finite, or above ``divergence_factor`` × the first loss) on
  each member's loss before its update and on its validation loss after each epoch. A diverged
  member is recorded at that step, then zeroed (weights, gradients, state) so it stays finite and
  never moves again; the others are unaffected (nothing mixes across the member dimension).

Results leave through ``emit`` the moment a member is done: a diverged member at once, the
completed ones after the test evaluation.

Durability: with a ``checkpoint`` path the pack saves its whole state there after every epoch
(``studies.packed.checkpoint``) and, when the file exists for the same members and plan, resumes
from it: a killed pack loses at most the epoch it was in, and the resumed results equal the
uninterrupted ones. ``should_stop`` is polled after each epoch's save: a stopped pack returns its
finished members only and keeps its checkpoint for a relaunch. The file is deleted at the end.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset

from demon.packed import packed_adam, packed_demon_adam, packed_demon_sgd, packed_sgd

from ..environment import hardware
from ..results import EpochRecord, TrialKey, TrialResult, TrialStatus
from ..runner import EVAL_BATCH_SIZE, TrialPlan, _load, _seed_everything, node_name, pick_device
from ..vocab.arms import arm
from . import checkpoint as checkpoints
from .models import PackedNet, packing_problem
from .schedules import KINDS, MemberSchedules

Emit = Callable[[TrialResult], None]
EVAL_ELEMENTS = 1 << 24  # activation elements per evaluation chunk of members (64 MiB in float32)


class PackError(RuntimeError):
    """A pack cannot run: the workload does not pack, or its data is not in memory tensors."""


@dataclass
class _Member:
    key: TrialKey
    epochs: list[EpochRecord] = field(default_factory=list)
    status: TrialStatus | None = None  # None while training
    result: TrialResult | None = None  # once finished


def run_pack(
    plan: TrialPlan,
    keys: Sequence[TrialKey],
    *,
    device: str | None = None,
    emit: Emit | None = None,
    checkpoint: Path | None = None,
    should_stop: Callable[[], bool] | None = None,
    deliver: Collection[TrialKey] | None = None,
) -> list[TrialResult]:
    """Train ``keys`` as one pack; return (and ``emit``) one result per key, in ``keys``' order.

    Like ``run_trial`` it never raises for the trials' own failure: an error fails every member
    not yet done, with the error text. ``checkpoint``: save there after each epoch and resume from
    it; ``should_stop``: polled after each epoch, a stopped pack returns only its finished members;
    ``deliver``: the keys whose results are wanted (a resumed pack's others already reached the sink).
    """
    started = time.perf_counter()
    torch_device = pick_device(device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    done: dict[TrialKey, TrialResult] = {}

    def finish(result: TrialResult) -> None:
        if deliver is not None and result.key not in deliver:
            return
        done[result.key] = result
        if emit is not None:
            emit(result)

    try:
        pack = _Pack(plan, keys, torch_device, started, finish, checkpoint)
        if pack.train(should_stop) and checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        for key in keys:
            if key not in done:
                finish(TrialResult(key=key, status=TrialStatus.FAILED, device=str(torch_device), error=error))
    finally:
        torch.set_num_threads(previous_threads)
    return [done[key] for key in keys if key in done]


def _kernel_group(key: TrialKey, arm_params: dict[str, dict[str, Any]]) -> tuple[int, tuple[tuple[str, bool], ...]]:
    """Members that share a kernel and its flags (the arm registry's ``kernel_options``) step together."""
    declared = arm(key.arm)
    options = declared.kernel_options(arm_params.get(key.arm, {}), key.beta_init)
    return KINDS.index(declared.kernel), tuple(sorted(options.items()))


class _Pack:
    """One pack's training state; ``train`` runs it to the end."""

    def __init__(
        self,
        plan: TrialPlan,
        keys: Sequence[TrialKey],
        device: torch.device,
        started: float,
        finish: Emit,
        checkpoint: Path | None = None,
    ) -> None:
        self.workload, self.splits = _load(plan)
        problem = packing_problem(self.workload)
        if problem:
            raise PackError(f"workload {plan.workload!r} cannot run packed: {problem}")
        if not isinstance(self.splits.train, TensorDataset):
            raise PackError(f"workload {plan.workload!r} cannot run packed: its data is not in memory tensors")
        order = sorted(range(len(keys)), key=lambda i: _kernel_group(keys[i], plan.arm_params))
        self.members = [_Member(keys[i]) for i in order]
        self.plan, self.device, self.started, self.finish = plan, device, started, finish
        # Ray's node id when inside Ray; importing Ray just to learn that we are not would cost ~1 s.
        self.node = node_name() if "ray" in sys.modules else platform.node()
        self.generators, models = [], {}
        for member in self.members:
            seed = member.key.seed
            self.generators.append(_seed_everything(seed))  # the runner's seeding, then its model
            if seed not in models:
                models[seed] = self.workload.build_model(seed)
        self.net = PackedNet([models[m.key.seed] for m in self.members], device)
        x_train, y_train = self.splits.train.tensors
        self.x_train, self.y_train = x_train.to(device), y_train.to(device)
        self.steps_per_epoch = max(1, math.ceil(len(x_train) / plan.batch_size))
        self.total_steps = plan.epochs * self.steps_per_epoch
        self.schedules = MemberSchedules(
            [m.key for m in self.members], plan.arm_params, self.total_steps, plan.weight_decay
        ).to(device)
        size = len(self.members)
        self.weight_decay = torch.full((size,), plan.weight_decay, dtype=torch.float64, device=device)
        self.arm_params = plan.arm_params
        self.groups = self._kind_groups()
        self.state = [[torch.zeros_like(p) for p in self.net.params] for _ in range(2)]
        self.active = torch.ones(size, dtype=torch.bool, device=device)
        self.ceiling = torch.full((size,), math.inf, dtype=torch.float64, device=device)
        self.step = 0
        self.epoch = 0  # epochs done
        self.resumed_from = 0  # the epoch a resumed pack started from (recorded in its results)
        self.checkpoint = checkpoint
        if checkpoint is not None:
            self._resume(checkpoint)

    def _kind_groups(self) -> list[tuple[str, slice, dict[str, bool]]]:
        """(kind, contiguous member slice, the kernel's flags) runs of the sorted members."""
        groups: list[tuple[str, slice, dict[str, bool]]] = []
        start = 0
        for index in range(1, len(self.members) + 1):
            if index == len(self.members) or self._group_of(index) != self._group_of(start):
                kind, options = self._group_of(start)
                groups.append((KINDS[kind], slice(start, index), dict(options)))
                start = index
        return groups

    def _group_of(self, index: int) -> tuple[int, tuple[tuple[str, bool], ...]]:
        return _kernel_group(self.members[index].key, self.arm_params)

    def train(self, should_stop: Callable[[], bool] | None = None) -> bool:
        """Train the remaining epochs and test; False when ``should_stop`` stopped it first."""
        while self.epoch < self.plan.epochs and bool(self.active.any()):
            loss_sum = self._train_epoch(self.epoch)
            self._end_epoch(self.epoch, loss_sum)
            self.epoch += 1
            if self.checkpoint is not None:
                checkpoints.save(self.checkpoint, self._state())
            if should_stop is not None and should_stop():
                return False
        self._test()
        return True

    def _state(self) -> dict[str, Any]:
        """Everything the next epoch reads (see ``studies.packed.checkpoint``)."""
        return {
            "plan": checkpoints.plan_digest(self.plan),
            "keys": [m.key.token() for m in self.members],
            "epoch": self.epoch,
            "step": self.step,
            "elapsed": time.perf_counter() - self.started,
            "params": [p.detach() for p in self.net.params],
            "running": [[index, mean, var] for index, (mean, var) in self.net.running.items()],
            "state": self.state,
            "active": self.active,
            "ceiling": self.ceiling,
            "lr": self.schedules.lr,
            "beta": self.schedules.beta,
            "plateaus": {
                str(member): {"scheduler": run.plateau.state_dict(), "optimizer": run.optimizer.state_dict()}
                for member, run in self.schedules.plateaus.items()
                if run.plateau is not None
            },
            "generators": [g.get_state() for g in self.generators],
            "rng": torch.get_rng_state(),
            "members": [
                {
                    "status": m.status.value if m.status is not None else None,
                    "epochs": [list(astuple(e)) for e in m.epochs],
                    "result": json.dumps(m.result.to_dict()) if m.result is not None else None,
                }
                for m in self.members
            ],
        }

    def _resume(self, path: Path) -> None:
        """Continue from the checkpoint at ``path`` if it is this pack's; deliver its finished members."""
        state = checkpoints.load(path, self.device)
        if state is None:
            return
        if state["plan"] != checkpoints.plan_digest(self.plan) or state["keys"] != [
            m.key.token() for m in self.members
        ]:
            return  # another pack's or another plan's: start afresh (and overwrite it)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.resumed_from = self.epoch
        self.started -= float(state["elapsed"])
        with torch.no_grad():
            for param, saved in zip(self.net.params, state["params"], strict=True):
                param.copy_(saved)
            for index, mean, var in state["running"]:
                self.net.running[int(index)][0].copy_(mean)
                self.net.running[int(index)][1].copy_(var)
            for buffers, saved_buffers in zip(self.state, state["state"], strict=True):
                for buffer, saved in zip(buffers, saved_buffers, strict=True):
                    buffer.copy_(saved)
        self.active, self.ceiling = state["active"], state["ceiling"]
        self.schedules.lr, self.schedules.beta = state["lr"], state["beta"]
        for member, saved in state["plateaus"].items():
            run = self.schedules.plateaus[int(member)]
            run.optimizer.load_state_dict(saved["optimizer"])
            assert run.plateau is not None
            run.plateau.load_state_dict(saved["scheduler"])
        for generator, saved in zip(self.generators, state["generators"], strict=True):
            generator.set_state(saved.cpu())
        torch.set_rng_state(state["rng"].cpu())
        for member, saved in zip(self.members, state["members"], strict=True):
            member.epochs = [EpochRecord(int(e[0]), *map(float, e[1:])) for e in saved["epochs"]]
            if saved["status"] is not None:
                member.status = TrialStatus(saved["status"])
                member.result = TrialResult.from_dict(json.loads(saved["result"]))
                self.finish(member.result)

    def _train_epoch(self, epoch: int) -> torch.Tensor:
        orders = torch.stack([torch.randperm(len(self.x_train), generator=g) for g in self.generators]).to(self.device)
        loss_sum = torch.zeros(len(self.members), dtype=torch.float64, device=self.device)
        factor = self.workload.divergence_factor
        for start in range(0, orders.shape[1], self.plan.batch_size):
            index = orders[:, start : start + self.plan.batch_size]
            for p in self.net.params:
                p.grad = None
            logits = self.net.forward(self.x_train[index])
            targets = self.y_train[index]
            # Flattened to (K·B, C) like a trial's (B, C): the same kernel, bit-equal losses. (Classes
            # as dim 1 would run 4x faster on the CPU but round differently.)
            losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
            losses = losses.view(targets.shape).mean(dim=1)
            values = losses.detach().to(torch.float64)
            bad = self.active & (~torch.isfinite(values) | (values > self.ceiling))
            self.ceiling = torch.where(torch.isinf(self.ceiling), factor * values.clamp_min(1e-8), self.ceiling)
            diverged = bool(bad.any())
            if diverged:
                self.active &= ~bad
            torch.where(self.active, losses, torch.zeros_like(losses)).sum().backward()
            if diverged:
                self._freeze(bad)
                if not bool(self.active.any()):
                    break
            self._update()
            loss_sum += values
            self.step += 1
        return loss_sum

    def _update(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.net.params]
        lr, beta = self.schedules.lr[self.step], self.schedules.beta[self.step]
        decay = self.weight_decay if self.plan.weight_decay != 0 else None
        with torch.no_grad():
            for kind, part, options in self.groups:
                params = [p[part] for p in self.net.params]
                g = [x[part] for x in grads]
                first, second = ([s[part] for s in state] for state in self.state)
                wd = decay[part] if decay is not None else None
                if kind == "sgd":
                    packed_sgd(params, g, first, lr=lr[part], momentum=beta[part], weight_decay=wd, **options)
                elif kind == "demon_sgd":
                    packed_demon_sgd(params, g, first, lr=lr[part], beta=beta[part], weight_decay=wd, **options)
                elif kind == "adam":
                    packed_adam(
                        params, g, first, second, step=self.step + 1, lr=lr[part], beta1=beta[part], weight_decay=wd
                    )
                else:
                    packed_demon_adam(
                        params,
                        g,
                        first,
                        second,
                        step=self.step + 1,
                        lr=lr[part],
                        beta=beta[part],
                        weight_decay=wd,
                        **options,
                    )

    def _freeze(self, bad: torch.Tensor) -> None:
        """Record ``bad`` members as diverged now, then zero them so they stay finite and still."""
        indices = bad.nonzero().flatten()
        self.net.zero_members(indices)
        with torch.no_grad():
            for state in self.state:
                for s in state:
                    s[indices] = 0
        for index in indices.tolist():
            member = self.members[index]
            member.status = TrialStatus.DIVERGED
            member.result = self._result(member)
            self.finish(member.result)

    def _end_epoch(self, epoch: int, loss_sum: torch.Tensor) -> None:
        val_loss, val_metric = self._evaluate(self.splits.val)
        count = self.steps_per_epoch
        bad = torch.zeros_like(self.active)
        for index in self.active.nonzero().flatten().tolist():
            member = self.members[index]
            loss, metric = float(val_loss[index]), float(val_metric[index])
            member.epochs.append(EpochRecord(epoch + 1, float(loss_sum[index]) / count, loss, metric))
            if not math.isfinite(loss) or loss > float(self.ceiling[index]):
                bad[index] = True
            else:
                self.schedules.after_epoch(index, loss, self.step)
        if bool(bad.any()):
            self.active &= ~bad
            self._freeze(bad)

    @torch.no_grad()
    def _evaluate(self, dataset: Dataset[object]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, error rate) per member over ``dataset`` in the runner's evaluation batches."""
        assert isinstance(dataset, TensorDataset)
        size = len(self.members)
        total = torch.zeros(size, dtype=torch.float64, device=self.device)
        wrong = torch.zeros(size, dtype=torch.int64, device=self.device)
        inputs, targets = (t.to(self.device) for t in dataset.tensors)
        count = len(targets)
        self.net.training = False  # the runner evaluates in eval mode: BatchNorm's running statistics
        try:
            return self._evaluate_batches(inputs, targets, total, wrong, count)
        finally:
            self.net.training = True

    def _evaluate_batches(
        self, inputs: torch.Tensor, targets: torch.Tensor, total: torch.Tensor, wrong: torch.Tensor, count: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        size = len(self.members)
        for start in range(0, count, EVAL_BATCH_SIZE):
            x, y = inputs[start : start + EVAL_BATCH_SIZE], targets[start : start + EVAL_BATCH_SIZE]
            chunk = max(1, min(size, EVAL_ELEMENTS // max(1, len(y) * self.net.widest)))
            for first in range(0, size, chunk):
                part = slice(first, min(size, first + chunk))
                k = part.stop - first
                logits = self.net.forward(x.unsqueeze(0).expand(k, *x.shape), part)
                ce = F.cross_entropy(logits.flatten(0, 1), y.repeat(k), reduction="none").view(k, -1)
                total[part] += ce.sum(dim=1).to(torch.float64)
                wrong[part] += (logits.argmax(dim=2) != y).sum(dim=1)
        if count == 0:
            return torch.full_like(total, math.nan), torch.full_like(total, math.nan)
        return total / count, wrong.to(torch.float64) / count

    def _test(self) -> None:
        if not bool(self.active.any()):
            return
        test_loss, test_metric = self._evaluate(self.splits.test)
        for index in self.active.nonzero().flatten().tolist():
            member = self.members[index]
            member.status = TrialStatus.COMPLETED
            member.result = self._result(member, float(test_loss[index]), float(test_metric[index]))
            self.finish(member.result)

    def _result(self, member: _Member, test_loss: float = math.nan, test_metric: float = math.nan) -> TrialResult:
        """The member's ``TrialResult``, field for field as ``run_trial`` builds it."""
        completed = member.status is TrialStatus.COMPLETED
        last = member.epochs[-1] if member.epochs else None
        finite_vals = [e.val_metric for e in member.epochs if math.isfinite(e.val_metric)]
        elapsed = time.perf_counter() - self.started
        return TrialResult(
            key=member.key,
            status=member.status or TrialStatus.FAILED,
            epochs=tuple(member.epochs),
            val_metric=last.val_metric if last and completed else None,
            val_loss=last.val_loss if last and completed else None,
            test_metric=test_metric if completed else None,
            test_loss=test_loss if completed else None,
            best_val_metric=min(finite_vals) if finite_vals else None,
            epochs_done=len(member.epochs),
            wall_seconds=elapsed / len(self.members),
            device=str(self.device),
            node=self.node,
            extra={
                "pack_size": len(self.members),
                "pack_wall_seconds": round(elapsed, 3),
                "hardware": hardware(str(self.device)),
                **({"resumed_from_epoch": self.resumed_from} if self.resumed_from else {}),
            },
        )
