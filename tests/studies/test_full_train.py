"""The full-train replication mode: the paper's protocol, training on the whole training set.

A spec with ``full_train: true`` gets ``val_size: 0`` (where the workload has a holdout); ``val_size:
0`` is refused without it; what needs a validation split (Optuna, plateau arms, ``split: val``) is
refused with it. Trials then train on every training image, record no validation figures and do
not diverge for lack of one; every output of ``demonlab run`` says that no cell was chosen.
Run on the tiny fake CIFAR-10 of ``test_workloads`` (no dataset needed).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from pydantic import ValidationError
from test_workloads import write_cifar10

from studies.executors import execute_study
from studies.report import write_outputs
from studies.report_text import summary_table
from studies.results import TrialResult, TrialStatus
from studies.spec import FULL_TRAIN_NOTE, StudySpec
from studies.workloads import get_workload


def spec_data(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "full-train",
        "workload": "cifar10_resnet20",
        "full_train": True,
        "workload_params": {"augment": False},
        "arms": ["demon_sgdm", "sgdm_step"],
        "lr": [0.05],
        "beta_init": [0.9],
        "seeds": 1,
        "epochs": 2,
        "batch_size": 10,
    }
    return base | changes


def test_full_train_sets_val_size_zero() -> None:
    spec = StudySpec.model_validate(spec_data())
    assert spec.workload_params["val_size"] == 0
    assert spec.protocol_note == FULL_TRAIN_NOTE
    assert StudySpec.model_validate(spec_data(full_train=False, workload_params={})).protocol_note is None


OPTUNA = {"mode": "optuna", "n_trials": 2, "lr": {"min": 0.01, "max": 0.1}, "beta_init": {"min": 0.5, "max": 0.9}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"full_train": False, "workload_params": {"val_size": 0}}, "val_size: 0 trains on the whole training set"),
        ({"workload_params": {"val_size": 500}}, "full_train: workload_params.val_size must be 0 (got 500)"),
        ({"workload": "synthetic", "workload_params": {}}, "workload 'synthetic' has no validation holdout"),
        ({"search": OPTUNA, "lr": [], "beta_init": []}, "search must be grid"),
        ({"split": "val"}, "split must be test"),
        ({"arms": ["demon_sgdm", "sgdm_plateau"]}, "arms ['sgdm_plateau'] step on the validation loss"),
    ],
)
def test_what_needs_a_validation_split_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        StudySpec.model_validate(spec_data(**changes))


def test_val_size_zero_trains_on_every_training_image(tmp_path: Path) -> None:
    images, _ = write_cifar10(tmp_path)
    splits = get_workload("cifar10_resnet20", {"val_size": 0, "augment": False}).splits(tmp_path, seed=0)
    assert (len(splits.train), len(splits.val)) == (len(images), 0)  # type: ignore[arg-type]


def run(spec: StudySpec, data_dir: Path) -> list[TrialResult]:
    results: list[TrialResult] = []
    execute_study(spec, results.append, executor="inprocess", data_dir=data_dir, dataset_dir=data_dir)
    return results


def test_a_full_train_study_completes_without_validation_figures(tmp_path: Path) -> None:
    """Per trial: the workloads with a holdout (image classifiers, the VAE) do not pack."""
    write_cifar10(tmp_path)
    spec = StudySpec.model_validate(spec_data())
    results = run(spec, tmp_path)
    assert len(results) == 2
    for result in results:
        assert result.status is TrialStatus.COMPLETED, result.error
        assert all(v is None or math.isnan(v) for v in (result.val_metric, result.val_loss))
        assert result.best_val_metric is None
        assert all(math.isnan(e.val_loss) and math.isnan(e.val_metric) for e in result.epochs)
        assert result.test_metric is not None
        assert 0 <= result.test_metric <= 1
        assert result.epochs_done == 2


def test_every_output_of_a_run_says_no_cell_was_chosen(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "data")
    spec = StudySpec.model_validate(spec_data(epochs=1))
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text, so the caption can be read back
        report = write_outputs(spec, run(spec, tmp_path / "data"), tmp_path / "out", y_fail=0.9)
    stored = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert stored["study"]["protocol"] == FULL_TRAIN_NOTE
    summary = summary_table(report)
    assert summary.splitlines()[0] == FULL_TRAIN_NOTE
    assert "no cell chosen: no validation split" in summary
    caption = " ".join(re.sub(r"<[^>]+>", " ", (tmp_path / "out" / "heatmap.svg").read_text()).split())
    assert "full-train replication: no validation split, no cell chosen" in caption
