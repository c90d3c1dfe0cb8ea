"""``wine_mlp`` and ``breast_cancer_mlp``: small MLPs on two tabular datasets that ship with scikit-learn.

scikit-learn bundles both files (``sklearn/datasets/data``), so nothing is downloaded: the UCI wine
recognition data (178 wines, 13 chemical measurements, 3 cultivars) and the Wisconsin diagnostic
breast cancer data (569 tumours, 30 features, malignant or benign). Each is split once (stratified,
fixed seed) into 60% train, 20% validation and 20% test, as the digits are, and standardised with
the training split's mean and standard deviation (features range over four orders of magnitude, so
raw inputs would make the lr axis mostly a feature-scale axis). The trial seed changes only the
initialisation and the shuffling.

The model is ``features → hidden → ReLU → classes`` (``hidden`` = 32 by default), an
``nn.Sequential`` of Linear and ReLU with the default cross-entropy: it packs like ``digits_mlp``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .base import Splits, Workload

SPLIT_SEED = 0


@lru_cache(maxsize=2)
def tabular_arrays(dataset: str) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val, x_test, y_test) of ``dataset`` ("wine" or "breast_cancer"),
    standardised with the training split's statistics."""
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.model_selection import train_test_split

    data = {"wine": load_wine, "breast_cancer": load_breast_cancer}[dataset]()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=SPLIT_SEED)
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=SPLIT_SEED
    )
    mean, std = x_train.mean(dim=0), x_train.std(dim=0).clamp_min(1e-8)
    return (x_train - mean) / std, y_train, (x_val - mean) / std, y_val, (x_test - mean) / std, y_test


class _TabularMLP(Workload):
    """One hidden layer on a standardised scikit-learn table (subclasses name the dataset)."""

    dataset = ""
    features = 0
    classes = 2
    default_epochs = 10

    def splits(self, data_dir: Path, seed: int) -> Splits:
        x_train, y_train, x_val, y_val, x_test, y_test = tabular_arrays(self.dataset)
        return Splits(
            train=TensorDataset(x_train, y_train),
            val=TensorDataset(x_val, y_val),
            test=TensorDataset(x_test, y_test),
        )

    def build_model(self, seed: int) -> nn.Module:
        hidden = int(self.params.get("hidden", 32))
        return nn.Sequential(nn.Linear(self.features, hidden), nn.ReLU(), nn.Linear(hidden, self.classes))


class WineMLP(_TabularMLP):
    """The wine recognition data (13 features, 3 classes; 106 / 36 / 36 samples)."""

    name = "wine_mlp"
    description = "scikit-learn wine (13 features, 3 classes, 178 samples), 1-hidden-layer MLP; CPU"
    dataset = "wine"
    features = 13
    classes = 3
    default_batch_size = 16


class BreastCancerMLP(_TabularMLP):
    """The Wisconsin breast cancer data (30 features, 2 classes; 341 / 114 / 114 samples)."""

    name = "breast_cancer_mlp"
    description = "scikit-learn breast cancer (30 features, 2 classes, 569 samples), 1-hidden-layer MLP; CPU"
    dataset = "breast_cancer"
    features = 30
    classes = 2
    default_batch_size = 32
