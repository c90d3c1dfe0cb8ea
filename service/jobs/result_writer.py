"""The driver's sink: results written to the database on a thread of their own, in batches.

An executor hands each result over the moment it is done (``submit`` returns at once); the writer's
thread takes everything waiting and stores it in one transaction (``dal.record_trial_results``).
A pack's members finish together, so hundreds of results arrive at once: one transaction each (a
commit and a progress count per result) kept the driver busy for seconds after its packs had
finished, while one per batch takes a fraction of that. A result alone is written at once, so the
first result is no later than before.

``write`` (the driver's) retries through database outages itself; a write that fails otherwise (a
result the database refuses) is retried one result at a time, so only that result's error stands,
and ``close`` returns the first such error for the driver to fail the study with. ``close`` waits
until every submitted result is written: the driver finishes its study only after that.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from studies.results import TrialResult

log = logging.getLogger("demonlab.driver")

BATCH = 500  # results per transaction at most


class ResultWriter:
    """``submit`` queues a result; a thread writes what is queued in batches; ``close`` drains it."""

    _STOP = object()

    def __init__(self, write: Callable[[Sequence[TrialResult]], None], *, batch: int = BATCH) -> None:
        self.write = write
        self.batch = batch
        self.error: Exception | None = None
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, result: TrialResult) -> None:
        """Queue one result (the thread starts with the first: after a packed executor has forked
        its workers, so no worker inherits a thread mid-write)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="demonlab-results", daemon=True)
                self._thread.start()
        self._queue.put(result)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while len(items) < self.batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is self._STOP for item in items)
            results = [item for item in items if isinstance(item, TrialResult)]
            if results:
                self._write(results)

    def _write(self, results: list[TrialResult]) -> None:
        try:
            self.write(results)
            return
        except Exception as exc:
            if len(results) == 1:
                self._fail(results[0], exc)
                return
        for result in results:  # which one was refused: the others are written
            try:
                self.write([result])
            except Exception as exc:
                self._fail(result, exc)

    def _fail(self, result: TrialResult, error: Exception) -> None:
        log.error("could not record %s: %s", result.key.token(), error)
        if self.error is None:
            self.error = error

    def close(self) -> Exception | None:
        """Wait until every submitted result is written; the first write error, if any."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(self._STOP)
            thread.join()
        return self.error
