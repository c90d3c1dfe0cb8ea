"""What the file-based image classifiers share: uint8 images in memory, a fixed holdout, augmentation.

Readers (``cifar``, ``stl10``, ``mnist``) turn the on-disk files into ``ImageArrays`` (uint8
N×C×H×W tensors and int64 labels). ``image_splits`` holds out the **last** ``val_size`` training
images as the validation set: a fixed, seed-independent split, so every trial of a study is scored
on the same images. Pixels stay uint8 in memory and become float per item in ``ImageDataset``,
normalised with per-channel mean and std computed on the training part (the usual statistics,
e.g. CIFAR-10 ≈ (0.491, 0.482, 0.447) ± (0.247, 0.243, 0.262)). Training augmentation is the
standard random crop with zero padding plus horizontal flip, drawn from torch's global RNG, so a
seeded trial sees the same crops every time. Nothing is ever downloaded: ``require_files`` raises
``WorkloadError`` saying which files go where and where to get them.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch
from torch import nn
from torch.utils.data import Dataset

from .base import Splits, Workload, WorkloadError


class ImageArrays(NamedTuple):
    """A dataset as read from disk: uint8 images (N×C×H×W) and int64 labels, train and test."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def require_files(folder: Path, names: list[str], what: str, how_to_get: str) -> None:
    """Raise ``WorkloadError`` naming every missing ``folder/name`` and how to get the data."""
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise WorkloadError(
            f"{what} not found: missing {', '.join(str(folder / name) for name in missing)}. {how_to_get}"
        )


ModelT = TypeVar("ModelT", bound=nn.Module)


def he_init_convs(model: ModelT) -> ModelT:
    """He initialisation (fan-out, ReLU) of every convolution, biases zeroed, as the ResNet, WRN and VGG
    papers' models use it; returns the model."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images in [0, 1] units, shaped (C, 1, 1) for broadcasting."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for chunk in torch.split(images, 1000):  # chunked: a float copy of all of CIFAR would be 1.2 GB
        pixels = chunk.to(torch.float64) / 255.0
        total += pixels.sum(dim=(0, 2, 3))
        squares += pixels.square().sum(dim=(0, 2, 3))
    count = images.numel() // channels
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return mean.float().view(-1, 1, 1), std.float().view(-1, 1, 1)


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """uint8 images → normalised float32 (C×H×W), optionally randomly cropped and flipped.

    ``crop_padding`` > 0 turns on the random crop (zero padding on each side, then a crop back to the
    original size at a uniformly drawn offset) and the horizontal flip (probability 0.5).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: torch.Tensor,
        std: torch.Tensor,
        crop_padding: int = 0,
    ) -> None:
        self.images, self.labels = images, labels
        self.mean, self.std = mean, std
        self.crop_padding = crop_padding

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.crop_padding > 0:
            image = self._augment(image)
        return (image.float() / 255.0 - self.mean) / self.std, self.labels[index]

    def _augment(self, image: torch.Tensor) -> torch.Tensor:
        pad = self.crop_padding
        channels, height, width = image.shape
        canvas = image.new_zeros((channels, height + 2 * pad, width + 2 * pad))
        canvas[:, pad : pad + height, pad : pad + width] = image
        top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
        image = canvas[:, top : top + height, left : left + width]
        if float(torch.rand(())) < 0.5:
            image = image.flip(-1)
        return image


def image_splits(arrays: ImageArrays, *, val_size: int, crop_padding: int, normalize: bool = True) -> Splits:
    """Train / validation (the last ``val_size`` training images) / test datasets over ``arrays``.

    Only the training part is augmented (``crop_padding`` > 0); the statistics come from it too.
    ``normalize=False`` leaves pixels in [0, 1] (for generative models with a Bernoulli decoder).
    ``val_size`` 0 (a spec's ``full_train``, the paper's protocol) trains on every training image
    and leaves the validation set empty.
    """
    n_train = int(arrays.train_labels.shape[0])
    if not 0 <= val_size < n_train:
        raise WorkloadError(f"Invalid val_size {val_size}: need 0 <= val_size < {n_train} training images")
    cut = n_train - val_size
    train_images = arrays.train_images[:cut]
    if normalize:
        mean, std = channel_stats(train_images)
    else:
        channels = int(train_images.shape[1])
        mean, std = torch.zeros(channels, 1, 1), torch.ones(channels, 1, 1)

    def dataset(images: torch.Tensor, labels: torch.Tensor, padding: int = 0) -> ImageDataset:
        return ImageDataset(images, labels, mean=mean, std=std, crop_padding=padding)

    return Splits(
        train=dataset(train_images, arrays.train_labels[:cut], crop_padding),
        val=dataset(arrays.train_images[cut:], arrays.train_labels[cut:]),
        test=dataset(arrays.test_images, arrays.test_labels),
    )


class ImageClassification(Workload):
    """A classifier on a file-based image dataset: ``splits`` is shared, subclasses say what to load.

    Parameters: ``augment`` (True: random crop + flip on the training set), ``val_size`` (the
    holdout, default ``default_val_size``), ``num_classes`` (fixed by the dataset).
    """

    num_classes: int = 10
    default_val_size: int = 5000
    crop_padding: int = 4

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        classes = self.params.setdefault("num_classes", self.num_classes)
        if classes != self.num_classes:
            raise WorkloadError(f"Invalid num_classes {classes}: {self.name} has {self.num_classes}")

    @abstractmethod
    def load(self, data_dir: Path) -> ImageArrays:
        """Read the dataset's files under ``data_dir`` (``WorkloadError`` if missing)."""

    def splits(self, data_dir: Path, seed: int) -> Splits:
        augment = bool(self.params.get("augment", True))
        return image_splits(
            self.load(Path(data_dir)),
            val_size=int(self.params.get("val_size", self.default_val_size)),
            crop_padding=self.crop_padding if augment else 0,
        )
