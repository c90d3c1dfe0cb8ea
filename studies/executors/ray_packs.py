"""Packs on Ray without Ray Tune: each pack streams its members' results back from a Ray worker.

A packed study on Ray used to make each pack a Ray Tune trial. A pack is long (seconds to hours)
and reports once, so Tune's machinery (its import, a trial actor per pack, the experiment state it
writes, its per-trial result processing) bought nothing Ray itself does not give. Two ways to run a
pack, both placed by the spec's resources (``num_cpus``, ``num_gpus``, custom resources), so Ray
spreads a study's packs over the nodes that can run them and never elsewhere:

- **a Ray task** (``_pack_task``) holding the spec's resources: used on a Ray this process started
  (it ends with the study, so nothing outlives it to reuse) and for GPU studies. Ray reuses the
  study's worker processes across its packs (torch imported, data loaded: ``load_data`` caches).
- **the warm pool** on a Ray that outlives the study (``RAY_ADDRESS``, ``--ray-address``, a Ray Job
  on a cluster): each pack waits for a placement group of one bundle of the spec's resources (Ray's
  accounting and placement, exactly as for a task), then runs in a pool actor on that bundle's node
  (``PackWorker``: detached, named per node and slot, holding no resources itself, torch imported
  and data loaded by its earlier packs). The next study's packs, from another driver process, find
  the same actors warm rather than start and import in a new worker each. An actor retires after
  ``DEMONLAB_RAY_POOL_IDLE_SECONDS`` (300) without a pack.

Either way the pack is a generator: it yields a "started" marker, then each member's result (a list
of ``TrialResult`` dicts: the ones done since the last yield) the moment ``run_pack`` emits it, so
results reach the driver's sink as they finish, not when the pack ends. A pack whose task or actor
fails (its worker killed, its node lost) is resubmitted up to ``max_failures`` times with only its
undelivered members wanted; ``run_pack`` resumes it from its checkpoint when the node sees the
driver's data dir; after the last retry its undelivered members become ``failed`` results, naming
the error. A stop (``should_stop``) cancels the packs' tasks, or asks the pool's actors to stop their
packs after the epoch (checkpointed); their checkpoints stay for a relaunch.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..results import TrialKey, TrialResult
from ..training import TrialPlan
from .base import Context, RunSummary, Sink, Work, failed_result, pack
from .ray_session import RESOURCE_NAMES, check_feasible, ensure_ray, workers_for

POLL_SECONDS = 0.5  # how often the driver polls ``should_stop`` while packs train
STARTED = "started"
POOL_NAMESPACE = "demonlab"
IDLE_SECONDS = 300.0  # a pool actor's life without a pack (DEMONLAB_RAY_POOL_IDLE_SECONDS)


def _stream_pack(
    plan: TrialPlan,
    tokens: list[str],
    checkpoint: str | None,
    wanted: list[str],
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Run one pack here; yield ``{"started": True}``, then ``{"results": [...]}`` as members finish
    (``run_pack`` trains in a thread, its ``emit`` feeding a queue that this generator drains)."""
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
                should_stop=should_stop,
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


@ray.remote(max_retries=0)  # retried by the driver, with only the members still owed
def _pack_task(
    plan: TrialPlan, tokens: list[str], checkpoint: str | None, wanted: list[str]
) -> Iterator[dict[str, Any]]:
    """One pack as a Ray task (a streaming generator)."""
    yield from _stream_pack(plan, tokens, checkpoint, wanted)


