"""The data-access layer: every read and write the service makes, as functions of a ``Session``.

Each function takes the session, then what it acts on (a study id, a token; ``set_job_id`` and
``record_trial_result`` also what they store), then everything else by keyword only. None of them commits: the
caller's ``session_scope`` does, so a route, the scheduler or the driver decides what one transaction
is. Unknown studies raise ``NotFound``; impossible state changes raise ``Conflict``.

Concurrency is part of the contract, on SQLite and on PostgreSQL alike:

- State changes of a study lock its row first (``SELECT … FOR UPDATE``; on SQLite every write
  transaction holds the database's write lock), so the scheduler, the driver and the API never
  interleave half-way through a change.
- Claiming queued studies is a conditional ``UPDATE … WHERE status = 'queued'`` whose row count says
  who won, under a transaction-level advisory lock on PostgreSQL, so the running-study limit holds
  across scheduler replicas too.
- Recording a trial is an ``INSERT … ON CONFLICT DO UPDATE`` on its unique key: recording the same
  result twice leaves one row, and the study's progress counters are recomputed in that transaction.

Scores come back decoded (``nan``, ``inf`` and ``-inf`` as Python floats; see ``service.db.nonfinite``),
except in ``trial_scores_frame``, which is for numbers: NaN there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Result,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.errors import Conflict, InvalidInput, NotFound
from service.tokens import token_state
from studies.results import EpochRecord, TrialKey, TrialResult
from studies.vocab import METRIC_KINDS, MetricKind, StudyStatus, TrialStatus, split_problem

from ..trials import SCORE_NAMES, TrialFields
from .models import ApiToken, Study, Trial, TrialEpoch, utcnow
from .nonfinite import ValueKind, decode_float, encode_float

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TokenRecord",
    "TrialRecord",
    "any_tokens",
    "cancel_study",
    "check_token",
    "claim_queued_studies",
    "create_study",
    "create_token",
    "delete_study",
    "find_stale_running",
    "finish_study",
    "get_study",
    "heartbeat",
    "list_studies",
    "list_tokens",
    "list_trials",
    "mark_trials_running",
    "new_study_id",
    "pending_trial_keys",
    "record_trial_result",
    "record_trial_results",
    "requeue_study",
    "revoke_token",
    "set_environment",
    "set_job_id",
    "trial_machines",
    "trial_scores_frame",
    "trials_export_frame",
]

MAX_PAGE_SIZE = 10_000
MAX_OFFSET = 2**63 - 1  # SQL's BIGINT: a larger OFFSET fails in the driver (SQLite) or the server
EPOCH_VALUE_NAMES = ("train_loss", "val_loss", "val_metric")
FRAME_COLUMNS = ("arm", "lr", "beta_init", "seed", "status", "val", "test")
_FRAME_DTYPES: dict[str, Any] = {
    "arm": object,
    "lr": float,
    "beta_init": float,
    "seed": "int64",
    "status": object,
    "val": float,
    "test": float,
    "val_inf": float,  # 1.0 where the stored score is +inf (its value column is NULL), else 0.0 or NaN
    "test_inf": float,
}
_EXPORT_DTYPES = {"arm": str, "lr": float, "beta_init": float, "seed": "int64", "status": str}
EXPORT_COLUMNS = (
    "status", "epochs_done", "wall_seconds", "node", "device", "error", "attempts", "updated_at"
)  # fmt: skip
# Trials a driver may (still) run: never results, never trials of a cancelled study.
RUNNABLE = (TrialStatus.PENDING, TrialStatus.RUNNING, TrialStatus.FAILED)
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises claims across replicas.
CLAIM_LOCK_KEY = 0x64656D6F6E6C6162  # "demonlab"

_TRIALS = cast(Table, Trial.__table__)
_EPOCHS = cast(Table, TrialEpoch.__table__)
_KEY_COLUMNS = ("study_id", "arm", "lr", "beta_init", "seed")


class TrialRecord(TrialFields):
    """A trial as the service reads it: its fields (scores decoded: NaN and ±inf as they were), the
    row's bookkeeping and, on request, its curve."""

    id: int
    attempts: int
    updated_at: dt.datetime
    extra: dict[str, Any]
    curve: tuple[EpochRecord, ...] | None = None

    @property
    def key(self) -> TrialKey:
        """The trial's unique key inside its study."""
        return TrialKey(arm=self.arm, lr=self.lr, beta_init=self.beta_init, seed=self.seed)


# ---------------------------------------------------------------------------------------------- studies


def new_study_id() -> str:
    """12 random lowercase hex characters."""
    return secrets.token_hex(6)


