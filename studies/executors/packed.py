"""The packed executor: a study's trials in packs of K, each pack trained as one batched model.

In process, packs run one after another (``PackedExecutor``), or one per core in forked processes;
on Ray, a pack is a Ray task or a warm pool actor holding the spec's resources
(``studies.executors.ray_packs``), so the packs of a big study spread over every worker of the
cluster. Either way each member reaches the sink as its own ``TrialResult`` (see
``studies.packed.trainer``).

``auto`` pack size: one pack per worker, but no pack above the workload's ``pack_knee`` members
(beyond it a member's step costs more: more packs, in rounds of one per worker), and within memory:
a pack's estimated memory (``member_bytes``: a one-member probe forward of the real model at the
study's batch size, times parameters, gradients, optimizer state and activations, with a safety
factor) fits in half the device's free memory.

Durability: every pack checkpoints (``studies.packed.trainer.checkpoint_cadence``) and a relaunch
resumes the packs holding pending trials before packing the rest (``studies.packed.checkpoint``).
Members reach the sink the moment they are done, also from forked packs (through a queue).
"""

from __future__ import annotations

import math
import os
import queue
import time
from pathlib import Path
from typing import Any

import torch

from ..packed import PackedNet, run_pack
from ..packed.checkpoint import checkpoint_dir, checkpoint_path, claim
from ..results import TrialKey, TrialResult
from ..training import TrialPlan, load_data, pick_device
from .base import Context, RunSummary, Sink, StartHook, StopCheck, Work, never_stop, pack

SAFETY = 4  # an estimate, not a measurement: allocator slack, temporaries of backward


def member_bytes(plan: TrialPlan, device: torch.device) -> int:
    """Estimated bytes one pack member needs on ``device``: weights ×4 (gradient, two state buffers)
    plus activations of one training batch (kept for backward), times ``SAFETY``."""
    workload, splits = load_data(plan)
    with torch.random.fork_rng(devices=[]):
        net = PackedNet([workload.build_model(0)], torch.device("cpu"))
    sample = splits.train[0][0].unsqueeze(0).unsqueeze(0)  # (1 member, 1 sample, ...)
    with torch.no_grad():
        net.forward(sample)
    elements = 4 * net.parameter_count() + 2 * plan.batch_size * net.activation_elements
    return SAFETY * 4 * elements


