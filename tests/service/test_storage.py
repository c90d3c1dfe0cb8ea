"""The storage layer (engine, session scope, data-access functions) on SQLite and on PostgreSQL.

Every test taking ``engine`` runs twice (see conftest): the service must behave the same on the
embedded default and on the shared database, concurrency included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text

from service.db import ApiToken, StudyStatus, Trial, TrialEpoch, dal, make_engine, session_scope
from service.db.engine import normalize_url
from service.db.nonfinite import ValueKind, decode_float, encode_float
from service.errors import Conflict, InvalidInput, NotFound, StorageUnavailable
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus

NewStudy = Callable[..., Any]


def result(key: TrialKey, status: TrialStatus = TrialStatus.COMPLETED, **fields: Any) -> TrialResult:
    """A finished trial's report with sensible defaults."""
    defaults: dict[str, Any] = {
        "val_metric": 0.25,
        "val_loss": 0.7,
        "test_metric": 0.3,
        "test_loss": 0.8,
        "best_val_metric": 0.2,
        "epochs_done": 2,
        "wall_seconds": 1.5,
        "node": "node-1",
        "epochs": (EpochRecord(0, 1.0, 0.9, 0.5), EpochRecord(1, 0.8, 0.7, 0.25)),
    }
    return TrialResult(key=key, status=status, **(defaults | fields))


def record(engine: Engine, study_id: str, trial: TrialResult) -> None:
    with session_scope(engine) as session:
        dal.record_trial_result(session, study_id, result=trial)


def trials_by_key(engine: Engine, study_id: str) -> dict[TrialKey, dal.TrialRecord]:
    with session_scope(engine, read_only=True) as session:
        rows, _ = dal.list_trials(session, study_id, limit=dal.MAX_PAGE_SIZE, with_curves=True)
    return {row.key: row for row in rows}


def claim(engine: Engine, limit: int = 10, max_running: int | None = None) -> list[str]:
    with session_scope(engine) as session:
        studies = dal.claim_queued_studies(session, limit=limit, launcher_id="scheduler-1", max_running=max_running)
    return [study.id for study in studies]


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads started together; results in order (exceptions re-raised)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # reported by the main thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for value in results:
        if isinstance(value, Exception):
            raise value
    return results


# ----------------------------------------------------------------------------------- engine and values


def test_normalize_url_uses_psycopg() -> None:
    for url in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        assert normalize_url(url).drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_engine_pragmas(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")  # the directory is created
    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        }
    engine.dispose()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 30_000, "foreign_keys": 1}


def test_a_new_sqlite_database_is_switched_to_wal_once_its_writer_is_done(tmp_path: Any) -> None:
    """A new database (rollback journal) that another connection is writing: SQLite refuses the switch
    to WAL at once ("database is locked", no busy wait), so four processes migrating a new database
    together failed (CI). The engine now waits for the writer and switches then."""
    import sqlite3

    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    connecting = threading.Event()
    outcome: list[Any] = []

    def connect() -> None:
        connecting.set()
        engine = make_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as connection:
                outcome.append(connection.exec_driver_sql("SELECT count(*) FROM t").scalar())
                outcome.append(connection.exec_driver_sql("PRAGMA journal_mode").scalar())
        except Exception as error:  # reported below
            outcome.append(error)
        finally:
            engine.dispose()

    thread = threading.Thread(target=connect)
    thread.start()
    connecting.wait(timeout=10)
    time.sleep(1.0)  # the engine is connecting meanwhile (it used to fail at once)
    writer.execute("COMMIT")
    thread.join(timeout=40)
    writer.close()

    assert outcome == [1, "wal"]


def test_unreachable_database_is_storage_unavailable() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    with pytest.raises(StorageUnavailable), session_scope(engine) as session:
        session.execute(text("SELECT 1"))
    engine.dispose()


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (None, (None, None)),
        (0.5, (0.5, ValueKind.FINITE)),
        (math.inf, (None, ValueKind.INF_POS)),
        (-math.inf, (None, ValueKind.INF_NEG)),
    ],
)
def test_encode_float(value: float | None, stored: tuple[float | None, ValueKind | None]) -> None:
    assert encode_float(value) == stored
    assert decode_float(*stored) == value


