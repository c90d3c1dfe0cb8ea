"""Packed execution gives each trial its per-trial result, bit for bit.

K trials packed vs the same K trials run one by one (``run_trial``), member by member: identical
status, epochs, per-epoch train and validation losses and metrics, and final val/test figures,
compared exactly (``assert_same``), for every arm kind, with members of several arms in one pack and
members that diverge mid-pack. Both sides run the same float32 operations in the same order: the
pack's linear layers run ``nn.Linear``'s GEMMs (``studies.packed.models._PackedLinear``), its
optimizer kernels follow torch's and demon's expressions (``demon.packed``), and both drivers reduce
losses through the workload's batched hooks (``member_loss`` / ``member_scores``).

Convolutions are the stated exception: a pack runs them as one grouped convolution, which the CPU
backend computes in another order than K separate ones. Packs with convolutions are compared with
``CONV_RTOL`` = 1e-4 relative on losses and ``CONV_METRIC_ATOL`` = 0.008 absolute on error rates (a
sample whose two top logits lie within a few ulp may flip: one sample is 1/128 of synthetic's
splits, 1/360 of digits'), and equal statuses.
"""

from __future__ import annotations

import io
import json
import math
import time
from typing import Any

import pytest
import torch

from studies.executors import Work, execute_study
from studies.executors.packed import PackedExecutor, member_bytes, resolve_pack_size
from studies.packed import packing_problem, run_pack
from studies.packed.checkpoint import TRAILER, checkpoint_dir, checkpoint_path, claim
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.runner import TrialPlan, run_trial
from studies.spec import StudySpec, expand_trials
from studies.vocab.arms import arm_names
from studies.workloads import WORKLOADS, get_workload
from studies.workloads.digits import DigitsCNN

CONV_RTOL = 1e-4
CONV_METRIC_ATOL = 0.008
SCORES = ("val_metric", "val_loss", "test_metric", "test_loss", "best_val_metric")


def _bits(value: float | None) -> object:
    """A float compared bit for bit (NaN equals NaN, 0.0 differs from -0.0)."""
    return value if value is None else float(value).hex()


def figures(result: TrialResult) -> tuple[object, ...]:
    """Everything a trial's result says about its training, as exactly comparable values."""
    curve = tuple((e.epoch, _bits(e.train_loss), _bits(e.val_loss), _bits(e.val_metric)) for e in result.epochs)
    return (result.key, result.status, result.epochs_done, curve, *(_bits(getattr(result, f)) for f in SCORES))


def assert_same(packed: TrialResult, single: TrialResult) -> None:
    """The packed member's result equals the per-trial one bit for bit."""
    assert figures(packed) == figures(single), packed.key


def assert_close(packed: TrialResult, single: TrialResult, *, curves: bool = True) -> None:
    """A convolution pack's member against its trial: same status and epochs; figures within the
    stated tolerances (``curves=False``: the outcome only)."""
    assert packed.key == single.key
    assert (packed.status, packed.epochs_done) == (single.status, single.epochs_done), packed.key
    assert len(packed.epochs) == len(single.epochs)
    if not curves:
        return
    for mine, theirs in zip(packed.epochs, single.epochs, strict=True):
        assert mine.epoch == theirs.epoch
        for field in ("train_loss", "val_loss", "val_metric"):
            close(field, getattr(mine, field), getattr(theirs, field), packed.key)
    for field in SCORES:
        a, b = getattr(packed, field), getattr(single, field)
        assert (a is None) == (b is None), (packed.key, field)
        if a is not None and b is not None:
            close(field, a, b, packed.key)


def close(field: str, a: float, b: float, key: TrialKey) -> None:
    tolerance = {"abs_tol": CONV_METRIC_ATOL} if field.endswith("metric") else {"rel_tol": CONV_RTOL, "abs_tol": 1e-6}
    assert math.isclose(a, b, **tolerance), (key, field, a, b)


PACK_KEYS = [
    TrialKey(arm, lr, beta, seed) for arm in arm_names() for lr, beta in ((0.03, 0.9), (0.3, 0.0)) for seed in (0,)
] + [
    TrialKey("sgdm_none", 5.0, 0.99, 1),  # diverges mid-pack (epoch 3)
    TrialKey("demon_adam", 2.0, 0.99, 0),  # diverges mid-pack (epoch 1)
    TrialKey("sgdm_none", 1e4, 0.9, 0),  # diverges at the first step
]


