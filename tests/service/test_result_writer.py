"""The driver's result writer (``service.jobs.result_writer``) on the real database: results that wait
together are stored in one transaction with the study's progress counted once, every submitted result
is stored by ``close``, and a result the database refuses fails alone (the others are stored) and is
the error ``close`` returns."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from test_storage import result, trials_by_key

from service.db import dal, session_scope
from service.errors import InvalidInput
from service.jobs.result_writer import ResultWriter
from studies.results import TrialKey, TrialResult, TrialStatus


class Recorder:
    """What the driver's ``write`` does (one transaction per call), counting the transactions; the
    first one waits for ``release`` so that later results queue behind it."""

    def __init__(self, engine: Engine, study_id: str) -> None:
        self.engine, self.study_id = engine, study_id
        self.batches: list[int] = []
        self.release = threading.Event()

    def __call__(self, results: Sequence[TrialResult]) -> None:
        self.release.wait(timeout=30)
        with session_scope(self.engine) as session:
            dal.record_trial_results(session, self.study_id, results)
        self.batches.append(len(results))


def progress(engine: Engine, study_id: str) -> tuple[int, int, int]:
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study_id)
        return study.trials_done, study.trials_diverged, study.trials_failed


def test_results_waiting_together_are_stored_in_one_transaction(
    engine: Engine, new_study: Any, grid: list[TrialKey]
) -> None:
    study = new_study()
    write = Recorder(engine, study.id)
    writer = ResultWriter(write)
    writer.submit(result(grid[0]))  # its write waits: the others queue meanwhile
    for key in grid[1:]:
        writer.submit(result(key, TrialStatus.DIVERGED) if key.lr == 0.1 else result(key))
    write.release.set()
    assert writer.close() is None
    assert sum(write.batches) == 16
    assert len(write.batches) < 16  # the 15 queued behind the first went in far fewer transactions
    stored = trials_by_key(engine, study.id)
    assert set(stored) == set(grid)
    assert all(len(row.curve) == 2 for row in stored.values())
    assert progress(engine, study.id) == (16, 8, 0)


def test_a_refused_result_fails_alone_and_is_the_error_close_returns(
    engine: Engine, new_study: Any, grid: list[TrialKey]
) -> None:
    study = new_study()
    write = Recorder(engine, study.id)
    writer = ResultWriter(write)
    refused = grid[3]
    writer.submit(result(grid[0]))
    for key in grid[1:]:
        writer.submit(result(key, wall_seconds=math.inf) if key == refused else result(key))
    write.release.set()
    error = writer.close()
    assert isinstance(error, InvalidInput)
    assert error.field == "wall_seconds"
    stored = trials_by_key(engine, study.id)
    assert stored[refused].status is TrialStatus.PENDING
    assert all(stored[key].status is TrialStatus.COMPLETED for key in grid if key != refused)
    assert progress(engine, study.id) == (15, 0, 0)


def test_close_without_results_returns_at_once(engine: Engine, new_study: Any) -> None:
    writer = ResultWriter(Recorder(engine, new_study().id))
    assert writer.close() is None