def test_encode_nan() -> None:
    assert encode_float(math.nan) == (None, ValueKind.NAN)
    assert math.isnan(decode_float(None, "nan") or 0.0)


def add_token(engine: Engine, name: str, *, then_fail: bool = False) -> None:
    """Store a token row with a fixed hash, in its own scope (optionally failing after the flush)."""
    with session_scope(engine) as session:
        session.add(ApiToken(name=name, token_hash="h" * 64, created_at=dt.datetime.now(dt.UTC)))
        session.flush()
        if then_fail:
            raise RuntimeError("boom")


def test_session_scope_rolls_back_and_maps_integrity_errors(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        add_token(engine, "a", then_fail=True)
    with session_scope(engine) as session:
        assert not dal.any_tokens(session)  # rolled back
    add_token(engine, "a")
    with pytest.raises(Conflict):
        add_token(engine, "b")  # the same hash: an IntegrityError inside, a Conflict outside


# ---------------------------------------------------------------------------------------------- studies


def test_create_and_get_study(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    created = new_study(name="first", spec={"workload": "synthetic", "lrs": [0.01, 0.1]})
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, created.id)
        trials, total = dal.list_trials(session, created.id, limit=100)
    assert len(study.id) == 12
    assert int(study.id, 16) >= 0
    assert (study.name, study.workload, study.launcher) == ("first", "synthetic", "local")
    assert study.spec == {"workload": "synthetic", "lrs": [0.01, 0.1]}
    assert study.status is StudyStatus.QUEUED
    assert (study.trials_total, study.trials_done, study.attempts) == (16, 0, 0)
    assert study.created_at.tzinfo is not None
    assert abs(study.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert total == 16
    assert [t.key for t in trials] == grid
    assert {t.status for t in trials} == {TrialStatus.PENDING}


def test_get_unknown_study(engine: Engine) -> None:
    with pytest.raises(NotFound), session_scope(engine) as session:
        dal.get_study(session, "000000000000")


def test_list_studies_pages_and_filters(engine: Engine, new_study: NewStudy) -> None:
    studies = [
        new_study(name=f"s{i}", workload="digits_mlp" if i % 2 else "synthetic", trial_keys=[]) for i in range(5)
    ]
    with session_scope(engine) as session:
        dal.cancel_study(session, studies[0].id)
    with session_scope(engine, read_only=True) as session:
        everything, total = dal.list_studies(session, limit=50)
        page, paged_total = dal.list_studies(session, offset=1, limit=2)
        digits, digits_total = dal.list_studies(session, workload="digits_mlp")
        cancelled, _ = dal.list_studies(session, status="cancelled")
        queued, queued_total = dal.list_studies(session, status=StudyStatus.QUEUED)
        named, _ = dal.list_studies(session, name="s3")
    assert total == paged_total == 5
    assert [s.id for s in everything] == [s.id for s in reversed(studies)]  # newest first
    assert [s.id for s in page] == [studies[3].id, studies[2].id]
    assert digits_total == 2
    assert {s.name for s in digits} == {"s1", "s3"}
    assert [s.id for s in cancelled] == [studies[0].id]
    assert queued_total == 4
    assert all(s.status is StudyStatus.QUEUED for s in queued)
    assert [s.name for s in named] == ["s3"]


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"status": "nope"}, "status")]
)
def test_list_studies_rejects_bad_arguments(engine: Engine, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught, session_scope(engine) as session:
        dal.list_studies(session, **kwargs)
    assert caught.value.field == field


def test_duplicate_trial_keys_rejected(new_study: NewStudy, grid: list[TrialKey]) -> None:
    with pytest.raises(InvalidInput, match="more than once"):
        new_study(trial_keys=[*grid, grid[0]])


def test_idempotency_key_returns_the_same_study(engine: Engine, new_study: NewStudy) -> None:
    first = new_study(idempotency_key="key-1")
    again = new_study(idempotency_key="key-1")
    other = new_study(idempotency_key="key-2")
    assert again.id == first.id != other.id
    with session_scope(engine, read_only=True) as session:
        assert dal.list_studies(session)[1] == 2
        assert session.scalar(select(func.count()).select_from(Trial)) == 32
    with pytest.raises(Conflict, match="different spec"):
        new_study(idempotency_key="key-1", spec_hash="hash-2")


def test_idempotency_key_race(engine: Engine, new_study: NewStudy) -> None:
    ids = in_threads(6, lambda _: new_study(idempotency_key="raced").id)
    assert len(set(ids)) == 1
    with session_scope(engine, read_only=True) as session:
        assert dal.list_studies(session)[1] == 1
        assert session.scalar(select(func.count()).select_from(Trial)) == 16


def test_bulk_create_of_a_large_study(engine: Engine, new_study: NewStudy) -> None:
    """20,000 trial rows go in as a few batched statements, not a statement per row (what its speed
    rests on; the time itself is the benches' business, not a test's)."""
    keys = [
        TrialKey("demon_sgdm", lr=10.0**-e, beta_init=b / 100, seed=seed)
        for e in range(20)
        for b in range(100)
        for seed in range(10)
    ]
    inserts: list[bool] = []  # one entry per statement sent for the trials table: whether executemany

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO TRIALS"):
            inserts.append(executemany)

    event.listen(engine, "before_cursor_execute", count)
    try:
        study = new_study(trial_keys=keys)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with session_scope(engine, read_only=True) as session:
        assert dal.get_study(session, study.id).trials_total == 20_000
        assert len(dal.pending_trial_keys(session, study.id)) == 20_000
    assert 1 <= len(inserts) <= 20, f"{len(inserts)} INSERT statements for 20,000 rows"


def test_delete_refused_while_running_then_cascades(engine: Engine, new_study: NewStudy) -> None:
    study = new_study()
    assert claim(engine) == [study.id]
    record(engine, study.id, result(TrialKey("demon_sgdm", 0.01, 0.9, 0)))
    with pytest.raises(Conflict, match="running"), session_scope(engine) as session:
        dal.delete_study(session, study.id)
    with session_scope(engine) as session:
        dal.finish_study(session, study.id, status=StudyStatus.COMPLETED)
    with session_scope(engine) as session:
        dal.delete_study(session, study.id)
    with session_scope(engine, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(Trial)) == 0
        assert session.scalar(select(func.count()).select_from(TrialEpoch)) == 0
        with pytest.raises(NotFound):
            dal.get_study(session, study.id)
    with pytest.raises(NotFound), session_scope(engine) as session:
        dal.delete_study(session, study.id)


def test_cancel_marks_pending_and_running_trials(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    claim(engine)
    with session_scope(engine) as session:
        dal.mark_trials_running(session, study.id, keys=grid[:3])
    record(engine, study.id, result(grid[0]))
    with session_scope(engine) as session:
        cancelled = dal.cancel_study(session, study.id)
    assert cancelled.status is StudyStatus.CANCELLED
    assert cancelled.finished_at is not None
    statuses = {key: trial.status for key, trial in trials_by_key(engine, study.id).items()}
    assert statuses[grid[0]] is TrialStatus.COMPLETED
    assert {statuses[key] for key in grid[1:]} == {TrialStatus.CANCELLED}
    with session_scope(engine) as session:
        assert dal.cancel_study(session, study.id).status is StudyStatus.CANCELLED  # idempotent
        assert dal.pending_trial_keys(session, study.id) == []
        assert dal.heartbeat(session, study.id) is StudyStatus.CANCELLED  # the driver learns to stop


def test_cancel_finished_study_is_a_conflict(engine: Engine, new_study: NewStudy) -> None:
    study = new_study(trial_keys=[])
    claim(engine)
    with session_scope(engine) as session:
        dal.finish_study(session, study.id, status=StudyStatus.COMPLETED)
    with pytest.raises(Conflict, match="completed"), session_scope(engine) as session:
        dal.cancel_study(session, study.id)


def test_cancel_after_the_last_result_is_a_conflict_and_the_study_completes(
    engine: Engine, new_study: NewStudy, grid: list[TrialKey]
) -> None:
    """Between the last result and the driver's "completed" (it stores the report meanwhile), a cancel
    marked a fully trained study cancelled: an atlas then trained it again."""
    study = new_study()
    claim(engine)
    for key in grid:
        record(engine, study.id, result(key))
    finishing = r"has every trial's result \(\d+ of \d+\): it is finishing"
    with pytest.raises(Conflict, match=finishing), session_scope(engine) as session:
        dal.cancel_study(session, study.id)
    with session_scope(engine) as session:
        dal.finish_study(session, study.id, status=StudyStatus.COMPLETED)
    with session_scope(engine, read_only=True) as session:
        assert dal.get_study(session, study.id).status is StudyStatus.COMPLETED
    assert {t.status for t in trials_by_key(engine, study.id).values()} == {TrialStatus.COMPLETED}


def test_a_study_rerunning_its_failed_trials_can_be_cancelled(
    engine: Engine, new_study: NewStudy, grid: list[TrialKey]
) -> None:
    """A relaunched driver runs the failed trials again: the study's counters still count them failed,
    so reading them said "every trial has its result" and refused the cancel; the trials' own statuses
    decide."""
    study = new_study()
    claim(engine)
    for key in grid[1:]:
        record(engine, study.id, result(key))
    record(engine, study.id, result(grid[0], TrialStatus.FAILED, error="OOM"))
    with session_scope(engine) as session:
        dal.mark_trials_running(session, study.id, keys=grid[:1])  # the relaunch runs it again
    with session_scope(engine) as session:
        assert dal.cancel_study(session, study.id).status is StudyStatus.CANCELLED


# ------------------------------------------------------------------------------------------- scheduling


def test_claim_race_claims_each_study_once(db_url: str, engine: Engine, new_study: NewStudy) -> None:
    ids = {new_study(name=f"s{i}", trial_keys=[]).id for i in range(10)}
    engines = [make_engine(db_url) for _ in range(2)]

    def claim_all(i: int) -> list[str]:
        mine: list[str] = []
        while batch := claim(engines[i], limit=2):
            mine += batch
        return mine

    try:
        first, second = in_threads(2, claim_all)
    finally:
        for each in engines:
            each.dispose()
    assert sorted(first + second) == sorted(ids)  # every study claimed, none twice
    with session_scope(engine, read_only=True) as session:
        studies, _ = dal.list_studies(session)
    assert {(s.status, s.attempts, s.claimed_by) for s in studies} == {(StudyStatus.RUNNING, 1, "scheduler-1")}


def test_claim_respects_max_running_and_order(engine: Engine, new_study: NewStudy) -> None:
    ids = [new_study(name=f"s{i}", trial_keys=[]).id for i in range(3)]
    assert claim(engine, limit=5, max_running=2) == ids[:2]  # oldest first
    assert claim(engine, limit=5, max_running=2) == []
    with session_scope(engine) as session:
        dal.finish_study(session, ids[0], status=StudyStatus.FAILED, error="boom")
    assert claim(engine, limit=5, max_running=2) == [ids[2]]


def test_heartbeat_and_stale_detection(engine: Engine, new_study: NewStudy) -> None:
    study = new_study(trial_keys=[])
    claim(engine)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    with session_scope(engine) as session:
        assert dal.heartbeat(session, study.id) is StudyStatus.RUNNING
        assert dal.find_stale_running(session, stale_after_seconds=30) == []
        stale = dal.find_stale_running(session, stale_after_seconds=30, now=later)
        assert [s.id for s in stale] == [study.id]
        dal.set_job_id(session, study.id, job_id="raysubmit_1")
    with session_scope(engine, read_only=True) as session:
        assert dal.get_study(session, study.id).job_id == "raysubmit_1"
    with pytest.raises(NotFound), session_scope(engine) as session:
        dal.set_job_id(session, "000000000000", job_id="x")
    with pytest.raises(NotFound), session_scope(engine) as session:
        dal.heartbeat(session, "000000000000")


def test_a_superseded_drivers_heartbeat_is_refused(engine: Engine, new_study: NewStudy) -> None:
    study = new_study(trial_keys=[])
    claim(engine)  # launch 1
    with session_scope(engine) as session:
        assert dal.heartbeat(session, study.id, attempt=1) is StudyStatus.RUNNING
        dal.requeue_study(session, study.id, expected_attempts=1)
    claim(engine)  # launch 2: the first driver is stale but maybe not dead
    with pytest.raises(Conflict, match="superseded"), session_scope(engine) as session:
        dal.heartbeat(session, study.id, attempt=1)
    with session_scope(engine) as session:
        assert dal.heartbeat(session, study.id, attempt=2) is StudyStatus.RUNNING


def test_requeue_resets_running_trials(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    claim(engine)
    with session_scope(engine) as session:
        dal.set_job_id(session, study.id, job_id="pid-1")
        dal.mark_trials_running(session, study.id, keys=grid[:3])
    record(engine, study.id, result(grid[0]))
    with pytest.raises(Conflict, match="relaunched"), session_scope(engine) as session:
        dal.requeue_study(session, study.id, expected_attempts=7)
    with session_scope(engine) as session:
        requeued = dal.requeue_study(session, study.id, expected_attempts=1)
    assert requeued.status is StudyStatus.QUEUED
    assert (requeued.job_id, requeued.heartbeat_at, requeued.claimed_by) == (None, None, None)
    statuses = {key: trial.status for key, trial in trials_by_key(engine, study.id).items()}
    assert statuses[grid[0]] is TrialStatus.COMPLETED
    assert {statuses[key] for key in grid[1:]} == {TrialStatus.PENDING}
    assert claim(engine) == [study.id]
    with session_scope(engine, read_only=True) as session:
        again = dal.get_study(session, study.id)
    assert (again.attempts, again.trials_done, again.started_at) == (2, 1, requeued.started_at)


def test_finish_study_ends_running_trials(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    claim(engine)
    with session_scope(engine) as session:
        dal.mark_trials_running(session, study.id, keys=grid[:2])
    with pytest.raises(InvalidInput), session_scope(engine) as session:
        dal.finish_study(session, study.id, status=StudyStatus.QUEUED)
    with session_scope(engine) as session:
        finished = dal.finish_study(session, study.id, status="failed", error="driver crashed")
    assert (finished.status, finished.error, finished.trials_failed) == (
        StudyStatus.FAILED,
        "driver crashed",
        2,
    )
    with session_scope(engine) as session:  # a late word from the driver changes nothing
        assert dal.finish_study(session, study.id, status=StudyStatus.COMPLETED).status is StudyStatus.FAILED


# ---------------------------------------------------------------------------------------------- trials


def test_pending_trial_keys_excludes_results(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    record(engine, study.id, result(grid[0]))
    record(engine, study.id, result(grid[1], TrialStatus.DIVERGED, val_metric=math.nan))
    record(engine, study.id, result(grid[2], TrialStatus.FAILED, error="OOM"))
    with session_scope(engine) as session:
        assert dal.pending_trial_keys(session, study.id) == grid[2:]  # failed ones run again
        with pytest.raises(NotFound):
            dal.pending_trial_keys(session, "000000000000")


def test_mark_trials_running_leaves_results_alone(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    record(engine, study.id, result(grid[0]))
    with session_scope(engine) as session:
        dal.mark_trials_running(session, study.id, keys=grid[:2])
        dal.mark_trials_running(session, study.id, keys=grid[1:2])
    trials = trials_by_key(engine, study.id)
    assert (trials[grid[0]].status, trials[grid[0]].attempts) == (TrialStatus.COMPLETED, 0)  # not re-run
    assert (trials[grid[1]].status, trials[grid[1]].attempts) == (TrialStatus.RUNNING, 2)
    assert trials[grid[2]].status is TrialStatus.PENDING


def test_record_same_result_twice_is_idempotent(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    for _ in range(2):
        record(engine, study.id, result(grid[0]))
    with session_scope(engine, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(Trial)) == 16
        assert session.scalar(select(func.count()).select_from(TrialEpoch)) == 2
        assert dal.get_study(session, study.id).trials_done == 1
    trial = trials_by_key(engine, study.id)[grid[0]]
    assert (trial.status, trial.val_metric, trial.test_loss, trial.node) == (
        TrialStatus.COMPLETED,
        0.25,
        0.8,
        "node-1",
    )
    assert trial.curve == result(grid[0]).epochs


def test_record_updated_result_replaces_row_and_curve(
    engine: Engine, new_study: NewStudy, grid: list[TrialKey]
) -> None:
    study = new_study()
    record(engine, study.id, result(grid[0]))
    record(engine, study.id, result(grid[1], TrialStatus.FAILED, error="OOM"))
    updated = result(grid[0], TrialStatus.DIVERGED, val_metric=math.inf, epochs=(EpochRecord(0, 9.0, 9.0, 1.0),))
    record(engine, study.id, updated)
    record(engine, study.id, result(grid[1]))  # the failed trial succeeded on relaunch
    trial = trials_by_key(engine, study.id)[grid[0]]
    assert (trial.status, trial.val_metric, trial.curve) == (TrialStatus.DIVERGED, math.inf, updated.epochs)
    with session_scope(engine, read_only=True) as session:
        study = dal.get_study(session, study.id)
        assert session.scalar(select(func.count()).select_from(TrialEpoch)) == 3
    assert (study.trials_done, study.trials_diverged, study.trials_failed) == (2, 1, 0)


def test_a_failed_report_never_replaces_a_result_or_a_cancel(
    engine: Engine, new_study: NewStudy, grid: list[TrialKey]
) -> None:
    study = new_study()
    record(engine, study.id, result(grid[0]))
    record(engine, study.id, result(grid[0], TrialStatus.FAILED, error="Ray trial errored after its retries"))
    kept = trials_by_key(engine, study.id)[grid[0]]
    assert (kept.status, kept.test_metric, kept.curve) == (TrialStatus.COMPLETED, 0.3, result(grid[0]).epochs)
    with session_scope(engine) as session:
        dal.cancel_study(session, study.id)
    record(engine, study.id, result(grid[1], TrialStatus.FAILED, error="killed by the cancel"))
    assert trials_by_key(engine, study.id)[grid[1]].status is TrialStatus.CANCELLED
    with session_scope(engine, read_only=True) as session:
        stored = dal.get_study(session, study.id)
        assert grid[0] not in dal.pending_trial_keys(session, study.id)
    assert (stored.trials_done, stored.trials_failed) == (1, 0)


def test_record_unknown_key_adds_a_trial(engine: Engine, new_study: NewStudy) -> None:
    study = new_study(trial_keys=[], trials_total=0)
    record(engine, study.id, result(TrialKey("demon_sgdm", 0.05, 0.95, 3)))
    with session_scope(engine, read_only=True) as session:
        trials, total = dal.list_trials(session, study.id)
        study = dal.get_study(session, study.id)
    assert total == 1
    assert trials[0].key == TrialKey("demon_sgdm", 0.05, 0.95, 3)
    assert (study.trials_total, study.trials_done, trials[0].attempts) == (1, 1, 1)


def test_non_finite_values_round_trip(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    blown_up = result(
        grid[0],
        TrialStatus.DIVERGED,
        val_metric=math.nan,
        val_loss=math.inf,
        test_metric=-math.inf,
        test_loss=None,
        best_val_metric=0.125,
        epochs=(EpochRecord(0, 2.5, 2.0, 0.5), EpochRecord(1, math.inf, math.nan, -math.inf)),
        extra={"diverged_at": 1, "peak": math.inf},
    )
    record(engine, study.id, blown_up)
    trial = trials_by_key(engine, study.id)[grid[0]]
    assert math.isnan(trial.val_metric or 0.0)
    assert (trial.val_loss, trial.test_metric, trial.test_loss, trial.best_val_metric) == (
        math.inf,
        -math.inf,
        None,
        0.125,
    )
    assert trial.curve is not None
    assert trial.curve[0] == blown_up.epochs[0]
    last = trial.curve[1]
    assert (last.epoch, last.train_loss, last.val_metric) == (1, math.inf, -math.inf)
    assert math.isnan(last.val_loss)
    assert trial.extra == {"diverged_at": 1, "peak": "inf"}
    with session_scope(engine, read_only=True) as session:  # never a raw non-finite number stored
        raw = session.execute(select(Trial.val_metric, Trial.val_loss, Trial.test_metric).where(Trial.id == trial.id))
        assert raw.one() == (None, None, None)


def test_list_trials_filters_and_pages(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    record(engine, study.id, result(grid[0]))
    with session_scope(engine, read_only=True) as session:
        arm, arm_total = dal.list_trials(session, study.id, arm="sgdm_step")
        cell, _ = dal.list_trials(session, study.id, arm="demon_sgdm", lr=0.1, beta_init=0.99)
        done, done_total = dal.list_trials(session, study.id, status="completed")
        page, page_total = dal.list_trials(session, study.id, offset=14, limit=5)
        bare, _ = dal.list_trials(session, study.id, limit=1)
    assert arm_total == 8
    assert {t.arm for t in arm} == {"sgdm_step"}
    assert [t.seed for t in cell] == [0, 1]
    assert {(t.lr, t.beta_init) for t in cell} == {(0.1, 0.99)}
    assert done_total == 1
    assert done[0].key == grid[0]
    assert page_total == 16
    assert [t.key for t in page] == grid[14:]
    assert bare[0].curve is None


def test_trial_scores_frame(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    record(engine, study.id, result(grid[0], val_metric=0.1, test_metric=0.2, val_loss=1.5))
    record(engine, study.id, result(grid[1], TrialStatus.DIVERGED, val_metric=math.inf, test_metric=None))
    with session_scope(engine, read_only=True) as session:
        frame = dal.trial_scores_frame(session, study.id)
        losses = dal.trial_scores_frame(session, study.id, metric="loss", arm="sgdm_step")
    assert list(frame.columns) == list(dal.FRAME_COLUMNS)
    assert len(frame) == 16
    assert [frame[c].dtype.kind for c in ("lr", "beta_init", "seed", "val", "test")] == [
        "f",
        "f",
        "i",
        "f",
        "f",
    ]
    first, second = frame.iloc[0], frame.iloc[1]
    assert (first.arm, first.lr, first.beta_init, first.seed) == (
        grid[0].arm,
        grid[0].lr,
        grid[0].beta_init,
        0,
    )
    assert (first.status, first.val, first.test) == ("completed", 0.1, 0.2)
    assert second.status == "diverged"
    assert second.val == math.inf  # as stored: the local run's frame keeps it too (impute_scores reads both alike)
    assert math.isnan(second.test)
    assert frame.iloc[2:]["val"].isna().all()
    assert set(frame.iloc[2:]["status"]) == {"pending"}
    # a completed run whose score overflowed: +inf, which the figures clip to y_fail (it was NaN here,
    # missing, where metrics.json of a local run counted y_fail); NaN and -inf are no score
    record(engine, study.id, result(grid[2], val_metric=math.inf, test_metric=-math.inf))
    record(engine, study.id, result(grid[3], val_metric=math.nan, test_metric=0.3))
    with session_scope(engine, read_only=True) as session:
        frame = dal.trial_scores_frame(session, study.id)
    assert frame.iloc[2].val == math.inf
    assert math.isnan(frame.iloc[2].test)
    assert math.isnan(frame.iloc[3].val)
    assert frame.iloc[3].test == 0.3
    assert list(frame.columns) == list(dal.FRAME_COLUMNS)
    assert len(losses) == 8
    assert set(losses["arm"]) == {"sgdm_step"}


def test_trials_export_frame_keeps_non_finite_values(engine: Engine, new_study: NewStudy, grid: list[TrialKey]) -> None:
    study = new_study()
    record(engine, study.id, result(grid[0], TrialStatus.DIVERGED, val_loss=math.inf, test_loss=-math.inf))
    with session_scope(engine, read_only=True) as session:
        frame = dal.trials_export_frame(session, study.id)
    assert len(frame) == 16
    assert frame.iloc[0]["val_loss"] == math.inf
    assert frame.iloc[0]["test_loss"] == -math.inf
    assert frame.iloc[0]["status"] == "diverged"
    assert frame.iloc[1]["status"] == "pending"


# ---------------------------------------------------------------------------------------------- tokens


def test_token_secrets_never_look_like_command_line_options(engine: Engine) -> None:
    with session_scope(engine) as session:
        secrets_made = [dal.create_token(session, f"t{i}") for i in range(200)]
    assert not any(secret.startswith("-") for secret in secrets_made)
    assert len(set(secrets_made)) == 200


def test_tokens_are_stored_hashed(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert not dal.any_tokens(session)
        secret = dal.create_token(session, "ci")
    with session_scope(engine) as session:
        stored = session.scalars(select(ApiToken)).one()
        assert dal.any_tokens(session)
        assert stored.last_used_at is None
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr([getattr(stored, c) for c in ("name", "token_hash")])
    with session_scope(engine) as session:
        assert dal.check_token(session, secret) == "active"
        assert dal.check_token(session, secret + "x") == "unknown"
        assert dal.check_token(session, "") == "unknown"
        assert session.scalars(select(ApiToken)).one().last_used_at is not None
    with pytest.raises(InvalidInput), session_scope(engine) as session:
        dal.create_token(session, "")
