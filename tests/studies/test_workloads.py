"""Workload registry: every model trains a step, every file reader parses its real on-disk format.

The readers are tested on tiny fake datasets written in the official layouts under ``tmp_path``;
the models on random batches of the right shape. Nothing here needs the real data or a GPU.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from studies.workloads import WORKLOADS, Workload, WorkloadError, get_workload, workload_names
from studies.workloads.cifar import load_cifar10, load_cifar100
from studies.workloads.mnist import load_mnist
from studies.workloads.stl10 import load_stl10


def image_batch(channels: int, side: int, classes: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    return lambda: (torch.randn(2, channels, side, side), torch.randint(0, classes, (2,)))


# name → (params, a random batch of 2 in the shape the workload's datasets yield)
MODEL_CASES: dict[str, tuple[dict[str, Any], Callable[[], tuple[torch.Tensor, ...]]]] = {
    "synthetic": ({}, lambda: (torch.randn(2, 8), torch.randint(0, 3, (2,)))),
    "digits_mlp": ({}, lambda: (torch.rand(2, 64), torch.randint(0, 10, (2,)))),
    "digits_cnn": ({}, image_batch(1, 8, 10)),
    "wine_mlp": ({}, lambda: (torch.randn(2, 13), torch.randint(0, 3, (2,)))),
    "breast_cancer_mlp": ({}, lambda: (torch.randn(2, 30), torch.randint(0, 2, (2,)))),
    "synthetic_family": ({"condition": 100.0}, lambda: (torch.randn(2, 16), torch.randint(0, 4, (2,)))),
    "cifar10_resnet20": ({}, image_batch(3, 32, 10)),
    "cifar100_vgg16": ({}, image_batch(3, 32, 100)),
    "stl10_wrn16_8": ({}, image_batch(3, 96, 10)),
    "mnist_vae": ({}, lambda: (torch.rand(2, 1, 28, 28), torch.randint(0, 10, (2,)))),
    "ptb_lstm": ({"hidden": 32, "vocab_size": 50}, lambda: (torch.randint(0, 50, (2, 35)),) * 2),
}


def test_every_registered_workload_has_a_model_case() -> None:
    assert set(MODEL_CASES) == set(WORKLOADS)


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_model_forward_backward(name: str) -> None:
    params, make_batch = MODEL_CASES[name]
    workload = get_workload(name, params)
    torch.manual_seed(0)
    model = workload.build_model(0)
    loss = workload.loss(model, make_batch())
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
    assert workload.description
    assert workload.default_epochs > 0
    assert workload.default_batch_size > 0
    assert workload.chance_metric() > 0
    assert math.isfinite(workload.chance_loss())


@pytest.mark.parametrize(
    ("name", "batch_size", "epochs", "metric"),
    [
        ("cifar10_resnet20", 128, 100, "error"),
        ("cifar100_vgg16", 128, 100, "error"),
        ("stl10_wrn16_8", 64, 50, "error"),
        ("mnist_vae", 100, 50, "nll"),
        ("ptb_lstm", 20, 39, "perplexity"),
    ],
)
def test_paper_budgets(name: str, batch_size: int, epochs: int, metric: str) -> None:
    workload = get_workload(name)
    assert (workload.default_batch_size, workload.default_epochs) == (batch_size, epochs)
    assert workload.metric_name == metric


def test_chance_values() -> None:
    assert get_workload("cifar100_vgg16").chance_metric() == pytest.approx(0.99)
    assert get_workload("mnist_vae").chance_metric() == pytest.approx(784 * math.log(2))
    assert get_workload("mnist_vae").chance_loss() == pytest.approx(784 * math.log(2))
    assert get_workload("ptb_lstm").chance_metric() == 10000
    assert get_workload("ptb_lstm").chance_loss() == pytest.approx(math.log(10000))


def test_unknown_workload_lists_valid_names() -> None:
    with pytest.raises(WorkloadError, match="nope") as info:
        get_workload("nope")
    for name in workload_names():
        assert name in str(info.value)


def test_wrong_num_classes_is_rejected() -> None:
    with pytest.raises(WorkloadError, match="num_classes"):
        get_workload("cifar100_vgg16", {"num_classes": 10})


# --- fake datasets in the official on-disk layouts ---------------------------------------------


def fake_images(n: int, channels: int, side: int, seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).integers(0, 256, (n, channels, side, side), dtype=np.uint8)


def write_pickle(path: Path, images: np.ndarray[Any, Any], labels: list[int], key: bytes) -> None:
    with path.open("wb") as f:
        pickle.dump({b"data": images.reshape(len(images), -1), key: labels}, f)


def write_cifar10(data_dir: Path) -> tuple[np.ndarray[Any, Any], list[int]]:
    """5 batches of 4 training images and a test batch of 6; returns the training images, labels."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = fake_images(20, 3, 32, seed=1), [i % 10 for i in range(20)]
    for b in range(5):
        write_pickle(folder / f"data_batch_{b + 1}", images[4 * b : 4 * b + 4], labels[4 * b : 4 * b + 4], b"labels")
    write_pickle(folder / "test_batch", fake_images(6, 3, 32, seed=2), [9, 8, 7, 6, 5, 4], b"labels")
    return images, labels