@ray.remote(concurrency_groups={"control": 1})  # type: ignore[call-overload]
class PackWorker:
    """A warm pool actor: runs packs one at a time (``run``), stops one on request (``stop``,
    after its epoch, checkpointed), and exits after ``idle_seconds`` without a pack."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.current: str | None = None
        self.last = time.monotonic()
        self.stopping = threading.Event()
        threading.Thread(target=self._retire_when_idle, name="demonlab-pool-idle", daemon=True).start()

    def run(
        self, pack_id: str, plan: TrialPlan, tokens: list[str], checkpoint: str | None, wanted: list[str]
    ) -> Iterator[dict[str, Any]]:
        """Run one pack (the default concurrency group: one at a time), streaming as a task does."""
        self.current = pack_id
        self.stopping.clear()
        try:
            yield from _stream_pack(plan, tokens, checkpoint, wanted, self.stopping.is_set)
        finally:
            self.current = None
            self.last = time.monotonic()

    @ray.method(concurrency_group="control")
    def stop(self, pack_id: str) -> None:
        """Stop ``pack_id`` after its current epoch (its checkpoint saved), if it is the one running."""
        if self.current == pack_id:
            self.stopping.set()

    @ray.method(concurrency_group="control")
    def busy(self) -> bool:
        """Whether a pack runs here now."""
        return self.current is not None

    def _retire_when_idle(self) -> None:
        while True:
            time.sleep(min(5.0, self.idle_seconds))
            if self.current is None and time.monotonic() - self.last > self.idle_seconds:
                os._exit(0)  # the pool is per node and slot: the next pack there starts a new one


def pool_idle_seconds() -> float:
    """``DEMONLAB_RAY_POOL_IDLE_SECONDS``, else ``IDLE_SECONDS``."""
    try:
        return max(1.0, float(os.environ.get("DEMONLAB_RAY_POOL_IDLE_SECONDS", "") or IDLE_SECONDS))
    except ValueError:
        return IDLE_SECONDS


def pool_actor(node_id: str, slot: int) -> Any:
    """The pool's actor for ``slot`` on ``node_id`` (started there if it is not running)."""
    return PackWorker.options(  # type: ignore[attr-defined]
        name=f"pack-worker-{node_id[:16]}-{slot}",
        namespace=POOL_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,  # the pack's placement group holds its resources
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        max_concurrency=1,
    ).remote(pool_idle_seconds())


@dataclass
class _Unit:
    """One pack as the driver follows it: its keys, what is still owed, its attempts so far, and
    while it runs in the pool, its placement group, actor and id."""

    keys: list[TrialKey]
    checkpoint: str | None
    owed: set[TrialKey] = field(default_factory=set)
    attempts: int = 0
    group: PlacementGroup | None = None
    actor: Any = None
    pack_id: str = ""