def free_memory(device: torch.device) -> int:
    """Free bytes on ``device``: CUDA's own count, or the host's available memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def resolve_pack_size(
    pack_size: int | str, plan: TrialPlan, trials: int, workers: int, device: torch.device | None = None
) -> int:
    """The members per pack: ``pack_size`` itself, or for ``auto`` one pack per worker, in rounds
    of ``workers`` packs of at most the workload's ``pack_knee`` members, within memory."""
    if isinstance(pack_size, int):
        return max(1, pack_size)
    device = device or pick_device()
    workers = max(1, workers)
    workload, _ = load_data(plan)
    packs = max(workers, math.ceil(trials / workload.pack_knee))
    packs = math.ceil(packs / workers) * workers
    by_memory = max(1, (free_memory(device) // 2) // max(1, member_bytes(plan, device)))
    return int(max(1, min(math.ceil(trials / packs), by_memory)))


class PackedExecutor:
    """Run packs in this process, or in ``workers`` forked processes (one pack per core, CPU only).

    Each member reaches the sink the moment it is done (from a forked pack, as a dict through a
    queue). With ``checkpoint_dir`` packs checkpoint there (every ``checkpoint_seconds``; None: the
    trainer's cadence) and resume from it.
    """

    name = "packed"

    def __init__(
        self,
        pack_size: int | str = "auto",
        device: str | None = None,
        workers: int = 1,
        checkpoint_dir: Path | None = None,
        checkpoint_seconds: float | None = None,
    ) -> None:
        self.pack_size = pack_size
        self.device = device
        self.workers = max(1, workers)
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_seconds = checkpoint_seconds

    @classmethod
    def for_study(cls, spec: Any, context: Context) -> PackedExecutor:
        """One pack per core this process may use (each pack takes the spec's CPUs per trial),
        checkpointing under the study's folder of ``context.data_dir``."""
        plan = TrialPlan.from_spec(spec, context.data_dir / "datasets")
        workers = max(1, len(os.sched_getaffinity(0)) // max(1, int(spec.resources.cpu)))
        folder = checkpoint_dir(context.data_dir, context.study_id, plan)
        return cls(spec.execution.pack_size, context.device, workers=workers, checkpoint_dir=folder)

    def run(self, work: Work, sink: Sink) -> RunSummary:
        """Run every key in packs unless ``should_stop`` turns true (polled after each epoch).

        ``on_start`` gets each pack's pending keys as the pack starts (forked: as it is handed to
        the pool). A stopped pack keeps its checkpoint for the next launch.
        """
        summary = RunSummary()
        if not work.keys:
            return summary
        device = pick_device(self.device)
        workers = self.workers if device.type == "cpu" else 1
        resumed, fresh = claim(self.checkpoint_dir, work.keys) if self.checkpoint_dir else ([], list(work.keys))
        units = resumed
        if fresh:
            units += pack(fresh, resolve_pack_size(self.pack_size, work.plan, len(fresh), workers, device))
        pending = set(work.keys)
        jobs = [
            _Job(work.plan, unit, self.device, self._path(unit), pending, self.checkpoint_seconds) for unit in units
        ]

        def emit(result: TrialResult) -> None:
            summary.add(result)
            sink(result)

        if workers == 1 or len(units) == 1:
            return self._run_here(jobs, emit, work.should_stop, work.on_start, summary)
        if work.on_start is not None:
            for job in jobs:
                work.on_start(job.pending())
        return self._run_forked(jobs, emit, work, summary, min(workers, len(units)))

    @staticmethod
    def _run_here(
        jobs: list[_Job], emit: Sink, should_stop: StopCheck, on_start: StartHook | None, summary: RunSummary
    ) -> RunSummary:
        for job in jobs:
            if should_stop():
                summary.cancelled = True
                break
            if on_start is not None:
                on_start(job.pending())
            if job.run(emit, should_stop) < len(job.pending()):
                summary.cancelled = True  # stopped after an epoch: its checkpoint stays
                break
        return summary

    def _path(self, unit: list[TrialKey]) -> Path | None:
        return checkpoint_path(self.checkpoint_dir, unit) if self.checkpoint_dir else None

    def _run_forked(self, jobs: list[_Job], emit: Sink, work: Work, summary: RunSummary, workers: int) -> RunSummary:
        """Run ``jobs`` in forked processes, ``workers`` at a time, one process per pack (its memory
        goes back to the system when it ends: a study's peak memory is its largest packs', not their
        sum over time). Results come back through a queue as each member finishes, then the pack's
        end (``work.while_waiting`` runs here once the first packs are forked; results wait in the
        queue meanwhile). A stop asks each pack to stop after its epoch (SIGTERM: it saves its
        checkpoint, as a pack in this process does) and kills what is still running ``STOP_GRACE``
        seconds later; results that arrive meanwhile are not delivered (the checkpoint holds them for
        the next launch). A pack's process that dies before its end (killed, out of memory) is an error.

        The processes are forked here, by this thread, and killed outright: a pool's replacement
        workers are forked by its own thread, and one forked as the pool terminated kept the
        driver's SIGTERM handler (it ignores the signal) and waited forever for a task, with the
        driver joining it."""
        should_stop, while_waiting = work.should_stop, work.while_waiting
        import multiprocessing

        # fork: the children inherit the loaded data and imports (a spawned one would take seconds).
        context = multiprocessing.get_context("fork")
        results: Any = context.Queue()
        waiting = list(enumerate(jobs))
        running: dict[int, Any] = {}
        ended: set[int] = set()
        short: dict[int, int] = {}  # packs that stopped early: how many of their results they never sent
        try:
            while waiting or running:
                while waiting and len(running) < workers:
                    index, job = waiting.pop(0)
                    running[index] = context.Process(target=_pack_in_child, args=(job, index, results), daemon=True)
                    running[index].start()
                if while_waiting is not None:  # the children are forked: this process is free meanwhile
                    while_waiting()
                    while_waiting = None
                self._receive(results, emit, running, ended, short, timeout=0.5)
                if should_stop():
                    summary.cancelled = True
                    _stop_gracefully(running)
                    break
                for index, process in list(running.items()):
                    if process.exitcode is not None and index not in ended:
                        while self._receive(results, emit, running, ended, short, timeout=0.1):
                            pass  # what it sent before it exited
                        if index not in ended:
                            raise RuntimeError(f"a pack's process exited with code {process.exitcode} before its end")
                _check_none_stopped_early(short)  # the last pack's end may have come in the drain above
        except KeyboardInterrupt:  # Ctrl-C reached the packs too: each saves its checkpoint and stops
            _stop_gracefully(running)
            raise
        finally:
            for process in running.values():
                process.kill()
                process.join()
        return summary

    @staticmethod
    def _receive(
        results: Any, emit: Sink, running: dict[int, Any], ended: set[int], short: dict[int, int], timeout: float
    ) -> bool:
        """Take one message from the packs (a result, or a pack's end: ``short`` gets a pack that
        stopped with results unsent); False when none came."""
        try:
            message = results.get(timeout=timeout)
        except queue.Empty:
            return False
        if "pack_ended" in message:
            index = message["pack_ended"]
            ended.add(index)
            if message.get("unsent"):
                short[index] = int(message["unsent"])
            running.pop(index).join()
        else:
            emit(TrialResult.from_dict(message))
        return True


class _Job:
    """One pack to run: its keys, its checkpoint, and which of its results are wanted."""

    def __init__(
        self,
        plan: TrialPlan,
        keys: list[TrialKey],
        device: str | None,
        path: Path | None,
        deliver: set[TrialKey],
        checkpoint_seconds: float | None,
    ) -> None:
        self.plan, self.keys, self.device, self.path, self.deliver = plan, keys, device, path, deliver
        self.checkpoint_seconds = checkpoint_seconds

    def pending(self) -> list[TrialKey]:
        """The members whose results are wanted (a resumed pack's others reached the sink before)."""
        return [key for key in self.keys if key in self.deliver]

    def run(self, emit: Sink, should_stop: StopCheck = never_stop) -> int:
        """Run the pack; return how many results it delivered."""
        results = run_pack(
            self.plan,
            self.keys,
            device=self.device,
            emit=emit,
            checkpoint=self.path,
            checkpoint_seconds=self.checkpoint_seconds,
            should_stop=should_stop,
            deliver=self.deliver,
        )
        return len(results)


STOP_GRACE = 3.0  # seconds a stopped pack has to finish its epoch and save (the launcher's SIGKILL: 5 s)


def _check_none_stopped_early(short: dict[int, int]) -> None:
    """Raise if a signal stopped a pack (``short``: its unsent results) that this process did not stop:
    the study is not complete, and must not be reported so."""
    if short:
        raise RuntimeError(
            f"{sum(short.values())} trial(s) were not run: a pack received SIGINT or SIGTERM and stopped after "
            "saving its checkpoint, while this process was not stopped (a signal sent to the process group "
            "from outside, with SIGINT ignored here?); nothing is reported as complete"
        )


def _stop_gracefully(running: dict[int, Any]) -> None:
    """Ask every running pack to stop after its epoch (SIGTERM) and wait up to ``STOP_GRACE`` for them."""
    for process in running.values():
        if process.exitcode is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for process in running.values():
        process.join(max(0.0, deadline - time.monotonic()))


def _pack_in_child(job: _Job, index: int, results: Any) -> None:
    """Run ``job`` in a forked process: each result, then the pack's end, through ``results``. Stop
    after an epoch, saving its checkpoint, on SIGTERM (the driver stopping it: a cancel, or the
    launcher's signal to the driver's process group), on SIGINT (Ctrl-C, sent to the whole group)
    or once the driver that forked it is gone (killed outright), rather than train on for a
    relaunch that will resume it."""
    import signal

    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))  # not the driver's inherited handler
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))  # Ctrl-C at a terminal: no traceback
    torch.set_num_threads(job.plan.threads)
    parent = os.getppid()
    sent: list[TrialKey] = []

    def send(result: TrialResult) -> None:
        results.put(result.to_dict())
        sent.append(result.key)

    job.run(send, lambda: bool(stopping) or os.getppid() != parent)
    results.put({"pack_ended": index, "unsent": len(job.pending()) - len(sent)})
