"""The response models of /sensitivity and /robustness accept every shape the metric code returns.

FastAPI validates each answer against ``response_model``; a field the model lacks would be
dropped silently and a mismatch would be a 500. These tests feed the models the reports of the
real metric code on every kind of grid: complete with enough seeds for pair intervals, with too
few seeds, incomplete (Optuna's fANOVA), and with a pair that cannot be compared.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from service.schemas import RobustnessPublic, SensitivityPublic
from studies.metrics import GridAxes, aggregate_robustness, sensitivity_report

LRS = (0.01, 0.1, 1.0)
BETAS = (0.5, 0.9)
Y_FAIL = 0.9


def scores(
    n_seeds: int, drop: tuple[str, float, float] | None = None, few_seeds_arm: str | None = None
) -> pd.DataFrame:
    rng = np.random.default_rng(n_seeds)
    rows = []
    for n, arm in enumerate(("demon_sgdm", "sgdm_step", "sgdm_cosine")):
        for i, lr in enumerate(LRS):
            for beta in BETAS:
                if drop == (arm, lr, beta):
                    continue
                for seed in range(1 if arm == few_seeds_arm else n_seeds):
                    diverged = i == 2 and seed == 0
                    value = math.nan if diverged else 0.1 + 0.1 * i + 0.02 * n + rng.normal(0, 0.01)
                    rows.append(
                        {
                            "arm": arm,
                            "lr": lr,
                            "beta_init": beta,
                            "seed": seed,
                            "status": "diverged" if diverged else "completed",
                            "val": value,
                            "test": value,
                        }
                    )
    return pd.DataFrame(rows)


def answer(report: dict[str, Any]) -> dict[str, Any]:
    """What ``service.analysis.sensitivity`` adds to the report."""
    study = {"id": "s1", "metric": "error", "split": "test", "eps": report["eps"], "relative": report["relative"]}
    return report | {"study": study | {"status": "completed", "protocol": None}}


def roundtrip(report: dict[str, Any]) -> dict[str, Any]:
    body = answer(report)
    dumped = SensitivityPublic.model_validate(body).model_dump(mode="json")
    assert dumped == body  # nothing dropped, nothing added
    return dumped


def test_complete_grid_with_pair_intervals() -> None:
    body = roundtrip(sensitivity_report(scores(6), GridAxes(LRS, BETAS, tuple(range(6))), Y_FAIL, n_resamples=200))
    pair = body["pairs"][0]
    assert pair["deltas"][0]["interval"]["status"] == "ok"
    assert pair["win_probability"]["intervals"][0]["min_level"] == 0.95


def test_too_few_seeds_incomplete_grid_and_a_pair_on_other_seeds() -> None:
    data = scores(2, drop=("sgdm_step", 1.0, 0.9), few_seeds_arm="sgdm_cosine")
    body = roundtrip(sensitivity_report(data, GridAxes(LRS, BETAS, (0, 1)), Y_FAIL, eps="seed_spread"))
    assert body["arms"]["sgdm_step"]["variance"]["method"] == "optuna_fanova"
    errors = [p for p in body["pairs"] if "error" in p]
    assert [(p["arm_a"], p["arm_b"]) for p in errors] == [("demon_sgdm", "sgdm_cosine")]
    step = next(p for p in body["pairs"] if p.get("arm_b") == "sgdm_step")
    assert step["deltas"][0]["interval"]["status"] == "too_few_seeds"
    assert step["win_probability"]["status"] == "incomplete"


def test_robustness_aggregate() -> None:
    report = sensitivity_report(scores(2), GridAxes(LRS, BETAS, (0, 1)), Y_FAIL)
    key = {"workload": "synthetic", "epochs": 2, "seeds": [0, 1], "metric": "error", "split": "test"}
    body = aggregate_robustness([{"study_id": "s1", "key": key, "arms": report["arms"]}])
    body["query"] = {"workload": "synthetic", "arm": None, "epochs": None, "studies": 1}
    assert RobustnessPublic.model_validate(body).model_dump(mode="json") == body
