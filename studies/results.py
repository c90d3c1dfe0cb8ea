"""The values that leave a trial: its key, status, per-epoch curve and final scores.

These cross process boundaries (Ray workers, the service's database layer), so they are plain
frozen dataclasses of builtins that pickle cleanly and convert to and from JSON-able dicts.
Scores are raw workload units where lower is better (error rate, loss, perplexity); the metric
code orients them (y = −value) itself. ``TrialStatus`` is the vocabulary's (``studies.vocab``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .vocab.statuses import TrialStatus

__all__ = ["EpochRecord", "TrialKey", "TrialResult", "TrialStatus"]


@dataclass(frozen=True, order=True)
class TrialKey:
    """The unique key of a trial inside a study: one cell of one arm, one seed."""

    arm: str
    lr: float
    beta_init: float
    seed: int

    def token(self) -> str:
        """A short, stable, human-readable id (used as Ray Tune's grid value and in logs)."""
        return f"{self.arm}|{self.lr!r}|{self.beta_init!r}|{self.seed}"

    @classmethod
    def from_token(cls, token: str) -> TrialKey:
        """Parse what ``token`` produced."""
        arm, lr, beta_init, seed = token.split("|")
        return cls(arm=arm, lr=float(lr), beta_init=float(beta_init), seed=int(seed))


@dataclass(frozen=True)
class EpochRecord:
    """One point of a trial's learning curve (values may be non-finite when training blew up)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_metric: float


@dataclass(frozen=True)
class TrialResult:
    """Everything a finished trial reports.

    ``*_metric`` is the workload's primary metric (``metric_name``: error rate, perplexity, NLL);
    ``*_loss`` its loss. Diverged trials keep whatever finite values they reached, else ``None``.
    """

    key: TrialKey
    status: TrialStatus
    epochs: tuple[EpochRecord, ...] = ()
    val_metric: float | None = None
    val_loss: float | None = None
    test_metric: float | None = None
    test_loss: float | None = None
    best_val_metric: float | None = None
    epochs_done: int = 0
    wall_seconds: float = 0.0
    device: str = "cpu"
    node: str = ""
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def score(self, metric: str, split: str) -> float | None:
        """The final score for ``metric`` ∈ {"metric", "loss"} on ``split`` ∈ {"val", "test"}."""
        value: float | None = getattr(self, f"{split}_{metric}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; non-finite floats become the strings "nan", "inf", "-inf"."""
        raw = asdict(self)
        raw["status"] = self.status.value
        return _encode(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrialResult:
        """Inverse of ``to_dict``."""
        data = _decode(raw)
        data["key"] = TrialKey(**data["key"])
        data["status"] = TrialStatus(data["status"])
        data["epochs"] = tuple(EpochRecord(**e) for e in data.get("epochs", ()))
        return cls(**data)


def _encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
