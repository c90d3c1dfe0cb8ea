"""The workload registry: name → ``Workload`` class.

Each workload gives a model, train/val/test data, a loss, a metric and a divergence ceiling.
Data that ships offline: ``synthetic``, ``synthetic_family``, ``digits_mlp``, ``digits_cnn``,
``wine_mlp``, ``breast_cancer_mlp``. Data read from files under
``data_dir`` (never downloaded): ``mnist_vae`` (CPU-sized) and the paper's GPU workloads
``cifar10_resnet20``, ``cifar100_vgg16``, ``stl10_wrn16_8``, ``ptb_lstm``.
``get_workload`` raises ``WorkloadError`` listing the valid names for an unknown one.
"""

from __future__ import annotations

from typing import Any

from .base import Splits, Workload, WorkloadError
from .digits import DigitsCNN, DigitsMLP
from .ptb import PtbLSTM
from .resnet import Cifar10ResNet20
from .synthetic import Synthetic
from .synthetic_family import SyntheticFamily
from .tabular import BreastCancerMLP, WineMLP
from .vae import MnistVAE
from .vgg import Cifar100VGG16
from .wrn import Stl10WRN16x8

WORKLOADS: dict[str, type[Workload]] = {
    cls.name: cls
    for cls in (
        Synthetic,
        DigitsMLP,
        DigitsCNN,
        Cifar10ResNet20,
        Cifar100VGG16,
        Stl10WRN16x8,
        MnistVAE,
        PtbLSTM,
        WineMLP,
        BreastCancerMLP,
        SyntheticFamily,
    )
}


def workload_names() -> list[str]:
    """Registered workload names, sorted."""
    return sorted(WORKLOADS)


def get_workload(name: str, params: dict[str, Any] | None = None) -> Workload:
    """Instantiate the workload ``name`` with its ``params``."""
    try:
        cls = WORKLOADS[name]
    except KeyError:
        raise WorkloadError(f"unknown workload {name!r}; valid choices: {', '.join(workload_names())}") from None
    return cls(params)


__all__ = ["WORKLOADS", "Splits", "Workload", "WorkloadError", "get_workload", "workload_names"]