def create_study(
    session: Session,
    *,
    name: str,
    workload: str,
    spec: dict[str, Any],
    spec_hash: str,
    trial_keys: Sequence[TrialKey],
    launcher: str,
    idempotency_key: str | None = None,
    trials_total: int | None = None,
) -> Study:
    """Insert a queued study and its pending trials; an already used ``idempotency_key`` returns its study.

    Two concurrent submissions with one key give one study: the loser's insert fails on the unique
    key inside a savepoint and it returns the winner's study. Reusing a key for a different spec
    (``spec_hash``) is a ``Conflict``. ``trials_total`` defaults to the number of keys; a search
    (Optuna) study creates its trial rows as the sampler proposes them and says its budget here.
    """
    if idempotency_key is not None and (found := _study_by_key(session, idempotency_key, spec_hash)):
        return found
    _check_distinct(trial_keys)
    study = Study(
        id=new_study_id(),
        name=name,
        workload=workload,
        spec=spec,
        spec_hash=spec_hash,
        idempotency_key=idempotency_key,
        status=StudyStatus.QUEUED,
        launcher=launcher,
        created_at=utcnow(),
        trials_total=len(trial_keys) if trials_total is None else trials_total,
    )
    try:
        with session.begin_nested():
            session.add(study)
    except IntegrityError:
        if idempotency_key is None or (found := _study_by_key(session, idempotency_key, spec_hash)) is None:
            raise
        return found
    _insert_pending_trials(session, study.id, trial_keys)
    return study


def _study_by_key(session: Session, idempotency_key: str, spec_hash: str) -> Study | None:
    study = session.scalars(select(Study).where(Study.idempotency_key == idempotency_key)).one_or_none()
    if study is not None and study.spec_hash != spec_hash:
        raise Conflict(f"idempotency key {idempotency_key!r} was used for a different spec")
    return study


def _check_distinct(trial_keys: Sequence[TrialKey]) -> None:
    if len(set(trial_keys)) != len(trial_keys):
        raise InvalidInput("trial_keys", "the same (arm, lr, beta_init, seed) appears more than once")


def _insert_pending_trials(session: Session, study_id: str, trial_keys: Sequence[TrialKey]) -> None:
    if not trial_keys:
        return
    now = utcnow()
    rows = [
        {
            "study_id": study_id,
            "arm": key.arm,
            "lr": key.lr,
            "beta_init": key.beta_init,
            "seed": key.seed,
            "status": TrialStatus.PENDING,
            "updated_at": now,
        }
        for key in trial_keys
    ]
    session.execute(insert(_TRIALS), rows)  # one executemany, batched by the driver


def get_study(session: Session, study_id: str) -> Study:
    """The study, or ``NotFound``."""
    study = session.get(Study, study_id, populate_existing=True)
    if study is None:
        raise NotFound("study", study_id)
    return study


