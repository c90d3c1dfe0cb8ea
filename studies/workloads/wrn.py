"""``stl10_wrn16_8``: Wide ResNet 16-8 on STL-10, the paper's SGDM sensitivity workload (50 epochs, batch 64).

WRN-d-k of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016): a 3×3 conv to 16
channels, then 3 stages of n = (d − 4) / 6 pre-activation basic blocks (BN-ReLU-conv3×3,
BN-ReLU-dropout-conv3×3) of width 16k / 32k / 64k with strides 1 / 2 / 2, a 1×1 conv shortcut
where the shape changes, then BN-ReLU, global average pooling and a linear classifier. WRN-16-8: n = 2,
widths 128 / 256 / 512, 11.0 M parameters. On 96×96 STL-10 images the stages run at 96 / 48 / 24
pixels; the global pooling makes the network independent of the input size.

Data: ``stl10.load_stl10``; validation = the last 500 of the 5,000 labelled training images;
augmentation pads by 12 pixels (an eighth of the side, as 4 is for CIFAR's 32) before cropping.
Parameters: ``augment`` (True), ``val_size`` (500), ``dropout`` (0.0).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .images import ImageArrays, ImageClassification, he_init_convs
from .stl10 import check_stl10, load_stl10


class WideBasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3×3, BN-ReLU-dropout-conv3×3, plus the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        # As in the authors' code, a projection shortcut takes the pre-activated input.
        return out + (x if self.shortcut is None else self.shortcut(activated))


def wide_resnet(depth: int = 16, widen_factor: int = 8, num_classes: int = 10, dropout: float = 0.0) -> nn.Sequential:
    """WRN-``depth``-``widen_factor`` (depth 6n + 4)."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"Invalid depth {depth}: need 6n + 4 with n ≥ 1")
    blocks, in_channels = (depth - 4) // 6, 16
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1, bias=False)]
    for stage, base in enumerate((16, 32, 64)):
        for i in range(blocks):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(WideBasicBlock(in_channels, base * widen_factor, stride, dropout))
            in_channels = base * widen_factor
    model = nn.Sequential(
        *layers,
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(in_channels, num_classes),
    )
    return he_init_convs(model)


class Stl10WRN16x8(ImageClassification):
    """WRN-16-8 on STL-10."""

    name = "stl10_wrn16_8"
    description = "Wide ResNet 16-8 (Zagoruyko & Komodakis 2016) on STL-10 (96x96), crop+flip augmentation"
    default_epochs = 50
    default_batch_size = 64
    uses_gpu = True
    num_classes = 10
    default_val_size = 500
    crop_padding = 12

    def load(self, data_dir: Path) -> ImageArrays:
        return load_stl10(data_dir)

    def check_data(self, data_dir: Path) -> None:
        check_stl10(data_dir)

    def build_model(self, seed: int) -> nn.Module:
        return wide_resnet(16, 8, self.num_classes, float(self.params.get("dropout", 0.0)))
