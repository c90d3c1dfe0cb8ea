"""The packed executor: a study's trials in packs of K, each pack trained as one batched model.

In process, packs run one after another (``PackedExecutor``); on Ray, a pack is one Ray Tune
trial with the spec's resources (``RayTuneExecutor(packed=True)``), so the packs of a big study
spread over every worker of the cluster. Either way each member reaches the sink as its own
``TrialResult`` (see ``studies.packed.trainer``).

``auto`` pack size: as many members as the workers allow (``ceil(trials / workers)``: one pack per
worker), capped so that a pack's estimated memory (``member_bytes``: a one-member probe forward of
the real model at the study's batch size, times parameters, gradients, optimizer state and
activations, with a safety factor) fits in half the device's free memory: never out of memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..packed import PackedNet, run_pack
from ..packed.schedules import MemberSchedules
from ..results import TrialKey, TrialResult
from ..runner import TrialPlan, _load, pick_device
from .base import RunSummary, Sink, StopCheck, never_stop, pack

SAFETY = 4  # an estimate, not a measurement: allocator slack, temporaries of backward


def member_bytes(plan: TrialPlan, device: torch.device) -> int:
    """Estimated bytes one pack member needs on ``device``: weights ×4 (gradient, two state buffers)
    plus activations of one training batch (kept for backward), times ``SAFETY``."""
    workload, splits = _load(plan)
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
    """The members per pack: ``pack_size`` itself, or for ``auto`` one pack per worker within memory."""
    if isinstance(pack_size, int):
        return max(1, pack_size)
    device = device or pick_device()
    by_workers = max(1, math.ceil(trials / max(1, workers)))
    by_memory = max(1, (free_memory(device) // 2) // max(1, member_bytes(plan, device)))
    return int(min(by_workers, by_memory))


class PackedExecutor:
    """Run packs in this process, or in ``workers`` forked processes (one pack per core, CPU only).

    With one worker each member reaches the sink the moment it is done; with several, a pack's
    members reach it when their pack finishes (results travel back as dicts through a pipe).
    """

    name = "packed"

    def __init__(self, pack_size: int | str = "auto", device: str | None = None, workers: int = 1) -> None:
        self.pack_size = pack_size
        self.device = device
        self.workers = max(1, workers)

    def run(
        self,
        plan: TrialPlan,
        keys: Sequence[TrialKey],
        sink: Sink,
        should_stop: StopCheck = never_stop,
        on_start: Callable[[list[TrialKey]], None] | None = None,
    ) -> RunSummary:
        """Run every key in packs unless ``should_stop`` turns true between packs.

        ``on_start`` gets each pack's keys as the pack starts (forked: as it is handed to the pool).
        """
        summary = RunSummary()
        if not keys:
            return summary
        device = pick_device(self.device)
        workers = self.workers if device.type == "cpu" else 1
        size = resolve_pack_size(self.pack_size, plan, len(keys), workers, device)
        units = pack(keys, size)

        def emit(result: TrialResult) -> None:
            summary.add(result)
            sink(result)

        if workers == 1 or len(units) == 1:
            for unit in units:
                if should_stop():
                    summary.cancelled = True
                    break
                if on_start is not None:
                    on_start(unit)
                run_pack(plan, unit, device=self.device, emit=emit)
            return summary
        # Build one member's schedule here first: a torch optimizer's first construction imports
        # torch._dynamo (~3 s), which the forked children then inherit instead of each paying it.
        MemberSchedules(units[0][:1], plan.arm_params, 1, plan.weight_decay)
        if on_start is not None:
            for unit in units:
                on_start(unit)
        return self._run_forked(plan, units, emit, should_stop, summary, min(workers, len(units)))

    def _run_forked(
        self,
        plan: TrialPlan,
        units: list[list[TrialKey]],
        emit: Sink,
        should_stop: StopCheck,
        summary: RunSummary,
        workers: int,
    ) -> RunSummary:
        import multiprocessing

        # fork: the children inherit the loaded data and imports (a spawned one would take seconds).
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for results in pool.imap_unordered(_pack_in_child, [(plan, unit, self.device) for unit in units]):
                for raw in results:
                    emit(TrialResult.from_dict(raw))
                if should_stop():
                    summary.cancelled = True
                    pool.terminate()
                    break
        return summary


def _pack_in_child(job: tuple[TrialPlan, list[TrialKey], str | None]) -> list[dict[str, object]]:
    plan, keys, device = job
    torch.set_num_threads(plan.threads)
    return [r.to_dict() for r in run_pack(plan, keys, device=device)]
