"""Workload parameter models and the data checks that run once per study, not once per trial."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from studies.vocab.workload_params import PARAMS, validate_params
from studies.workloads import WorkloadError, get_workload, workload_names


def test_every_workload_accepts_its_defaults() -> None:
    for name in workload_names():
        assert validate_params(name, {}) == {}
        model = PARAMS[name]()
        get_workload(name, model.model_dump(exclude_none=True, exclude={"hold"}))  # the defaults build


@pytest.mark.parametrize(
    ("workload", "files"),
    [
        ("cifar10_resnet20", "cifar-10-batches-py/data_batch_1"),
        ("cifar100_vgg16", "cifar-100-python/train"),
        ("stl10_wrn16_8", "stl10_binary/train_X.bin"),
        ("mnist_vae", "MNIST/raw/train-images-idx3-ubyte"),
        ("ptb_lstm", "ptb/ptb.train.txt"),
    ],
)
def test_check_data_names_what_is_missing_without_loading(workload: str, files: str, tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as caught:
        get_workload(workload).check_data(tmp_path)
    assert str(tmp_path / files) in str(caught.value)


@pytest.mark.parametrize("workload", ["synthetic", "digits_mlp", "digits_cnn"])
def test_offline_workloads_have_nothing_to_check(workload: str, tmp_path: Path) -> None:
    get_workload(workload).check_data(tmp_path / "nowhere")


def test_cifar10_files_present_pass_the_check(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (folder / name).write_bytes(b"")
    get_workload("cifar10_resnet20").check_data(tmp_path)  # presence only: nothing is read


def test_a_held_synthetic_trial_waits_until_the_hold_file_goes(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    workload = get_workload("synthetic", {"hold": str(hold), "n_train": 16})
    done = threading.Event()
    thread = threading.Thread(target=lambda: (workload.splits(tmp_path, 0), done.set()), daemon=True)
    thread.start()
    assert not done.wait(0.3)  # held
    hold.unlink()
    assert done.wait(10)
