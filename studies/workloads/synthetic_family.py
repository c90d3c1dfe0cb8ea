"""``synthetic_family``: Gaussian classification problems whose conditioning and label noise are parameters.

Where ``synthetic`` is a fixed toy for tests, this is a family meant to be swept: the same problem
made harder to *optimise* (``condition``) or noisier to *fit* (``label_noise``), so an atlas can ask
whether an optimizer's sensitivity depends on either.

The draw (generator seed ``data_seed``, independent of the trial seed, so every trial of a study sees
the same problem): ``classes`` centres ~ N(0, separation² I) in ``features`` dimensions; each sample
is its class centre plus N(0, I) noise; then every sample is multiplied by ``diag(s) Q`` with ``s``
log-spaced from 1 down to 1/√condition and ``Q`` a fixed random rotation. The inputs' covariance
then has condition number ``condition`` (up to the centres' spread), and the rotation keeps the
ill-conditioned directions off the coordinate axes, where a per-coordinate method (Adam) would undo
them. An invertible linear map leaves the Bayes error unchanged, so the problem is statistically the
same for every ``condition``: only the optimisation gets harder. ``label_noise``: that share of labels,
in every split, is replaced by a uniformly drawn class (so the error floor rises by about
``label_noise · (1 − 1/classes)``).

The model is ``features → hidden → ReLU → classes`` (``hidden`` = 0: softmax regression), an
``nn.Sequential`` of Linear and ReLU with the default cross-entropy: it packs.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .base import Splits, Workload

DEFAULTS: dict[str, float | int] = {
    "condition": 1.0,
    "label_noise": 0.0,
    "n_train": 512,
    "features": 16,
    "classes": 4,
    "hidden": 32,
    "separation": 1.0,
    "data_seed": 2024,
}


@lru_cache(maxsize=8)
def family_arrays(
    condition: float, label_noise: float, n_train: int, features: int, classes: int, separation: float, data_seed: int
) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val, x_test, y_test): ``n_train`` training samples, half as many
    for validation and for test, drawn as the module docstring says."""
    gen = torch.Generator().manual_seed(data_seed)
    centres = torch.randn(classes, features, generator=gen) * separation
    rotation, _ = torch.linalg.qr(torch.randn(features, features, generator=gen))
    scales = torch.logspace(0.0, -0.5 * math.log10(condition), features) if condition > 1 else torch.ones(features)
    transform = torch.diag(scales) @ rotation

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, classes, (n,), generator=gen)
        inputs = (centres[labels] + torch.randn(n, features, generator=gen)) @ transform
        flip = torch.rand(n, generator=gen) < label_noise
        noisy = torch.where(flip, torch.randint(0, classes, (n,), generator=gen), labels)
        return inputs, noisy

    x_train, y_train = draw(n_train)
    x_val, y_val = draw(max(1, n_train // 2))
    x_test, y_test = draw(max(1, n_train // 2))
    return x_train, y_train, x_val, y_val, x_test, y_test


class SyntheticFamily(Workload):
    """A member of the conditioning × label-noise family (parameters and defaults in ``DEFAULTS``)."""

    name = "synthetic_family"
    description = "Gaussian classes with a set input condition number and label noise, small MLP; a family for atlases"
    default_epochs = 10
    default_batch_size = 32

    def _get(self, key: str) -> float:
        return float(self.params.get(key, DEFAULTS[key]))

    def splits(self, data_dir: Path, seed: int) -> Splits:
        x_train, y_train, x_val, y_val, x_test, y_test = family_arrays(
            self._get("condition"),
            self._get("label_noise"),
            int(self._get("n_train")),
            int(self._get("features")),
            int(self._get("classes")),
            self._get("separation"),
            int(self._get("data_seed")),
        )
        return Splits(
            train=TensorDataset(x_train, y_train),
            val=TensorDataset(x_val, y_val),
            test=TensorDataset(x_test, y_test),
        )

    def build_model(self, seed: int) -> nn.Module:
        features, classes, hidden = int(self._get("features")), int(self._get("classes")), int(self._get("hidden"))
        if hidden <= 0:
            return nn.Sequential(nn.Linear(features, classes))
        return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))
