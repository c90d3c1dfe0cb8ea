"""Reader for MNIST's IDX files (as torchvision stores them): ``<data_dir>/MNIST/raw/``.

Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each either unpacked or as the original ``.gz``. An IDX file is a
big-endian header (magic 2051 for images, 2049 for labels, then one uint32 per dimension)
followed by uint8 data. 60,000 training and 10,000 test images of 1×28×28.
"""

from __future__ import annotations

import gzip
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .base import WorkloadError
from .images import ImageArrays

MNIST_URL = "https://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MAGIC = {3: 2051, 1: 2049}  # number of dimensions → magic number


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """A uint8 IDX file (plain or gzipped) as a tensor of its ``ndim`` dimensions."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    header_size = 4 * (1 + ndim)
    if len(raw) < header_size or struct.unpack(">I", raw[:4])[0] != _MAGIC[ndim]:
        raise WorkloadError(f"{path}: not an IDX file of {ndim} dimension(s) (bad magic number)")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_size)
    if data.size != int(np.prod(shape)):
        raise WorkloadError(f"{path}: header says {shape} but holds {data.size} bytes")
    return torch.from_numpy(data.reshape(shape).copy())


def _require_mnist(folder: Path) -> dict[str, Path | None]:
    paths = {key: _find(folder, name) for key, name in FILES.items()}
    missing = [FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise WorkloadError(
            f"MNIST not found: missing {', '.join(str(folder / name) for name in missing)} (or .gz). "
            f"Put the four MNIST IDX files (plain or .gz) in {folder}; download them from {MNIST_URL}"
        )
    return paths


@lru_cache(maxsize=1)
def _load_mnist(folder: Path) -> ImageArrays:
    paths = _require_mnist(folder)

    def read(key: str, ndim: int) -> torch.Tensor:
        path = paths[key]
        assert path is not None
        return read_idx(path, ndim)

    arrays = ImageArrays(
        read("train_images", 3).unsqueeze(1),
        read("train_labels", 1).long(),
        read("test_images", 3).unsqueeze(1),
        read("test_labels", 1).long(),
    )
    if len(arrays.train_images) != len(arrays.train_labels) or len(arrays.test_images) != len(arrays.test_labels):
        raise WorkloadError(f"{folder}: the image and label files hold different numbers of items")
    return arrays


def check_mnist(data_dir: Path) -> None:
    """Raise ``WorkloadError`` (what goes where) unless MNIST's files are under ``data_dir``."""
    _require_mnist(Path(data_dir).resolve() / "MNIST" / "raw")


def load_mnist(data_dir: Path) -> ImageArrays:
    """MNIST from ``data_dir/MNIST/raw``: uint8 images N×1×28×28 and int64 labels 0..9."""
    return _load_mnist(Path(data_dir).resolve() / "MNIST" / "raw")
