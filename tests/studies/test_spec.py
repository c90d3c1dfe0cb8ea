"""Study specs: parsing (YAML, JSON), normalisation, validation errors, and grid expansion."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from studies.results import TrialKey
from studies.spec import (
    LogRange,
    OptunaSearchSpec,
    StudySpec,
    expand_trials,
    load_spec,
    parse_spec_text,
)
from studies.vocab.arms import arm_names
from studies.workloads import workload_names

EXAMPLES = Path(__file__).resolve().parents[2] / "studies" / "examples"

BASE: dict[str, Any] = {
    "name": "t",
    "workload": "synthetic",
    "arms": ["demon_sgdm", "sgdm_step"],
    "lr": [0.3, 0.01, 0.1],
    "beta_init": [0.9, 0.8],
    "seeds": 2,
    "epochs": 2,
}

OPTUNA_SEARCH: dict[str, Any] = {
    "mode": "optuna",
    "sampler": "random",
    "n_trials": 4,
    "lr": {"min": 0.001, "max": 1.0},
    "beta_init": {"min": 0.5, "max": 0.95},
}


def spec(**overrides: Any) -> StudySpec:
    return StudySpec.model_validate({**BASE, **overrides})


YAML_TEXT = """
name: yaml-study
workload: synthetic
arms: [demon_sgdm, {name: sgdm_step, params: {milestones: [0.3, 0.6]}}]
lr: [0.1, 0.01]
beta_init: [0.9]
seeds: [3, 1]
epochs: 3
resources: {cpu: 1, gpu: 0}
"""


def test_yaml_parses_and_normalises() -> None:
    parsed = parse_spec_text(YAML_TEXT)
    assert parsed.name == "yaml-study"
    assert [a.name for a in parsed.arms] == ["demon_sgdm", "sgdm_step"]
    assert parsed.arms[1].params == {"milestones": [0.3, 0.6]}
    assert parsed.lr_values == [0.01, 0.1]
    assert parsed.seed_values == [1, 3]
    assert parsed.trial_count == 2 * 2 * 1 * 2


def test_json_and_yaml_files_give_the_same_spec(tmp_path: Path) -> None:
    from_yaml = tmp_path / "s.yaml"
    from_yaml.write_text(YAML_TEXT)
    from_json = tmp_path / "s.json"
    from_json.write_text(json.dumps(load_spec(from_yaml).model_dump(mode="json")))
    assert load_spec(from_json) == load_spec(from_yaml)
    assert load_spec(from_json).spec_hash() == load_spec(from_yaml).spec_hash()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_spec_is_valid(path: Path) -> None:
    loaded = load_spec(path)
    assert loaded.trial_count == len(expand_trials(loaded)) > 0


def test_lr_list_is_sorted() -> None:
    assert spec().lr == [0.01, 0.1, 0.3]
    assert spec().beta_init == [0.8, 0.9]


def test_lr_log_range_is_log_spaced() -> None:
    parsed = spec(lr={"min": 0.001, "max": 1.0, "num": 4})
    assert isinstance(parsed.lr, LogRange)
    assert parsed.lr_values == [0.001, 0.01, 0.1, 1.0]
    five = spec(lr={"min": 1e-4, "max": 1e-2, "num": 5}).lr_values
    assert five == pytest.approx([1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2], rel=1e-11)
    assert five == sorted(five)
    assert spec(lr={"min": 0.1, "max": 0.1, "num": 1}).lr_values == [0.1]


def test_seeds_as_count_and_as_list() -> None:
    assert spec(seeds=3).seed_values == [0, 1, 2]
    assert spec(seeds=[7, 2]).seed_values == [2, 7]
    assert spec(seeds=3).trial_count == spec(seeds=[4, 5, 6]).trial_count == 2 * 3 * 2 * 3


def test_optuna_spec() -> None:
    parsed = spec(lr=[], beta_init=[], search=OPTUNA_SEARCH, seeds=3)
    assert isinstance(parsed.search, OptunaSearchSpec)
    assert parsed.search.sampler == "random"
    assert parsed.trial_count == 2 * 4 * 3
    assert expand_trials(parsed) == []


# (overrides, the field the error names, a regex its message matches)
BAD_SPECS: list[tuple[dict[str, Any], str, str]] = [
    (
        {"arms": ["demon_sgdm", "nesterov_magic"]},
        "arms",
        r"unknown arm 'nesterov_magic'; valid choices: .*sgdm_step",
    ),
    ({"workload": "imagenet"}, "workload", r"unknown workload 'imagenet'; valid choices: .*synthetic"),
    ({"lr": [0.1, 0.0]}, "lr", r"finite number > 0"),
    ({"lr": [-0.1]}, "lr", r"finite number > 0"),
    ({"lr": [0.1, math.nan]}, "lr", r"finite number > 0 \(got nan\)"),
    ({"lr": [math.inf]}, "lr", r"finite number > 0"),
    ({"lr": {"min": 0.0, "max": 1.0, "num": 3}}, "lr", r"greater than 0"),
    ({"lr": {"min": math.nan, "max": 1.0, "num": 3}}, "lr", r"finite number"),
    ({"lr": {"min": 1.0, "max": 0.1, "num": 3}}, "lr", r"must be >= min"),
    ({"lr": []}, "lr", r"at least one learning rate"),
    ({"lr": [0.1, 0.1]}, "lr", r"unique"),
    ({"beta_init": [0.9, 1.0]}, "beta_init", r"\[0, 1\) \(got 1.0\)"),
    ({"beta_init": [-0.1]}, "beta_init", r"\[0, 1\)"),
    ({"beta_init": [math.nan]}, "beta_init", r"\[0, 1\)"),
    ({"seeds": 0}, "seeds", r"between 1 and 1000"),
    ({"seeds": [1, 1]}, "seeds", r"unique"),
    ({"epochs": 0}, "epochs", r"greater than or equal to 1"),
    (
        {"arms": [{"name": "sgdm_step", "params": {"milestone": [0.5]}}]},
        "arms",
        r"unknown parameter\(s\) \['milestone'\]; valid parameters: gamma, milestones, nesterov",
    ),
    ({"arms": [{"name": "adam_none", "params": {"nesterov": True}}]}, "arms", r"valid parameters: none"),
    (
        {"arms": [{"name": "demon_adam", "params": {"nesterov": True}}]},
        "arms",
        r"valid parameters: beta_min, decoupled",
    ),
    ({"arms": [{"name": "sgdm_step", "params": {"milestones": [0.5, 1.5]}}]}, "arms", r"fractions"),
    ({"arms": ["demon_sgdm", "demon_sgdm"]}, "arms", r"unique"),
    ({"metric": "accuracy"}, "metric", r"metric: unknown metric 'accuracy'; valid choices: error, loss"),
    ({"split": "train"}, "split", r"'val' or 'test'"),
    ({"colour": "red"}, "colour", r"Extra inputs"),
    (
        {"search": {**OPTUNA_SEARCH, "sampler": "grid"}},
        "search",
        r"unknown sampler 'grid'; valid choices: tpe, gp, cmaes, random, qmc",
    ),
    ({"search": {**OPTUNA_SEARCH, "lr": {"min": 0.0, "max": 1.0}}}, "search", r"lr.min must be > 0"),
    ({"search": {**OPTUNA_SEARCH, "beta_init": {"min": 0.5, "max": 1.0}}}, "search", r"\[0, 1\)"),
    ({"search": {**OPTUNA_SEARCH, "n_trials": 0}}, "search", r"greater than or equal to 1"),
    # below a half, the smallest detectable difference came out below 0 ("detects a Δ of -6.9 pts")
    ({"verdict": {"power": 0.01}}, "verdict.power", r"verdict\.power: 0\.01 is below 0\.5"),
    ({"name": "   "}, "name", r"only blanks"),  # listed as an empty name by the CLI and the dashboard
]


@pytest.mark.parametrize(("overrides", "field", "message"), BAD_SPECS, ids=[str(c[0]) for c in BAD_SPECS])
def test_bad_spec_error_names_the_field(overrides: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        spec(**overrides)
    # A field error carries the field as its location; a cross-field one names it in its message.
    named = {
        str(e["loc"][0]) if e["loc"] else e["msg"].removeprefix("Value error, ").split(":")[0]
        for e in info.value.errors()
    }
    assert field in named


def test_unknown_arm_lists_every_arm() -> None:
    with pytest.raises(ValidationError) as info:
        spec(arms=["bogus"])
    assert all(name in str(info.value) for name in arm_names())


def test_unknown_workload_lists_every_workload() -> None:
    with pytest.raises(ValidationError) as info:
        spec(workload="bogus")
    assert all(name in str(info.value) for name in workload_names())


def test_trial_limit_comes_from_the_context() -> None:
    data = {**BASE, "seeds": 4}  # 2 arms × 3 lr × 2 β × 4 seeds = 48 trials
    assert StudySpec.model_validate(data, context={"max_trials": 48}).trial_count == 48
    with pytest.raises(ValidationError, match=r"48 trials, more than the limit of 47 \(reduce arms, lr"):
        StudySpec.model_validate(data, context={"max_trials": 47})
    with pytest.raises(ValidationError, match="limit of 47"):
        parse_spec_text(json.dumps(data), suffix=".json", max_trials=47)
    search = {**BASE, "lr": [], "beta_init": [], "search": OPTUNA_SEARCH, "seeds": 4}  # 2 × 4 × 4 = 32
    with pytest.raises(ValidationError, match="32 trials, more than the limit of 31"):
        StudySpec.model_validate(search, context={"max_trials": 31})


def test_nan_in_yaml_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"got nan"):
        parse_spec_text(YAML_TEXT.replace("lr: [0.1, 0.01]", "lr: [0.1, .nan]"))


def test_malformed_yaml_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="YAML"):
        parse_spec_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="JSON"):
        parse_spec_text("{name: 1", suffix=".json")


def test_expansion_is_deterministic_and_complete() -> None:
    parsed = spec()
    first = expand_trials(parsed)
    assert first == expand_trials(spec())
    assert len(first) == len(set(first)) == 2 * 3 * 2 * 2 == parsed.trial_count
    # Arm as listed, then lr, β_init, seed ascending.
    assert first[0] == TrialKey("demon_sgdm", 0.01, 0.8, 0)
    assert first[1] == TrialKey("demon_sgdm", 0.01, 0.8, 1)
    assert first[2] == TrialKey("demon_sgdm", 0.01, 0.9, 0)
    assert first[-1] == TrialKey("sgdm_step", 0.3, 0.9, 1)
    assert [k.arm for k in first[:12]] == ["demon_sgdm"] * 12
    assert [k.token() for k in first] == [k.token() for k in expand_trials(spec(lr=[0.1, 0.3, 0.01]))]


def test_log_range_keys_are_stable() -> None:
    a = expand_trials(spec(lr={"min": 1e-4, "max": 1.0, "num": 9}))
    b = expand_trials(spec(lr={"min": 1e-4, "max": 1.0, "num": 9}))
    assert [k.token() for k in a] == [k.token() for k in b]
    assert all(len(repr(k.lr)) <= 20 for k in a)


@pytest.mark.parametrize(
    "key",
    [
        TrialKey("demon_sgdm", 0.1, 0.9, 0),
        TrialKey("adam_onecycle", 3e-05, 0.0, 12),
        TrialKey("sgdm_cosmom", 0.0031622776601683794, 0.95, 999),
        TrialKey("sgdm_step", 1e-10, 0.7, 3),
    ],
)
def test_trial_key_token_round_trip(key: TrialKey) -> None:
    assert TrialKey.from_token(key.token()) == key
    assert key.token() == TrialKey.from_token(key.token()).token()


def test_spec_hash_is_stable_under_reordering() -> None:
    assert spec().spec_hash() == spec(lr=[0.1, 0.3, 0.01]).spec_hash()
    assert spec().spec_hash() == spec(beta_init=[0.8, 0.9]).spec_hash()
    assert spec(seeds=[2, 0]).spec_hash() == spec(seeds=[0, 2]).spec_hash()
    assert spec().spec_hash() != spec(lr=[0.1, 0.3]).spec_hash()
    assert spec().spec_hash() != spec(epochs=3).spec_hash()
    assert len(spec().spec_hash()) == 64


BASE_SPEC: dict[str, Any] = {
    "name": "x",
    "workload": "synthetic",
    "arms": ["demon_sgdm"],
    "lr": [0.1],
    "beta_init": [0.9],
    "epochs": 1,
}


@pytest.mark.parametrize(
    ("workload", "params", "field"),
    [
        ("synthetic", {"classes": [1]}, "classes"),
        ("synthetic", {"classes": None}, "classes"),
        ("synthetic", {"classes": 0}, "classes"),
        ("synthetic", {"classes": 1}, "classes"),
        ("synthetic", {"n_train": 1e12}, "n_train"),
        ("synthetic", {"n_train": -5}, "n_train"),
        ("synthetic", {"n_train": "abc"}, "n_train"),
        ("synthetic", {"hidden": 1e9}, "hidden"),
        ("synthetic", {"typo": 1}, "typo"),
        ("synthetic", {"n_train": {"a": {"b": [1]}}}, "n_train"),
        ("digits_mlp", {"num_classes": [3]}, "num_classes"),
        ("ptb_lstm", {"vocab_size": "abc"}, "vocab_size"),
        ("cifar10_resnet20", {"augment": "yes"}, "augment"),
        ("cifar100_vgg16", {"dropout": 1.5}, "dropout"),
    ],
)
def test_workload_params_are_typed_and_bounded_per_workload(workload: str, params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        StudySpec.model_validate({**BASE_SPEC, "workload": workload, "workload_params": params})
    assert [e["loc"] for e in caught.value.errors()] == [("workload_params", field)]


def test_workload_params_keep_what_was_written() -> None:
    spec = StudySpec.model_validate({**BASE_SPEC, "workload_params": {"n_train": 128, "hidden": 4}})
    assert spec.workload_params == {"n_train": 128, "hidden": 4}  # defaults stay implicit


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"workload_params": {"hidden": 4.0}}, ("workload_params", "hidden")),
        ({"workload_params": {"n_train": True}}, ("workload_params", "n_train")),
        ({"max_failures": False}, ("max_failures",)),
        ({"epochs": 2.0}, ("epochs",)),
        ({"resources": {"cpu": True}}, ("resources", "cpu")),
    ],
)
def test_types_are_strict(change: dict[str, Any], field: tuple[str, ...]) -> None:
    """A JSON ``true`` is not the number 1, nor ``2.0`` a count: what the schema says is what passes."""
    with pytest.raises(ValidationError) as caught:
        StudySpec.model_validate({**BASE_SPEC, **change})
    assert field in [e["loc"] for e in caught.value.errors()]


def test_every_workload_has_a_parameter_model_in_the_schema() -> None:
    from studies.vocab.workload_params import PARAMS
    from studies.workloads import workload_names

    assert sorted(PARAMS) == workload_names()
    schema = StudySpec.model_json_schema()["properties"]["workload_params"]
    titles = {branch["title"] for branch in schema["anyOf"]}
    assert titles == set(workload_names())
    synthetic = next(b for b in schema["anyOf"] if b["title"] == "synthetic")
    assert synthetic["properties"]["n_train"]["maximum"] == 100_000
    assert synthetic["additionalProperties"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "search": {
                    "mode": "optuna",
                    "n_trials": 2,
                    "lr": {"min": 0.01, "max": 0.1},
                    "beta_init": {"min": 0, "max": 0.9},
                    "seed": 2**70,
                }
            },
            ("search", "optuna", "seed"),
        ),
        ({"seeds": [0, 2**40]}, ("seeds",)),
        ({"lr": [10.0**-k for k in range(1, 1200)]}, ("lr", "list[float]")),
        ({"weight_decay": 1e300}, ("weight_decay",)),
        ({"resources": {"custom": {"tpu": 1e300}}}, ("resources", "custom", "tpu")),
    ],
)
def test_every_number_that_could_exhaust_memory_or_time_is_bounded(
    change: dict[str, Any], field: tuple[Any, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        StudySpec.model_validate({**BASE_SPEC, **change})
    assert field in [e["loc"] for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("arm", "params", "message"),
    [
        ("sgdm_step", {"gamma": "ab"}, "'gamma' must be a finite number"),
        ("sgdm_step", {"gamma": 0}, r"'gamma' must lie in \(0, 1\]"),
        ("sgdm_exp", {"final_factor": -1}, r"'final_factor' must lie in \(0, 1\]"),
        ("sgdm_step", {"milestones": []}, "'milestones' must be a non-empty list"),
        ("sgdm_plateau", {"patience": 1.5}, "'patience' must be a whole number"),
        ("sgdm_none", {"nesterov": "yes"}, "'nesterov' must be true or false"),
        ("sgdm_onecycle", {"pct_start": 1.0}, r"'pct_start' must lie in \(0, 1\)"),
        ("demon_sgdm", {"delay": 10**400}, r"'delay' must be a finite number \(got 1000+…\) \["),  # no float holds it
        ("sgdm_step", {"milestones": [10**400]}, "'milestones' must be a non-empty list"),
    ],
)
def test_arm_parameter_values_are_checked(arm: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StudySpec.model_validate({**BASE_SPEC, "arms": [{"name": arm, "params": params}]})


def test_yaml_reads_scientific_notation_as_numbers() -> None:
    """YAML 1.1 reads ``1e-4`` as a string; the spec's types are strict, so the loader reads it as a float."""
    text = "name: x\nworkload: synthetic\narms: [demon_sgdm]\nlr: [1e-4, 1E-2, 0.1]\nbeta_init: [0.9]\nepochs: 1\n"
    assert parse_spec_text(text).lr == [0.0001, 0.01, 0.1]
    with pytest.raises(ValidationError):  # a quoted number stays a string, and a string is not a number
        parse_spec_text(text.replace("1e-4", "'1e-4'"))


