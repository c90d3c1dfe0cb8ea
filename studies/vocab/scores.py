"""How a trial's stored scores are read: which split, which statistic, and what a failure scores.

Scores are raw workload values where lower is better (an error rate, a loss, a perplexity). A
diverged trial is a result: it scores **y_fail**, the workload's chance-level value for the metric
(``studies.vocab.workloads.y_fail``), whatever it stored, and a finite score worse than y_fail is
clipped to it, so one blown-up seed cannot outweigh the grid. Failed, cancelled, pending and running
trials, and completed trials without a finite value, are missing. ``impute_scores`` (arrays) and
``impute_score`` (one trial) are that rule; every figure, table, objective and mirror uses them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, get_args

from .statuses import TrialStatus

if TYPE_CHECKING:  # numpy is imported by the functions that use it: the HTTP client never does
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "METRIC_KINDS",
    "METRIC_WORDS",
    "SPLITS",
    "SPLIT_WORDS",
    "STATS",
    "MetricKind",
    "Split",
    "Stat",
    "impute_score",
    "impute_scores",
    "score_words",
    "split_problem",
]

Split = Literal["val", "test"]
"""Which held-out split a score is read on."""

Stat = Literal["mean", "median", "min", "max"]
"""The statistic of a grid cell over its seeds."""

MetricKind = Literal["metric", "loss"]
"""Which stored score a study's metric is: the workload's primary metric or its loss."""

SPLITS: tuple[Split, ...] = get_args(Split)
STATS: tuple[Stat, ...] = get_args(Stat)
METRIC_KINDS: tuple[MetricKind, ...] = get_args(MetricKind)


SPLIT_WORDS: dict[Split, str] = {"val": "validation", "test": "test"}
METRIC_WORDS: dict[str, str] = {"error": "error rate", "nll": "NLL", "perplexity": "perplexity", "loss": "loss"}
"""A metric's name in words (a workload's metric not listed here is shown by its name)."""


def score_words(split: Split, metric: str) -> str:
    """A split's score in words where the page's short labels ("val error") would be read out of
    context: ``score_words("val", "error")`` → ``"validation error rate"`` (the Optuna mirror)."""
    return f"{SPLIT_WORDS[split]} {METRIC_WORDS.get(metric, metric)}"


def split_problem(split: object) -> str | None:
    """Why ``split`` is not a split (the message every caller raises in its own error type), or None."""
    if split in SPLITS:
        return None
    return f"unknown split {split!r}; valid choices: {', '.join(SPLITS)}"


def impute_scores(values: ArrayLike, statuses: ArrayLike, y_fail: float) -> NDArray[np.float64]:
    """The scores the figures use, in raw units (lower is better), NaN where a trial is missing.

    Diverged → ``y_fail``; completed → ``min(value, y_fail)`` (+inf is clipped to y_fail; NaN and
    −inf are no score: missing); any other status → missing. ``values`` and ``statuses`` align.
    """
    import numpy as np

    if not math.isfinite(y_fail):
        raise ValueError(f"Invalid y_fail value: {y_fail}")
    raw = np.asarray(values, dtype=np.float64)
    status = np.asarray(statuses).astype(str)
    with np.errstate(invalid="ignore"):
        scores = np.minimum(raw, y_fail)  # NaN stays NaN; +inf becomes y_fail
    scores[np.isneginf(scores) | (status != TrialStatus.COMPLETED.value)] = np.nan
    scores[status == TrialStatus.DIVERGED.value] = y_fail
    return scores


def impute_score(value: float | None, status: str, y_fail: float) -> float | None:
    """``impute_scores`` for one trial: its score in raw units, or None when it is missing."""
    score = impute_scores([math.nan if value is None else value], [status], y_fail)[0]
    return None if math.isnan(score) else float(score)