def write_cifar100(data_dir: Path) -> tuple[np.ndarray[Any, Any], list[int]]:
    folder = data_dir / "cifar-100-python"
    folder.mkdir(parents=True)
    images, labels = fake_images(20, 3, 32, seed=3), [5 * i for i in range(20)]
    write_pickle(folder / "train", images, labels, b"fine_labels")
    write_pickle(folder / "test", fake_images(6, 3, 32, seed=4), [99, 0, 1, 2, 3, 4], b"fine_labels")
    return images, labels


def write_stl10(data_dir: Path) -> tuple[np.ndarray[Any, Any], list[int]]:
    """Column-major images (stored as N×C×W×H) and labels 1..10 on disk."""
    folder = data_dir / "stl10_binary"
    folder.mkdir(parents=True)
    images, labels = fake_images(20, 3, 96, seed=5), [i % 10 for i in range(20)]
    for split, x, y in (
        ("train", images, labels),
        ("test", fake_images(6, 3, 96, seed=6), [0, 1, 2, 3, 4, 9]),
    ):
        x.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")
        (np.array(y, dtype=np.uint8) + 1).tofile(folder / f"{split}_y.bin")
    return images, labels


def write_idx(path: Path, array: np.ndarray[Any, Any], compress: bool) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    raw = struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def write_mnist(data_dir: Path, compress: bool = False) -> tuple[np.ndarray[Any, Any], list[int]]:
    folder = data_dir / "MNIST" / "raw"
    folder.mkdir(parents=True)
    images, labels = fake_images(20, 1, 28, seed=7), [i % 10 for i in range(20)]
    write_idx(folder / "train-images-idx3-ubyte", images[:, 0], compress)
    write_idx(folder / "train-labels-idx1-ubyte", np.array(labels), compress)
    write_idx(folder / "t10k-images-idx3-ubyte", fake_images(6, 1, 28, seed=8)[:, 0], compress)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 4, 9]), compress)
    return images, labels


Writer = Callable[[Path], tuple[np.ndarray[Any, Any], list[int]]]

# name → (writer, loader, image shape, classes)
READER_CASES: dict[str, tuple[Writer, Callable[[Path], Any], tuple[int, ...], int]] = {
    "cifar10_resnet20": (write_cifar10, load_cifar10, (3, 32, 32), 10),
    "cifar100_vgg16": (write_cifar100, load_cifar100, (3, 32, 32), 100),
    "stl10_wrn16_8": (write_stl10, load_stl10, (3, 96, 96), 10),
    "mnist_vae": (write_mnist, load_mnist, (1, 28, 28), 10),
}