def test_every_arm_kind_packs_like_per_trial_on_synthetic() -> None:
    """All arms of the registry, mixed in one pack, with three members diverging at different steps."""
    plan = TrialPlan(workload="synthetic", epochs=4, batch_size=16, weight_decay=1e-3)
    emitted: list[TrialResult] = []
    packed = run_pack(plan, PACK_KEYS, emit=emitted.append)
    assert sorted(r.key for r in emitted) == sorted(PACK_KEYS)  # each member reaches the sink once
    statuses = {r.status for r in packed}
    assert statuses == {TrialStatus.COMPLETED, TrialStatus.DIVERGED}
    assert sorted(r.epochs_done for r in packed if r.status is TrialStatus.DIVERGED) == [0, 1, 3]
    for result in packed:
        assert_same(result, run_trial(plan, result.key))
        assert result.extra["pack_size"] == len(PACK_KEYS)


def test_a_failed_member_is_recorded_as_its_trial_would_be() -> None:
    """An arm refused (bad parameters) fails its member alone, recorded as the per-trial runner records
    the same failure: the node, device and hardware where it ran and the error with its traceback
    (the pack wrote its own record: another node name under Ray, no hardware)."""
    plan = TrialPlan(workload="synthetic", epochs=1, arm_params={"sgdm_step": {"gamma_typo": 0.1}})
    bad, good = TrialKey("sgdm_step", 0.1, 0.9, 0), TrialKey("demon_sgdm", 0.1, 0.9, 0)
    failed, trained = run_pack(plan, [bad, good])
    alone = run_trial(plan, bad)
    assert failed.status is alone.status is TrialStatus.FAILED
    assert trained.status is TrialStatus.COMPLETED
    for field in ("node", "device", "epochs_done", "val_metric", "test_metric"):
        assert getattr(failed, field) == getattr(alone, field), field
    assert failed.extra["hardware"] == alone.extra["hardware"]
    assert failed.error is not None
    assert alone.error is not None
    assert failed.error.splitlines()[0] == alone.error.splitlines()[0]
    assert "Traceback" in failed.error


def test_demon_variants_pack_like_per_trial() -> None:
    """Labelled Demon arms with every variant (delay, floor, decoupled weight decay, first-moment
    correction, Nesterov) beside a plain one, in one pack: each member equals its trial bit for bit."""
    variants = {
        "demon_sgdm@v": {"delay": 0.25, "beta_min": 0.3, "decoupled_weight_decay": True, "nesterov": True},
        "demon_adam@v": {"delay": 0.5, "first_moment_correction": True, "decoupled_weight_decay": True},
    }
    plan = TrialPlan(workload="synthetic", epochs=3, batch_size=16, weight_decay=1e-3, arm_params=variants)
    keys = [TrialKey(a, lr, 0.9, seed) for a in (*variants, "demon_sgdm") for lr in (0.03, 0.3) for seed in (0, 1)]
    for result in run_pack(plan, keys):
        assert_same(result, run_trial(plan, result.key))


def test_packed_digits_mlp_matches_per_trial_and_cnn_within_tolerance() -> None:
    """Real data, both digits models, two seeds each: the MLP bit for bit, the CNN (a grouped
    convolution) within the stated tolerance."""
    keys = [
        TrialKey(arm, lr, beta, seed)
        for arm, lr in (("demon_sgdm", 0.1), ("sgdm_cosine", 0.1), ("adam_step", 0.003), ("demon_adam", 0.003))
        for beta in (0.8, 0.95)
        for seed in (0, 1)
    ]
    mlp = TrialPlan(workload="digits_mlp", workload_params={"hidden": 32}, epochs=2, batch_size=64)
    for result in run_pack(mlp, keys):
        assert_same(result, run_trial(mlp, result.key))
    cnn = TrialPlan(workload="digits_cnn", workload_params={"channels": 4}, epochs=2, batch_size=64)
    for result in run_pack(cnn, keys):
        assert_close(result, run_trial(cnn, result.key))


def test_edge_of_stability_is_bit_equal_too() -> None:
    """At lr 1 on digits the trajectories are chaotic (any 1-ulp change moves them): equal bits
    keep them equal, diverged or not."""
    plan = TrialPlan(workload="digits_mlp", workload_params={"hidden": 32}, epochs=2, batch_size=32)
    keys = [TrialKey(arm, 1.0, 0.9, 0) for arm in ("sgdm_step", "adam_none", "demon_adam", "demon_sgdm")]
    for result in run_pack(plan, keys):
        assert_same(result, run_trial(plan, result.key))


