"""Driver-side Tune hooks: the callback that sinks results and the stopper that cancels.

Tune pickles its run config (callbacks, stopper) with the experiment state. These classes live at
module level, so they pickle by reference, and they carry only a token into ``HOOKS``, the registry
of driver-side objects (the sink may hold a database engine, which does not pickle).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray import tune

from ..results import TrialKey, TrialResult
from .base import RunSummary, Sink, StopCheck, failed_result

RESULTS_FIELD = "demonlab_results"


@dataclass
class DriverHooks:
    """What the callback and the stopper of one run need, kept in this process."""

    sink: Sink
    summary: RunSummary
    should_stop: StopCheck
    unit_keys: dict[str, list[TrialKey]] | None
    on_start: Callable[[list[TrialKey]], None] | None = None
    keys_of: Callable[[dict[str, Any]], list[TrialKey]] | None = None  # a search's keys of a config

    def keys(self, trial: Any) -> list[TrialKey]:
        """The trials of one Tune trial: its unit of a grid, or its proposed point on every seed."""
        if self.unit_keys is not None:
            return self.unit_keys.get(str(trial.config.get("unit")), [])
        return self.keys_of(trial.config) if self.keys_of is not None else []


HOOKS: dict[str, DriverHooks] = {}


def register(hooks: DriverHooks) -> str:
    """Keep ``hooks`` for one run; return the token the callback and stopper carry."""
    token = uuid.uuid4().hex
    HOOKS[token] = hooks
    return token


class SinkCallback(tune.Callback):
    """Forward every reported trial result to the sink, in the driver, the moment Tune sees it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        raw = result.get(RESULTS_FIELD)
        if raw is None:
            return
        hooks = HOOKS[self.token]
        for item in json.loads(raw):
            trial_result = TrialResult.from_dict(item)
            hooks.summary.add(trial_result)
            hooks.sink(trial_result)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A unit starts (or restarts after a failure): its trials are running, one more attempt."""
        hooks = HOOKS[self.token]
        keys = hooks.keys(trial)
        if hooks.on_start is not None and keys:
            hooks.on_start(keys)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial that errored after its retries: its keys become ``failed`` results."""
        hooks = HOOKS[self.token]
        error = f"Ray trial {trial.trial_id} errored after its retries: {trial.error_file or 'no error file'}"
        keys = hooks.keys(trial)
        for key in keys:
            result = failed_result(key, error)
            hooks.summary.add(result)
            hooks.sink(result)
        if not keys:
            hooks.summary.errors.append(error)


class CancelStopper(tune.Stopper):
    """Stop the whole experiment when the run's ``should_stop`` turns true."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        hooks = HOOKS.get(self.token)
        if hooks is not None and hooks.should_stop():
            hooks.summary.cancelled = True
            return True
        return False
