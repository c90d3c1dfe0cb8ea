"""The life cycles of a trial and of a study, typed once for the engine, the database, the API and the page.

A trial is ``pending → running → completed | diverged | failed | cancelled``; ``diverged`` is a result
(it scores y_fail, ``studies.vocab.scores``), ``failed`` and ``cancelled`` are missing data. A study is
``queued → running → completed | completed_with_failures | failed | cancelled`` (running → queued when
its driver is recovered). Both are ``StrEnum``s: they compare equal to their stored strings, so SQL
columns, JSON and the page's ``data-`` attributes carry the plain values.
"""

from __future__ import annotations

import enum


class TrialStatus(enum.StrEnum):
    """Life cycle of a trial. ``diverged`` is a result (scored at y_fail); ``failed`` is missing data."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_done(self) -> bool:
        """Completed and diverged trials are results and never run again."""
        return self in (TrialStatus.COMPLETED, TrialStatus.DIVERGED)

    @property
    def label(self) -> str:
        """The status as a person reads it (the CLI's and the page's words)."""
        return self.value


class StudyStatus(enum.StrEnum):
    """Life cycle of a study: queued → running → completed | completed_with_failures | failed |
    cancelled (running → queued on recovery). A study ends ``completed_with_failures`` when some of
    its trials failed (crashed, not diverged) and ``failed`` when all of them did or it could not run."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """Finished studies are never claimed again unless explicitly requeued."""
        return self not in (StudyStatus.QUEUED, StudyStatus.RUNNING)

    @property
    def has_results(self) -> bool:
        """Whether the study ran to its end with results to read (some trials may have failed)."""
        return self in (StudyStatus.COMPLETED, StudyStatus.COMPLETED_WITH_FAILURES)

    @property
    def label(self) -> str:
        """The status as a person reads it: ``completed with failures``, never the snake_case value."""
        return self.value.replace("_", " ")


FINISHED_STUDY_STATUSES: tuple[StudyStatus, ...] = tuple(s for s in StudyStatus if s.is_finished)
"""The statuses a study ends in (what ``submit --wait`` and the page's live view wait for)."""