@pytest.mark.parametrize("name", sorted(READER_CASES))
def test_reader_returns_the_images_written(name: str, tmp_path: Path) -> None:
    writer, loader, shape, _ = READER_CASES[name]
    images, labels = writer(tmp_path)
    arrays = loader(tmp_path)
    assert arrays.train_images.dtype == torch.uint8
    assert arrays.train_labels.dtype == torch.long
    assert arrays.train_images.shape == (20, *shape)
    assert arrays.test_images.shape == (6, *shape)
    assert torch.equal(arrays.train_images, torch.from_numpy(images))
    assert arrays.train_labels.tolist() == labels
    assert arrays.test_labels.shape == (6,)


def test_mnist_reads_gzipped_files(tmp_path: Path) -> None:
    images, labels = write_mnist(tmp_path, compress=True)
    arrays = load_mnist(tmp_path)
    assert torch.equal(arrays.train_images, torch.from_numpy(images))
    assert arrays.train_labels.tolist() == labels


@pytest.mark.parametrize("name", sorted(READER_CASES))
def test_splits_shapes_sizes_and_fixed_holdout(name: str, tmp_path: Path) -> None:
    writer, _, shape, classes = READER_CASES[name]
    _, labels = writer(tmp_path)
    splits = get_workload(name, {"val_size": 5, "augment": False}).splits(tmp_path, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 6)  # type: ignore[arg-type]
    # The validation set is the last 5 training images, whatever the seed.
    other_seed = get_workload(name, {"val_size": 5}).splits(tmp_path, seed=7)
    assert [int(splits.val[i][1]) for i in range(5)] == labels[15:]
    assert [int(other_seed.val[i][1]) for i in range(5)] == labels[15:]
    for dataset in (splits.train, splits.val, splits.test):
        image, label = dataset[0]
        assert image.shape == shape
        assert image.dtype == torch.float32
        assert label.dtype == torch.long
        assert 0 <= int(label) < classes
    train = torch.stack([splits.train[i][0] for i in range(15)])
    if name == "mnist_vae":  # Bernoulli targets: pixels stay in [0, 1]
        assert float(train.min()) >= 0.0
        assert float(train.max()) <= 1.0
    else:  # normalised with the training part's per-channel statistics
        assert train.mean(dim=(0, 2, 3)).abs().max() < 1e-4
        assert train.std(dim=(0, 2, 3)) == pytest.approx(torch.ones(shape[0]), abs=0.05)


@pytest.mark.parametrize("name", ["cifar10_resnet20", "stl10_wrn16_8"])
def test_augmentation_keeps_shape_and_follows_the_global_seed(name: str, tmp_path: Path) -> None:
    writer, _, shape, _ = READER_CASES[name]
    writer(tmp_path)
    train = get_workload(name, {"val_size": 5}).splits(tmp_path, seed=0).train
    plain = get_workload(name, {"val_size": 5, "augment": False}).splits(tmp_path, seed=0).train

    def draw() -> torch.Tensor:
        torch.manual_seed(3)
        return torch.stack([train[0][0] for _ in range(8)])

    first = draw()
    assert first.shape == (8, *shape)
    assert torch.equal(first, draw())
    assert any(not torch.equal(view, plain[0][0]) for view in first)  # crops and flips happen


