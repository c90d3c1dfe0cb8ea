"""Reader for STL-10's binary version (as torchvision stores it): ``<data_dir>/stl10_binary/``.

Files: ``train_X.bin`` / ``test_X.bin`` (uint8, each image 3×96×96 stored column-major, i.e. as
channel × width × height) and ``train_y.bin`` / ``test_y.bin`` (uint8 labels 1..10, returned as
0..9). 5,000 labelled training and 8,000 test images; the 100,000 unlabelled images are not used.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .base import WorkloadError
from .images import ImageArrays, require_files

STL10_URL = "https://cs.stanford.edu/~acoates/stl10/"
SIDE = 96


def _read(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
    labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
    image_size = 3 * SIDE * SIDE
    if pixels.size != labels.size * image_size:
        raise WorkloadError(f"{folder}/{split}_X.bin: expected {labels.size} images of 3×96×96 bytes")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise WorkloadError(f"{folder}/{split}_y.bin: labels must be 1..10")
    # Column-major on disk: (N, C, W, H); transpose to (N, C, H, W).
    images = np.ascontiguousarray(pixels.reshape(-1, 3, SIDE, SIDE).transpose(0, 1, 3, 2))
    return torch.from_numpy(images), torch.from_numpy(labels)


def _require_stl10(folder: Path) -> None:
    require_files(
        folder,
        ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"],
        "STL-10",
        f"Put STL-10's binary version (the folder stl10_binary/ with train_X.bin, train_y.bin, "
        f"test_X.bin and test_y.bin, unpacked from stl10_binary.tar.gz) under {folder.parent}; "
        f"download it from {STL10_URL}",
    )


@lru_cache(maxsize=1)
def _load_stl10(folder: Path) -> ImageArrays:
    _require_stl10(folder)
    return ImageArrays(*_read(folder, "train"), *_read(folder, "test"))


def check_stl10(data_dir: Path) -> None:
    """Raise ``WorkloadError`` (what goes where) unless STL-10's files are under ``data_dir``."""
    _require_stl10(Path(data_dir).resolve() / "stl10_binary")


def load_stl10(data_dir: Path) -> ImageArrays:
    """STL-10's labelled images from ``data_dir/stl10_binary``."""
    return _load_stl10(Path(data_dir).resolve() / "stl10_binary")
