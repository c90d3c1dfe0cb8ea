"""The in-process executor: trials one after another in this process. Simple, and the reference."""

from __future__ import annotations

from typing import Any

from ..runner import run_trial
from .base import Context, RunSummary, Sink, Work


class InProcessExecutor:
    """Run trials sequentially here; each result goes to the sink as soon as it is done."""

    name = "inprocess"

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    @classmethod
    def for_study(cls, spec: Any, context: Context) -> InProcessExecutor:
        """The executor of a study (the spec asks nothing of it)."""
        return cls(context.device)

    def run(self, work: Work, sink: Sink) -> RunSummary:
        """Run every key unless ``should_stop`` turns true between trials."""
        summary = RunSummary()
        for key in work.keys:
            if work.should_stop():
                summary.cancelled = True
                break
            if work.on_start is not None:
                work.on_start([key])
            result = run_trial(work.plan, key, device=self.device)
            summary.add(result)
            sink(result)
        return summary
