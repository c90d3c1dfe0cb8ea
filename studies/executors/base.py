"""What every executor shares: the ``Executor`` protocol, its ``Work``, the sink, the run summary.

An executor runs a study's trials and hands each finished ``TrialResult`` to a sink callback the
moment it finishes (the service's sink writes it to the database in its own transaction). Every
executor has one signature, ``run(work, sink) -> RunSummary``, and the same contract
(``tests/studies/test_executor_contract.py``): each result reaches the sink once, announced first
through ``work.on_start``; the summary counts what reached the sink; a trial's own failure is a
``failed`` result whose error the summary surfaces; cancellation is cooperative (``should_stop`` is
polled between trials, packs' epochs or Tune iterations) and leaves ``summary.cancelled`` set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..results import TrialKey, TrialResult, TrialStatus
from ..training import TrialPlan
from ..vocab import impute_score

Sink = Callable[[TrialResult], None]
StopCheck = Callable[[], bool]
StartHook = Callable[[list[TrialKey]], None]


def never_stop() -> bool:
    """The default ``should_stop``."""
    return False


@dataclass(frozen=True)
class Work:
    """What one ``Executor.run`` call runs: the plan and, for a grid, the trials (``keys``: the
    pending ones). A search proposes its own trials and takes no keys. ``on_start`` is told each
    trial's key before its result can reach the sink (the service marks them running).
    ``while_waiting``: work of the caller's to do in this process while the trials train in other
    processes (executors that train elsewhere call it once; ``demonlab run`` imports what writes its
    outputs)."""

    plan: TrialPlan
    keys: Sequence[TrialKey] = ()
    should_stop: StopCheck = never_stop
    on_start: StartHook | None = None
    while_waiting: Callable[[], None] | None = None


@dataclass(frozen=True)
class Context:
    """Where a study's executor runs: its data dir (Ray's temp dir, Tune's storage, pack checkpoints),
    the study's id (names Tune experiments, Optuna studies and checkpoint folders), the Ray cluster
    to join (None: a local one of ``num_cpus``), Optuna's storage and the torch device."""

    data_dir: Path = Path(".work")
    study_id: str = "study"
    ray_address: str | None = None
    num_cpus: int | None = None
    optuna_storage_url: str | None = None
    device: str | None = None


class Executor(Protocol):
    """Runs ``work`` and sinks every result the moment it is done (see the module's contract)."""

    name: str

    def run(self, work: Work, sink: Sink) -> RunSummary:
        """Run ``work``; return what was done (results also went to ``sink``)."""
        ...


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
