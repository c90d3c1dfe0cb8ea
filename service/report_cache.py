"""Reports that cost CPU (sensitivity figures, grids, heatmaps) computed at most every few seconds per
study while it runs, one at a time, at a lower CPU priority than the study's training.

Without this layer, each result a running study recorded changed the report's cache key, so every
reader recomputed it: 20 readers cut a study on 2 cores from ~48 to 10–14 trials/min and the
sensitivity p99 reached 1.8 s. Here:

- A report is cached per (what it is, the study, its parameters) with the study's progress at the
  time it was computed. A request for the same progress gets it. While the study is still running, a
  request for a newer progress also gets it, unless it is older than ``RECOMPUTE_SECONDS``: readers
  see results with at most that lag, and the report is recomputed at most that often per study. A
  finished study's report is computed once for its final progress.
- Requests that need the same report wait for one computation (single flight), never start their own.
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

    def get(self, key: Hashable, *, progress: Hashable, running: bool, compute: Callable[[], T]) -> T:
        """The report ``key`` at ``progress`` (or, while ``running``, one at most ``recompute_seconds``
        old); ``compute`` runs on the report thread when neither is cached."""
        while True:
            with self._lock:
                entry = self._fresh(key, progress, running)
                if entry is not None:
                    return entry.value
                computing, future = self._pending.get(key, (progress, None))
                if future is None:
                    future = self._worker.submit(self._compute, key, progress, compute)
                    self._pending[key] = (progress, future)
            value: T = future.result()
            if running or computing == progress:  # else: a finished study's report, computed mid-study
                return value

    def _fresh(self, key: Hashable, progress: Hashable, running: bool) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        current = entry.progress == progress
        recent = running and self._clock() - entry.computed_at < self.recompute_seconds
        if not (current or recent):
            return None
        self._entries.move_to_end(key)
        return entry

    def _compute(self, key: Hashable, progress: Hashable, compute: Callable[[], Any]) -> Any:
        try:
            value = compute()
            with self._lock:
                self.computations += 1
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
