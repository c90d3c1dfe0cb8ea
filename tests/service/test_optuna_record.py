"""Every finished trial also lands in the Optuna storage the service keeps (``optuna_url``), on SQLite
and PostgreSQL: one Optuna study per arm named for people, lr and β_init as distributions, the seed,
both splits' scores, divergence and the demonlab study id as user attributes, per-epoch intermediate
values, real start and end times; once per trial across relaunches. The value is the spec's metric on
validation (its loss with ``metric: loss``) and its label says so in words. The mirror catches up with the
trials table from SQL (mirror == trials table) and is deleted with its study."""

from __future__ import annotations

import math
import secrets
import threading
from typing import Any

import optuna
import pytest
import sqlalchemy

from service.artefacts import study_files
from service.db import dal, session_scope
from service.jobs.driver import _optuna_mirror
from service.jobs.optuna_record import MirrorWriter, OptunaRecorder, mirror_study_ids, optuna_study_name, optuna_url
from studies.optuna_storage import open_rdb_storage
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
    fail = spec.y_fail("metric")
    keys = expand_trials(spec)
    recorder = OptunaRecorder(optuna_url(settings), "abc123def456", spec, fail)
    for key in keys:
        recorder.record(result(key))
    failed = TrialResult(key=keys[0], status=TrialStatus.FAILED, epochs=(), error="boom")
    recorder.record(failed)  # not a result: not recorded
    again = OptunaRecorder(optuna_url(settings), "abc123def456", spec, fail)  # a relaunched driver
    for key in keys[:5]:
        again.record(result(key))

    storage = open_rdb_storage(optuna_url(settings))
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert names == {"synthetic-smoke · demon_sgdm · abc123def456", "synthetic-smoke · sgdm_step · abc123def456"}
    for arm in ("demon_sgdm", "sgdm_step"):
        study = optuna.load_study(study_name=f"synthetic-smoke · {arm} · abc123def456", storage=storage)
        assert study.user_attrs["demonlab_study_id"] == "abc123def456"
        assert study.user_attrs["demonlab_study_name"] == "synthetic-smoke"
        assert study.user_attrs["arm"] == arm
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
                assert t.intermediate_values == {0: pytest.approx(expected)}  # one epoch: its val metric
                assert (t.datetime_complete - t.datetime_start).total_seconds() == pytest.approx(0.2, abs=1e-3)


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
    name = optuna_study_name("0123456789ab", "demon_sgdm", search=True, name="search")
    assert name == "search · demon_sgdm · 0123456789ab · seeds"
    storage = open_rdb_storage(optuna_url(settings))
    study = optuna.load_study(study_name=name, storage=storage)
    (trial,) = study.get_trials()
    assert trial.params == {"lr": 0.02, "beta_init": 0.7}
    assert trial.distributions["lr"] == optuna.distributions.FloatDistribution(0.001, 1.0, log=True)
    assert "0123456789ab:demon_sgdm" not in {s.study_name for s in optuna.get_all_study_summaries(storage)}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # labels and values: no backend difference
@pytest.mark.parametrize(("metric", "words"), [(None, "validation error rate"), ("loss", "validation loss")])
def test_the_mirror_records_and_names_the_specs_metric(
    settings_factory: Any, engine: Any, new_study: Any, smoke_spec: dict[str, Any], metric: str | None, words: str
) -> None:
    """The driver's mirror recorded the validation error rate under the label "validation loss" when
    the spec said ``metric: loss``: its value, curve and failure score are now the spec's metric."""
    raw = smoke_spec | ({"metric": metric} if metric else {})
    spec = StudySpec.model_validate(raw, context={"max_trials": 1000})
    keys = expand_trials(spec)
    study = new_study(name=spec.name, spec=raw, trial_keys=keys)
    writer = _optuna_mirror(engine, settings_factory(), study.id, spec)
    for key in keys:
        writer.submit(result(key))
    writer.close()

    settings = settings_factory()
    fail = spec.y_fail("loss" if metric == "loss" else "metric")
    storage = open_rdb_storage(optuna_url(settings))
    mirror = optuna.load_study(study_name=f"synthetic-smoke · demon_sgdm · {study.id}", storage=storage)
    assert mirror.user_attrs["value"] == f"{words} (lower is better; diverged = {fail:g})"
    for t in mirror.get_trials():
        if t.user_attrs["diverged"]:
            assert t.value == pytest.approx(fail)
        else:
            own = t.user_attrs["val_loss"] if metric == "loss" else t.user_attrs["val_metric"]
            assert (t.value, t.intermediate_values) == (pytest.approx(own), {0: pytest.approx(own)})
    storage.engine.dispose()


def mirrored(settings: Any, study_id: str) -> dict[tuple[str, float, float, int], float]:
    """The mirror of ``study_id``: (arm, lr, β_init, seed) → value, over every arm's Optuna study."""
    storage = open_rdb_storage(optuna_url(settings))
    found: dict[tuple[str, float, float, int], float] = {}
    for name in mirror_study_ids(optuna_url(settings), study_id):
        for t in optuna.load_study(study_name=name, storage=storage).get_trials():
            key = (t.user_attrs["arm"], t.params["lr"], t.params["beta_init"], t.user_attrs["seed"])
            assert key not in found, f"{key} mirrored twice"
            found[key] = t.value
    storage.engine.dispose()
    return found


