"""``digits_mlp`` and ``digits_cnn``: the UCI handwritten digits as scikit-learn ships them (real
data that ships offline, here as ``data/digits.npz``).

1,797 8×8 images of 10 classes, split once (stratified, fixed seed) into 60% train, 20% validation
and 20% test, so every trial of a study sees the same split; the trial seed changes only the
initialisation and the shuffling. ``digits_mlp`` (a small MLP) is the CPU default workload;
``digits_cnn`` (a small CNN on the same split, images 1×8×8) is its convolutional counterpart.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .base import Splits, Workload

DIGITS_FILE = Path(__file__).parent / "data" / "digits.npz"


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val, x_test, y_test): pixels scaled to [0, 1], shape (n, 64).

    Read from ``data/digits.npz``: scikit-learn's copy of the UCI digits (``load_digits``), split
    60/20/20 with ``train_test_split(stratify=y, random_state=0)`` twice, stored as it comes out of
    that split (``data/README.md``; ``tests/studies/test_workloads.py`` checks it against
    scikit-learn). Reading it costs milliseconds; importing scikit-learn to rebuild it, a second.
    """
    import numpy as np

    with np.load(DIGITS_FILE) as stored:
        arrays = [stored[name] for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")]
    return tuple(
        torch.tensor(a, dtype=torch.float32) / 16.0 if a.ndim == 2 else torch.tensor(a, dtype=torch.long)
        for a in arrays
    )


def digits_splits(image_shape: tuple[int, ...] = (64,)) -> Splits:
    """The fixed digits split, each image reshaped to ``image_shape``."""
    x_train, y_train, x_val, y_val, x_test, y_test = digits_arrays()
    shape = (-1, *image_shape)
    return Splits(
        train=TensorDataset(x_train.reshape(shape), y_train),
        val=TensorDataset(x_val.reshape(shape), y_val),
        test=TensorDataset(x_test.reshape(shape), y_test),
    )


class DigitsMLP(Workload):
    """A 64 → hidden → hidden → 10 ReLU MLP on the digits (parameter ``hidden``, default 64)."""

    name = "digits_mlp"
    description = "scikit-learn digits (8x8, 10 classes), 2-hidden-layer MLP; CPU default"
    default_epochs = 10
    default_batch_size = 32

    def splits(self, data_dir: Path, seed: int) -> Splits:
        return digits_splits((64,))

    def build_model(self, seed: int) -> nn.Module:
        hidden = int(self.params.get("hidden", 64))
        return nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        )


class DigitsCNN(Workload):
    """A small LeNet-style CNN on the same digits split, images shaped 1×8×8 (parameter ``channels``).

    conv3×3(1 → c) - ReLU - conv3×3(c → 2c) - ReLU - maxpool 2 - linear(2c·4·4 → 10), c = 16 by
    default (LeCun et al. 1998's conv-pool-linear pattern, shrunk to 8×8 inputs). Trains in well under
    a second per epoch on a CPU core.
    """

    name = "digits_cnn"
    description = "scikit-learn digits (1x8x8, 10 classes), 2-conv CNN; CPU"
    default_epochs = 10
    default_batch_size = 32

    def splits(self, data_dir: Path, seed: int) -> Splits:
        return digits_splits((1, 8, 8))

    def build_model(self, seed: int) -> nn.Module:
        channels = int(self.params.get("channels", 16))
        return nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * 4 * 4, 10),
        )
