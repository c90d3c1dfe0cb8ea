"""``synthetic``: a tiny made-up classification problem whose trial takes milliseconds (for tests)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .base import Splits, Workload


class Synthetic(Workload):
    """Softmax regression on Gaussian clusters: 3 classes, 8 features, 256/128/128 samples.

    The data is a fixed draw (generator seed 1234, independent of the trial seed) so every trial
    of a study sees the same problem; the trial seed changes only initialisation and shuffling.
    Parameters: ``n_train`` (256), ``features`` (8), ``classes`` (3), ``hidden`` (0: linear), and
    ``hold``: a file path; while that file exists each trial waits before it trains, so a test can
    hold a study with its trials started and none finished (a handshake, not a guess at timing).
    """

    name = "synthetic"
    description = "Gaussian clusters, softmax regression: a trial in milliseconds, for tests"
    default_epochs = 2
    default_batch_size = 64

    def __init__(self, params: dict[str, object] | None = None) -> None:
        super().__init__(params)
        self.params.setdefault("num_classes", int(self.params.get("classes", 3)))

    def splits(self, data_dir: Path, seed: int) -> Splits:
        hold = self.params.get("hold")
        while hold and Path(str(hold)).exists():
            time.sleep(0.05)
        n_train = int(self.params.get("n_train", 256))
        features = int(self.params.get("features", 8))
        classes = int(self.params["num_classes"])
        gen = torch.Generator().manual_seed(1234)
        centers = torch.randn(classes, features, generator=gen) * 1.5

        def draw(n: int) -> TensorDataset:
            labels = torch.randint(0, classes, (n,), generator=gen)
            inputs = centers[labels] + torch.randn(n, features, generator=gen)
            return TensorDataset(inputs, labels)

        return Splits(train=draw(n_train), val=draw(n_train // 2), test=draw(n_train // 2))

    def build_model(self, seed: int) -> nn.Module:
        features = int(self.params.get("features", 8))
        classes = int(self.params["num_classes"])
        hidden = int(self.params.get("hidden", 0))
        if hidden <= 0:
            return nn.Linear(features, classes)
        return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))