class DigitsBatchNormCNN(DigitsCNN):
    """A small CNN with BatchNorm2d after each convolution (registered by the test that uses it)."""

    name = "digits_bn_cnn"

    def build_model(self, seed: int) -> torch.nn.Module:
        nn = torch.nn
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, 10),
        )


def test_batchnorm_members_keep_their_own_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchNorm2d packs: per-member batch statistics in training, running statistics in evaluation,
    so each member's curve is its per-trial one; one member diverges and the others do not notice."""
    monkeypatch.setitem(WORKLOADS, DigitsBatchNormCNN.name, DigitsBatchNormCNN)
    assert packing_problem(DigitsBatchNormCNN()) is None
    plan = TrialPlan(workload=DigitsBatchNormCNN.name, epochs=2, batch_size=64)
    keys = [
        TrialKey(arm, lr, 0.9, seed)
        for arm, lr in (("demon_sgdm", 0.01), ("sgdm_step", 0.01), ("demon_adam", 0.001), ("sgdm_none", 1e4))
        for seed in (0, 1)
    ]
    packed = run_pack(plan, keys)
    assert {r.status for r in packed} == {TrialStatus.COMPLETED, TrialStatus.DIVERGED}
    for result in packed:
        # The conv biases before BatchNorm have a gradient that is zero but for rounding noise, which
        # Adam normalises into full-size steps: its runs follow that noise, so only their outcome is
        # compared (measured: validation losses 4e-4 apart after two epochs, train losses 1e-6).
        assert_close(result, run_trial(plan, result.key), curves=result.key.arm != "demon_adam")


@pytest.mark.parametrize(
    ("workload", "words"),
    [
        ("mnist_vae", "own loss"),
        ("ptb_lstm", "own loss"),
        ("cifar10_resnet20", "images are read one by one"),
        ("cifar100_vgg16", "images are read one by one"),
        ("stl10_wrn16_8", "images are read one by one"),
    ],
)
def test_unpackable_workloads_say_why(workload: str, words: str) -> None:
    problem = packing_problem(get_workload(workload))
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize("workload", ["synthetic", "digits_mlp", "digits_cnn"])
def test_packable_workloads(workload: str) -> None:
    assert packing_problem(get_workload(workload)) is None


def _spec(**changes: Any) -> dict[str, Any]:
    base = {"name": "p", "workload": "synthetic", "arms": ["demon_sgdm"], "lr": [0.1], "beta_init": [0.9], "epochs": 1}
    return base | changes


def test_spec_execution_field() -> None:
    default = StudySpec.model_validate(_spec())
    assert default.execution.mode == "auto"
    per_trial = StudySpec.model_validate(_spec(execution={"mode": "per_trial"}))
    assert per_trial.spec_hash() == default.spec_hash()  # same results: "the same study"
    packed = StudySpec.model_validate(_spec(execution={"mode": "packed", "pack_size": 8}))
    assert (packed.execution.mode, packed.execution.pack_size) == ("packed", 8)
    assert packed.spec_hash() != default.spec_hash()
    with pytest.raises(ValueError, match=r"execution\.mode 'packed' is not available for workload 'mnist_vae'"):
        StudySpec.model_validate(_spec(workload="mnist_vae", execution={"mode": "packed"}))
    search = {
        "mode": "optuna",
        "n_trials": 2,
        "lr": {"min": 0.01, "max": 0.1},
        "beta_init": {"min": 0.5, "max": 0.9},
    }
    with pytest.raises(ValueError, match="Optuna"):
        StudySpec.model_validate(_spec(search=search, execution={"mode": "packed"}))
    for bad in ({"mode": "fused"}, {"mode": "packed", "pack_size": 0}, {"mode": "packed", "pack_size": "big"}):
        with pytest.raises(ValueError, match="execution"):
            StudySpec.model_validate(_spec(execution=bad))


def test_auto_pack_size_is_one_pack_per_worker_within_memory() -> None:
    plan = TrialPlan(workload="digits_mlp", batch_size=32)
    assert resolve_pack_size(7, plan, 100, 2) == 7
    assert resolve_pack_size("auto", plan, 150, 2) == 75
    assert resolve_pack_size("auto", plan, 150, 1) == 150
    one = member_bytes(plan, torch.device("cpu"))
    assert 4 * 4 * (64 * 64 + 64 * 64 + 64 * 10) < one < 100 * 2**20


