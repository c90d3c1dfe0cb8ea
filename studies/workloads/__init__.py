"""The workload registry: name → ``Workload`` class (torch), imported on first use.

Each workload gives a model, train/val/test data, a loss, a metric and a divergence ceiling.
Data that ships offline: ``synthetic``, ``synthetic_family``, ``digits_mlp``, ``digits_cnn``,
``wine_mlp``, ``breast_cancer_mlp``. Data read from files under ``data_dir`` (never downloaded):
``mnist_vae`` (CPU-sized) and the paper's GPU workloads ``cifar10_resnet20``, ``cifar100_vgg16``,
``stl10_wrn16_8``, ``ptb_lstm``.

What needs no torch (names, metrics, parameters, chance levels) is declared in
``studies.vocab.workloads``; importing this package imports no torch either: ``get_workload``
imports a workload's module the first time it is asked for, and ``Workload``, ``Splits`` and
``WORKLOADS`` load on first access. ``get_workload`` raises ``WorkloadError`` listing the valid
names for an unknown one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ..vocab.workloads import WorkloadError, workload_entry, workload_names

if TYPE_CHECKING:
    from .base import Splits, Workload


def workload_class(name: str) -> type[Workload]:
    """The ``Workload`` class registered as ``name`` (imports its module, and so torch)."""
    if name in _ADDED:
        return _ADDED[name]
    module, _, attribute = workload_entry(name).target.partition(":")
    cls: type[Workload] = getattr(importlib.import_module(module), attribute)
    return cls


def get_workload(name: str, params: dict[str, Any] | None = None) -> Workload:
    """Instantiate the workload ``name`` with its ``params``."""
    return workload_class(name)(params)


_ADDED: dict[str, type[Workload]] = {}


class _Classes(MutableMapping[str, "type[Workload]"]):
    """``WORKLOADS``: name → class, each declared class imported when it is looked up. A class set
    here by name (a test's variant of a declared workload) runs under that name in trial plans; it
    reads its metric and chance level from the declared workload it derives from."""

    def __getitem__(self, name: str) -> type[Workload]:
        if name not in _ADDED and name not in workload_names():
            raise KeyError(name)
        return workload_class(name)

    def __setitem__(self, name: str, cls: type[Workload]) -> None:
        _ADDED[name] = cls

    def __delitem__(self, name: str) -> None:
        del _ADDED[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*workload_names(), *_ADDED]))

    def __len__(self) -> int:
        return len(set(workload_names()) | set(_ADDED))


WORKLOADS: MutableMapping[str, type[Workload]] = _Classes()


def __getattr__(name: str) -> Any:
    """``Workload`` and ``Splits`` from ``.base``, imported (with torch) on first access."""
    if name in ("Workload", "Splits"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["WORKLOADS", "Splits", "Workload", "WorkloadError", "get_workload", "workload_class", "workload_names"]
