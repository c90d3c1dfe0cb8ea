"""The response models of /sensitivity and /robustness accept every shape the metric code returns.

FastAPI validates each answer against ``response_model``; a field the model lacks would be
dropped silently and a mismatch would be a 500. These tests feed the models the reports of the
real metric code on every kind of grid: complete with enough seeds for intervals, with too few
seeds, incomplete (Optuna's fANOVA), and with a pair that cannot be compared.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from service.schemas import RobustnessPublic, SensitivityPublic
from studies.metrics import GridAxes, aggregate_robustness, sensitivity_report
from studies.metrics.models import SensitivityReport

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


def answer(report: SensitivityReport) -> dict[str, Any]:
    """What ``service.analysis.sensitivity`` serves: the report and the study it describes, as JSON."""
    body = report.model_dump(mode="json")
    return body | {"study": {"id": "s1", "metric": "error", "split": "test", "status": "completed", "protocol": None}}


def roundtrip(report: SensitivityReport) -> dict[str, Any]:
    body = answer(report)
    dumped = SensitivityPublic.model_validate(body).model_dump(mode="json")
    assert dumped == body  # nothing dropped, nothing added
    return dumped


def test_complete_grid_with_pair_intervals() -> None:
    body = roundtrip(sensitivity_report(scores(8), GridAxes(LRS, BETAS, tuple(range(8))), Y_FAIL))
    pair = body["pairs"][0]
    assert pair["primary"]["interval"]["status"] == "ok"
    assert pair["primary"]["interval"]["level"] == 0.95
    assert pair["verdict"]["outcome"] in ("a_less_sensitive", "b_less_sensitive", "no_detectable_difference")


def test_too_few_seeds_incomplete_grid_and_a_pair_on_other_seeds() -> None:
    data = scores(2, drop=("sgdm_step", 1.0, 0.9), few_seeds_arm="sgdm_cosine")
    body = roundtrip(sensitivity_report(data, GridAxes(LRS, BETAS, (0, 1)), Y_FAIL))
    assert body["arms"]["sgdm_step"]["variance"]["method"] == "optuna_fanova"
    errors = [p for p in body["pairs"] if "error" in p]
    assert [(p["arm_a"], p["arm_b"]) for p in errors] == [("demon_sgdm", "sgdm_cosine")]
    step = next(p for p in body["pairs"] if p.get("arm_b") == "sgdm_step")
    assert step["primary"]["interval"]["status"] == "incomplete"  # a cell never run: no seed has a share
    assert step["verdict"]["outcome"] == "inconclusive_too_few_seeds"
    width = next(d for d in step["exploratory"] if d["figure"] == "success_lr_width")
    assert width["status"] == "incomplete"


def test_robustness_aggregate() -> None:
    report = sensitivity_report(scores(8), GridAxes(LRS, BETAS, tuple(range(8))), Y_FAIL)
    key = {"workload": "synthetic", "epochs": 2, "seeds": list(range(8)), "metric": "error", "split": "test"}
    result = aggregate_robustness([{"study_id": "s1", "key": key, "arms": report.arms}])
    body = result.model_dump(mode="json")
    body["query"] = {"workload": "synthetic", "arm": None, "epochs": None, "studies": 1, "unreadable": []}
    assert RobustnessPublic.model_validate(body).model_dump(mode="json") == body
    group = body["groups"][0]
    assert group["success_share"]["studies"][0]["interval"]["status"] == "ok"
