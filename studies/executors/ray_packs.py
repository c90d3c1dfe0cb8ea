"""Packs on Ray without Ray Tune: each pack is one Ray task that streams its members' results back.

A packed study on Ray used to make each pack a Ray Tune trial. A pack is long (seconds to hours)
and reports once, so Tune's machinery (its import, a trial actor per pack, the experiment state it
writes, its per-trial result processing) bought nothing a plain task does not give. Here:

- each pack is a Ray task (``_pack_task``) with the spec's resources (``num_cpus``, ``num_gpus``,
  custom resources), so Ray places the packs of a study over the cluster's nodes as it places Tune
  trials, and a node without the resources never runs one;
- the task is a generator: it yields a "started" marker, then each member's result (a list of
  ``TrialResult`` dicts, the ones done since the last yield) the moment ``run_pack`` emits it, so
  results reach the driver's sink as they finish, not when the pack ends;
- Ray reuses a study's worker processes across its packs (a worker that ran one pack has torch
  imported and the data loaded for the next: ``studies.training.load_data`` caches it);
- a pack whose task fails (its worker killed, its node lost) is resubmitted up to ``max_failures``
  times with only its undelivered members wanted; ``run_pack`` resumes it from its checkpoint
  when the node sees the driver's data dir. After the last retry its undelivered members become
  ``failed`` results, naming the error;
- a stop (``should_stop``) cancels every pack's task; their checkpoints stay for a relaunch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..results import TrialKey, TrialResult
from ..training import TrialPlan
from .base import Context, RunSummary, Sink, Work, failed_result, pack
from .ray_session import check_feasible, ensure_ray, workers_for

POLL_SECONDS = 0.5  # how often the driver polls ``should_stop`` while packs train
STARTED = "started"
_REMOTE: Any = None  # ``_pack_task`` as a Ray remote function


def _pack_task(
    plan: TrialPlan, tokens: list[str], checkpoint: str | None, wanted: list[str]
) -> Iterator[dict[str, Any]]:
    """Run one pack in a Ray worker; yield ``{"started": True}``, then ``{"results": [...]}`` as
    members finish (``run_pack`` trains in a thread of this task, its ``emit`` feeding a queue)."""
    from ..packed import run_pack

    keys = [TrialKey.from_token(token) for token in tokens]
    deliver = {TrialKey.from_token(token) for token in wanted}
    done: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()

    def train() -> None:
        try:
            run_pack(
                plan,
                keys,
                emit=lambda result: done.put(result.to_dict()),
                checkpoint=Path(checkpoint) if checkpoint else None,
                deliver=deliver,
            )
        finally:
            done.put(None)

    yield {STARTED: True}
    trainer = threading.Thread(target=train, name="demonlab-pack", daemon=True)
    trainer.start()
    finished = False
    while not finished:
        batch = [done.get()]
        while True:  # everything emitted meanwhile goes back in one object
            try:
                batch.append(done.get_nowait())
            except queue.Empty:
                break
        finished = None in batch
        results = [item for item in batch if item is not None]
        if results:
            yield {"results": results}
    trainer.join()


@dataclass
class _Unit:
    """One pack as the driver follows it: its keys, what is still owed, its attempts so far."""

    keys: list[TrialKey]
    checkpoint: str | None
    owed: set[TrialKey] = field(default_factory=set)
    attempts: int = 0


class RayPackExecutor:
    """Run a packed grid study's packs as Ray tasks (see the module's docstring), on the cluster at
    ``ray_address`` (None: a local Ray of ``num_cpus`` started under ``storage_dir``)."""

    name = "ray-packs"

    def __init__(
        self,
        *,
        cpu: float = 1.0,
        gpu: float = 0.0,
        custom_resources: dict[str, float] | None = None,
        max_failures: int = 2,
        pack_size: int | str = "auto",
        checkpoint_dir: str | None = None,
        storage_dir: str | Path | None = None,
        ray_address: str | None = None,
        num_cpus: int | None = None,
    ) -> None:
        self.cpu, self.gpu, self.custom = cpu, gpu, dict(custom_resources or {})
        self.max_failures = max_failures
        self.pack_size = pack_size
        self.checkpoint_dir = checkpoint_dir
        self.storage_dir = storage_dir
        self.ray_address = ray_address
        self.num_cpus = num_cpus

    @classmethod
    def for_study(cls, spec: Any, context: Context) -> RayPackExecutor:
        """The executor of a packed grid study: the spec's resources, retries and pack size; packs
        checkpoint under the study's folder of ``context.data_dir``."""
        from ..packed.checkpoint import checkpoint_dir

        plan = TrialPlan.from_spec(spec, context.data_dir / "datasets")
        return cls(
            cpu=spec.resources.cpu,
            gpu=spec.resources.gpu,
            custom_resources=spec.resources.custom,
            max_failures=spec.max_failures,
            pack_size=spec.execution.pack_size,
            checkpoint_dir=str(checkpoint_dir(context.data_dir, context.study_id, plan)),
            storage_dir=context.data_dir,
            ray_address=context.ray_address,
            num_cpus=context.num_cpus,
        )

    @property
    def resources(self) -> dict[str, float]:
        """What one pack asks of a node (the spec's resources per trial)."""
        return {"cpu": self.cpu, "gpu": self.gpu, **self.custom}

    def run(self, work: Work, sink: Sink) -> RunSummary:
        """Run every key in packs on Ray; each member reaches ``sink`` the moment its task yields it."""
        summary = RunSummary()
        if not work.keys:
            return summary
        ensure_ray(address=self.ray_address, data_dir=self.storage_dir or ".work", num_cpus=self.num_cpus)
        check_feasible(self.resources)
        running: dict[Any, _Unit] = {}
        for unit in self._units(work):
            running[self._submit(work.plan, unit)] = unit
        return self._follow(running, work, sink, summary)

    def _units(self, work: Work) -> list[_Unit]:
        """The packs: an earlier launch's checkpointed ones resumed as they were, then the rest in
        packs of ``pack_size`` (``auto``: one per worker of the cluster, within the knee and memory)."""
        from ..packed.checkpoint import checkpoint_path, claim
        from .packed import resolve_pack_size

        resumed, fresh = claim(self.checkpoint_dir, work.keys) if self.checkpoint_dir else ([], list(work.keys))
        units = resumed
        if fresh:
            workers = workers_for(self.resources)
            units += pack(fresh, resolve_pack_size(self.pack_size, work.plan, len(fresh), workers))
        wanted = set(work.keys)
        return [
            _Unit(
                keys,
                str(checkpoint_path(self.checkpoint_dir, keys)) if self.checkpoint_dir else None,
                {key for key in keys if key in wanted},
            )
            for keys in units
        ]

    def _submit(self, plan: TrialPlan, unit: _Unit) -> Any:
        """Start the unit's task (a streaming generator) with the spec's resources."""
        import ray

        global _REMOTE
        unit.attempts += 1
        if _REMOTE is None:  # made once per process: each ``ray.remote`` exports the function anew
            _REMOTE = ray.remote(_pack_task)
        task = _REMOTE.options(
            num_cpus=self.cpu,
            num_gpus=self.gpu,
            resources=self.custom or None,
            max_retries=0,  # retried here, with only the members still owed
            name=f"demonlab-pack-{len(unit.keys)}",
        )
        return task.remote(plan, [key.token() for key in unit.keys], unit.checkpoint, [k.token() for k in unit.owed])

    def _follow(self, running: dict[Any, _Unit], work: Work, sink: Sink, summary: RunSummary) -> RunSummary:
        """Hand every result to the sink as its task yields it; retry failed packs; stop on cancel."""
        import ray

        def emit(result: TrialResult) -> None:
            summary.add(result)
            sink(result)

        while running:
            if work.should_stop():
                summary.cancelled = True
                for generator in running:
                    ray.cancel(generator, force=True)  # the packs' checkpoints stay for a relaunch
                break
            ready: list[Any] = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)[0]
            for generator in ready:
                unit = running[generator]
                try:
                    item: dict[str, Any] = ray.get(next(generator))
                except StopIteration:
                    del running[generator]
                    for key in sorted(unit.owed):  # a task that ended without them (should not happen)
                        emit(failed_result(key, "its pack's Ray task ended without a result for it"))
                    continue
                except Exception as exc:  # the task failed: its worker died, its node went away...
                    del running[generator]
                    self._failed(unit, exc, work, running, emit)
                    continue
                if STARTED in item:
                    if work.on_start is not None and unit.owed:
                        work.on_start(sorted(unit.owed))
                    continue
                for raw in item["results"]:
                    result = TrialResult.from_dict(raw)
                    if result.key in unit.owed:
                        unit.owed.discard(result.key)
                        emit(result)
        return summary

    def _failed(
        self,
        unit: _Unit,
        exc: Exception,
        work: Work,
        running: dict[Any, _Unit],
        emit: Sink,
    ) -> None:
        """A pack's task failed: resubmit it with its owed members, or fail them after the retries."""
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        if not unit.owed:
            return
        if unit.attempts <= self.max_failures:
            time.sleep(min(1.0, 0.1 * unit.attempts))
            running[self._submit(work.plan, unit)] = unit
            return
        message = f"its pack's Ray task failed after {unit.attempts} attempt(s): {error}"
        for key in sorted(unit.owed):
            emit(failed_result(key, message))
        unit.owed.clear()
