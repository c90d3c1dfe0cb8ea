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
- The JSON of a finished study's answer (``SettledAnswers``) is also kept in memory and served
  without touching the database: the route answers on the event loop, with no query and no thread
  hop (a cached ``/grid`` went from ~2.8 to ~0.6–0.9 ms of server CPU). Every ``RECOMPUTE_SECONDS``
  a reader's request starts a check against the database in the background. What can still change
  about a finished study (a late result, a requeue of a failed one, a deletion by another process)
  shows a few seconds later, as a running study's results do; a deletion through this process shows
  at once (``ReportCache.forget``).
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

__all__ = ["RECOMPUTE_SECONDS", "ReportCache", "SettledAnswers", "reports"]

T = TypeVar("T")
RECOMPUTE_SECONDS = 5.0
COMPUTE_NICENESS = 10
_KEPT = 256
_ANSWERS_BYTES = 32 * 1024 * 1024  # ~5,000 grids or ~600 sensitivity reports of a 4-arm study


class SettledAnswers:
    """Serialised answers about finished studies by key (a tuple whose second item is the study id),
    each with the study's progress when it was computed, served from memory.

    When a study's answers were last confirmed ``recheck_seconds`` ago, the next reader's request
    starts a check on a background thread (stale while revalidating, as ``ReportCache`` does for a
    running study's reports), so no reader waits for it: one read of the study's progress confirms
    all its answers, or drops them when the study changed (a late result, a requeue) or is gone."""

    def __init__(
        self,
        *,
        recheck_seconds: float = RECOMPUTE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = _ANSWERS_BYTES,
    ):
        self.recheck_seconds = recheck_seconds
        self.max_bytes = max_bytes
        self._clock = clock
        self._answers: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._studies: dict[str, tuple[Hashable, float]] = {}  # study id → (progress, confirmed at)
        self._checking: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="demonlab-recheck", initializer=_lower_priority
        )

    def get(self, key: Hashable, progress_now: Callable[[], Hashable | None]) -> bytes | None:
        """The answer, or None when there is none. When its study is due for a check,
        ``progress_now`` (the study's progress read from the database, None when it is gone) runs on
        the background thread; this reader gets the answer as it is. A check that raises drops the
        study's answers (the database failed: the next reader asks it directly)."""
        study_id = _study_of(key)
        with self._lock:
            data = self._answers.get(key)
            if data is None:
                return None
            self._answers.move_to_end(key)
            progress, confirmed_at = self._studies[study_id]
            if self._clock() - confirmed_at >= self.recheck_seconds and study_id not in self._checking:
                self._checking[study_id] = self._worker.submit(self._check, study_id, progress, progress_now)
            return data

    def _check(self, study_id: str, progress: Hashable, progress_now: Callable[[], Hashable | None]) -> None:
        try:
            unchanged = progress_now() == progress
        except Exception:
            unchanged = False
        with self._lock:
            self._checking.pop(study_id, None)
            known = self._studies.get(study_id)
            if unchanged and known is not None and known[0] == progress:  # not replaced meanwhile
                self._studies[study_id] = (progress, self._clock())
        if not unchanged:
            self.forget(study_id)

    def put(self, key: Hashable, progress: Hashable, data: bytes) -> None:
        """Keep ``data``, computed at ``progress``, which the database confirmed just now; answers of
        the study at another progress are dropped."""
        study_id = _study_of(key)
        with self._lock:
            known = self._studies.get(study_id)
            if known is not None and known[0] != progress:
                self._drop(study_id)
            self._studies[study_id] = (progress, self._clock())
            self._bytes += len(data) - len(self._answers.get(key, b""))
            self._answers[key] = data
            self._answers.move_to_end(key)
            while self._bytes > self.max_bytes and len(self._answers) > 1:  # the least recently read go
                dropped, old = self._answers.popitem(last=False)
                self._bytes -= len(old)
                if not any(_study_of(k) == _study_of(dropped) for k in self._answers):
                    self._studies.pop(_study_of(dropped), None)

    def forget(self, study_id: str) -> None:
        """Drop every answer about ``study_id``."""
        with self._lock:
            self._drop(study_id)

    def _drop(self, study_id: str) -> None:  # with the lock held
        for key in [k for k in self._answers if _study_of(k) == study_id]:
            self._bytes -= len(self._answers.pop(key))
        self._studies.pop(study_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)

    def settle(self) -> None:
        """Wait for the checks under way (tests)."""
        with self._lock:
            futures = list(self._checking.values())
        for future in futures:
            future.exception()


def _study_of(key: Hashable) -> Any:
    return key[1] if isinstance(key, tuple) and len(key) > 1 else None


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
        self.answers = SettledAnswers(recheck_seconds=recompute_seconds, clock=clock)
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
        """Drop every report and settled answer of ``study_id`` (keys are tuples whose second item is
        the study id)."""
        with self._lock:
            for key in [k for k in self._entries if _study_of(k) == study_id]:
                del self._entries[key]
        self.answers.forget(study_id)


reports = ReportCache()
"""The process's report cache (the API and the dashboard share it)."""