def test_the_spec_says_once_whether_it_is_a_search_which_splits_it_has_and_its_failure_score() -> None:
    """The rules the driver, the executors, the analysis and the page read from the spec."""
    from studies.vocab import y_fail

    grid, search = spec(), spec(lr=[], beta_init=[], search=OPTUNA_SEARCH)
    assert (grid.is_search, search.is_search) == (False, True)
    assert grid.splits == ("test", "val")
    full = StudySpec.model_validate({**BASE, "workload": "cifar10_resnet20", "full_train": True})
    assert full.splits == ("test",)  # no validation split to report on
    on_loss = spec(metric="loss")
    assert on_loss.y_fail() == y_fail("synthetic", {}, "loss") == grid.y_fail("loss")
    assert grid.y_fail() == y_fail("synthetic", {}, "metric") != on_loss.y_fail()


def test_a_full_train_study_cannot_decide_on_a_figure_that_chooses_on_validation() -> None:
    """q(k) chooses cells on validation: in a full_train study it was undefined in every seed, and the
    report said the seeds "lack a cell's result"; the spec is refused before any trial runs."""
    data = {**BASE, "workload": "cifar10_resnet20", "full_train": True}
    with pytest.raises(ValidationError, match=r"verdict\.primary: 'expected_best' chooses cells on the validation"):
        StudySpec.model_validate({**data, "verdict": {"primary": "expected_best", "difference_of_interest": 0.01}})
    kept = StudySpec.model_validate({**data, "verdict": {"primary": "lr_sensitivity", "difference_of_interest": 0.01}})
    assert kept.verdict is not None
    assert kept.verdict.primary == "lr_sensitivity"


def test_a_stored_spec_still_reads_under_rules_added_after_it_was_stored() -> None:
    """Rules of version 7 (a blank name, power below a half, q(k) as the primary of a full_train study)
    refuse a submission; a study stored before them must still read (every page and report re-reads its
    spec: it gave 500s, and one such study broke /robustness for its whole workload)."""
    from studies.spec import STORED

    older = [
        {**BASE, "name": "   "},
        {**BASE, "verdict": {"power": 0.3}},
        {
            **BASE,
            "workload": "cifar10_resnet20",
            "full_train": True,
            "verdict": {"primary": "expected_best", "difference_of_interest": 0.01},
        },
    ]
    for data in older:
        with pytest.raises(ValidationError):
            StudySpec.model_validate(data)
        assert StudySpec.model_validate(data, context={STORED: True}).name == data["name"]