def test_invalid_val_size(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(WorkloadError, match="val_size"):
        get_workload("cifar10_resnet20", {"val_size": 20}).splits(tmp_path, seed=0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cifar10_resnet20", "cifar-10-batches-py"),
        ("cifar100_vgg16", "cifar-100-python"),
        ("stl10_wrn16_8", "stl10_binary"),
        ("mnist_vae", "MNIST/raw"),
        ("ptb_lstm", "ptb"),
    ],
)
def test_missing_data_names_the_expected_path(name: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        get_workload(name).splits(tmp_path / "data", seed=0)
    message = str(info.value)
    assert str(tmp_path / "data" / expected) in message
    assert "http" in message


def test_missing_single_cifar_batch_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(WorkloadError, match="data_batch_3") as info:
        load_cifar10(tmp_path)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") not in str(info.value)


def test_mnist_rejects_a_bad_magic_number(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00" * 64)
    with pytest.raises(WorkloadError, match="magic"):
        load_mnist(tmp_path)


# --- VAE and language model: their own loss and evaluate ---------------------------------------


def test_vae_evaluate_is_deterministic_and_reports_negative_elbo(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    workload = get_workload("mnist_vae", {"val_size": 5, "hidden": 16, "latent": 4})
    splits = workload.splits(tmp_path, seed=0)
    torch.manual_seed(0)
    model = workload.build_model(0).eval()
    batches = list(DataLoader(splits.test, batch_size=4))
    loss, metric = workload.evaluate(model, batches)
    assert (loss, metric) == workload.evaluate(model, batches)
    assert loss == metric
    assert 0 < loss < 10 * workload.chance_metric()


def write_ptb(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    words = ["the", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "ate", "the", "cat"]
    rng = np.random.default_rng(0)
    for name, lines in (("train", 40), ("valid", 8), ("test", 8)):
        text = "\n".join(" ".join(rng.choice(words, size=9)) for _ in range(lines))
        (folder / f"ptb.{name}.txt").write_text(text + ("\n zebra" if name == "test" else "") + "\n")


@pytest.mark.parametrize("subdir", ["ptb", ""])
def test_ptb_reader_sequences_and_perplexity(subdir: str, tmp_path: Path) -> None:
    write_ptb(tmp_path / subdir if subdir else tmp_path)
    workload = get_workload("ptb_lstm", {"hidden": 16, "vocab_size": 20, "bptt": 7})
    splits = workload.splits(tmp_path, seed=0)
    assert len(splits.train) == (40 * 10 - 1) // 7  # type: ignore[arg-type]
    inputs, targets = splits.train[1]
    assert inputs.shape == targets.shape == (7,)
    assert inputs.dtype == torch.long
    assert torch.equal(inputs[1:], targets[:-1])
    torch.manual_seed(0)
    model = workload.build_model(0).eval()
    loss, perplexity = workload.evaluate(model, DataLoader(splits.test, batch_size=4))
    assert perplexity == pytest.approx(math.exp(loss))
    assert perplexity == pytest.approx(20, rel=0.1)  # an untrained model is near uniform


def test_ptb_vocabulary_larger_than_vocab_size_is_rejected(tmp_path: Path) -> None:
    write_ptb(tmp_path)
    with pytest.raises(WorkloadError, match="vocab_size"):
        get_workload("ptb_lstm", {"vocab_size": 5}).splits(tmp_path, seed=0)


# --- digits_cnn: real training on CPU -----------------------------------------------------------


def train_digits_cnn(seed: int, epochs: int = 3) -> tuple[Workload, torch.nn.Module]:
    workload = get_workload("digits_cnn")
    splits = workload.splits(Path("unused"), seed)
    torch.manual_seed(seed)
    model = workload.build_model(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(splits.train, batch_size=32, shuffle=True)
    for _ in range(epochs):
        for batch in loader:
            optimizer.zero_grad()
            workload.loss(model, batch).backward()
            optimizer.step()
    return workload, model.eval()


def test_digits_cnn_learns_and_is_deterministic() -> None:
    workload, model = train_digits_cnn(seed=0)
    test = workload.splits(Path("unused"), 0).test
    _, error = workload.evaluate(model, DataLoader(test, batch_size=256))
    assert error < 0.2
    _, again = train_digits_cnn(seed=0)
    inputs = torch.stack([test[i][0] for i in range(len(test))])  # type: ignore[arg-type]
    with torch.no_grad():
        assert torch.equal(model(inputs), again(inputs))


def test_the_shipped_digits_are_scikit_learns_split_as_before() -> None:
    """``data/digits.npz`` equals scikit-learn's digits split the way the workload always split them."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from studies.workloads.digits import digits_arrays

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    shipped = digits_arrays()
    for mine, theirs in zip(shipped, (x_train, y_train, x_val, y_val, x_test, y_test), strict=True):
        assert mine.dtype == theirs.dtype
        assert torch.equal(mine, theirs)
    assert [len(t) for t in shipped] == [1078, 1078, 359, 359, 360, 360]
    assert np.unique(shipped[1].numpy()).tolist() == list(range(10))
