"""The vocabulary (``studies.vocab``): statuses, splits, the y_fail rule, the arm, sampler and
workload registries, and that all of it imports without torch, scipy or a database."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from studies import vocab
from studies.vocab import ARM_REGISTRY, StudyStatus, TrialStatus, impute_score, impute_scores
from studies.vocab.arms import SCHEDULES, arm, check_arm
from studies.workloads import get_workload

NAN, INF = math.nan, math.inf

# (raw value, status, y_fail = 0.9) -> imputed score (None: missing)
IMPUTE_CASES = [
    (0.2, "completed", 0.2),
    (0.95, "completed", 0.9),  # worse than chance: clipped
    (INF, "completed", 0.9),  # a blown-up finite metric: clipped
    (-INF, "completed", None),  # nonsense: missing
    (NAN, "completed", None),  # no value on this split: missing
    (None, "completed", None),
    (0.1, "diverged", 0.9),  # diverged scores y_fail whatever it stored
    (None, "diverged", 0.9),
    (0.1, "failed", None),
    (0.1, "cancelled", None),
    (None, "pending", None),
    (0.3, "running", None),
]


@pytest.mark.parametrize(("value", "status", "expected"), IMPUTE_CASES)
def test_impute_score_rule(value: float | None, status: str, expected: float | None) -> None:
    assert impute_score(value, status, 0.9) == expected


def test_impute_scores_is_the_same_rule_on_arrays() -> None:
    values = [math.nan if v is None else v for v, _, _ in IMPUTE_CASES]
    statuses = [TrialStatus(s) for _, s, _ in IMPUTE_CASES]  # enums and strings alike
    got = impute_scores(values, statuses, 0.9)
    expected = np.array([math.nan if e is None else e for _, _, e in IMPUTE_CASES])
    np.testing.assert_array_equal(got, expected)


def test_impute_refuses_a_non_finite_y_fail() -> None:
    with pytest.raises(ValueError, match="y_fail"):
        impute_scores([0.1], ["completed"], math.inf)


def test_split_problem_names_the_choices() -> None:
    assert vocab.split_problem("val") is None
    assert vocab.split_problem("train") == "unknown split 'train'; valid choices: val, test"


def test_study_statuses() -> None:
    assert [s.value for s in vocab.FINISHED_STUDY_STATUSES] == [
        "completed",
        "completed_with_failures",
        "failed",
        "cancelled",
    ]
    assert [s for s in StudyStatus if s.has_results] == [StudyStatus.COMPLETED, StudyStatus.COMPLETED_WITH_FAILURES]
    assert StudyStatus.COMPLETED_WITH_FAILURES.label == "completed with failures"
    assert all("_" not in s.label for s in StudyStatus)


# ---------------------------------------------------------------------------------------- arms

# name -> (kind, demon, schedule, packed kernel, paper name)
ARM_TABLE = {
    "demon_sgdm": ("sgdm", True, "demon", "demon_sgd", "Demon SGDM"),
    "demon_adam": ("adam", True, "demon", "demon_adam", "Demon Adam"),
    "sgdm_none": ("sgdm", False, "none", "sgd", "SGDM"),
    "sgdm_step": ("sgdm", False, "step", "sgd", "SGDM + LR step"),
    "adam_onecycle": ("adam", False, "onecycle", "adam", "Adam + OneCycle"),
    "adam_plateau": ("adam", False, "plateau", "adam", "Adam + LR decay on plateau"),
    "sgdm_cosmom": ("sgdm", False, "cosmom", "sgd", "SGDM + cosine momentum"),
    "sgdm_linmom": ("sgdm", False, "linmom", "sgd", "SGDM + linear momentum"),
}


def test_every_arm_is_declared_once_with_its_kernel() -> None:
    names = vocab.arm_names()
    assert len(names) == len(set(names))
    assert set(names) >= set(ARM_TABLE)  # the paper's (an arm added as docs/arms.md shows joins them)
    for name, (kind, demon, schedule, kernel, paper) in ARM_TABLE.items():
        declared = arm(name)
        assert (declared.kind, declared.demon, declared.schedule.name) == (kind, demon, schedule)
        assert (declared.kernel, declared.paper_name) == (kernel, paper)


def test_schedule_inputs_come_from_the_declaration() -> None:
    def inputs(name: str) -> tuple[bool, bool]:
        return arm(name).schedule.moves_lr, arm(name).schedule.moves_beta

    assert inputs("demon_sgdm") == (False, True)
    assert inputs("sgdm_cosmom") == (False, True)
    assert inputs("adam_cosine") == (True, False)
    assert inputs("sgdm_onecycle") == (True, True)
    assert SCHEDULES["plateau"].per_epoch


def test_an_unknown_arm_is_an_error_everywhere_not_adam() -> None:
    """It used to become "adam" silently in the pack's kernel choice."""
    for call in (lambda: arm("sgd_momentum"), lambda: check_arm("sgd_momentum", {})):
        with pytest.raises(ValueError, match=r"unknown arm 'sgd_momentum'; valid choices: demon_sgdm"):
            call()


