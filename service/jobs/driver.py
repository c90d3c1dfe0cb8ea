"""The study driver, ``python -m service.jobs.driver STUDY_ID``: run a study's pending trials and
record each one.

It runs the trials not yet done with the ``studies`` Ray executor (or Optuna search), writes each
result the moment it finishes (an idempotent upsert, retried through database outages so nothing
is lost), heartbeats the study row, stops within seconds when the study is cancelled, and marks the
study finished. A relaunched driver sees only what is not done.

Launchers start it as this module (``main``), never through the CLI: the job layer does not call up
into ``service.cli`` (``demonlab execute`` is the same entry point for a person).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy.engine import Engine

from studies.results import TrialResult
from studies.vocab import Split
from studies.vocab.statuses import StudyStatus

from ..analysis import study_spec
from ..artefacts import remove_empty_pack_dirs
from ..db import dal
from ..db.engine import make_engine, session_scope
from ..errors import Conflict, DemonlabError, NotFound, SpecUnreadable, StorageUnavailable
from ..logs import configure_logging
from ..settings import Settings, get_settings
from .optuna_record import optuna_url  # where it lives now; tests and callers import it from here

log = logging.getLogger("demonlab.driver")

RETRY_SECONDS = 300.0  # Settings.driver_retry_seconds' default
PAUSED_RETRY_SECONDS = 15.0  # Settings.driver_paused_retry_seconds' default
_patience = RETRY_SECONDS  # execute() sets both from the settings
_paused_every = PAUSED_RETRY_SECONDS


def _with_retry(action: Any, what: str) -> Any:
    """Run ``action`` until it succeeds, however long the database is away.

    Through an outage it retries with backoff (0.5 s up to 5 s). Past ``driver_retry_seconds`` (5
    minutes) the study is paused: the driver says so once and tries every
    ``driver_paused_retry_seconds`` (15 s); results wait in
    memory and the packs or trials that need the database wait with them; when it is back the driver
    says so and goes on. Nothing is failed or lost for an outage, however long (a driver that gave up
    after 5 minutes crashed, and its study waited for a relaunch)."""
    started = time.monotonic()
    delay = 0.5
    paused = False
    while True:
        try:
            result = action()
        except StorageUnavailable:
            waited = time.monotonic() - started
            if not paused and waited > _patience:
                paused = True
                log.warning(
                    "%s: the database has been unavailable for %.0fs (more than %.0fs): the study is paused "
                    "until it is back (retrying every %.0fs)",
                    what,
                    waited,
                    _patience,
                    _paused_every,
                )
            if not paused:
                log.warning("%s: database unavailable; retrying in %.1fs", what, delay)
            time.sleep(_paused_every if paused else delay)
            delay = min(delay * 2, 5.0)
            continue
        if paused:
            log.warning("%s: the database is back after %.0fs: the study resumes", what, time.monotonic() - started)
        return result


class Heartbeat:
    """A thread that stamps the study's heartbeat and notices a cancel."""

    def __init__(self, engine: Engine, study_id: str, every: float, attempt: int | None = None) -> None:
        self.engine = engine
        self.study_id = study_id
        self.every = every
        self.attempt = attempt
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demonlab-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with session_scope(self.engine) as session:
                    status = dal.heartbeat(session, self.study_id, attempt=self.attempt)
                if status is not StudyStatus.RUNNING:
                    self.cancelled.set()
            except (Conflict, NotFound):  # superseded by a relaunch, or deleted: stop
                log.warning("study %s: this driver (launch %s) is no longer the study's", self.study_id, self.attempt)
                self.cancelled.set()
            except Exception:
                log.warning("heartbeat failed for study %s", self.study_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m service.jobs.driver STUDY_ID [--attempt N]``: what every launcher starts."""
    parser = argparse.ArgumentParser(prog="python -m service.jobs.driver", description="Drive one study.")
    parser.add_argument("study_id", help="the study to run")
    parser.add_argument("--attempt", type=int, default=None, help="the launch this driver belongs to")
    args = parser.parse_args(argv)
    configure_logging()

    try:
        return execute(args.study_id, get_settings(), attempt=args.attempt)
    except DemonlabError as exc:  # the study was deleted, the database is gone: said, not a traceback
        log.error("study %s: %s", args.study_id, exc)
        return 2


def execute(study_id: str, settings: Settings, attempt: int | None = None) -> int:
    """Run one study to the end; return a process exit code.

    ``attempt`` is the launch this driver belongs to (the scheduler passes it): a driver whose study
    has since been relaunched stops instead of running beside its successor.
    """
    global _patience, _paused_every
    _patience = settings.driver_retry_seconds
    _paused_every = settings.driver_paused_retry_seconds
    engine = make_engine(settings.database_url)
    try:
        return _execute(engine, study_id, settings, attempt)
    finally:
        engine.dispose()


def _execute(engine: Engine, study_id: str, settings: Settings, attempt: int | None) -> int:
    with session_scope(engine) as session:
        study = dal.get_study(session, study_id)
        if study.status is not StudyStatus.RUNNING:
            log.warning("study %s is %s, not running: nothing to do", study_id, study.status.value)
            return 0
        if attempt is not None and study.attempts != attempt:
            log.warning("study %s runs under launch %d, not %d: nothing to do", study_id, study.attempts, attempt)
            return 0
        keys = dal.pending_trial_keys(session, study_id)
    try:
        spec = study_spec(study)
    except Exception as exc:  # a stored spec this version cannot run: fail the study, don't crash-loop
        error = str(exc) if isinstance(exc, SpecUnreadable) else f"cannot run the stored spec: {exc}"
        _with_retry(lambda: _finish(engine, study_id, StudyStatus.FAILED, error), "finish")
        return 1
    missing = _missing_data(spec, settings)
    if missing is not None:  # once for the study, not once per trial
        _with_retry(lambda: _finish(engine, study_id, StudyStatus.FAILED, missing), "finish")
        return 1
    return _run(engine, study_id, settings, spec, keys, attempt)


def _missing_data(spec: Any, settings: Settings) -> str | None:
    """The study's error if its workload's dataset is not where this driver's trials read it."""
    from studies.workloads import WorkloadError, get_workload

    try:
        get_workload(spec.workload, spec.workload_params).check_data(settings.datasets)
    except WorkloadError as exc:
        return f"the dataset of {spec.workload!r} is not available: {exc}"
    return None


def _run(engine: Engine, study_id: str, settings: Settings, spec: Any, keys: list[Any], attempt: int | None) -> int:
    from .result_writer import ResultWriter

    _record_environment(engine, study_id, spec)
    heartbeat = Heartbeat(engine, study_id, settings.heartbeat_seconds, attempt)
    heartbeat.start()
    signal.signal(signal.SIGTERM, lambda *_: heartbeat.cancelled.set())
    mirror = _optuna_mirror(engine, settings, study_id, spec)

    def record(results: Sequence[TrialResult]) -> None:
        def write() -> None:
            with session_scope(engine) as session:
                dal.record_trial_results(session, study_id, results)

        try:
            _with_retry(write, f"record {len(results)} result(s)")
        except NotFound:  # the study was deleted (after a cancel) while this driver stopped: stop quietly
            heartbeat.cancelled.set()
            return
        if mirror is not None:
            for result in results:
                mirror.submit(result)

    writer = ResultWriter(record)

    def started(keys: list[Any]) -> None:
        def mark() -> None:
            with session_scope(engine) as session:
                dal.mark_trials_running(session, study_id, keys=keys)

        try:
            _with_retry(mark, "mark running")
        except NotFound:
            heartbeat.cancelled.set()
        except StorageUnavailable:  # only bookkeeping: the trial runs and its result is recorded anyway
            log.warning("study %s: could not mark %d trial(s) running", study_id, len(keys))

    try:
        crash, summary = _train(engine, study_id, settings, spec, keys, heartbeat, writer, started)
        heartbeat.stop()
        if crash is not None:
            _with_retry(lambda: _finish(engine, study_id, StudyStatus.FAILED, crash), "finish")
            return 1
        if heartbeat.cancelled.is_set() or summary is None or summary.cancelled:
            return 0
        error: str | None = None
        if summary.failed:
            # Each error once, however many trials hit it ("<trial>: <message>": grouped by message).
            distinct = list(dict.fromkeys(e.split(": ", 1)[-1] for e in summary.errors))
            error = f"{summary.failed} trial(s) failed: " + "; ".join(distinct[:3])
        _with_retry(lambda: _finish(engine, study_id, StudyStatus.COMPLETED, error), "finish")
        _store_report(engine, study_id, splits=spec.splits)
        return 0
    finally:
        heartbeat.stop()
        if mirror is not None:  # after the study's end: what is queued, then what the mirror lacks
            mirror.close()


def _train(
    engine: Engine,
    study_id: str,
    settings: Settings,
    spec: Any,
    keys: list[Any],
    heartbeat: Heartbeat,
    writer: Any,
    started: Any,
) -> tuple[str | None, Any]:
    """Run the trials and wait until their results are written: (the crash that fails the study, or
    None; the executor's summary, None after a crash)."""
    from studies.executors import execute_study, shutdown_ray

    crash: str | None = None
    summary = None
    try:
        summary = execute_study(
            spec,
            writer.submit,
            executor=driver_executor(settings, spec, len(keys)),
            data_dir=settings.data_dir,
            dataset_dir=settings.dataset_dir,
            keys=keys,
            should_stop=heartbeat.cancelled.is_set,
            study_id=study_id,
            optuna_storage_url=optuna_url(settings) if spec.is_search else None,
            ray_address=driver_ray_address(settings),
            on_trial_start=started,
        )
    except Exception as exc:  # the driver's crash is the study's error
        log.exception("study %s failed", study_id)
        crash = f"{exc}\n{traceback.format_exc(limit=8)}"
    finally:
        shutdown_ray()
        refused = writer.close()  # every result written (through outages) before the study ends
        _record_environment(engine, study_id, spec, with_nodes=True)
        remove_empty_pack_dirs(settings.data_dir, study_id)
    if crash is None and refused is not None:
        crash = f"a result could not be recorded: {refused}"
    return crash, summary


def _store_report(engine: Engine, study_id: str, *, splits: tuple[Split, ...] | None = None) -> None:
    """Compute the finished study's sensitivity report and heatmaps on each split its page offers
    (test first: what the page shows first; then validation, which the page switches to) and store them
    (``service.db.report_store``): no visitor waits seconds for them (a 100k-trial study's validation
    report took 10-21 s to compute on first view). ``splits`` is the spec's (``StudySpec.splits``),
    read from the stored study when not given. Best effort."""
    from ..analysis import sensitivity
    from ..heatmap_grids import heatmaps

    if splits is None:
        with session_scope(engine, read_only=True) as session:
            splits = study_spec(dal.get_study(session, study_id)).splits

    for split in splits:
        for name, report in (("sensitivity", sensitivity), ("heatmaps", heatmaps)):
            try:
                report(engine, study_id, metric=None, split=split)
            except Exception:  # no figure possible (every trial failed, say): the page says why when asked
                log.info("study %s: no %s stored for %s", study_id, name, split, exc_info=True)


def _record_environment(engine: Engine, study_id: str, spec: Any, *, with_nodes: bool = False) -> None:
    """Store what the study runs on: at start the software and the driver's machine, at the end also
    the nodes its trials ran on (from each trial's recorded hardware). Best effort: never fails a study."""
    from studies.environment import nodes_used, study_environment

    try:
        with session_scope(engine) as session:
            nodes = nodes_used(dal.trial_machines(session, study_id)) if with_nodes else None
            dal.set_environment(session, study_id, study_environment(spec, nodes))
    except Exception:
        log.warning("study %s: could not record its environment", study_id, exc_info=True)


def _optuna_mirror(engine: Engine, settings: Settings, study_id: str, spec: Any) -> Any:
    """The writer of every result into Optuna's storage, started: it opens the storage on its thread
    (and warns if it cannot); None when ``settings.optuna_mirror`` is off."""

    if not settings.optuna_mirror:
        return None

    from .optuna_record import MirrorWriter, OptunaRecorder

    try:
        fail = spec.y_fail()  # the mirror's value is the spec's metric
        url = optuna_url(settings)
        return MirrorWriter(lambda: OptunaRecorder(url, study_id, spec, fail), engine, study_id).start()
    except Exception:
        log.warning(
            "study %s: Optuna's storage is unavailable; results are not mirrored there", study_id, exc_info=True
        )
        return None


def _finish(engine: Engine, study_id: str, status: StudyStatus, error: str | None) -> None:
    try:
        with session_scope(engine) as session:
            dal.finish_study(session, study_id, status=status, error=error)
    except NotFound:  # deleted meanwhile: nothing left to finish
        log.warning("study %s was deleted before it finished", study_id)


def driver_executor(settings: Settings, spec: Any, pending: int | None = None) -> Literal["inprocess", "ray"]:
    """Where the driver runs the trials: a local driver (no cluster) runs a packed CPU study (packed
    by default wherever its workload packs: ``studies.executors.execution_mode``) in its own
    process, its packs in forked processes, one per core, and a small CPU grid study (``pending``
    trials × epochs ≤ ``settings.small_study_epochs``) in its own process, one trial after another: no Ray to
    start (8-13 s before Ray's first result here), so the first results come seconds sooner.
    Everything else runs on Ray."""
    from studies.executors import execution_mode

    local = settings.launcher == "local" and not settings.ray_address
    cpu_only = spec.resources.gpu == 0 and not spec.resources.custom
    packed_cpu = execution_mode(spec) == "packed" and cpu_only
    grid = not spec.is_search and pending is not None
    small = cpu_only and grid and (pending or 0) * spec.epochs <= settings.small_study_epochs
    return "inprocess" if local and (packed_cpu or small) else "ray"


def driver_ray_address(settings: Settings) -> str | None:
    """Where the driver's trials run: inside a Ray Job, the job's own cluster ("auto"); a local
    driver joins the cluster at ``ray_address`` when one is set, else starts a local Ray."""
    if settings.launcher == "ray":
        return "auto"
    return settings.ray_address


if __name__ == "__main__":
    sys.exit(main())
