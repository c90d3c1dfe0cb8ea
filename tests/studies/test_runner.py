"""The trial runner: determinism, divergence, failures as results, and the iteration budget."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from torch import nn

import studies.runner
from demon import DemonSGD
from studies.arms import ArmRun, build_arm
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.runner import TrialPlan, run_trial
from studies.workloads import WORKLOADS, Splits


@pytest.fixture
def plan(tmp_path: Path) -> TrialPlan:
    return TrialPlan(workload="synthetic", epochs=3, batch_size=64, data_dir=str(tmp_path))


def test_same_plan_and_key_give_identical_results(plan: TrialPlan) -> None:
    key = TrialKey("demon_sgdm", 0.1, 0.9, 3)
    first, second = run_trial(plan, key), run_trial(plan, key)
    assert first.status is TrialStatus.COMPLETED
    assert first.epochs == second.epochs
    assert (first.val_metric, first.val_loss, first.test_metric, first.test_loss) == (
        second.val_metric,
        second.val_loss,
        second.test_metric,
        second.test_loss,
    )
    other_seed = run_trial(plan, TrialKey("demon_sgdm", 0.1, 0.9, 4))
    assert other_seed.epochs != first.epochs


def test_completed_trial_has_finite_scores_and_a_full_curve(plan: TrialPlan) -> None:
    key = TrialKey("sgdm_cosine", 0.1, 0.9, 0)
    result = run_trial(plan, key)
    assert result.key == key
    assert result.status is TrialStatus.COMPLETED
    assert result.error is None
    assert result.epochs_done == plan.epochs == len(result.epochs)
    assert [e.epoch for e in result.epochs] == [1, 2, 3]
    for value in (result.val_metric, result.val_loss, result.test_metric, result.test_loss):
        assert value is not None
        assert math.isfinite(value)
    assert 0 <= result.val_metric <= 1  # type: ignore[operator]
    assert result.val_metric == result.epochs[-1].val_metric
    assert result.best_val_metric == min(e.val_metric for e in result.epochs)
    assert all(math.isfinite(e.train_loss) for e in result.epochs)
    assert result.wall_seconds > 0
    assert result.device == "cpu"
    assert result.node
    assert TrialResult.from_dict(result.to_dict()) == result


@pytest.mark.parametrize("arm", ["sgdm_none", "demon_sgdm", "adam_none"])
def test_huge_lr_diverges_and_stops_early(plan: TrialPlan, arm: str) -> None:
    result = run_trial(plan, TrialKey(arm, 1e4, 0.9, 0))
    assert result.status is TrialStatus.DIVERGED
    assert result.epochs_done < plan.epochs
    assert result.val_metric is None
    assert result.test_metric is None
    assert result.test_loss is None
    assert result.error is None
    assert TrialResult.from_dict(result.to_dict()) == result


class ExplodingWorkload(WORKLOADS["synthetic"]):  # type: ignore[misc, valid-type]
    """The synthetic workload whose data cannot be loaded (as a missing dataset would)."""

    name = "exploding"

    def splits(self, data_dir: Path, seed: int) -> Splits:
        raise RuntimeError(f"no data for the exploding workload under {data_dir}")


class NaNAfterEpochOne(WORKLOADS["synthetic"]):  # type: ignore[misc, valid-type]
    """The synthetic workload whose model starts producing NaN in its second epoch."""

    name = "nan_later"

    def build_model(self, seed: int) -> nn.Module:
        model = super().build_model(seed)
        train_batches = {"n": 0}

        def poison(module: nn.Module, inputs: Any, output: Any) -> Any:
            train_batches["n"] += module.training
            return output * math.nan if train_batches["n"] > 4 else output  # 4 train batches per epoch

        model.register_forward_hook(poison)
        return model


def test_a_workload_that_raises_gives_a_failed_result(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(WORKLOADS, "exploding", ExplodingWorkload)
    plan = TrialPlan(workload="exploding", epochs=2, data_dir=str(tmp_path))
    result = run_trial(plan, TrialKey("demon_sgdm", 0.1, 0.9, 0))
    assert result.status is TrialStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("RuntimeError: no data for the exploding workload under")
    assert "Traceback" in result.error
    assert result.epochs_done == 0
    assert result.val_metric is None


def test_bad_arm_parameters_give_a_failed_result(tmp_path: Path) -> None:
    plan = TrialPlan(workload="synthetic", arm_params={"sgdm_step": {"gamma_typo": 0.1}}, data_dir=str(tmp_path))
    result = run_trial(plan, TrialKey("sgdm_step", 0.1, 0.9, 0))
    assert result.status is TrialStatus.FAILED
    assert "unknown parameter(s) ['gamma_typo']" in (result.error or "")


def test_a_nan_loss_later_in_training_keeps_the_finished_epochs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(WORKLOADS, "nan_later", NaNAfterEpochOne)
    plan = TrialPlan(workload="nan_later", epochs=3, batch_size=64, data_dir=str(tmp_path))
    result = run_trial(plan, TrialKey("sgdm_none", 0.1, 0.9, 0))
    assert result.status is TrialStatus.DIVERGED
    assert result.epochs_done == 1
    assert len(result.epochs) == 1
    assert math.isfinite(result.epochs[0].val_metric)
    assert result.best_val_metric == result.epochs[0].val_metric


def test_threads_are_restored(plan: TrialPlan) -> None:
    import torch

    before = torch.get_num_threads()
    run_trial(plan, TrialKey("demon_adam", 0.01, 0.9, 0))
    assert torch.get_num_threads() == before


class _ArmSpy:
    """Wraps the real ``build_arm`` to keep what the runner built (nothing is replaced)."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], ArmRun]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> ArmRun:
        arm = build_arm(*args, **kwargs)
        self.calls.append((kwargs, arm))
        return arm