def test_execute_study_packed_equals_per_trial_through_the_sink(tmp_path: Any) -> None:
    """The executor path (spec → packs → sink) gives the per-trial results, one per trial, packs of 3."""
    data = _spec(arms=["demon_sgdm", "adam_plateau"], lr=[0.01, 0.1], beta_init=[0.8, 0.9], seeds=2, epochs=3)
    per_trial: list[TrialResult] = []
    packed: list[TrialResult] = []
    execute_study(StudySpec.model_validate(data), per_trial.append, executor="inprocess", data_dir=tmp_path)
    spec = StudySpec.model_validate(data | {"execution": {"mode": "packed", "pack_size": 3}})
    summary = execute_study(spec, packed.append, executor="inprocess", data_dir=tmp_path)
    assert summary.total == len(packed) == len(per_trial) == 16
    by_key = {r.key: r for r in packed}
    for single in per_trial:
        assert_same(by_key[single.key], single)


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{path}[{i}]").items()}
    return {path: value}


def test_sensitivity_json_of_a_packed_digits_run_matches_per_trial(tmp_path: Any) -> None:
    """The metrics report of a digits study, per trial and packed: identical, figure for figure."""
    from studies.local import run_local

    data = {
        "name": "digits-packed",
        "workload": "digits_mlp",
        "arms": ["demon_sgdm", "sgdm_cosine"],
        "lr": [0.03, 0.1, 0.3],
        "beta_init": [0.8, 0.9],
        "seeds": 2,
        "epochs": 3,
    }
    per_trial = run_local(StudySpec.model_validate(data), tmp_path / "a", executor="inprocess", progress=False)
    spec = StudySpec.model_validate(data | {"execution": {"mode": "packed"}})
    packed = run_local(spec, tmp_path / "b", executor="inprocess", progress=False)
    mine, theirs = _leaves(packed), _leaves(per_trial)
    assert mine.keys() == theirs.keys()
    for path, value in theirs.items():
        if path.startswith(".files"):
            continue
        if isinstance(value, float):
            assert _bits(mine[path]) == _bits(value), path
        else:
            assert mine[path] == value, path


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_packs_on_ray_are_ray_tasks_with_per_trial_results(tmp_path: Any) -> None:
    """On Ray (2 CPUs) ``auto`` makes one pack per worker, each a Ray task (no Ray Tune); every member
    reaches the sink once, announced first, equal bit for bit to its per-trial run."""
    data = _spec(arms=["demon_sgdm", "sgdm_step"], lr=[0.03, 0.3], beta_init=[0.8, 0.9], seeds=2, epochs=2)
    per_trial: list[TrialResult] = []
    execute_study(StudySpec.model_validate(data), per_trial.append, executor="inprocess", data_dir=tmp_path)
    spec = StudySpec.model_validate(data | {"execution": {"mode": "packed"}})
    packed: list[TrialResult] = []
    started: list[TrialKey] = []

    def sink(result: TrialResult) -> None:
        assert result.key in started, f"{result.key} reached the sink before it was announced"
        packed.append(result)

    summary = execute_study(
        spec, sink, executor="ray", data_dir=tmp_path, study_id="packed-ray", on_trial_start=started.extend
    )
    assert summary.total == len(packed) == 16
    assert sorted(started) == sorted(r.key for r in packed)
    assert all("/" in (r.node or "") for r in packed), "the packs did not run in Ray workers"
    assert not summary.errors
    assert {r.extra["pack_size"] for r in packed} == {8}
    by_key = {r.key: r for r in packed}
    for single in per_trial:
        assert_same(by_key[single.key], single)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_the_warm_pool_runs_the_next_study_in_the_same_actors(tmp_path: Any) -> None:
    """Two packed studies in a row through the warm pool: each member equal bit for bit to its
    per-trial run, and the second study's packs run in the actors the first one started (named per
    node and slot, detached: they outlive a driver), none started anew."""
    import ray

    from studies.executors import Context, RayPackExecutor
    from studies.executors.ray_packs import POOL_NAMESPACE

    data = _spec(arms=["demon_sgdm", "sgdm_step"], lr=[0.03, 0.3], beta_init=[0.8, 0.9], seeds=2, epochs=2)
    spec = StudySpec.model_validate(data | {"execution": {"mode": "packed"}})
    plan = TrialPlan.from_spec(spec, tmp_path / "datasets")

    def pool() -> dict[str, str]:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == POOL_NAMESPACE]
        return {name: ray.get_actor(name, namespace=POOL_NAMESPACE)._actor_id.hex() for name in names}

    actors = []
    for study in ("pool-1", "pool-2"):
        executor = RayPackExecutor.for_study(spec, Context(tmp_path, study_id=study))
        executor.pool = True
        results: list[TrialResult] = []
        summary = executor.run(Work(plan, expand_trials(spec)), results.append)
        assert summary.total == len(results) == 16
        assert not summary.errors
        assert {r.extra["pack_size"] for r in results} == {8}
        for result in results:
            assert_same(result, run_trial(plan, result.key))
        actors.append(pool())
    assert len(actors[0]) == 2, actors[0]  # one per slot of the session's 2-CPU node
    assert actors[1] == actors[0], "the second study started pool actors anew"


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_checkpointed_pack_resumes_on_ray(tmp_path: Any) -> None:
    """A pack stopped after its first epoch (by an earlier launch) is resumed as one Ray task of a
    relaunched Ray study, the other pending trials packed afresh: every trial once, per-trial results."""
    data = _spec(arms=["demon_sgdm", "sgdm_step"], lr=[0.03, 0.3], beta_init=[0.8, 0.9], seeds=2, epochs=3)
    spec = StudySpec.model_validate(data | {"execution": {"mode": "packed"}})
    plan = TrialPlan.from_spec(spec, tmp_path / "datasets")
    keys = expand_trials(spec)
    stopped = keys[3:8]
    run_pack(
        plan,
        stopped,
        checkpoint=checkpoint_path(checkpoint_dir(tmp_path, "ray-resume", plan), stopped),
        should_stop=lambda: True,
    )
    results: list[TrialResult] = []
    summary = execute_study(spec, results.append, executor="ray", data_dir=tmp_path, study_id="ray-resume")
    assert summary.total == len(results) == 16
    assert not summary.errors
    assert sorted(r.key for r in results) == sorted(keys)
    assert {r.key for r in results if r.extra.get("resumed_from_epoch") == 1} == set(stopped)
    assert {r.extra["pack_size"] for r in results if r.key in stopped} == {5}
    for result in results:
        assert_same(result, run_trial(plan, result.key))
    assert list(checkpoint_dir(tmp_path, "ray-resume", plan).glob("*.pack.pt")) == []