def list_studies(
    session: Session,
    *,
    status: StudyStatus | str | None = None,
    workload: str | None = None,
    name: str | None = None,
    offset: int = 0,
    limit: int = 50,
    name_contains: str | None = None,
) -> tuple[list[Study], int]:
    """One page of studies, newest first, and how many match in all (filters are exact matches, except
    ``name_contains``: a case-insensitive substring of the name)."""
    _check_page(offset, limit)
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        conditions.append(Study.status == _study_status(status))
    if workload is not None:
        conditions.append(Study.workload == workload)
    if name is not None:
        conditions.append(Study.name == name)
    if name_contains:
        conditions.append(func.lower(Study.name).contains(name_contains.lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(Study).where(*conditions)) or 0
    page = select(Study).where(*conditions).order_by(Study.created_at.desc(), Study.id.desc())
    return list(session.scalars(page.offset(offset).limit(limit)).all()), total


def study_workloads(session: Session) -> list[str]:
    """The distinct workloads of every study (the dashboard's filter)."""
    return list(session.scalars(select(Study.workload).distinct().order_by(Study.workload)).all())


def trial_placement(session: Session, study_id: str) -> dict[str, Any]:
    """Where a study's trials ran and how long they took: trials and wall seconds per (node, device)."""
    query = (
        select(Trial.node, Trial.device, func.count(), func.sum(Trial.wall_seconds))
        .where(Trial.study_id == study_id, Trial.node.is_not(None))
        .group_by(Trial.node, Trial.device)
        .order_by(Trial.node, Trial.device)
    )
    rows = [
        {"node": node, "device": device, "trials": int(count), "wall_seconds": float(total or 0.0)}
        for node, device, count, total in session.execute(query)
    ]
    return {"rows": rows, "wall_seconds": sum(r["wall_seconds"] for r in rows)}


def delete_study(session: Session, study_id: str) -> None:
    """Delete a study with its trials and curves (cascade); ``Conflict`` while it is running."""
    deleted = session.execute(delete(Study).where(Study.id == study_id, Study.status != StudyStatus.RUNNING))
    if _rowcount(deleted) == 0:
        get_study(session, study_id)  # NotFound if it does not exist
        raise Conflict(f"study {study_id!r} is running: cancel it first")


def cancel_study(session: Session, study_id: str) -> Study:
    """Mark a queued or running study cancelled and its pending and running trials too.

    Stopping the job is the launcher's part. Cancelling a cancelled study changes nothing; a
    completed or failed one is a ``Conflict``, and so is one whose every trial has its result (its
    driver is finishing it: cancelled then, a fully trained study was marked cancelled, and an atlas
    trained it again).
    """
    study = _lock_study(session, study_id)
    if study.status is StudyStatus.CANCELLED:
        return study
    if study.status.is_finished:
        raise Conflict(f"study {study_id!r} is already {study.status}")
    counts = _trial_counts(session, study_id)
    ended = sum(n for status, n in counts.items() if status not in (TrialStatus.PENDING, TrialStatus.RUNNING))
    if 0 < study.trials_total <= ended:  # its driver is storing the report: a cancel would discard a finished study
        raise Conflict(
            f"study {study_id!r} has every trial's result ({ended} of {study.trials_total}): it is finishing, "
            "there is nothing left to cancel"
        )
    study.status = StudyStatus.CANCELLED
    study.finished_at = utcnow()
    _set_trial_status(session, study_id, (TrialStatus.PENDING, TrialStatus.RUNNING), TrialStatus.CANCELLED)
    return study


def _lock_study(session: Session, study_id: str) -> Study:
    """The study's row, locked until the transaction ends (SQLite: the write lock is already held)."""
    query = select(Study).where(Study.id == study_id).with_for_update()
    study = session.scalars(query.execution_options(populate_existing=True)).one_or_none()
    if study is None:
        raise NotFound("study", study_id)
    return study


def _set_trial_status(session: Session, study_id: str, current: Sequence[TrialStatus], new: TrialStatus) -> None:
    session.execute(
        update(Trial)
        .where(Trial.study_id == study_id, Trial.status.in_(current))
        .values(status=new, updated_at=utcnow())
    )


def _study_status(value: StudyStatus | str) -> StudyStatus:
    try:
        return StudyStatus(value)
    except ValueError:
        raise InvalidInput("status", f"unknown study status {value!r}") from None


def _trial_status(value: TrialStatus | str) -> TrialStatus:
    try:
        return TrialStatus(value)
    except ValueError:
        raise InvalidInput("status", f"unknown trial status {value!r}") from None


def _check_page(offset: int, limit: int) -> None:
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput("offset", f"must be between 0 and {MAX_OFFSET}, got {offset}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE_SIZE}, got {limit}")


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


# ------------------------------------------------------------------------------------------- scheduling


def claim_queued_studies(
    session: Session, *, limit: int, launcher_id: str, max_running: int | None = None
) -> list[Study]:
    """Claim up to ``limit`` queued studies, oldest first, as running; never more than ``max_running``
    running in all.

    Each claim is ``UPDATE … WHERE id = :id AND status = 'queued'`` and counts only if it changed a
    row, so two schedulers on one database never launch one study twice.
    """
    _serialize_claims(session)
    slots = limit if max_running is None else min(limit, max_running - _count_running(session))
    if slots <= 0:
        return []
    candidates = session.scalars(
        select(Study.id).where(Study.status == StudyStatus.QUEUED).order_by(Study.created_at, Study.id).limit(slots)
    ).all()
    now = utcnow()
    claimed = [study_id for study_id in candidates if _claim(session, study_id, launcher_id, now)]
    return _studies_by_id(session, claimed)


def _serialize_claims(session: Session) -> None:
    # SQLite already serialises writers (BEGIN IMMEDIATE); PostgreSQL needs the count of running
    # studies and the claims to be one critical section across replicas.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))


def _count_running(session: Session) -> int:
    query = select(func.count()).select_from(Study).where(Study.status == StudyStatus.RUNNING)
    return session.scalar(query) or 0


def _claim(session: Session, study_id: str, launcher_id: str, now: dt.datetime) -> bool:
    result = session.execute(
        update(Study)
        .where(Study.id == study_id, Study.status == StudyStatus.QUEUED)
        .values(
            status=StudyStatus.RUNNING,
            attempts=Study.attempts + 1,
            claimed_by=launcher_id,
            started_at=func.coalesce(Study.started_at, now),
            heartbeat_at=now,
            finished_at=None,
            error=None,
        )
        .execution_options(synchronize_session=False)  # claimed rows are re-read afterwards
    )
    return _rowcount(result) == 1


def _studies_by_id(session: Session, study_ids: Sequence[str]) -> list[Study]:
    if not study_ids:
        return []
    query = select(Study).where(Study.id.in_(study_ids)).order_by(Study.created_at, Study.id)
    return list(session.scalars(query.execution_options(populate_existing=True)).all())


def heartbeat(session: Session, study_id: str, *, attempt: int | None = None) -> StudyStatus:
    """Stamp a running study as alive and return its status: anything but ``running`` (cancelled,
    requeued, finished) tells the driver to stop. Only a running study's heartbeat is stamped.

    With ``attempt`` (the launch the driver belongs to), a study running under a later launch raises
    ``Conflict``: that driver was superseded (relaunched after a stale heartbeat) and must stop.
    """
    condition = [Study.id == study_id, Study.status == StudyStatus.RUNNING]
    if attempt is not None:
        condition.append(Study.attempts == attempt)
    result = session.execute(update(Study).where(*condition).values(heartbeat_at=utcnow()))
    if _rowcount(result) == 1:
        return StudyStatus.RUNNING
    row = session.execute(select(Study.status, Study.attempts).where(Study.id == study_id)).one_or_none()
    if row is None:
        raise NotFound("study", study_id)
    if row.status is StudyStatus.RUNNING:
        raise Conflict(
            f"study {study_id!r} runs under launch {row.attempts}, not {attempt}: this driver was superseded"
        )
    status: StudyStatus = row.status
    return status


def find_stale_running(session: Session, *, stale_after_seconds: float, now: dt.datetime | None = None) -> list[Study]:
    """Running studies whose last heartbeat is older than ``stale_after_seconds`` (or missing)."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=stale_after_seconds)
    query = select(Study).where(
        Study.status == StudyStatus.RUNNING,
        (Study.heartbeat_at.is_(None)) | (Study.heartbeat_at < cutoff),
    )
    return list(session.scalars(query.order_by(Study.created_at)).all())


def running_studies_of_jobs(session: Session, job_ids: Sequence[str]) -> list[Study]:
    """Running studies whose current job is one of ``job_ids`` (drivers known to have exited)."""
    if not job_ids:
        return []
    query = select(Study).where(Study.status == StudyStatus.RUNNING, Study.job_id.in_(list(job_ids)))
    return list(session.scalars(query.order_by(Study.created_at)).all())


def requeue_study(session: Session, study_id: str, *, expected_attempts: int | None = None) -> Study:
    """Put a running (dead driver) or failed study back in the queue; trials left running become pending.

    ``expected_attempts`` guards recovery: if the study was claimed again since it was found stale
    (its launch count moved on), this is a ``Conflict`` and nothing changes. Requeueing a queued
    study changes nothing; a completed or cancelled one is a ``Conflict``.
    """
    study = _lock_study(session, study_id)
    if study.status is StudyStatus.QUEUED:
        return study
    if study.status not in (StudyStatus.RUNNING, StudyStatus.FAILED):
        raise Conflict(f"study {study_id!r} is {study.status}: only running or failed studies requeue")
    if expected_attempts is not None and study.attempts != expected_attempts:
        raise Conflict(f"study {study_id!r} was relaunched meanwhile (attempt {study.attempts})")
    study.status = StudyStatus.QUEUED
    study.claimed_by = study.job_id = study.heartbeat_at = study.finished_at = None
    _set_trial_status(session, study_id, (TrialStatus.RUNNING,), TrialStatus.PENDING)
    return study


def set_job_id(session: Session, study_id: str, job_id: str) -> None:
    """Remember the launcher's handle for the study's job (a pid, a Ray job id)."""
    result = session.execute(update(Study).where(Study.id == study_id).values(job_id=job_id))
    if _rowcount(result) == 0:
        raise NotFound("study", study_id)


def finish_study(session: Session, study_id: str, *, status: StudyStatus | str, error: str | None = None) -> Study:
    """End a running study as completed, failed or cancelled; trials still running end with it.

    ``completed`` is the driver's word that it ran everything; the outcome comes from the trials:
    ``completed`` when none failed, ``completed_with_failures`` when some did, ``failed`` when every
    trial that ran failed (no result at all). Only a running study is finished: if it was cancelled
    or requeued meanwhile, the driver's word no longer counts and the study is returned unchanged.
    """
    status = _study_status(status)
    if not status.is_finished:
        raise InvalidInput("status", f"a study finishes as completed, failed or cancelled, not {status}")
    study = _lock_study(session, study_id)
    if study.status is not StudyStatus.RUNNING:
        return study
    study.error, study.finished_at = error, utcnow()
    leftover = TrialStatus.CANCELLED if status is StudyStatus.CANCELLED else TrialStatus.FAILED
    _set_trial_status(session, study_id, (TrialStatus.RUNNING,), leftover)
    _refresh_progress(session, study)
    study.status = _outcome(study) if status in _COMPLETE else status
    return study


_COMPLETE = (StudyStatus.COMPLETED, StudyStatus.COMPLETED_WITH_FAILURES)


def _outcome(study: Study) -> StudyStatus:
    """A study that ran to the end, judged by its trials' counters (just refreshed)."""
    if not study.trials_failed:
        return StudyStatus.COMPLETED
    return StudyStatus.COMPLETED_WITH_FAILURES if study.trials_done else StudyStatus.FAILED


# --------------------------------------------------------------------------------------------- trials


def pending_trial_keys(session: Session, study_id: str) -> list[TrialKey]:
    """Keys of the trials still to run (pending, running or failed before), in key order."""
    _require_study(session, study_id)
    rows = session.execute(
        select(Trial.arm, Trial.lr, Trial.beta_init, Trial.seed)
        .where(Trial.study_id == study_id, Trial.status.in_(RUNNABLE))
        .order_by(Trial.arm, Trial.lr, Trial.beta_init, Trial.seed)
    )
    return [TrialKey(arm=arm, lr=lr, beta_init=beta_init, seed=seed) for arm, lr, beta_init, seed in rows]


def mark_trials_running(session: Session, study_id: str, *, keys: Sequence[TrialKey]) -> None:
    """Mark these trials running and count the attempt; results and cancelled trials are left alone."""
    _lock_study(session, study_id)  # always the study's row before its trials': no lock-order deadlock
    if not keys:
        return
    statement = (
        update(_TRIALS)
        .where(
            _TRIALS.c.study_id == bindparam("b_study_id"),
            _TRIALS.c.arm == bindparam("b_arm"),
            _TRIALS.c.lr == bindparam("b_lr"),
            _TRIALS.c.beta_init == bindparam("b_beta_init"),
            _TRIALS.c.seed == bindparam("b_seed"),
            or_(*(_TRIALS.c.status == status for status in RUNNABLE)),  # IN (...) can't executemany
        )
        .values(status=TrialStatus.RUNNING, attempts=_TRIALS.c.attempts + 1, updated_at=utcnow())
    )
    params = [
        {"b_study_id": study_id, "b_arm": k.arm, "b_lr": k.lr, "b_beta_init": k.beta_init, "b_seed": k.seed}
        for k in keys
    ]
    session.execute(statement, params)


def record_trial_result(session: Session, study_id: str, result: TrialResult) -> int:
    """Store a finished trial (insert or update on its key, curve replaced) and refresh the study's
    progress, in the caller's transaction; returns the trial's id. Idempotent.

    A stored result (completed, diverged) is never replaced by a non-result: a Ray trial that errors
    after its pack reported, or a worker killed by a cancel, must not turn finished work into
    ``failed``. Likewise a ``failed`` report does not overwrite ``cancelled``.
    """
    study = _lock_study(session, study_id)
    trial_id = _upsert_trial(session, study_id, result)
    if trial_id is None:
        _refresh_progress(session, study)
        return _trial_id(session, study_id, result.key)
    _replace_epochs(session, trial_id, result.epochs)
    _refresh_progress(session, study)
    return trial_id


def record_trial_results(session: Session, study_id: str, results: Sequence[TrialResult]) -> None:
    """``record_trial_result`` for several results in the caller's one transaction, the study's
    progress refreshed once: a pack's members finish together, and one transaction each (a commit
    and a progress count per result) cost the driver seconds per thousand results."""
    study = _lock_study(session, study_id)
    for result in results:
        trial_id = _upsert_trial(session, study_id, result)
        if trial_id is not None:
            _replace_epochs(session, trial_id, result.epochs)
    _refresh_progress(session, study)


KEEP_ON_NON_RESULT = (TrialStatus.COMPLETED, TrialStatus.DIVERGED, TrialStatus.CANCELLED)


def _trial_id(session: Session, study_id: str, key: TrialKey) -> int:
    trial_id: int = session.execute(
        select(_TRIALS.c.id).where(
            _TRIALS.c.study_id == study_id,
            _TRIALS.c.arm == key.arm,
            _TRIALS.c.lr == key.lr,
            _TRIALS.c.beta_init == key.beta_init,
            _TRIALS.c.seed == key.seed,
        )
    ).scalar_one()
    return trial_id


def _upsert_trial(session: Session, study_id: str, result: TrialResult) -> int | None:
    """Insert or update; ``None`` when a stored result was kept (see ``record_trial_result``)."""
    values = _result_columns(result)
    key = asdict(result.key)
    statement: Any  # PostgreSQL's and SQLite's INSERT … ON CONFLICT share one API, not one type
    if session.get_bind().dialect.name == "postgresql":
        statement = postgresql.insert(_TRIALS)
    else:
        statement = sqlite.insert(_TRIALS)
    statement = statement.values(study_id=study_id, **key, **values, attempts=1)
    keep = None if result.status.is_done else _TRIALS.c.status.notin_(list(KEEP_ON_NON_RESULT))
    statement = statement.on_conflict_do_update(
        index_elements=list(_KEY_COLUMNS), set_={name: statement.excluded[name] for name in values}, where=keep
    )
    trial_id: int | None = session.execute(statement.returning(_TRIALS.c.id)).scalar_one_or_none()
    return trial_id


def _result_columns(result: TrialResult) -> dict[str, Any]:
    if not math.isfinite(result.wall_seconds):
        raise InvalidInput("wall_seconds", f"must be finite, got {result.wall_seconds}")
    columns: dict[str, Any] = {
        "status": result.status,
        "epochs_done": result.epochs_done,
        "wall_seconds": result.wall_seconds,
        "node": result.node,
        "device": result.device,
        "error": result.error,
        "extra": result.to_dict()["extra"],  # JSON-safe: non-finite floats as strings
        "updated_at": utcnow(),
    }
    for name in SCORE_NAMES:
        columns[name], columns[f"{name}_kind"] = encode_float(getattr(result, name))
    return columns


def _replace_epochs(session: Session, trial_id: int, epochs: Sequence[EpochRecord]) -> None:
    session.execute(delete(_EPOCHS).where(_EPOCHS.c.trial_id == trial_id))
    if not epochs:
        return
    rows = []
    for record in epochs:
        row: dict[str, Any] = {"trial_id": trial_id, "epoch": record.epoch}
        for name in EPOCH_VALUE_NAMES:
            row[name], row[f"{name}_kind"] = encode_float(getattr(record, name))
        rows.append(row)
    session.execute(insert(_EPOCHS), rows)


def _trial_counts(session: Session, study_id: str) -> dict[TrialStatus, int]:
    """How many of the study's trials are in each status, read from the trials (a failed trial being
    run again is running, whatever the study's counters still say)."""
    query = select(Trial.status, func.count()).where(Trial.study_id == study_id).group_by(Trial.status)
    return dict(session.execute(query).all())


def _refresh_progress(session: Session, study: Study) -> None:
    counts = _trial_counts(session, study.id)
    diverged = counts.get(TrialStatus.DIVERGED, 0)
    study.trials_done = counts.get(TrialStatus.COMPLETED, 0) + diverged
    study.trials_diverged = diverged
    study.trials_failed = counts.get(TrialStatus.FAILED, 0)
    study.trials_total = max(study.trials_total, sum(counts.values()))  # search mode adds rows


def _require_study(session: Session, study_id: str) -> None:
    if session.scalar(select(Study.id).where(Study.id == study_id)) is None:
        raise NotFound("study", study_id)


def list_trials(
    session: Session,
    study_id: str,
    *,
    arm: str | None = None,
    status: TrialStatus | str | None = None,
    lr: float | None = None,
    beta_init: float | None = None,
    offset: int = 0,
    limit: int = 100,
    with_curves: bool = False,
    sort: str | None = None,
) -> tuple[list[TrialRecord], int]:
    """One page of a study's trials in key order (or by ``sort``: a column of ``TRIAL_SORTS``, "-" first
    for descending, then key order), and how many match in all."""
    _check_page(offset, limit)
    _require_study(session, study_id)
    conditions = [Trial.study_id == study_id]
    conditions += [] if arm is None else [Trial.arm == arm]
    conditions += [] if status is None else [Trial.status == _trial_status(status)]
    conditions += [] if lr is None else [Trial.lr == lr]
    conditions += [] if beta_init is None else [Trial.beta_init == beta_init]
    total = session.scalar(select(func.count()).select_from(Trial).where(*conditions)) or 0
    key_order = (Trial.arm, Trial.lr, Trial.beta_init, Trial.seed)
    page = select(Trial).where(*conditions).order_by(*_sort_order(sort), *key_order)
    trials = session.scalars(page.offset(offset).limit(limit)).all()
    curves = _curves(session, [trial.id for trial in trials]) if with_curves else None
    return [_trial_record(t, None if curves is None else curves.get(t.id, ())) for t in trials], total


# The trial columns a page of trials may be sorted by (``list_trials(sort=...)``, ``/trials?sort=``).
TRIAL_SORTS = (
    "arm",
    "lr",
    "beta_init",
    "seed",
    "status",
    "val_metric",
    "test_metric",
    "val_loss",
    "epochs_done",
    "wall_seconds",
)


def _sort_order(sort: str | None) -> list[Any]:
    if not sort:
        return []
    name = sort.removeprefix("-")
    if name not in TRIAL_SORTS:
        raise InvalidInput(
            "sort", f"unknown sort {sort!r}; valid choices: {', '.join(TRIAL_SORTS)} (a leading - for descending)"
        )
    column = getattr(Trial, name)
    # missing values (a diverged trial's metric) last either way
    return [column.is_(None), column.desc() if sort.startswith("-") else column.asc()]


def _curves(session: Session, trial_ids: Sequence[int]) -> dict[int, tuple[EpochRecord, ...]]:
    if not trial_ids:
        return {}
    query = select(TrialEpoch).where(TrialEpoch.trial_id.in_(trial_ids))
    curves: dict[int, list[EpochRecord]] = {}
    for row in session.scalars(query.order_by(TrialEpoch.trial_id, TrialEpoch.epoch)):
        curves.setdefault(row.trial_id, []).append(_epoch_record(row))
    return {trial_id: tuple(records) for trial_id, records in curves.items()}


def _epoch_record(row: TrialEpoch) -> EpochRecord:
    return EpochRecord(
        epoch=row.epoch,
        train_loss=_decoded_required(row, "train_loss"),
        val_loss=_decoded_required(row, "val_loss"),
        val_metric=_decoded_required(row, "val_metric"),
    )


def _decoded(row: Trial | TrialEpoch, name: str) -> float | None:
    return decode_float(getattr(row, name), cast(ValueKind | None, getattr(row, f"{name}_kind")))


def _decoded_required(row: TrialEpoch, name: str) -> float:
    value = _decoded(row, name)
    return math.nan if value is None else value


def _trial_record(trial: Trial, curve: tuple[EpochRecord, ...] | None) -> TrialRecord:
    values = {name: getattr(trial, name) for name in TrialRecord.model_fields if name != "curve"}
    values.update({name: _decoded(trial, name) for name in SCORE_NAMES})
    return TrialRecord.model_validate({**values, "curve": curve})


def trial_record(trial: Trial) -> TrialRecord:
    """A trial row (already loaded) as a ``TrialRecord`` without its curve."""
    return _trial_record(trial, None)


# -------------------------------------------------------------------------------------------- numbers


def _score_column(split: str, metric: str) -> InstrumentedAttribute[float | None]:
    problem = split_problem(split)
    if problem:
        raise InvalidInput("split", problem)
    if metric not in METRIC_KINDS:
        raise InvalidInput("metric", f"unknown metric kind {metric!r}; valid choices: {', '.join(METRIC_KINDS)}")
    column: InstrumentedAttribute[float | None] = getattr(Trial, f"{split}_{metric}")
    return column


def trial_scores_frame(
    session: Session,
    study_id: str,
    *,
    metric: MetricKind = "metric",
    arm: str | None = None,
) -> pd.DataFrame:
    """Every trial's (of ``arm``, or all) final val and test score as a DataFrame (``FRAME_COLUMNS``).

    Raw workload values, +inf where one was stored (a completed run's overflowing score: the figures
    clip it to y_fail, as a local run's metrics do); NaN where a score is missing, NaN or -inf
    (``status`` tells diverged trials apart). One SELECT of plain columns, no ORM objects: this feeds
    the metrics of large studies.
    """
    _require_study(session, study_id)
    val, test = _score_column("val", metric), _score_column("test", metric)
    query = (
        select(
            Trial.arm,
            Trial.lr,
            Trial.beta_init,
            Trial.seed,
            type_coerce(Trial.status, String()),  # the raw string: no enum object per row
            val,
            test,
            type_coerce(getattr(Trial, f"{val.key}_kind"), String()) == ValueKind.INF_POS.value,
            type_coerce(getattr(Trial, f"{test.key}_kind"), String()) == ValueKind.INF_POS.value,
        )
        .where(Trial.study_id == study_id, *([] if arm is None else [Trial.arm == arm]))
        .order_by(Trial.arm, Trial.lr, Trial.beta_init, Trial.seed)
    )
    frame = _frame(session.execute(query).all(), (*FRAME_COLUMNS, "val_inf", "test_inf"))
    for split in ("val", "test"):
        frame.loc[(frame.pop(f"{split}_inf") == 1.0).to_numpy(), split] = math.inf
    return frame


def _frame(rows: Sequence[Any], names: Sequence[str]) -> pd.DataFrame:
    """Rows → DataFrame column by column (NumPy arrays; ``None`` → NaN in float columns): 100,000
    rows take a fraction of the time ``DataFrame.from_records`` needs for SQLAlchemy rows."""
    import numpy as np  # lazy, like pandas: the API starts without them
    import pandas as pd

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    data = {name: np.asarray(values, dtype=_FRAME_DTYPES[name]) for name, values in zip(names, columns, strict=True)}
    return pd.DataFrame(data).astype({name: str for name in names if _FRAME_DTYPES[name] is object})


def trials_export_frame(session: Session, study_id: str) -> pd.DataFrame:
    """Every trial of a study, one row each in key order, with its final scores decoded exactly
    (``inf``, ``-inf`` and ``nan`` stay what they were): the CSV / Parquet export."""
    import pandas as pd  # lazy: the API starts without pandas

    _require_study(session, study_id)
    plain = ("arm", "lr", "beta_init", "seed", *EXPORT_COLUMNS)
    kinds = [f"{name}_kind" for name in SCORE_NAMES]
    query = (
        select(*(_TRIALS.c[name] for name in (*plain, *SCORE_NAMES, *kinds)))
        .where(_TRIALS.c.study_id == study_id)
        .order_by(_TRIALS.c.arm, _TRIALS.c.lr, _TRIALS.c.beta_init, _TRIALS.c.seed)
    )
    rows = [
        {name: row[name] for name in plain}
        | {name: decode_float(row[name], row[f"{name}_kind"]) for name in SCORE_NAMES}
        for row in session.execute(query).mappings()
    ]
    columns = [*plain[:5], *SCORE_NAMES, *plain[5:]]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    return frame.astype(_EXPORT_DTYPES | dict.fromkeys(SCORE_NAMES, float))


def set_environment(session: Session, study_id: str, environment: dict[str, Any]) -> None:
    """Record what the study runs on (``studies.environment.study_environment``)."""
    _require_study(session, study_id)
    session.execute(update(Study).where(Study.id == study_id).values(environment=environment))


def trial_machines(session: Session, study_id: str) -> list[tuple[str | None, str | None, dict[str, Any] | None]]:
    """(node, device, extra) of every trial that ran, for ``studies.environment.nodes_used``."""
    rows = session.execute(
        select(Trial.node, Trial.device, Trial.extra).where(Trial.study_id == study_id, Trial.node.is_not(None))
    )
    return [(node, device, extra) for node, device, extra in rows]


# --------------------------------------------------------------------------------------------- tokens


def _hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


TOKEN_PREFIX = "dlt_"


def create_token(session: Session, name: str, *, expires_at: dt.datetime | None = None) -> str:
    """Create an API token named ``name`` (valid until ``expires_at`` when given); returns the secret,
    which is shown once and never stored."""
    if not 1 <= len(name) <= 100:
        raise InvalidInput("name", "a token name has 1 to 100 characters")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires_at", "a token's expiry must be in the future")
    # A prefix, so a secret never starts with "-" (token_urlsafe's alphabet has it), which command
    # lines would take for an option: `demonlab submit --token -abc…` failed one time in 64.
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=_hash_token(plaintext), created_at=utcnow(), expires_at=expires_at))
    session.flush()
    return plaintext