@pytest.mark.parametrize(("n_train", "batch_size", "steps_per_epoch"), [(256, 64, 4), (250, 64, 4), (200, 7, 29)])
def test_total_steps_is_epochs_times_steps_per_epoch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, n_train: int, batch_size: int, steps_per_epoch: int
) -> None:
    spy = _ArmSpy()
    monkeypatch.setattr(studies.runner, "build_arm", spy)
    plan = TrialPlan(
        workload="synthetic",
        workload_params={"n_train": n_train},
        epochs=3,
        batch_size=batch_size,
        data_dir=str(tmp_path),
    )
    result = run_trial(plan, TrialKey("demon_sgdm", 0.05, 0.9, 0))
    assert result.status is TrialStatus.COMPLETED
    [(kwargs, arm)] = spy.calls
    assert kwargs["total_steps"] == 3 * steps_per_epoch
    assert isinstance(arm.optimizer, DemonSGD)
    assert arm.optimizer.demon_step == 3 * steps_per_epoch  # every step taken: β reached 0 on the last
    assert arm.optimizer.current_betas() == [pytest.approx(0.0, abs=1e-12)]


def test_step_arm_ends_at_one_hundredth_of_lr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spy = _ArmSpy()
    monkeypatch.setattr(studies.runner, "build_arm", spy)
    plan = TrialPlan(workload="synthetic", epochs=4, batch_size=64, data_dir=str(tmp_path))
    run_trial(plan, TrialKey("sgdm_step", 0.1, 0.9, 0))
    [(kwargs, arm)] = spy.calls
    assert kwargs["total_steps"] == 16
    assert arm.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_plan_from_spec(tmp_path: Path) -> None:
    from studies.spec import StudySpec

    spec = StudySpec.model_validate(
        {
            "name": "p",
            "workload": "synthetic",
            "workload_params": {"n_train": 128},
            "arms": ["demon_sgdm", {"name": "sgdm_step", "params": {"gamma": 0.5}}],
            "lr": [0.1],
            "beta_init": [0.9],
            "epochs": 5,
            "weight_decay": 1e-4,
            "resources": {"cpu": 2},
        }
    )
    plan = TrialPlan.from_spec(spec, tmp_path)
    assert plan.batch_size == WORKLOADS["synthetic"].default_batch_size
    assert plan.arm_params == {"demon_sgdm": {}, "sgdm_step": {"gamma": 0.5}}
    assert (plan.epochs, plan.weight_decay, plan.threads, plan.data_dir) == (5, 1e-4, 2, str(tmp_path))
    assert plan.workload_params == {"n_train": 128}