class RayPackExecutor:
    """Run a packed grid study's packs on Ray (see the module's docstring), on the cluster at
    ``ray_address`` (None: ``RAY_ADDRESS``, else a local Ray of ``num_cpus`` under ``storage_dir``).
    ``pool``: run the packs in the warm pool (None: when the Ray outlives this process, on CPUs)."""

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
        pool: bool | None = None,
    ) -> None:
        self.cpu, self.gpu, self.custom = cpu, gpu, dict(custom_resources or {})
        self.max_failures = max_failures
        self.pack_size = pack_size
        self.checkpoint_dir = checkpoint_dir
        self.storage_dir = storage_dir
        self.ray_address = ray_address
        self.num_cpus = num_cpus
        self.pool = pool

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

    def uses_pool(self) -> bool:
        """The warm pool: when asked, else on a Ray that outlives this process (one this process
        joined), for CPU packs (a pool actor holds no GPU)."""
        if self.pool is not None:
            return self.pool
        joined = bool(self.ray_address or os.environ.get("RAY_ADDRESS"))
        return joined and self.gpu == 0

    def run(self, work: Work, sink: Sink) -> RunSummary:
        """Run every key in packs on Ray; each member reaches ``sink`` the moment its pack yields it."""
        summary = RunSummary()
        if not work.keys:
            return summary
        ensure_ray(address=self.ray_address, data_dir=self.storage_dir or ".work", num_cpus=self.num_cpus)
        check_feasible(self.resources)
        pooled = self.uses_pool()
        waiting: dict[Any, _Unit] = {}  # a placement group's ready() -> its unit (the pool)
        running: dict[Any, _Unit] = {}  # a pack's generator -> its unit
        for unit in self._units(work):
            self._submit(work.plan, unit, pooled, waiting, running)
        if work.while_waiting is not None:  # the packs train elsewhere: this process is free meanwhile
            work.while_waiting()
        try:
            return self._follow(waiting, running, work, sink, summary, pooled)
        finally:
            for unit in [*waiting.values(), *running.values()]:
                self._release(unit)

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

    def _submit(
        self, plan: TrialPlan, unit: _Unit, pooled: bool, waiting: dict[Any, _Unit], running: dict[Any, _Unit]
    ) -> None:
        """Start the unit: as a task, or (the pool) by asking for its placement group first."""
        unit.attempts += 1
        if not pooled:
            task = _pack_task.options(
                num_cpus=self.cpu,
                num_gpus=self.gpu,
                resources=self.custom or None,
                name=f"demonlab-pack-{len(unit.keys)}",
            )
            running[task.remote(plan, *self._arguments(unit))] = unit
            return
        bundle = {RESOURCE_NAMES.get(k, k): v for k, v in self.resources.items() if v > 0}
        unit.group = placement_group([bundle], strategy="PACK")
        waiting[unit.group.ready()] = unit

    @staticmethod
    def _arguments(unit: _Unit) -> tuple[list[str], str | None, list[str]]:
        return [key.token() for key in unit.keys], unit.checkpoint, [key.token() for key in unit.owed]

    def _place(self, plan: TrialPlan, unit: _Unit, running: dict[Any, _Unit]) -> None:
        """The unit's placement group is ready: run its pack in an idle pool actor of that node."""
        assert unit.group is not None
        node = placement_group_table(unit.group)["bundles_to_node_id"][0]
        slots = max(1, workers_for(self.resources, node_id=node))
        actors = [pool_actor(node, slot) for slot in range(slots)]
        busy = ray.get([actor.busy.remote() for actor in actors])
        unit.actor = next((a for a, b in zip(actors, busy, strict=True) if not b), actors[0])
        unit.pack_id = uuid.uuid4().hex
        running[unit.actor.run.remote(unit.pack_id, plan, *self._arguments(unit))] = unit

    @staticmethod
    def _release(unit: _Unit) -> None:
        """Give the unit's placement group back (its resources), if it holds one."""
        if unit.group is not None:
            remove_placement_group(unit.group)
            unit.group = None

    def _follow(
        self,
        waiting: dict[Any, _Unit],
        running: dict[Any, _Unit],
        work: Work,
        sink: Sink,
        summary: RunSummary,
        pooled: bool,
    ) -> RunSummary:
        """Hand every result to the sink as its pack yields it; retry failed packs; stop on cancel."""

        def emit(result: TrialResult) -> None:
            summary.add(result)
            sink(result)

        while waiting or running:
            if work.should_stop():
                summary.cancelled = True
                self._stop(running)
                break
            ready: list[Any] = ray.wait([*waiting, *running], num_returns=1, timeout=POLL_SECONDS)[0]
            for ref in ready:
                if ref in waiting:
                    self._place(work.plan, waiting.pop(ref), running)
                    continue
                unit = running[ref]
                try:
                    item: dict[str, Any] = ray.get(next(ref))
                except StopIteration:
                    del running[ref]
                    self._release(unit)
                    for key in sorted(unit.owed):  # a pack that ended without them (should not happen)
                        emit(failed_result(key, "its pack on Ray ended without a result for it"))
                    continue
                except Exception as exc:  # the pack failed: its worker died, its node went away...
                    del running[ref]
                    self._release(unit)
                    self._failed(unit, exc, work, pooled, waiting, running, emit)
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

    @staticmethod
    def _stop(running: dict[Any, _Unit]) -> None:
        """Stop every running pack: a pool actor's after its epoch (checkpointed), a task at once."""
        for generator, unit in running.items():
            if unit.actor is not None:
                unit.actor.stop.remote(unit.pack_id)
            else:
                ray.cancel(generator, force=True)  # its checkpoint (the last cadence's) stays

    def _failed(
        self,
        unit: _Unit,
        exc: Exception,
        work: Work,
        pooled: bool,
        waiting: dict[Any, _Unit],
        running: dict[Any, _Unit],
        emit: Sink,
    ) -> None:
        """A pack failed: resubmit it with its owed members, or fail them after the retries."""
        unit.actor = None
        if not unit.owed:
            return
        if unit.attempts <= self.max_failures:
            time.sleep(min(1.0, 0.1 * unit.attempts))
            self._submit(work.plan, unit, pooled, waiting, running)
            return
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
        message = f"its pack on Ray failed after {unit.attempts} attempt(s): {error}"
        for key in sorted(unit.owed):
            emit(failed_result(key, message))
        unit.owed.clear()
