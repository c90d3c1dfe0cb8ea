"""``mnist_vae``: a variational autoencoder on MNIST, a paper workload (batch 100; 50/100 epochs).

The VAE of Kingma & Welling, "Auto-Encoding Variational Bayes" (ICLR 2014), in the MLP form of
PyTorch's ``examples/vae``: encoder 784 → ``hidden`` (ReLU) → Gaussian q(z|x) with ``latent``
dimensions (mean and log-variance), decoder ``latent`` → ``hidden`` (ReLU) → 784 Bernoulli logits.
Pixel intensities in [0, 1] are the Bernoulli targets (no binarisation), so the numbers are not
comparable with published binarised-MNIST likelihoods.

Loss **and metric** are the negative ELBO in nats per image, BCE(x̂, x) summed over pixels plus
KL(q(z|x) ‖ N(0, I)), with one reparameterised sample of z; ``metric_name`` is "nll" although it
is the ELBO bound, not an estimate of the true NLL. Evaluation draws z from a generator seeded
with 0, so it is deterministic and leaves the training RNG alone. Failure value: predicting 0.5
for every pixel with q = prior gives 784·ln 2 ≈ 543.4 nats, whatever the image.

Data: ``mnist.load_mnist``; validation = the last 5,000 training images (``val_size``), pixels
unnormalised in [0, 1]. Parameters: ``hidden`` (400), ``latent`` (20), ``val_size`` (5000).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .base import Splits, Workload
from .images import image_splits
from .mnist import check_mnist, load_mnist

PIXELS = 28 * 28


class VAE(nn.Module):
    """MLP VAE; ``forward(x, noise)`` returns (decoder logits, mean, log-variance)."""

    def __init__(self, hidden: int = 400, latent: int = 20) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, latent)
        self.log_var = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, PIXELS))

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mean, log_var = self.mean(h), self.log_var(h)
        if noise is None:
            noise = torch.randn_like(mean)
        z = mean + noise * torch.exp(0.5 * log_var)
        return self.decoder(z), mean, log_var


def negative_elbo(model: nn.Module, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Negative ELBO of each image (nats), shape (batch,)."""
    logits, mean, log_var = model(images, noise)
    targets = images.flatten(1)
    reconstruction = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=1)
    kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(dim=1)
    return reconstruction + kl


class MnistVAE(Workload):
    """VAE on MNIST; loss and metric are the negative ELBO per image."""

    name = "mnist_vae"
    description = "VAE (Kingma & Welling 2014, 784-400-20 MLP) on MNIST; metric = negative ELBO (nats)"
    default_epochs = 50
    default_batch_size = 100

    def splits(self, data_dir: Path, seed: int) -> Splits:
        val_size = int(self.params.get("val_size", 5000))
        return image_splits(load_mnist(Path(data_dir)), val_size=val_size, crop_padding=0, normalize=False)

    def check_data(self, data_dir: Path) -> None:
        check_mnist(data_dir)

    def build_model(self, seed: int) -> nn.Module:
        return VAE(int(self.params.get("hidden", 400)), int(self.params.get("latent", 20)))

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        images, _ = batch
        return negative_elbo(model, images).mean()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Any) -> tuple[float, float]:
        latent = int(self.params.get("latent", 20))
        generator: torch.Generator | None = None
        total, count = 0.0, 0
        for images, _ in batches:
            if generator is None:  # created on the batches' device, which only the first batch tells
                generator = torch.Generator(device=images.device).manual_seed(0)
            noise = torch.randn(
                (images.shape[0], latent), generator=generator, device=images.device, dtype=images.dtype
            )
            total += float(negative_elbo(model, images, noise).sum())
            count += int(images.shape[0])
        if count == 0:
            return math.nan, math.nan
        return total / count, total / count