def check_token(session: Session, plaintext: str) -> str:
    """The state of the token ``plaintext``: "active" (its use is recorded), "expired", "revoked" or
    "unknown"."""
    if not plaintext:
        return "unknown"
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(plaintext)))
    if token is None:
        return "unknown"
    now = utcnow()
    state = token_state(expires_at=token.expires_at, revoked_at=token.revoked_at, now=now)
    if state == "active":
        session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    return state


@dataclass(frozen=True)
class TokenRecord:
    """What ``list_tokens`` shows of a token (never its secret or hash)."""

    id: int
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    state: str


def _token_record(token: ApiToken, now: dt.datetime) -> TokenRecord:
    return TokenRecord(
        id=token.id,
        name=token.name,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        state=token_state(expires_at=token.expires_at, revoked_at=token.revoked_at, now=now),
    )


def list_tokens(session: Session) -> list[TokenRecord]:
    """Every token, oldest first."""
    now = utcnow()
    return [_token_record(t, now) for t in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def revoke_token(session: Session, name: str | None = None, *, token_id: int | None = None) -> TokenRecord:
    """Revoke the one token named ``name``, or the token with id ``token_id`` (exactly one of the two:
    a name made of digits is a name, never an id); returns it as revoked.

    ``NotFound`` when none matches; ``Conflict`` when the name is shared (revoke by id)."""
    if (name is None) == (token_id is None):
        raise InvalidInput("token", "give a token's name or its id, not both")
    if token_id is not None:
        tokens = list(session.scalars(select(ApiToken).where(ApiToken.id == token_id)))
    else:
        tokens = list(session.scalars(select(ApiToken).where(ApiToken.name == name)))
    if not tokens:
        raise NotFound("token", f"id {token_id}" if token_id is not None else str(name))
    if len(tokens) > 1:
        ids = ", ".join(str(t.id) for t in tokens)
        raise Conflict(f"{len(tokens)} tokens are named {name!r} (ids {ids}): revoke one with --id")
    token = tokens[0]
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return _token_record(token, utcnow())


def any_tokens(session: Session) -> bool:
    """Whether any API token exists, even expired or revoked (the API requires one once the first is created)."""
    return session.scalar(select(ApiToken.id).limit(1)) is not None


def studies_by_key_prefix(session: Session, prefix: str) -> list[Study]:
    """Every study whose idempotency key starts with ``prefix``, oldest first (an atlas finds the
    studies of one of its cells this way: ``service.atlas``)."""
    query = select(Study).where(Study.idempotency_key.startswith(prefix, autoescape=True))
    return list(session.scalars(query.order_by(Study.created_at, Study.id)).all())