def _interrupted_then_resumed(
    plan: TrialPlan, keys: list[TrialKey], folder: Any, after_epochs: int
) -> tuple[list[TrialResult], list[TrialResult]]:
    """Run ``keys`` as a pack stopped after ``after_epochs`` epochs, then resume it as a relaunched
    executor would (``claim`` with the keys not yet delivered): (first part's, resumed part's) results."""
    epochs_seen = [0]

    def stop_after() -> bool:
        epochs_seen[0] += 1
        return epochs_seen[0] >= after_epochs

    path = checkpoint_path(folder, keys)
    first = run_pack(plan, keys, checkpoint=path, should_stop=stop_after)
    assert path.exists()
    delivered = {r.key for r in first}
    pending = [key for key in keys if key not in delivered]
    resumed_packs, rest = claim(folder, pending)
    assert rest == []
    assert len(resumed_packs) == 1
    assert set(resumed_packs[0]) == set(keys)
    emitted: list[TrialResult] = []
    second = run_pack(plan, resumed_packs[0], checkpoint=path, emit=emitted.append, deliver=set(pending))
    assert sorted(r.key for r in emitted) == sorted(pending)  # finished members are not delivered twice
    assert not path.exists()  # deleted when the pack finished
    assert list(folder.iterdir()) == []  # no temporary file left behind
    return first, second


def _same_as_uninterrupted(resumed: TrialResult, whole: TrialResult) -> None:
    assert resumed.key == whole.key
    assert (resumed.status, resumed.epochs) == (whole.status, whole.epochs), resumed.key  # bit-equal curves
    for field in ("val_metric", "val_loss", "test_metric", "test_loss", "best_val_metric", "epochs_done"):
        assert getattr(resumed, field) == getattr(whole, field), (resumed.key, field)


