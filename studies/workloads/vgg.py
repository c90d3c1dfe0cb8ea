"""``cifar100_vgg16``: VGG-16 with batch norm on CIFAR-100, a paper sensitivity workload (100 epochs).

Configuration D of Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (ICLR 2015): 13 3×3 convs (64, 64, M, 128, 128, M, 256×3, M, 512×3, M, 512×3, M),
each followed here by batch norm and ReLU, then 3 fully connected layers: 16 weight layers. As is
usual for 32×32 inputs, the five max-pools leave a 1×1×512 map, so the fully connected layers are
512 wide instead of 4096 (dropout before the first two). Convs use He (fan-out) init.

Data: ``cifar.load_cifar100`` (fine labels); validation = the last 5,000 training images.
Parameters: ``augment`` (True), ``val_size`` (5000), ``dropout`` (0.5).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .cifar import check_cifar100, load_cifar100
from .images import ImageArrays, ImageClassification, he_init_convs

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_bn(num_classes: int = 100, dropout: float = 0.5) -> nn.Sequential:
    """VGG-16 with batch norm for 32×32 inputs."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            out_channels = int(item)
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels)]
            layers.append(nn.ReLU())
            in_channels = out_channels
    model = nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, num_classes),
    )
    return he_init_convs(model)


class Cifar100VGG16(ImageClassification):
    """VGG-16-BN on CIFAR-100."""

    name = "cifar100_vgg16"
    description = "VGG-16 with batch norm (Simonyan & Zisserman 2015) on CIFAR-100, crop+flip augmentation"
    default_epochs = 100
    default_batch_size = 128
    uses_gpu = True
    num_classes = 100

    def load(self, data_dir: Path) -> ImageArrays:
        return load_cifar100(data_dir)

    def check_data(self, data_dir: Path) -> None:
        check_cifar100(data_dir)

    def build_model(self, seed: int) -> nn.Module:
        return vgg16_bn(self.num_classes, float(self.params.get("dropout", 0.5)))
