"""Reports that cost CPU (sensitivity figures, grids, heatmaps) computed at most every few seconds per
study while it runs, one at a time, at a lower CPU priority than the study's training.

Without this layer, each result a running study recorded changed the report's cache key, so every
reader recomputed it: 20 readers cut a study on 2 cores from ~48 to 10–14 trials/min and the
sensitivity p99 reached 1.8 s. Here:

- A report is cached per (what it is, the study, its parameters) with the study's progress at the
  time it was computed. A request for the same progress gets it. While the study is still running, a
  request for a newer progress gets the cached report at once too; if that report is older than
  ``RECOMPUTE_SECONDS``, a recomputation starts in the background for the readers that come after
  (stale while revalidating). Readers see results with a lag of a few seconds, never wait for a
  recomputation, and the report is recomputed at most every few seconds per study. Only the first
  reader of a report waits for it; a finished study's report is computed once for its final progress.
- Requests that need the same report wait for one computation (single flight), never start their own.
- A finished study's report can also have a ``store`` (``service.db.report_store``): read before
  computing, written after, so it survives restarts and is computed once per study.
- Every computation runs on one worker thread of the process whose scheduling priority is lowered
  (``nice`` +10 on Linux, where a thread has its own): readers use at most one core, and the study's
  driver and packs win any contention for it.

The computation itself (``studies.metrics``, ``service.analysis``) is unchanged: this module only
decides when to call it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["RECOMPUTE_SECONDS", "ReportCache", "reports"]

T = TypeVar("T")
RECOMPUTE_SECONDS = 5.0
COMPUTE_NICENESS = 10
_KEPT = 256


@dataclass(frozen=True)
class _Entry:
    progress: Hashable
    value: Any
    computed_at: float


def _lower_priority() -> None:
    """Runs in the compute thread: make it yield the CPU to the study's processes (Linux: per thread)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux: the thread keeps the process's priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COMPUTE_NICENESS)


def _stored(compute: Callable[[], T], store: Any, key: Hashable, progress: Hashable) -> Callable[[], T]:
    """``compute`` that first looks in ``store`` and saves what it computes there."""

    def load_or_compute() -> T:
        found: T | None = store.load(key, progress)
        if found is not None:
            return found
        value = compute()
        store.save(key, progress, value)
        return value

    return load_or_compute


class ReportCache:
    """Reports by key, throttled while their study runs; ``get`` is safe from many threads."""

    def __init__(self, *, recompute_seconds: float = RECOMPUTE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.recompute_seconds = recompute_seconds
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._pending: dict[Hashable, tuple[Hashable, Future[Any]]] = {}
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="demonlab-report", initializer=_lower_priority
        )
        self.computations = 0  # how many times a report was really computed (tests and benches read it)

    def get(
        self, key: Hashable, *, progress: Hashable, running: bool, compute: Callable[[], T], store: Any = None
    ) -> T:
        """The report ``key`` at ``progress``, or, while ``running``, the last one computed (then
        recomputed in the background when it is ``recompute_seconds`` old); ``compute`` runs on the
        report thread. A finished study's report is looked up in ``store`` first and saved there."""
        compute = self._counted(compute)
        if store is not None and not running:
            compute = _stored(compute, store, key, progress)
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and (entry.progress == progress or running):
                    self._entries.move_to_end(key)
                    if entry.progress != progress and self._clock() - entry.computed_at >= self.recompute_seconds:
                        self._start(key, progress, compute)  # for the next readers; this one does not wait
                    value: T = entry.value
                    return value
                computing, future = self._start(key, progress, compute)
            result: T = future.result()
            if running or computing == progress:  # else: a finished study's report, computed mid-study
                return result

    def _start(self, key: Hashable, progress: Hashable, compute: Callable[[], Any]) -> tuple[Hashable, Future[Any]]:
        """The computation of ``key`` under way, or a new one (called with the lock held)."""
        if key not in self._pending:
            self._pending[key] = (progress, self._worker.submit(self._compute, key, progress, compute))
        return self._pending[key]

    def _counted(self, compute: Callable[[], T]) -> Callable[[], T]:
        def counted() -> T:
            with self._lock:
                self.computations += 1
            return compute()

        return counted

    def settle(self) -> None:
        """Wait for the computations under way (tests and benches: no report is left half-made)."""
        with self._lock:
            futures = [future for _, future in self._pending.values()]
        for future in futures:
            future.exception()

    def _compute(self, key: Hashable, progress: Hashable, compute: Callable[[], Any]) -> Any:
        try:
            value = compute()
            with self._lock:
                self._entries[key] = _Entry(progress, value, self._clock())
                self._entries.move_to_end(key)
                while len(self._entries) > _KEPT:
                    self._entries.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def forget(self, study_id: str) -> None:
        """Drop every report of ``study_id`` (keys are tuples whose second item is the study id)."""
        with self._lock:
            for key in [k for k in self._entries if isinstance(k, tuple) and len(k) > 1 and k[1] == study_id]:
                del self._entries[key]


reports = ReportCache()
"""The process's report cache (the API and the dashboard share it)."""
