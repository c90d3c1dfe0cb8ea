"""What a spec needs to know of each workload without importing torch: its name, where its torch
class lives, its metric, its parameters and its chance level (the failure score y_fail).

The torch half of a workload (model, data, loss, evaluation) is ``studies.workloads``: its classes
read their metric and chance level from here, and ``studies.workloads.get_workload`` imports a
class the first time it is asked for. So validating a spec, choosing a metric or computing y_fail
costs no torch import (the service's routes and the CLI rely on that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .names import unknown_name
from .scores import MetricKind

if TYPE_CHECKING:  # the parameter models are built on first use: the HTTP client never needs them
    from .workload_params import WorkloadParams

__all__ = [
    "METRICS",
    "WORKLOAD_ENTRIES",
    "WorkloadEntry",
    "WorkloadError",
    "packable_workloads",
    "workload_entry",
    "workload_names",
    "y_fail",
]


class WorkloadError(ValueError):
    """A workload cannot run as asked: bad parameters, or its data is not where it should be."""


@dataclass(frozen=True)
class WorkloadEntry:
    """One workload's torch-free declaration.

    ``target`` is ``"module:Class"`` of its ``studies.workloads.Workload``; ``metric_name`` what its
    metric is ("error", "perplexity", "nll"); ``packs`` whether ``studies.packed`` can train its trials
    (``why_not_packed`` says why not, in a spec's error)
    as one batched model (a test checks it against ``studies.packed.packing_problem``). Its
    parameters' model (``workload_params.PARAMS``) gives its chance levels: the score of a diverged
    trial (y_fail).
    """

    name: str
    target: str
    metric_name: str = "error"
    packs: bool = False
    why_not_packed: str = "packing trains classifiers with in-memory data and the default loss"

    def params(self, values: Mapping[str, Any] | None = None) -> WorkloadParams:
        """The workload's parameter model with ``values`` (``ValidationError`` naming a bad key)."""
        from .workload_params import PARAMS, validate_params

        return PARAMS[self.name].model_validate(validate_params(self.name, dict(values or {})))

    def chance_levels(self, values: Mapping[str, Any] | None = None) -> tuple[float, float]:
        """(metric, loss) of a chance-level model with these parameters."""
        return self.params(values).chance_levels()


_READS_IMAGES = "its images are read one by one with augmentation (packing needs in-memory tensors)"
_OWN_LOSS = "it has its own loss and evaluation (packing runs classifiers with the default cross-entropy)"

WORKLOAD_ENTRIES: dict[str, WorkloadEntry] = {
    entry.name: entry
    for entry in (
        WorkloadEntry("synthetic", "studies.workloads.synthetic:Synthetic", packs=True),
        WorkloadEntry("digits_mlp", "studies.workloads.digits:DigitsMLP", packs=True),
        WorkloadEntry("digits_cnn", "studies.workloads.digits:DigitsCNN", packs=True),
        WorkloadEntry(
            "cifar10_resnet20",
            "studies.workloads.resnet:Cifar10ResNet20",
            why_not_packed=_READS_IMAGES,
        ),
        WorkloadEntry(
            "cifar100_vgg16",
            "studies.workloads.vgg:Cifar100VGG16",
            why_not_packed=_READS_IMAGES,
        ),
        WorkloadEntry(
            "stl10_wrn16_8",
            "studies.workloads.wrn:Stl10WRN16x8",
            why_not_packed=_READS_IMAGES,
        ),
        WorkloadEntry(
            "mnist_vae",
            "studies.workloads.vae:MnistVAE",
            "nll",
            why_not_packed=_OWN_LOSS,
        ),
        WorkloadEntry(
            "ptb_lstm",
            "studies.workloads.ptb:PtbLSTM",
            "perplexity",
            why_not_packed=_OWN_LOSS,
        ),
        WorkloadEntry("wine_mlp", "studies.workloads.tabular:WineMLP", packs=True),
        WorkloadEntry("breast_cancer_mlp", "studies.workloads.tabular:BreastCancerMLP", packs=True),
        WorkloadEntry("synthetic_family", "studies.workloads.synthetic_family:SyntheticFamily", packs=True),
    )
}

METRICS: tuple[str, ...] = tuple(sorted({e.metric_name for e in WORKLOAD_ENTRIES.values()} | {"loss"}))
"""Every metric a study can report: each workload's own and ``loss``."""


def packable_workloads() -> list[str]:
    """The workloads whose trials can run packed, sorted."""
    return sorted(name for name, entry in WORKLOAD_ENTRIES.items() if entry.packs)


def workload_names() -> list[str]:
    """Registered workload names, sorted."""
    return sorted(WORKLOAD_ENTRIES)


def workload_entry(name: str) -> WorkloadEntry:
    """The entry of workload ``name``; ``WorkloadError`` listing the valid names for an unknown one."""
    try:
        return WORKLOAD_ENTRIES[name]
    except KeyError:
        raise WorkloadError(unknown_name("workload", name, workload_names())) from None


def y_fail(workload: str, params: Mapping[str, Any] | None, kind: MetricKind) -> float:
    """The failure score of a diverged trial: the workload's chance-level metric or loss."""
    metric, loss = workload_entry(workload).chance_levels(params)
    return loss if kind == "loss" else metric
