"""What every executor shares: the sink callback, the run summary, and the objective of a trial.

An executor runs trials and hands each finished ``TrialResult`` to a sink callback the moment it
finishes (the service's sink writes it to the database in its own transaction). Cancellation is
cooperative: executors poll ``should_stop`` between trials.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..results import TrialKey, TrialResult, TrialStatus
from ..vocab import impute_score

Sink = Callable[[TrialResult], None]
StopCheck = Callable[[], bool]


def never_stop() -> bool:
    """The default ``should_stop``."""
    return False


@dataclass
class RunSummary:
    """What an executor did: counts by status and the errors it surfaced (never swallowed)."""

    completed: int = 0
    diverged: int = 0
    failed: int = 0
    cancelled: bool = False
    errors: list[str] = field(default_factory=list)

    def add(self, result: TrialResult) -> None:
        """Count one result."""
        if result.status is TrialStatus.COMPLETED:
            self.completed += 1
        elif result.status is TrialStatus.DIVERGED:
            self.diverged += 1
        else:
            self.failed += 1
            if result.error:
                self.errors.append(f"{result.key.token()}: {result.error.splitlines()[0]}")

    @property
    def total(self) -> int:
        """Results received."""
        return self.completed + self.diverged + self.failed


def objective_value(result: TrialResult, metric_kind: str, split: str, y_fail: float) -> float:
    """The lower-is-better value a search optimises: the imputed score (``studies.vocab.impute_score``),
    and y_fail where there is none (a search needs a value for every point it proposed)."""
    score = impute_score(result.score(metric_kind, split), result.status, y_fail)
    return y_fail if score is None else score


def pack(keys: Sequence[TrialKey], size: int) -> list[list[TrialKey]]:
    """Group keys into units of ``size`` trials run one after another in one Ray task (a trial pack)."""
    return [list(keys[i : i + size]) for i in range(0, len(keys), size)]


def failed_result(key: TrialKey, error: str) -> TrialResult:
    """A result for a trial whose worker failed outside ``run_trial`` (killed, out of memory...)."""
    return TrialResult(key=key, status=TrialStatus.FAILED, error=error)
