"""Readers for CIFAR-10 and CIFAR-100 in their "python version" layout (as torchvision stores them).

- CIFAR-10: ``<data_dir>/cifar-10-batches-py/data_batch_1..5`` and ``test_batch``.
- CIFAR-100: ``<data_dir>/cifar-100-python/train`` and ``test`` (the 100 fine labels are used).

Each file is a Python pickle of a dict with ``b"data"`` (uint8, N×3072, channel-major 3×32×32)
and ``b"labels"`` / ``b"fine_labels"``. Unpickling runs code from the file, so only point
``data_dir`` at the archives from the official page. Loads are cached per folder, so the trials of
a study that share a process read the files once.
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import WorkloadError
from .images import ImageArrays, require_files

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray[Any, Any], list[int]]:
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = [int(label) for label in batch[label_key]]
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(labels):
        raise WorkloadError(f"{path}: expected N×3072 pixels and N labels, got {data.shape}, {len(labels)}")
    return data, labels


def _to_arrays(train: list[Path], test: Path, label_key: bytes) -> ImageArrays:
    def read(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [_read_batch(path, label_key) for path in paths]
        data = np.concatenate([data for data, _ in parts]).reshape(-1, 3, 32, 32)
        labels = [label for _, part in parts for label in part]
        return torch.from_numpy(data), torch.tensor(labels, dtype=torch.long)

    return ImageArrays(*read(train), *read([test]))


CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def _require_cifar10(folder: Path) -> None:
    names = CIFAR10_TRAIN
    require_files(
        folder,
        [*names, "test_batch"],
        "CIFAR-10",
        f"Put CIFAR-10's python version (the folder cifar-10-batches-py/ with data_batch_1..5 and "
        f"test_batch, unpacked from cifar-10-python.tar.gz) under {folder.parent}; "
        f"download it from {CIFAR_URL}",
    )


@lru_cache(maxsize=1)
def _load_cifar10(folder: Path) -> ImageArrays:
    _require_cifar10(folder)
    return _to_arrays([folder / name for name in CIFAR10_TRAIN], folder / "test_batch", b"labels")


def _require_cifar100(folder: Path) -> None:
    require_files(
        folder,
        ["train", "test"],
        "CIFAR-100",
        f"Put CIFAR-100's python version (the folder cifar-100-python/ with train and test, unpacked "
        f"from cifar-100-python.tar.gz) under {folder.parent}; download it from {CIFAR_URL}",
    )


@lru_cache(maxsize=1)
def _load_cifar100(folder: Path) -> ImageArrays:
    _require_cifar100(folder)
    return _to_arrays([folder / "train"], folder / "test", b"fine_labels")


def load_cifar10(data_dir: Path) -> ImageArrays:
    """CIFAR-10 from ``data_dir/cifar-10-batches-py``: 50,000 train and 10,000 test images."""
    return _load_cifar10(Path(data_dir).resolve() / "cifar-10-batches-py")


def check_cifar10(data_dir: Path) -> None:
    """Raise ``WorkloadError`` (what goes where) unless CIFAR-10's files are under ``data_dir``."""
    _require_cifar10(Path(data_dir).resolve() / "cifar-10-batches-py")


def check_cifar100(data_dir: Path) -> None:
    """Raise ``WorkloadError`` (what goes where) unless CIFAR-100's files are under ``data_dir``."""
    _require_cifar100(Path(data_dir).resolve() / "cifar-100-python")


def load_cifar100(data_dir: Path) -> ImageArrays:
    """CIFAR-100 from ``data_dir/cifar-100-python``: 50,000 train and 10,000 test images, fine labels."""
    return _load_cifar100(Path(data_dir).resolve() / "cifar-100-python")
