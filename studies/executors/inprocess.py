"""The in-process executor: trials one after another in this process. Simple, and the reference."""

from __future__ import annotations

from collections.abc import Sequence

from ..results import TrialKey
from ..runner import TrialPlan, run_trial
from .base import RunSummary, Sink, StopCheck, never_stop


class InProcessExecutor:
    """Run trials sequentially here; each result goes to the sink as soon as it is done."""

    name = "inprocess"

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    def run(
        self, plan: TrialPlan, keys: Sequence[TrialKey], sink: Sink, should_stop: StopCheck = never_stop
    ) -> RunSummary:
        """Run every key unless ``should_stop`` turns true between trials."""
        summary = RunSummary()
        for key in keys:
            if should_stop():
                summary.cancelled = True
                break
            result = run_trial(plan, key, device=self.device)
            summary.add(result)
            sink(result)
        return summary
