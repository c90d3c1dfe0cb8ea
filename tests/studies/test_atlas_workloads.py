"""The atlas's workloads: the scikit-learn tables and the synthetic family load, split, pack, and are
what their docstrings say (standardised, conditioned, noisy), and their parameters are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from studies.packed import packing_problem
from studies.spec import StudySpec, expand_trials
from studies.vocab.workload_params import validate_params
from studies.workloads import get_workload
from studies.workloads.synthetic_family import family_arrays

DATA = Path("unused")


@pytest.mark.parametrize(
    ("name", "features", "classes", "sizes"),
    [("wine_mlp", 13, 3, (106, 36, 36)), ("breast_cancer_mlp", 30, 2, (341, 114, 114))],
)
def test_tabular_splits_are_fixed_standardised_and_stratified(
    name: str, features: int, classes: int, sizes: tuple[int, int, int]
) -> None:
    workload = get_workload(name)
    splits = workload.splits(DATA, seed=0)
    parts = (splits.train, splits.val, splits.test)
    assert tuple(len(p) for p in parts) == sizes
    x_train = splits.train.tensors[0]  # type: ignore[attr-defined]
    assert x_train.shape[1] == features
    assert torch.allclose(x_train.mean(dim=0), torch.zeros(features), atol=1e-5)
    assert torch.allclose(x_train.std(dim=0), torch.ones(features), atol=1e-4)
    for part in parts:  # stratified: every class in every split
        assert set(part.tensors[1].tolist()) == set(range(classes))  # type: ignore[attr-defined]
    again = workload.splits(DATA, seed=7).train.tensors[0]  # type: ignore[attr-defined]
    assert torch.equal(x_train, again)  # the trial seed never moves the split
    assert workload.chance_metric() == pytest.approx(1 - 1 / classes)


@pytest.mark.parametrize(
    ("name", "params"),
    [("wine_mlp", {}), ("breast_cancer_mlp", {"hidden": 8}), ("synthetic_family", {"condition": 100.0})],
)
def test_atlas_workloads_pack(name: str, params: dict[str, object]) -> None:
    assert packing_problem(get_workload(name, params)) is None
    spec = StudySpec.model_validate(
        {
            "name": "pack",
            "workload": name,
            "workload_params": params,
            "arms": ["demon_sgdm"],
            "lr": [0.1],
            "beta_init": [0.9],
            "seeds": 2,
            "epochs": 1,
            "execution": {"mode": "packed"},
        }
    )
    assert len(expand_trials(spec)) == 2


def test_synthetic_family_condition_number_is_the_parameter() -> None:
    for condition in (1.0, 1000.0):
        x_train, *_ = family_arrays(condition, 0.0, 20_000, 16, 4, 0.1, 5)
        eigenvalues = torch.linalg.eigvalsh(torch.cov(x_train.T))
        ratio = float(eigenvalues.max() / eigenvalues.min())
        assert ratio == pytest.approx(condition, rel=0.15)


def test_synthetic_family_rotation_keeps_the_bad_directions_off_the_axes() -> None:
    x_train, *_ = family_arrays(1000.0, 0.0, 20_000, 16, 4, 0.1, 5)
    variances = x_train.var(dim=0)
    # Axis-aligned scaling would give per-feature variances spanning the full 1000x.
    assert float(variances.max() / variances.min()) < 100


def test_synthetic_family_label_noise_replaces_that_share_of_labels() -> None:
    clean = family_arrays(1.0, 0.0, 20_000, 16, 4, 1.0, 3)
    noisy = family_arrays(1.0, 0.3, 20_000, 16, 4, 1.0, 3)
    # same draw of inputs up to the noise: compare labels where the clean and noisy labels differ
    changed = float((clean[1] != noisy[1]).float().mean())
    assert changed == pytest.approx(0.3 * 0.75, abs=0.02)  # a replaced label keeps its class 1/4 of the time


def test_synthetic_family_is_the_same_problem_for_every_trial() -> None:
    workload = get_workload("synthetic_family", {"condition": 10.0, "label_noise": 0.1})
    first = workload.splits(DATA, seed=0).test.tensors  # type: ignore[attr-defined]
    second = get_workload("synthetic_family", {"condition": 10.0, "label_noise": 0.1}).splits(DATA, seed=9).test.tensors  # type: ignore[attr-defined]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("synthetic_family", {"condition": 0.5}, "condition"),
        ("synthetic_family", {"label_noise": 1.0}, "label_noise"),
        ("synthetic_family", {"separation": 0}, "separation"),
        ("wine_mlp", {"hidden": 0}, "hidden"),
        ("breast_cancer_mlp", {"layers": 2}, "layers"),
    ],
)
def test_bad_parameters_are_refused_naming_the_key(name: str, params: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        validate_params(name, params)
