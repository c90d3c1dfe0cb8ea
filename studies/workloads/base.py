"""What a workload is: a model, train/val/test data, a loss, a metric and a divergence ceiling.

The trial runner (``studies.runner``) owns the optimizer, the schedules and the training loop; a
workload only answers "what is being trained, on what, and how is it scored". Scores are lower-is-
better raw values: ``metric_name`` says which (an error rate, a perplexity, an NLL).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..vocab.workloads import WORKLOAD_ENTRIES, WorkloadEntry, WorkloadError, workload_entry

__all__ = ["Splits", "Workload", "WorkloadError"]


@dataclass(frozen=True)
class Splits:
    """Train, validation and test datasets of one workload (torch ``Dataset`` objects)."""

    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]


class Workload(ABC):
    """One trainable problem. Subclasses set the class attributes and implement the methods.

    Attributes:
        name: the registry name (``digits_mlp``...); its metric and chance level are declared in
            ``studies.vocab.workloads`` under that name.
        default_epochs / default_batch_size: the paper's or a sensible budget.
        divergence_factor: a running train loss above ``divergence_factor × initial loss`` (or any
            non-finite loss) marks the trial diverged and stops it early.
        uses_gpu: whether the model is big enough that a GPU is worth asking for.
    """

    name: str = ""
    description: str = ""
    default_epochs: int = 10
    default_batch_size: int = 128
    divergence_factor: float = 10.0
    uses_gpu: bool = False

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self._given = dict(self.params)  # as the spec gave them (subclasses add derived keys to params)

    @property
    def entry(self) -> WorkloadEntry:
        """The declaration of this workload, or of the nearest declared workload it derives from."""
        for cls in type(self).__mro__:
            if getattr(cls, "name", "") in WORKLOAD_ENTRIES:
                return WORKLOAD_ENTRIES[cls.name]  # type: ignore[attr-defined]
        return workload_entry(self.name)  # raises, naming the valid workloads

    @property
    def metric_name(self) -> str:
        """What ``metric`` means ("error" for classifiers, "perplexity", "nll")."""
        return self.entry.metric_name

    @abstractmethod
    def splits(self, data_dir: Path, seed: int) -> Splits:
        """Load (or make) the data. Missing files raise ``WorkloadError`` saying what goes where."""

    def check_data(self, data_dir: Path) -> None:
        """Raise ``WorkloadError`` (saying what goes where) if the data is not under ``data_dir``,
        without loading it: checked once at submission or driver start, not once per trial. Data
        that ships offline or is generated has nothing to check (the default)."""
        return None

    @abstractmethod
    def build_model(self, seed: int) -> nn.Module:
        """A freshly initialised model; the runner seeds torch before calling this."""

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Mean training loss of one batch (default: cross-entropy of a classifier)."""
        inputs, targets = batch
        return nn.functional.cross_entropy(model(inputs), targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Any) -> tuple[float, float]:
        """(mean loss, metric) over an iterable of batches (default: cross-entropy and error rate)."""
        total_loss, wrong, count = 0.0, 0, 0
        for inputs, targets in batches:
            logits = model(inputs)
            total_loss += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
            wrong += int((logits.argmax(dim=1) != targets).sum())
            count += int(targets.numel())
        if count == 0:
            return math.nan, math.nan
        return total_loss / count, wrong / count

    def chance_metric(self) -> float:
        """The metric at chance level: y_fail of a diverged trial (declared in ``studies.vocab.workloads``)."""
        return self.entry.chance_levels(self._given)[0]

    def chance_loss(self) -> float:
        """The loss at chance level (a uniform prediction), y_fail for the loss metric."""
        return self.entry.chance_levels(self._given)[1]

    def move_batch(self, batch: Any, device: torch.device) -> Any:
        """Put a batch on ``device`` (default: a tuple of tensors)."""
        return tuple(t.to(device, non_blocking=True) for t in batch)
