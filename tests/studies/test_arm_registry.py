"""Adding an arm is one registry entry (``docs/arms.md``): the worked example of the docs, registered
by this test alone, is validated by the spec, built on torch, packed, reported and paired with Demon,
with no other change anywhere."""

from __future__ import annotations

import pytest
import torch
from test_packed import figures

from studies.arms import build_arm
from studies.executors import execute_study
from studies.metrics import default_pairs
from studies.packed.schedules import MemberSchedules
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.spec import StudySpec
from studies.vocab import arms as registry

NAME = "sgdm_step_thirds"


@pytest.fixture
def thirds(monkeypatch: pytest.MonkeyPatch) -> registry.Arm:
    """The docs' example, registered for this test only (``monkeypatch`` removes it afterwards)."""
    entry = registry.Arm(
        NAME,
        "sgdm",
        registry.SCHEDULES["step"].with_defaults(milestones=[1 / 3, 2 / 3]),
        "SGDM + LR step at 1/3 and 2/3",
    )
    monkeypatch.setitem(registry.ARMS, NAME, entry)
    return entry


def _spec(mode: str) -> StudySpec:
    return StudySpec.model_validate(
        {
            "name": "thirds",
            "workload": "synthetic",
            "arms": ["demon_sgdm", NAME],
            "lr": [0.05, 0.5],
            "beta_init": [0.9],
            "seeds": 2,
            "epochs": 3,
            "execution": {"mode": mode},
        }
    )


def test_the_entry_is_all_the_spec_and_the_builders_need(thirds: registry.Arm) -> None:
    assert registry.arm(NAME) is thirds
    registry.check_arm(NAME, {"gamma": 0.5, "nesterov": True})
    with pytest.raises(ValueError, match=r"parameter 'gamma' must lie in \(0, 1\]"):
        registry.check_arm(NAME, {"gamma": 2.0})
    assert [a.name for a in _spec("per_trial").arms] == ["demon_sgdm", NAME]
    assert thirds.defaults() == {"nesterov": False, "milestones": [1 / 3, 2 / 3], "gamma": 0.1}

    run = build_arm(NAME, {}, [torch.nn.Parameter(torch.zeros(1))], lr=1.0, beta_init=0.9, total_steps=9)
    lrs = []
    for _ in range(9):
        lrs.append(run.optimizer.param_groups[0]["lr"])
        run.optimizer.step()
        run.after_iteration()
    assert lrs == pytest.approx([1.0] * 3 + [0.1] * 3 + [0.01] * 3)
    assert (thirds.kernel, thirds.schedule.moves_lr, thirds.schedule.moves_beta) == ("sgd", True, False)
    table = MemberSchedules([TrialKey(NAME, 1.0, 0.9, 0)], {}, 9, torch.device("cpu"))
    assert [float(table.at(t)[0][0]) for t in range(9)] == lrs  # the pack's schedule is the same, exactly
    assert default_pairs(["demon_sgdm", NAME]) == [("demon_sgdm", NAME)]


def test_the_new_arm_runs_per_trial_and_packed_with_the_same_results(thirds: registry.Arm, tmp_path: object) -> None:
    results: dict[str, dict[TrialKey, TrialResult]] = {}
    for mode in ("per_trial", "packed"):
        got: dict[TrialKey, TrialResult] = {}
        summary = execute_study(
            _spec(mode), lambda r, got=got: got.__setitem__(r.key, r), executor="inprocess", data_dir=str(tmp_path)
        )
        assert summary.failed == 0, summary.errors
        results[mode] = got
    per_trial, packed = results["per_trial"], results["packed"]
    assert sorted(per_trial) == sorted(packed)
    assert {k.arm for k in per_trial} == {"demon_sgdm", NAME}
    for key, one in per_trial.items():
        assert one.status in (TrialStatus.COMPLETED, TrialStatus.DIVERGED)
        assert figures(packed[key]) == figures(one), key  # bit for bit
