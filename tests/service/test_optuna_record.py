"""Every finished trial also lands in the Optuna storage the service keeps (``optuna_url``), on SQLite
and PostgreSQL: one Optuna study per arm, lr and β_init as distributions, the seed, both splits'
scores, divergence and the demonlab study id as user attributes; once per trial across relaunches."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest

from service.analysis import y_fail
from service.jobs.driver import optuna_url
from service.jobs.optuna_record import OptunaRecorder, optuna_study_name
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus
from studies.spec import StudySpec, expand_trials


def result(key: TrialKey) -> TrialResult:
    if key.lr == 1.0:
        return TrialResult(key=key, status=TrialStatus.DIVERGED, epochs=(), val_loss=math.inf, epochs_done=1)
    value = 0.1 * key.lr + 0.01 * key.seed
    return TrialResult(
        key=key,
        status=TrialStatus.COMPLETED,
        epochs=(EpochRecord(0, 1.0, 0.5, value),),
        val_metric=value,
        val_loss=0.5,
        test_metric=value + 0.01,
        test_loss=0.55,
        epochs_done=1,
        wall_seconds=0.2,
        node="node-a",
        device="cpu",
    )


def test_grid_study_trials_are_in_optunas_storage(settings_factory: Any, smoke_spec: dict[str, Any]) -> None:
    settings = settings_factory()
    spec = StudySpec.model_validate(smoke_spec, context={"max_trials": 1000})
    fail = y_fail(spec, "metric")
    keys = expand_trials(spec)
    recorder = OptunaRecorder(optuna_url(settings), "abc123def456", spec, fail)
    for key in keys:
        recorder.record(result(key))
    failed = TrialResult(key=keys[0], status=TrialStatus.FAILED, epochs=(), error="boom")
    recorder.record(failed)  # not a result: not recorded
    again = OptunaRecorder(optuna_url(settings), "abc123def456", spec, fail)  # a relaunched driver
    for key in keys[:5]:
        again.record(result(key))

    storage = optuna.storages.RDBStorage(optuna_url(settings))
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert names == {"abc123def456:demon_sgdm", "abc123def456:sgdm_step"}
    for arm in ("demon_sgdm", "sgdm_step"):
        study = optuna.load_study(study_name=f"abc123def456:{arm}", storage=storage)
        assert study.user_attrs["demonlab_study_id"] == "abc123def456"
        trials = study.get_trials()
        assert len(trials) == 12  # 3 lr × 2 β × 2 seeds, each once
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        assert {(t.params["lr"], t.params["beta_init"], t.user_attrs["seed"]) for t in trials} == {
            (k.lr, k.beta_init, k.seed) for k in keys if k.arm == arm
        }
        lr_dist = trials[0].distributions["lr"]
        assert isinstance(lr_dist, optuna.distributions.FloatDistribution)
        assert (lr_dist.low, lr_dist.high, lr_dist.log) == (0.01, 1.0, True)
        assert trials[0].distributions["beta_init"] == optuna.distributions.FloatDistribution(0.8, 0.9)
        for t in trials:
            assert t.user_attrs["demonlab_study_id"] == "abc123def456"
            assert t.user_attrs["arm"] == arm
            if t.params["lr"] == 1.0:
                assert t.user_attrs["diverged"] is True
                assert t.value == pytest.approx(fail)
                assert t.user_attrs["val_loss"] is None
            else:
                assert t.user_attrs["diverged"] is False
                expected = 0.1 * t.params["lr"] + 0.01 * t.user_attrs["seed"]
                assert t.value == pytest.approx(expected)
                assert t.user_attrs["test_metric"] == pytest.approx(expected + 0.01)
                assert t.user_attrs["node"] == "node-a"


def test_search_study_trials_stay_apart_from_the_sampler(settings_factory: Any) -> None:
    settings = settings_factory()
    raw = {
        "name": "search",
        "workload": "synthetic",
        "arms": ["demon_sgdm"],
        "seeds": 2,
        "epochs": 1,
        "search": {
            "mode": "optuna",
            "n_trials": 3,
            "lr": {"min": 0.001, "max": 1.0},
            "beta_init": {"min": 0.5, "max": 0.95},
        },
    }
    spec = StudySpec.model_validate(raw, context={"max_trials": 1000})
    recorder = OptunaRecorder(optuna_url(settings), "0123456789ab", spec, 1.0)
    recorder.record(result(TrialKey("demon_sgdm", 0.02, 0.7, 1)))
    assert optuna_study_name("0123456789ab", "demon_sgdm", search=True) == "0123456789ab:demon_sgdm:seeds"
    storage = optuna.storages.RDBStorage(optuna_url(settings))
    study = optuna.load_study(study_name="0123456789ab:demon_sgdm:seeds", storage=storage)
    (trial,) = study.get_trials()
    assert trial.params == {"lr": 0.02, "beta_init": 0.7}
    assert trial.distributions["lr"] == optuna.distributions.FloatDistribution(0.001, 1.0, log=True)
    assert "0123456789ab:demon_sgdm" not in {s.study_name for s in optuna.get_all_study_summaries(storage)}