def test_a_stopped_pack_resumes_from_its_checkpoint_with_the_uninterrupted_results(tmp_path: Any) -> None:
    """Every arm kind (plateau members fed their own validation losses), members diverging before and
    after the interruption: stopped after epoch 2 of 4 and resumed, each member's per-epoch losses and
    test figures equal the uninterrupted pack's exactly (the checkpoint holds all the state read next)."""
    plan = TrialPlan(
        workload="synthetic", epochs=4, batch_size=16, weight_decay=1e-3, arm_params={"sgdm_plateau": {"patience": 0}}
    )
    whole = {r.key: r for r in run_pack(plan, PACK_KEYS)}
    first, second = _interrupted_then_resumed(plan, PACK_KEYS, tmp_path, after_epochs=2)
    assert sorted(r.epochs_done for r in first) == [0, 1]  # diverged before the stop: delivered then
    assert {r.key for r in first}.isdisjoint(r.key for r in second)
    for result in first + second:
        _same_as_uninterrupted(result, whole[result.key])
    assert {r.extra.get("resumed_from_epoch") for r in second} == {2}


def test_batchnorm_pack_resumes_with_its_running_statistics(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setitem(WORKLOADS, DigitsBatchNormCNN.name, DigitsBatchNormCNN)
    plan = TrialPlan(workload=DigitsBatchNormCNN.name, epochs=2, batch_size=64)
    keys = [TrialKey("demon_sgdm", 0.01, 0.9, seed) for seed in (0, 1)] + [TrialKey("adam_step", 0.001, 0.9, 0)]
    whole = {r.key: r for r in run_pack(plan, keys)}
    first, second = _interrupted_then_resumed(plan, keys, tmp_path, after_epochs=1)
    assert first == []
    for result in second:
        _same_as_uninterrupted(result, whole[result.key])


def test_a_checkpoint_of_another_plan_or_pack_is_not_resumed(tmp_path: Any) -> None:
    plan = TrialPlan(workload="synthetic", epochs=2, batch_size=16)
    keys = [TrialKey("demon_sgdm", 0.03, 0.9, 0), TrialKey("adam_none", 0.01, 0.9, 1)]
    path = checkpoint_path(tmp_path, keys)
    run_pack(plan, keys, checkpoint=path, should_stop=lambda: True)
    other = TrialPlan(workload="synthetic", epochs=2, batch_size=8)
    assert checkpoint_dir(tmp_path, "s", plan) != checkpoint_dir(tmp_path, "s", other)
    fresh = {r.key: r for r in run_pack(other, keys)}
    for result in run_pack(other, keys, checkpoint=path):  # plan differs: trained from scratch
        _same_as_uninterrupted(result, fresh[result.key])
    assert not path.exists()
    run_pack(plan, keys, checkpoint=path, should_stop=lambda: True)
    assert path.exists()
    resumed, rest = claim(tmp_path, [TrialKey("sgdm_none", 0.1, 0.9, 0)])  # nothing pending of it: stale
    assert (resumed, rest) == ([], [TrialKey("sgdm_none", 0.1, 0.9, 0)])
    assert list(tmp_path.iterdir()) == []


def _stopped_after_two_epochs(folder: Any) -> tuple[TrialPlan, list[TrialKey], dict[TrialKey, TrialResult], Any]:
    """A pack of two members stopped after epoch 2 of 3 with its checkpoint in ``folder``: the plan,
    the keys, the uninterrupted results by key, and the checkpoint's path."""
    plan = TrialPlan(workload="synthetic", epochs=3, batch_size=16)
    keys = [TrialKey("demon_sgdm", 0.03, 0.9, 0), TrialKey("adam_none", 0.01, 0.9, 1)]
    whole = {r.key: r for r in run_pack(plan, keys)}
    path = checkpoint_path(folder, keys)
    stopped = iter([False, True])
    run_pack(plan, keys, checkpoint=path, checkpoint_seconds=0, should_stop=lambda: next(stopped))
    return plan, keys, whole, path


def test_a_damaged_checkpoint_is_not_resumed(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Bytes flipped in the middle of a checkpoint (a damaged disk) still unpickled, and every member
    resumed from garbage weights diverged: a tester's 74 completed trials of 80 came back as 80
    diverged, without a word. The file's checksum now refuses it: the pack starts afresh and its
    results are the uninterrupted ones."""
    plan, keys, whole, path = _stopped_after_two_epochs(tmp_path)
    data = bytearray(path.read_bytes())
    for at in range(len(data) // 4, 3 * len(data) // 4, 4096):  # as the tester damaged it
        data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        resumed = run_pack(plan, keys, checkpoint=path)
    assert "is damaged (its checksum differs): the pack starts afresh" in caplog.text
    for result in resumed:
        _same_as_uninterrupted(result, whole[result.key])
        assert "resumed_from_epoch" not in result.extra


def test_a_checkpoint_of_the_previous_release_is_resumed(tmp_path: Any) -> None:
    """A format-2 file (the same fields, no checksum trailer), as a study running through the upgrade
    left it: its packs resume rather than train again from epoch 0 without a word."""
    plan, keys, whole, path = _stopped_after_two_epochs(tmp_path)
    fields = torch.load(io.BytesIO(path.read_bytes()[: -32 - len(TRAILER)]), weights_only=True)
    assert fields["format"] == 3
    path.write_bytes(b"")
    torch.save(fields | {"format": 2}, path)  # as the previous release wrote it
    resumed = run_pack(plan, keys, checkpoint=path)
    for result in resumed:
        _same_as_uninterrupted(result, whole[result.key])
    assert {r.extra.get("resumed_from_epoch") for r in resumed} == {2}


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_does_not_fail_the_pack(tmp_path: Any) -> None:
    """A full disk when a pack saved its checkpoint failed every member of the pack for good (a
    tester's packed study: 75 of 80 trials "failed: No space left on device", its verdict "neither
    arm trains"). A checkpoint only saves work: the pack now trains on and says why it could not
    save. The file-size limit (RLIMIT_FSIZE) makes the write fail for real, as a full disk does."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import json, resource
        from pathlib import Path
        from studies.packed import run_pack
        from studies.results import TrialKey
        from studies.runner import TrialPlan
        plan = TrialPlan(workload="synthetic", epochs=3, batch_size=16)
        keys = [TrialKey("demon_sgdm", 0.03, 0.9, 0), TrialKey("adam_none", 0.01, 0.9, 1)]
        whole = [r.to_dict() for r in run_pack(plan, keys)]
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # every checkpoint is larger
        saved = [r.to_dict() for r in run_pack(plan, keys, checkpoint=Path({str(tmp_path)!r}) / "p.pack.pt",
                 checkpoint_seconds=0)]
        same = [(a["status"], a["test_metric"], a["epochs_done"]) == (b["status"], b["test_metric"], b["epochs_done"])
                for a, b in zip(whole, saved)]
        print(json.dumps({{"statuses": [r["status"] for r in saved], "same": same}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["same"] == [True, True], answer
    assert "failed" not in answer["statuses"]
    assert "not saved" in done.stderr
    assert "training goes on" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no partial temporary file left


@pytest.mark.parametrize("workers", [1, 2])
def test_a_cancelled_packed_study_relaunched_reruns_only_what_is_missing(tmp_path: Any, workers: int) -> None:
    """The executor as the driver runs it: stopped mid-study (one pack per worker, forked with two),
    then relaunched with the trials that did not reach the sink: every trial reaches it exactly once,
    with the uninterrupted result, and no checkpoint is left."""
    plan = TrialPlan(workload="synthetic", epochs=60, batch_size=16)
    keys = PACK_KEYS[:4] + PACK_KEYS[-3:] + [TrialKey("sgdm_none", 0.03, 0.9, 1)]
    whole = {r.key: r for r in run_pack(plan, keys)}
    folder = tmp_path / "packs"
    first: list[TrialResult] = []

    def stop_soon() -> bool:  # once a pack has checkpointed an epoch (forked: within 0.5 s of it)
        return any(folder.glob("*.pack.pt"))

    executor = PackedExecutor(pack_size=4, workers=workers, checkpoint_dir=folder, checkpoint_seconds=0)
    summary = executor.run(Work(plan, keys, should_stop=stop_soon), first.append)
    assert summary.cancelled
    assert len(first) < len(keys)
    assert list(folder.glob("*.pack.pt"))  # the stopped packs' checkpoints
    pending = [key for key in keys if key not in {r.key for r in first}]
    second: list[TrialResult] = []
    summary = PackedExecutor(pack_size=4, workers=workers, checkpoint_dir=folder).run(
        Work(plan, pending), second.append
    )
    assert not summary.cancelled
    assert sorted(r.key for r in first + second) == sorted(keys)  # each exactly once
    for result in first + second:
        _same_as_uninterrupted(result, whole[result.key])
    assert list(folder.iterdir()) == []


def test_a_stopped_forked_pack_saves_its_checkpoint(tmp_path: Any) -> None:
    """A cancel stops a forked pack after its epoch with its checkpoint saved, as a pack in the driver's
    process does (it was killed outright: with the 30-s cadence, a cancel lost everything since the
    last save), and the relaunch resumes from it with the uninterrupted results."""
    plan = TrialPlan(workload="synthetic", epochs=200, batch_size=16)
    keys = PACK_KEYS[:4]
    folder = tmp_path / "packs"
    started = time.monotonic()
    executor = PackedExecutor(pack_size=2, workers=2, checkpoint_dir=folder, checkpoint_seconds=3600)
    summary = executor.run(Work(plan, keys, should_stop=lambda: time.monotonic() - started > 1.0), lambda r: None)
    assert summary.cancelled
    saved = sorted(folder.glob("*.pack.pt"))  # no periodic save was due: these are the stop's
    assert len(saved) == 2  # two packs of two, forked
    resumed: list[TrialResult] = []
    PackedExecutor(pack_size=2, workers=2, checkpoint_dir=folder).run(Work(plan, keys), resumed.append)
    assert sorted(r.key for r in resumed) == sorted(keys)
    whole = {r.key: r for r in run_pack(plan, keys[:2]) + run_pack(plan, keys[2:])}
    for result in resumed:
        _same_as_uninterrupted(result, whole[result.key])
    assert not any(path.exists() for path in saved)


def test_a_pack_whose_process_dies_is_an_error_not_a_wait(tmp_path: Any) -> None:
    """A forked pack killed outright (the OOM killer, say) before its end: the executor says so and
    returns its other processes to nobody (none is left running), rather than wait for its results."""
    import os
    import signal
    import threading

    import psutil

    plan = TrialPlan(workload="synthetic", epochs=400, batch_size=16)
    keys = PACK_KEYS[:8]
    folder = tmp_path / "packs"
    killed: list[int] = []
    before = {p.pid for p in psutil.Process().children()}  # an earlier test's Ray, say

    def packs() -> list[psutil.Process]:
        return [p for p in psutil.Process().children() if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]

    def kill_a_pack() -> None:  # once both packs have checkpointed an epoch: their processes train
        while len(list(folder.glob("*.pack.pt"))) < 2:
            threading.Event().wait(0.05)
        victim = packs()[0]
        killed.append(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)

    threading.Thread(target=kill_a_pack, daemon=True).start()
    executor = PackedExecutor(pack_size=4, workers=2, checkpoint_dir=folder, checkpoint_seconds=0)
    with pytest.raises(RuntimeError, match=r"a pack's process exited with code -9 before its end"):
        executor.run(Work(plan, keys), lambda result: None)
    assert killed
    assert packs() == []


def test_a_pack_that_stopped_early_fails_the_run_even_when_it_ends_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last pack's end can arrive while this process drains what an exited pack sent (the parent
    slow with its first result, as a database write is): a pack stopped by a signal with 2 of its 5
    results unsent then ended the loop, and the run returned as complete."""
    import types

    from studies.executors import packed as executor_module
    from studies.executors.base import RunSummary

    class Result:
        def __init__(self, key: str) -> None:
            self.key = key

        def to_dict(self) -> dict[str, str]:
            return {"key": self.key}

        @staticmethod
        def from_dict(data: dict[str, str]) -> dict[str, str]:
            return data

    class StoppedJob:
        plan = types.SimpleNamespace(threads=1)

        def pending(self) -> list[str]:
            return ["a", "b", "c", "d", "e"]

        def run(self, send: Any, should_stop: Any) -> int:
            for key in "abc":  # then a signal stopped it: d and e never ran
                send(Result(key))
            return 3

    monkeypatch.setattr(executor_module, "TrialResult", Result)
    received: list[Any] = []

    def slow_sink(result: Any) -> None:
        received.append(result)
        time.sleep(0.5)  # the pack exits meanwhile: its end comes in the drain

    work = types.SimpleNamespace(should_stop=lambda: False, while_waiting=None)
    runner = executor_module.PackedExecutor.__new__(executor_module.PackedExecutor)
    with pytest.raises(RuntimeError, match=r"2 trial\(s\) were not run"):
        runner._run_forked([StoppedJob()], slow_sink, work, RunSummary(), 1)  # type: ignore[list-item,arg-type]
    assert [r["key"] for r in received] == ["a", "b", "c"]
