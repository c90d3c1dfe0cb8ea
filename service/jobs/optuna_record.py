"""Every finished trial of every study, also in the Optuna storage the service keeps, so
``optuna-dashboard <storage>`` shows grid studies too (search studies' samplers already write theirs).

One Optuna study per arm, named for people: ``<name> · <arm> · <study id>`` (the search studies'
per-seed trials: ``… · seeds``, apart from the sampler's own study, which has one trial per sampled
point). Its user attributes say the demonlab study id, name, arm and what the value is. Each result
is one Optuna trial: ``lr`` (log-uniform) and ``beta_init`` (uniform) as parameters over the spec's
ranges, the validation score of the study's metric as its value (the workload's metric, or its loss
when the spec says ``metric: loss``; minimised; a diverged trial counts at that score's failure value,
as in every sensitivity figure), each epoch's validation score of that metric as an intermediate
value (optuna-dashboard's learning curves), the trial's real start and end (its end is when it was
recorded, its start that minus its wall time: the dashboard's timeline), and as user attributes the
seed, both splits' metric and loss, whether it diverged, epochs, wall seconds, node and device.

The service's own database is the record; this is a mirror of it, and it always catches up:

- ``MirrorWriter`` writes on its own thread, so a driver never waits for Optuna's storage (a write
  per result cost 20% of a packed driver's wall; 15-50 ms a result here, Optuna's ORM storing each
  attribute and intermediate value on its own). The thread opens the storage itself (off the way to
  the first trial) and runs at the lowest CPU priority: it writes with the cores that training
  leaves. Once the study has ended, the driver writes what is left itself, at its own priority (on
  a machine busy with other work, the thread may get a core seldom). Failures are logged, never
  fail the study.
- It backfills from the trials table when it starts (a relaunched driver: results recorded before a
  kill between the database's commit and the mirror's write) and when the study ends (results whose
  write failed, during a database outage say). The driver closes it after the study has ended (its
  end does not wait for Optuna's storage) and exits once it is done: then mirror == trials table. A
  driver killed in that time leaves the mirror short of what it had not written yet (its study is
  finished: no relaunch backfills it).
- A trial is written once (its key is a user attribute, checked per arm).
- ``delete_mirror`` removes a study's Optuna studies when the study is deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from studies.optuna_storage import open_rdb_storage
from studies.results import EpochRecord, TrialKey, TrialResult
from studies.vocab import TrialStatus, impute_score, score_words

from ..settings import Settings

log = logging.getLogger("demonlab.optuna")

__all__ = [
    "OPTUNA_SCHEMA",
    "MirrorWriter",
    "OptunaRecorder",
    "delete_mirror",
    "mirror_study_ids",
    "optuna_study_name",
    "optuna_url",
]

SEPARATOR = " · "
BACKFILL_PAGE = 5_000


def optuna_study_name(study_id: str, arm: str, *, search: bool, name: str = "") -> str:
    """The Optuna study that holds a demonlab study's per-seed trials of ``arm``."""
    parts = [name or "study", arm, study_id] + (["seeds"] if search else [])
    return SEPARATOR.join(parts)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class _Mirrored:
    """What the mirror keeps of a result, from the driver's ``TrialResult`` or a stored trial row."""

    key: TrialKey
    status: TrialStatus
    val_metric: float | None
    val_loss: float | None
    test_metric: float | None
    test_loss: float | None
    epochs_done: int
    wall_seconds: float
    node: str | None
    device: str | None
    curve: tuple[EpochRecord, ...]
    finished_at: dt.datetime

    @classmethod
    def of_result(cls, result: TrialResult) -> _Mirrored:
        """From the driver's result, as it arrives."""
        return cls._of(result, curve=result.epochs, finished_at=dt.datetime.now(dt.UTC))

    @classmethod
    def of_row(cls, row: Any) -> _Mirrored:
        """From a ``service.db.dal.TrialRecord`` read with its curve."""
        return cls._of(row, curve=row.curve, finished_at=row.updated_at)

    @classmethod
    def _of(cls, source: Any, *, curve: Any, finished_at: dt.datetime) -> _Mirrored:
        fields = {name: getattr(source, name) for name in _COPIED}
        return cls(key=source.key, curve=tuple(curve or ()), finished_at=finished_at, **fields)


_COPIED = (
    "status",
    "val_metric",
    "val_loss",
    "test_metric",
    "test_loss",
    "epochs_done",
    "wall_seconds",
    "node",
    "device",
)


