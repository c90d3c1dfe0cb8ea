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


class ScoreTotals:
    """Running sums of ``member_scores`` over evaluation batches, per member, in float64, in batch
    order: how a trial alone and a pack total a split (then ``means`` divides by the sample count)."""

    def __init__(self, members: int, device: torch.device | str = "cpu") -> None:
        self.loss = torch.zeros(members, dtype=torch.float64, device=device)
        self.metric = torch.zeros(members, dtype=torch.float64, device=device)
        self.count = 0

    def add(
        self, loss_sums: torch.Tensor, metric_sums: torch.Tensor, samples: int, members: slice = slice(None)
    ) -> None:
        """Add one batch's sums of ``members`` (``samples``: the batch's size, counted once per batch
        whatever chunk of members it was for: call with ``samples=0`` for a batch's later chunks)."""
        self.loss[members] += loss_sums.to(torch.float64)
        self.metric[members] += metric_sums.to(torch.float64)
        self.count += samples

    def means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, metric) per member; NaN for an empty split."""
        if self.count == 0:
            return torch.full_like(self.loss, math.nan), torch.full_like(self.metric, math.nan)
        return self.loss / self.count, self.metric / self.count


class Workload(ABC):
    """One trainable problem. Subclasses set the class attributes and implement the methods.

    Attributes:
        name: the registry name (``digits_mlp``...); its metric and chance level are declared in
            ``studies.vocab.workloads`` under that name.
        default_epochs / default_batch_size: the paper's or a sensible budget.
        divergence_factor: a running train loss above ``divergence_factor × initial loss`` (or any
            non-finite loss) marks the trial diverged and stops it early.
        uses_gpu: whether the model is big enough that a GPU is worth asking for.
        pack_knee: the most members an ``auto`` pack takes (``studies.executors.packed``): beyond
            it a member's step costs more on a CPU core (measured by ``bench/scale.py``).
    """

    name: str = ""
    description: str = ""
    default_epochs: int = 10
    default_batch_size: int = 128
    divergence_factor: float = 10.0
    uses_gpu: bool = False
    pack_knee: int = 300

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

    def member_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The batched loss hook: each member's mean training loss, ``(K,)``, from its model's outputs
        ``(K, B, ...)`` and targets ``(K, B)`` (default: a classifier's cross-entropy).

        The per-trial path calls it with K = 1 and the pack with K members, so both reduce every
        member's batch in the same order and their losses and gradients are equal bit for bit.
        """
        per_sample = nn.functional.cross_entropy(outputs.flatten(0, 1), targets.flatten(), reduction="none")
        return per_sample.view(targets.shape).mean(dim=1)

    def member_scores(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batched evaluation hook: per member, the sums over one batch of the loss and of the
        metric's per-sample values, each ``(K,)`` (default: cross-entropy and 1 per misclassified
        sample, so the metric is the error rate). ``evaluate`` divides both by the sample count."""
        per_sample = nn.functional.cross_entropy(outputs.flatten(0, 1), targets.flatten(), reduction="none")
        wrong = outputs.argmax(dim=-1) != targets
        return per_sample.view(targets.shape).sum(dim=1), wrong.sum(dim=1)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Mean training loss of one batch: ``member_loss`` of a one-member pack. A workload that
        overrides this (rather than the hook) does not pack."""
        inputs, targets = batch
        return self.member_loss(model(inputs).unsqueeze(0), targets.unsqueeze(0))[0]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Any) -> tuple[float, float]:
        """(mean loss, metric) over an iterable of batches: ``member_scores`` of a one-member pack,
        totalled as a pack totals each member's (``ScoreTotals``)."""
        totals: ScoreTotals | None = None
        for inputs, targets in batches:
            totals = totals or ScoreTotals(1, inputs.device)
            totals.add(*self.member_scores(model(inputs).unsqueeze(0), targets.unsqueeze(0)), int(targets.numel()))
        if totals is None:
            return math.nan, math.nan
        loss, metric = totals.means()
        return float(loss[0]), float(metric[0])

    def chance_metric(self) -> float:
        """The metric at chance level: y_fail of a diverged trial (declared in ``studies.vocab.workloads``)."""
        return self.entry.chance_levels(self._given)[0]

    def chance_loss(self) -> float:
        """The loss at chance level (a uniform prediction), y_fail for the loss metric."""
        return self.entry.chance_levels(self._given)[1]

    def move_batch(self, batch: Any, device: torch.device) -> Any:
        """Put a batch on ``device`` (default: a tuple of tensors)."""
        return tuple(t.to(device, non_blocking=True) for t in batch)
