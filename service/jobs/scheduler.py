"""The scheduler: claim queued studies atomically, launch their drivers, relaunch dead ones.

One loop, run in the API process (``demonlab serve``) or on its own (``demonlab scheduler``). It ticks
every ``poll_seconds``, and at once when woken (``wake``: the API in its process took a submission). Each
tick it (1) requeues running studies whose driver is gone: at once when this scheduler launched the
driver (its own child, or one forked from its warm process) and it has exited, else once its
heartbeat is stale and its job is not alive, and
(2) claims up to ``max_concurrent_studies − running`` queued studies with a conditional UPDATE, so
two schedulers on one PostgreSQL never launch one study twice, and launches each.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import threading
import uuid

from sqlalchemy.engine import Engine

from studies.vocab.statuses import StudyStatus

from ..db import dal
from ..db.engine import session_scope
from ..errors import Conflict, DemonlabError
from ..settings import Settings
from .launchers import Launcher, clean_up_dead_job, launcher_for_job, make_launcher

log = logging.getLogger("demonlab.scheduler")

# A study whose driver dies this many times (crash loop, OOM) is failed rather than relaunched again.
MAX_ATTEMPTS = 5


class Scheduler:
    """Claims, launches and recovers studies; ``tick()`` is one pass, ``run()`` loops."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        launcher: Launcher | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.launcher = launcher or make_launcher(settings)
        self.poll_seconds = poll_seconds
        self.scheduler_id = f"{platform.node()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[str]:
        """One pass: recover dead studies, then claim and launch; returns the ids launched."""
        self.recover(self.launcher.reap())
        return self.launch_queued()

    def recover(self, exited: list[str] | None = None, *, now: dt.datetime | None = None) -> list[str]:
        """Requeue running studies whose driver is gone: those whose job is in ``exited`` (children
        this scheduler saw exit) at once, the others once their heartbeat is stale and their job is
        not alive. The requeue is conditional on the launch count, so a study relaunched meanwhile
        (by another scheduler) is left alone: never two drivers for one study. ``now`` (default: the
        clock) dates the staleness: a test passes a later time rather than sleeping until then."""
        requeued: list[str] = []
        with session_scope(self.engine, read_only=True) as session:
            gone = dal.running_studies_of_jobs(session, exited or [])
            stale = dal.find_stale_running(session, stale_after_seconds=self.settings.stale_after_seconds, now=now)
        known = {study.id for study in gone}
        for study in [*gone, *(s for s in stale if s.id not in known)]:
            if study.id not in known and study.job_id and self._alive(study.job_id):
                continue
            if study.job_id:
                self._clean_up(study.job_id)
            if study.attempts >= MAX_ATTEMPTS:
                with session_scope(self.engine) as session:
                    error = f"the driver died {study.attempts} times (last job {study.job_id}); "
                    error += f"see {self._log_hint(study.id)}"
                    dal.finish_study(session, study.id, status=StudyStatus.FAILED, error=error)
                log.error("study %s: failed after %d launches", study.id, study.attempts)
                continue
            try:
                with session_scope(self.engine) as session:
                    dal.requeue_study(session, study.id, expected_attempts=study.attempts)
            except Conflict:
                continue  # relaunched or finished meanwhile
            requeued.append(study.id)
            log.warning("study %s: driver %s is gone; requeued", study.id, study.job_id)
        return requeued

    def _clean_up(self, job_id: str) -> None:
        try:
            clean_up_dead_job(job_id)
        except Exception:
            log.exception("cannot clean up after job %s", job_id)

    def _log_hint(self, study_id: str) -> str:
        return str(self.settings.data_dir / "logs" / f"{study_id}-*.log")

    def _alive(self, job_id: str) -> bool:
        try:
            launcher = self.launcher if self.launcher.owns(job_id) else launcher_for_job(self.settings, job_id)
            return launcher.is_alive(job_id)
        except Exception:
            log.exception("cannot probe job %s", job_id)
            return True

    def launch_queued(self) -> list[str]:
        """Claim queued studies up to the concurrency limit and launch a driver for each."""
        with session_scope(self.engine) as session:
            claimed = dal.claim_queued_studies(
                session,
                limit=self.settings.max_concurrent_studies,
                launcher_id=self.scheduler_id,
                max_running=self.settings.max_concurrent_studies,
            )
        launched: list[str] = []
        for study in claimed:
            try:
                job_id = self.launcher.launch(study.id, study.attempts)
            except Exception as exc:
                log.exception("study %s: launch failed", study.id)
                with session_scope(self.engine) as session:
                    dal.finish_study(session, study.id, status=StudyStatus.FAILED, error=f"launch failed: {exc}")
                continue
            with session_scope(self.engine) as session:
                dal.set_job_id(session, study.id, job_id)
            launched.append(study.id)
            log.info("study %s: launched %s", study.id, job_id)
        return launched

    def run(self) -> None:
        """Tick until ``stop()``; database outages are logged and retried, never fatal."""
        while not self._stop.is_set():
            try:
                self.tick()
            except DemonlabError:
                log.exception("scheduler tick failed; retrying")
            except Exception:
                log.exception("scheduler tick crashed; retrying")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def wake(self) -> None:
        """Tick now rather than at the next poll: a study was just submitted to this process (the
        API and the scheduler in one process: ``demonlab serve``, ``make run``). Up to a whole poll
        interval sooner to the study's launch; other schedulers still find it by polling."""
        self._wake.set()

    def start_background(self) -> None:
        """Run the loop in a daemon thread (inside the API process)."""
        self._thread = threading.Thread(target=self.run, name="demonlab-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and release the launcher's warm process (running studies carry on: their
        drivers are separate processes)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.launcher.close()
