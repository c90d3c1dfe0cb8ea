"""``cifar10_resnet20``: ResNet-20 on CIFAR-10, the paper's Adam sensitivity workload (100 epochs, batch 128).

The CIFAR ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016, §4.2):
a 3×3 conv to 16 channels, then 3 stages of n basic blocks (two 3×3 conv + BN, post-activation)
with 16/32/64 channels and feature maps 32/16/8, global average pooling and a linear classifier;
depth 6n + 2, so n = 3 for ResNet-20 (0.27 M parameters). Shortcuts are **option A**, as in the
paper's CIFAR experiments: identity, and where a stage halves the map and doubles the channels,
a stride-2 subsample padded with zero channels (no parameters). Convs use He (fan-out) init.

Data: ``cifar.load_cifar10``; validation = the last 5,000 training images (``val_size``).
Parameters: ``augment`` (True), ``val_size`` (5000).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .cifar import check_cifar10, load_cifar10
from .images import ImageArrays, ImageClassification, he_init_convs


class ShortcutA(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad the extra channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra_channels = stride, out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ShortcutA(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def resnet_cifar(depth: int = 20, num_classes: int = 10) -> nn.Sequential:
    """The CIFAR ResNet of depth 6n + 2 (20, 32, 44, 56, 110) with option-A shortcuts."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"Invalid depth {depth}: need 6n + 2 with n ≥ 1")
    blocks, layers, in_channels = (depth - 2) // 6, [], 16
    for stage, channels in enumerate((16, 32, 64)):
        for i in range(blocks):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(BasicBlock(in_channels, channels, stride))
            in_channels = channels
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )
    return he_init_convs(model)


class Cifar10ResNet20(ImageClassification):
    """ResNet-20 (option-A shortcuts) on CIFAR-10."""

    name = "cifar10_resnet20"
    description = "ResNet-20 (He et al. 2016, option-A shortcuts) on CIFAR-10, crop+flip augmentation"
    default_epochs = 100
    default_batch_size = 128
    uses_gpu = True
    num_classes = 10

    def load(self, data_dir: Path) -> ImageArrays:
        return load_cifar10(data_dir)

    def check_data(self, data_dir: Path) -> None:
        check_cifar10(data_dir)

    def build_model(self, seed: int) -> nn.Module:
        return resnet_cifar(20, self.num_classes)