@pytest.mark.parametrize(
    ("name", "params", "beta_init", "nesterov"),
    [
        ("sgdm_step", {"nesterov": True}, 0.9, True),
        ("sgdm_step", {"nesterov": True}, 0.0, False),  # torch's SGD refuses Nesterov without momentum
        ("demon_sgdm", {"nesterov": True}, 0.0, True),  # Demon's SGD takes it
        ("sgdm_step", {}, 0.9, False),
        ("adam_step", {}, 0.9, False),
    ],
)
def test_nesterov_rule(name: str, params: dict[str, bool], beta_init: float, nesterov: bool) -> None:
    assert arm(name).nesterov(params, beta_init) is nesterov


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("adam_step", {"nesterov": True}, "unknown parameter(s) ['nesterov']; valid parameters: gamma, milestones"),
        ("adam_none", {"gamma": 0.5}, "unknown parameter(s) ['gamma']; valid parameters: none"),
        ("sgdm_step", {"gamma": 0.0}, "parameter 'gamma' must lie in (0, 1] (got 0.0)"),
        ("sgdm_step", {"milestones": [0.5, 1.5]}, "'milestones' must be a non-empty list of fractions"),
        ("sgdm_plateau", {"patience": 1.5}, "'patience' must be a whole number (got 1.5)"),
        ("sgdm_onecycle", {"pct_start": 1.0}, "'pct_start' must lie in (0, 1) (got 1.0)"),
        ("sgdm_cosine", {"eta_min": -1.0}, "'eta_min' must lie in [0, inf) (got -1.0)"),
        ("sgdm_none", {"nesterov": 1}, "'nesterov' must be true or false (got 1)"),
    ],
)
def test_arm_parameters_are_checked_by_the_registry(name: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_arm(name, params)
    assert message in str(caught.value)
    assert f"arm {name!r}" in str(caught.value)


def test_defaults_are_declared_with_the_parameters() -> None:
    assert arm("sgdm_step").defaults() == {"nesterov": False, "milestones": [0.5, 0.75], "gamma": 0.1}
    assert arm("adam_exp").settings({"final_factor": 0.5}) == {"final_factor": 0.5}
    assert arm("demon_adam").defaults() == {
        "delay": 0.0,
        "beta_min": 0.0,
        "decoupled_weight_decay": False,
        "first_moment_correction": False,
    }
    assert arm("adam_none").defaults() == {}


def test_register_refuses_a_taken_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        vocab.arms.register(ARM_REGISTRY["demon_sgdm"])


# ----------------------------------------------------------------------------- samplers, workloads


@pytest.mark.parametrize("name", vocab.sampler_names())
def test_every_sampler_builds_seeded(name: str) -> None:
    import optuna

    sampler = vocab.make_sampler(name, seed=3)
    assert isinstance(sampler, getattr(optuna.samplers, vocab.SAMPLERS[name].optuna_class))


def test_an_unknown_sampler_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'bayes'; valid choices: tpe, gp, cmaes, random, qmc"):
        vocab.make_sampler("bayes", seed=0)


@pytest.mark.parametrize(
    ("workload", "params"),
    [
        ("synthetic", {}),
        ("synthetic", {"classes": 7}),
        ("digits_mlp", {}),
        ("digits_cnn", {"channels": 4}),
        ("cifar10_resnet20", {}),
        ("cifar100_vgg16", {}),
        ("stl10_wrn16_8", {}),
        ("mnist_vae", {}),
        ("ptb_lstm", {"vocab_size": 50}),
        ("wine_mlp", {}),
        ("breast_cancer_mlp", {"hidden": 4}),
        ("synthetic_family", {"classes": 6}),
    ],
)
def test_y_fail_is_the_torch_workloads_chance_level(workload: str, params: dict[str, int]) -> None:
    """The torch classes read their chance levels from the declaration: the two never disagree."""
    built = get_workload(workload, params)
    assert vocab.y_fail(workload, params, "metric") == built.chance_metric()
    assert vocab.y_fail(workload, params, "loss") == built.chance_loss()
    assert built.metric_name == vocab.workload_entry(workload).metric_name


def test_chance_levels_follow_the_parameters() -> None:
    assert vocab.y_fail("synthetic", {"classes": 4}, "metric") == pytest.approx(0.75)
    assert vocab.y_fail("cifar100_vgg16", {}, "loss") == pytest.approx(math.log(100))
    assert vocab.y_fail("ptb_lstm", {"vocab_size": 50}, "metric") == 50.0
    valid = "valid choices: breast_cancer_mlp, cifar100_vgg16"
    with pytest.raises(vocab.WorkloadError, match=f"unknown workload 'imagenet'; {valid}"):
        vocab.y_fail("imagenet", {}, "metric")


def test_a_dataset_fixes_its_class_count() -> None:
    with pytest.raises(ValueError, match="num_classes: 10 given, the dataset has 100"):
        vocab.workload_entry("cifar100_vgg16").params({"num_classes": 10})


def test_the_vocabulary_and_the_spec_import_without_torch_scipy_or_sqlalchemy() -> None:
    code = (
        "import sys\n"
        "import studies.vocab, studies.spec, studies.workloads\n"
        "from studies.spec import StudySpec\n"
        "StudySpec.model_validate({'name': 'x', 'workload': 'digits_mlp', 'arms': ['demon_sgdm'], "
        "'lr': [0.1], 'beta_init': [0.9], 'epochs': 1}).metric_name\n"
        "print(sorted(m for m in ('torch', 'scipy', 'sqlalchemy', 'ray', 'optuna') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_declared_packability_is_what_the_pack_finds() -> None:
    from studies.packed import packing_problem

    for name in vocab.workload_names():
        problem = packing_problem(get_workload(name, {}))
        assert vocab.workload_entry(name).packs == (problem is None), (name, problem)


def test_an_unknown_name_suggests_the_names_it_was_probably_meant_as() -> None:
    from studies.vocab.names import suggestions, unknown_name

    workloads = vocab.workload_names()
    assert suggestions("digits", workloads) == ["digits_cnn", "digits_mlp"]  # a prefix
    assert suggestions("digits_mpl", workloads) == ["digits_mlp"]  # a typo
    assert suggestions("demon_sgd", vocab.arm_names()) == ["demon_sgdm"]
    assert suggestions("imagenet", workloads) == []
    assert unknown_name("split", "train", ["val", "test"]) == "unknown split 'train'; valid choices: val, test"
    with pytest.raises(
        vocab.WorkloadError, match=r"unknown workload 'digits' \(did you mean digits_cnn or digits_mlp\?\)"
    ):
        vocab.workload_entry("digits")
