"""Where a driver runs a study's trials (``service.jobs.driver.driver_executor``): small CPU grid
studies and packed CPU studies in the driver's own process on a local driver (no Ray to start), all
else on Ray."""

from __future__ import annotations

from typing import Any

import pytest

from service.jobs.driver import driver_executor
from service.settings import Settings
from studies.spec import StudySpec

BASE: dict[str, Any] = {
    "name": "placement",
    "workload": "synthetic",
    "arms": ["demon_sgdm"],
    "lr": [0.1],
    "beta_init": [0.9],
    "epochs": 10,
}
PER_TRIAL = {"execution": {"mode": "per_trial"}}
SEARCH = {
    "search": {"mode": "optuna", "n_trials": 4, "lr": {"min": 0.01, "max": 0.1}, "beta_init": {"min": 0.5, "max": 0.9}},
    "lr": [],
    "beta_init": [],
}


@pytest.mark.parametrize(
    ("spec", "pending", "settings", "expected"),
    [
        (PER_TRIAL, 20, {}, "inprocess"),  # 20 trials × 10 epochs = 200: small, no Ray (the default)
        (PER_TRIAL, 21, {}, "ray"),  # 210 > 200
        (PER_TRIAL, 1, {"small_study_epochs": 0}, "ray"),  # asked for Ray always
        (PER_TRIAL, 20, {"warm_drivers": False}, "inprocess"),  # fresh drivers skip Ray for it too
        ({}, 5000, {}, "inprocess"),  # synthetic packs: packed by default, in the driver
        (PER_TRIAL | {"resources": {"gpu": 1}}, 1, {}, "ray"),
        (SEARCH, None, {}, "ray"),  # a search proposes its trials through Ray Tune
        (PER_TRIAL, 1, {"ray_address": "127.0.0.1:6379"}, "ray"),  # a cluster is configured
        ({}, 1, {"launcher": "ray", "ray_address": "http://head:8265"}, "ray"),
    ],
)
def test_where_a_driver_runs_the_trials(
    spec: dict[str, Any], pending: int | None, settings: dict[str, Any], expected: str, tmp_path: object
) -> None:
    study = StudySpec.model_validate(BASE | spec)
    assert driver_executor(Settings(data_dir=tmp_path, **settings), study, pending) == expected


def test_small_studies_skip_ray_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEMONLAB_WARM_DRIVERS", "DEMONLAB_SMALL_STUDY_EPOCHS"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    assert defaults.warm_drivers
    assert defaults.small_study_epochs == 200