def stored_results(engine: Any, study_id: str) -> set[tuple[str, float, float, int]]:
    with session_scope(engine, read_only=True) as session:
        rows, _ = dal.list_trials(session, study_id, limit=10_000)
    return {(r.arm, r.lr, r.beta_init, r.seed) for r in rows if r.status in ("completed", "diverged")}


def test_the_mirror_catches_up_with_the_trials_table(
    settings_factory: Any, engine: Any, new_study: Any, smoke_spec: dict[str, Any]
) -> None:
    """A driver killed between the database's commit and the mirror's write left the mirror short
    (79 of 80 trials): the next driver backfills from SQL when it starts and when the study ends."""
    settings = settings_factory()
    spec = StudySpec.model_validate(smoke_spec, context={"max_trials": 1000})
    keys = expand_trials(spec)
    study = new_study(name=spec.name, spec=smoke_spec, trial_keys=keys)
    for key in keys:
        with session_scope(engine) as session:
            dal.record_trial_result(session, study.id, result(key))
    first = OptunaRecorder(optuna_url(settings), study.id, spec, 0.9)
    for key in keys[:5]:  # the rest were committed, then the driver died before mirroring them
        first.record(result(key))
    assert len(mirrored(settings, study.id)) == 5

    writer = MirrorWriter(OptunaRecorder(optuna_url(settings), study.id, spec, 0.9), engine, study.id).start()
    writer.close()  # the relaunched driver's study ends at once: its start and end backfill

    mirror = mirrored(settings, study.id)
    assert set(mirror) == stored_results(engine, study.id)
    assert len(mirror) == 24
    storage = open_rdb_storage(optuna_url(settings))
    backfilled = optuna.load_study(study_name=f"synthetic-smoke · sgdm_step · {study.id}", storage=storage)
    curve = {t.user_attrs["trial_key"]: t.intermediate_values for t in backfilled.get_trials()}
    assert all(len(values) == 1 for key, values in curve.items() if "1.0" not in key)  # curves from trial_epochs


def test_results_submitted_to_the_writer_reach_the_mirror_by_the_end(
    settings_factory: Any, engine: Any, new_study: Any, smoke_spec: dict[str, Any]
) -> None:
    settings = settings_factory()
    spec = StudySpec.model_validate(smoke_spec, context={"max_trials": 1000})
    keys = expand_trials(spec)
    study = new_study(name=spec.name, spec=smoke_spec, trial_keys=keys)
    writer = MirrorWriter(OptunaRecorder(optuna_url(settings), study.id, spec, 0.9), engine, study.id).start()
    for key in keys:
        with session_scope(engine) as session:
            dal.record_trial_result(session, study.id, result(key))
        writer.submit(result(key))  # returns at once: the writer's thread writes
    writer.close()
    assert set(mirrored(settings, study.id)) == stored_results(engine, study.id)


def test_deleting_a_study_deletes_its_mirror_and_its_files(
    api_factory: Any, settings_factory: Any, smoke_spec: dict[str, Any]
) -> None:
    """DELETE left the study's Optuna studies, its pack checkpoints and its logs behind."""
    api = api_factory()
    settings = settings_factory()
    spec = StudySpec.model_validate(smoke_spec, context={"max_trials": 1000})
    kept, gone = (api.post("/api/v1/studies", json=smoke_spec).json()["id"] for _ in range(2))
    for study_id in (kept, gone):
        recorder = OptunaRecorder(optuna_url(settings), study_id, spec, 0.9)
        recorder.record(result(expand_trials(spec)[0]))
        optuna.create_study(study_name=f"{study_id}:demon_sgdm", storage=optuna_url(settings))  # a sampler's
        for path in (f"packs/{study_id}-0123abcd/pack-1.pack.pt", f"logs/{study_id}-1.log", f"tune/{study_id}/t/x"):
            (settings.data_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (settings.data_dir / path).write_text("x")
    assert len(mirror_study_ids(optuna_url(settings), gone)) == 2

    assert api.delete(f"/api/v1/studies/{gone}").status_code == 204

    assert mirror_study_ids(optuna_url(settings), gone) == []
    assert study_files(settings.data_dir, gone) == []
    assert len(mirror_study_ids(optuna_url(settings), kept)) == 2  # another study's are left alone
    assert len(study_files(settings.data_dir, kept)) == 3


@pytest.mark.postgres
def test_processes_opening_a_new_optuna_storage_at_once_all_get_it(postgres_admin: Any, postgres_url: Any) -> None:
    """Six openers at once on an empty schema: with Optuna's own ``RDBStorage`` five of six failed
    (UniqueViolation creating its tables) in every one of 5 tries; ``open_rdb_storage`` tries again."""
    schema = f"race_{secrets.token_hex(4)}"
    with sqlalchemy.create_engine(postgres_url).begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = postgres_url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    start = threading.Barrier(6)
    opened: list[str] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            storage = open_rdb_storage(url)
            opened.append(storage.get_current_version())
            storage.engine.dispose()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(opened) == 6
    assert len(set(opened)) == 1