def _local_naive(moment: dt.datetime) -> dt.datetime:
    """Optuna stores naive local times (``datetime.now()``): the same clock for our trials."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone().replace(tzinfo=None)


class OptunaRecorder:
    """Writes a study's results into Optuna's RDB storage at ``storage_url``, one trial per result."""

    def __init__(self, storage_url: str, study_id: str, spec: Any, y_fail: float, *, name: str = "") -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study_id = study_id
        self.name = name or spec.name
        self.search = spec.is_search
        self.y_fail = y_fail
        self.storage = open_rdb_storage(storage_url, engine_kwargs={"pool_pre_ping": True})
        if self.search:
            lr = (spec.search.lr.min, spec.search.lr.max)
            beta = (spec.search.beta_init.min, spec.search.beta_init.max)
        else:
            lr = (min(spec.lr_values), max(spec.lr_values))
            beta = (min(spec.beta_init), max(spec.beta_init))
        self.distributions: dict[str, optuna.distributions.BaseDistribution] = {
            "lr": optuna.distributions.FloatDistribution(lr[0], lr[1], log=True),
            "beta_init": optuna.distributions.FloatDistribution(beta[0], beta[1]),
        }
        self.metric = spec.metric_name
        self.metric_kind = spec.metric_kind  # "loss" when the spec says `metric: loss`, else "metric"
        self._studies: dict[str, Any] = {}
        self._recorded: dict[str, set[str]] = {}

    def _study(self, arm: str) -> Any:
        import optuna

        if arm not in self._studies:
            study = optuna.create_study(
                study_name=optuna_study_name(self.study_id, arm, search=self.search, name=self.name),
                storage=self.storage,
                direction="minimize",
                load_if_exists=True,
            )
            study.set_user_attr("demonlab_study_id", self.study_id)
            study.set_user_attr("demonlab_study_name", self.name)
            study.set_user_attr("arm", arm)
            what = score_words("val", self.metric)
            study.set_user_attr("value", f"{what} (lower is better; diverged = {self.y_fail:g})")
            self._recorded[arm] = {
                str(t.user_attrs.get("trial_key"))
                for t in study.get_trials(deepcopy=False)
                if "trial_key" in t.user_attrs
            }
            self._studies[arm] = study
        return self._studies[arm]

    def record(self, result: TrialResult) -> None:
        """Add one result (completed or diverged; others are not results yet) as an Optuna trial."""
        self._record(_Mirrored.of_result(result))

    def record_rows(self, rows: Sequence[Any]) -> int:
        """Add stored trials (``dal.TrialRecord`` with curves) not in the mirror yet; how many were added."""
        added = 0
        for row in rows:
            added += self._record(_Mirrored.of_row(row))
        return added

    def _record(self, item: _Mirrored) -> int:
        import optuna

        if item.status not in (TrialStatus.COMPLETED, TrialStatus.DIVERGED):
            return 0
        key = item.key
        study = self._study(key.arm)
        token = key.token()
        if token in self._recorded[key.arm]:
            return 0
        value = impute_score(getattr(item, f"val_{self.metric_kind}"), item.status, self.y_fail)
        if value is None:  # completed without a finite validation score: nothing to plot
            return 0
        trial = optuna.trial.create_trial(
            params={"lr": key.lr, "beta_init": key.beta_init},
            distributions=self.distributions,
            value=value,
            intermediate_values=self._curve(item),
            user_attrs=self._attrs(item, token),
        )
        finished = _local_naive(item.finished_at)
        trial.datetime_complete = finished
        trial.datetime_start = finished - dt.timedelta(seconds=max(0.0, _finite(item.wall_seconds) or 0.0))
        study.add_trial(trial)
        self._recorded[key.arm].add(token)
        return 1

    def _curve(self, item: _Mirrored) -> dict[int, float]:
        """Each epoch's finite validation score of the study's metric (optuna-dashboard's learning curve)."""
        values = {e.epoch: getattr(e, f"val_{self.metric_kind}") for e in item.curve}
        return {epoch: v for epoch, v in values.items() if v is not None and math.isfinite(v)}

    def _attrs(self, item: _Mirrored, token: str) -> dict[str, Any]:
        return {
            "demonlab_study_id": self.study_id,
            "trial_key": token,
            "arm": item.key.arm,
            "seed": item.key.seed,
            "diverged": item.status is TrialStatus.DIVERGED,
            "val_metric": _finite(item.val_metric),
            "test_metric": _finite(item.test_metric),
            "val_loss": _finite(item.val_loss),
            "test_loss": _finite(item.test_loss),
            "epochs_done": item.epochs_done,
            "wall_seconds": item.wall_seconds,
            "node": item.node,
            "device": item.device,
        }

    def safe_record(self, result: TrialResult) -> None:
        """``record`` that logs and swallows any failure (the service's database is the record)."""
        try:
            self.record(result)
        except Exception:
            log.warning("study %s: could not record %s in Optuna's storage", self.study_id, result.key, exc_info=True)


def _stored_results(engine: Engine, study_id: str) -> Iterator[list[Any]]:
    """The study's completed and diverged trials with their curves, a page at a time."""
    from ..db import dal
    from ..db.engine import session_scope

    for status in (TrialStatus.COMPLETED, TrialStatus.DIVERGED):
        offset = 0
        while True:
            with session_scope(engine, read_only=True) as session:
                rows, total = dal.list_trials(
                    session, study_id, status=status, offset=offset, limit=BACKFILL_PAGE, with_curves=True
                )
            if rows:
                yield rows
            offset += BACKFILL_PAGE
            if offset >= total:
                break


class MirrorWriter:
    """The driver's side of the mirror: ``submit`` returns at once; a thread writes while the study
    runs; ``close`` stops it and backfills whatever the trials table has that the mirror lacks."""

    _STOP = object()

    def __init__(self, recorder: OptunaRecorder | Callable[[], OptunaRecorder], engine: Engine, study_id: str) -> None:
        self._open = recorder if callable(recorder) and not isinstance(recorder, OptunaRecorder) else None
        self.recorder: OptunaRecorder | None = None if self._open is not None else recorder  # type: ignore[assignment]
        self.engine = engine
        self.study_id = study_id
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._open_failed = False
        self._thread = threading.Thread(target=self._run, name="demonlab-optuna-mirror", daemon=True)

    def start(self) -> MirrorWriter:
        self._thread.start()
        return self

    def submit(self, result: TrialResult) -> None:
        """Queue one result for the mirror (never blocks, never raises)."""
        self._queue.put(result)

    def backfill(self) -> int:
        """Write every stored result the mirror lacks; how many were added (0 if it failed, logged)."""
        added = 0
        if self.recorder is None:
            return 0
        try:
            for rows in _stored_results(self.engine, self.study_id):
                added += self.recorder.record_rows(rows)
        except Exception:
            log.warning("study %s: could not backfill Optuna's storage", self.study_id, exc_info=True)
        if added:
            log.info("study %s: %d result(s) added to Optuna's storage from the trials table", self.study_id, added)
        return added

    def _run(self) -> None:
        _lowest_priority()
        if not self._closing.is_set():
            self._ensure_recorder()
        if not self._closing.is_set():
            self.backfill()  # a relaunch: what the last driver recorded but did not mirror
        while not self._closing.is_set():
            item = self._queue.get()
            if item is self._STOP or self._closing.is_set():
                return
            self._ensure_recorder()
            if self.recorder is not None:
                self.recorder.safe_record(item)

    def _ensure_recorder(self) -> None:
        """Open the storage unless it is open (by whichever thread comes first). A failure (the
        database away) is said once and tried again at the next result and at ``close``: the
        trials table is backfilled then."""
        with self._lock:
            if self.recorder is not None or self._open is None:
                return
            try:
                self.recorder = self._open()
            except Exception:
                if not self._open_failed:
                    log.warning(
                        "study %s: Optuna's storage is unavailable; results are mirrored there once it is back",
                        self.study_id,
                        exc_info=True,
                    )
                self._open_failed = True

    def close(self, *, timeout: float = 300.0) -> None:
        """The study has ended: stop the thread after its current write (at the lowest priority, on a
        busy machine, it may get a core seldom), then write here, at the caller's priority, what it left
        queued and what the trials table has that the mirror lacks."""
        self._closing.set()
        self._queue.put(self._STOP)
        self._thread.join(timeout=timeout)
        self._ensure_recorder()
        while True:  # what the thread left queued
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not self._STOP and self.recorder is not None:
                self.recorder.safe_record(item)
        self.backfill()


def _lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux: a thread's own nice value), so the
    mirror takes no core from the packs training beside it; elsewhere nothing changes."""
    import contextlib
    import os

    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def mirror_study_ids(storage_url: str, study_id: str) -> list[str]:
    """The Optuna studies of demonlab study ``study_id``: the mirror's and a search's sampler's."""
    import optuna

    storage = open_rdb_storage(storage_url)
    try:
        return [
            summary.study_name
            for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)
            if summary.user_attrs.get("demonlab_study_id") == study_id
            or summary.study_name.startswith(f"{study_id}:")  # the sampler's (studies.executors)
        ]
    finally:
        storage.engine.dispose()


def delete_mirror(storage_url: str, study_id: str) -> int:
    """Delete the Optuna studies of ``study_id``; how many there were."""
    import optuna

    names = mirror_study_ids(storage_url, study_id)
    storage = open_rdb_storage(storage_url)
    try:
        for name in names:
            optuna.delete_study(study_name=name, storage=storage)
    finally:
        storage.engine.dispose()
    return len(names)


OPTUNA_SCHEMA = "optuna"


def optuna_url(settings: Settings) -> str:
    """Optuna's storage for search studies, beside (never inside) the service's tables.

    Optuna's RDB storage has tables named ``studies`` and ``trials`` too, so it cannot share our
    schema: on PostgreSQL it gets its own schema (``optuna``, via the connection's search_path) in the
    same database; on SQLite its own file in the data dir. ``optuna-dashboard <this url>`` shows it.
    """
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{settings.data_dir / 'optuna.db'}"
    from ..db.engine import make_engine

    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}")
    finally:
        engine.dispose()
    url = url.update_query_dict({"options": f"-csearch_path={OPTUNA_SCHEMA}"})
    return url.render_as_string(hide_password=False)
