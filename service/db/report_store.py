"""Finished studies' reports in the database (``StudyReport``): read before computing, written after.

``service.report_cache`` keeps reports in memory; this is what survives a restart, so a finished
study's sensitivity report is computed once, not once per process. A report is stored as JSON text
(one that JSON cannot hold, with NaN say, is not stored: it is computed again, never corrupted).
Reads and writes are best effort: a database error here is logged and the report is computed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from ..errors import DemonlabError
from .engine import session_scope
from .models import StudyReport, utcnow

__all__ = ["SqlReportStore"]

log = logging.getLogger("demonlab.reports")


def _text(value: Hashable) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


class SqlReportStore:
    """The stored reports of one study: ``load(key, progress)`` and ``save(key, progress, value)``."""

    def __init__(self, engine: Engine, study_id: str) -> None:
        self.engine = engine
        self.study_id = study_id

    def load(self, key: Hashable, progress: Hashable) -> Any | None:
        """The stored report ``key`` if it was computed at ``progress``, else None."""
        try:
            with session_scope(self.engine, read_only=True) as session:
                row = session.scalar(
                    select(StudyReport).where(StudyReport.study_id == self.study_id, StudyReport.key == _text(key))
                )
        except DemonlabError:
            log.warning("study %s: could not read its stored report", self.study_id, exc_info=True)
            return None
        if row is None or row.progress != _text(progress):
            return None
        return json.loads(row.payload)

    def save(self, key: Hashable, progress: Hashable, value: Any) -> None:
        """Store ``value`` as report ``key`` at ``progress`` (replacing an older one)."""
        try:
            payload = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return  # not JSON (bytes, NaN): kept in memory only
        try:
            with session_scope(self.engine) as session:
                condition = (StudyReport.study_id == self.study_id, StudyReport.key == _text(key))
                session.execute(delete(StudyReport).where(*condition))
                session.add(
                    StudyReport(
                        study_id=self.study_id,
                        key=_text(key),
                        progress=_text(progress),
                        payload=payload,
                        computed_at=utcnow(),
                    )
                )
        except DemonlabError:  # deleted meanwhile, or the database is away: computed again next time
            log.warning("study %s: could not store its report", self.study_id, exc_info=True)
