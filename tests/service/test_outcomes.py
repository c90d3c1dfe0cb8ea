"""Outcomes that say what happened: a study whose trials all failed is ``failed``, one with some
failures ``completed_with_failures``; a missing dataset fails the study once, with one clear error;
``demonlab submit --wait`` exits non-zero unless the study completed cleanly."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine

from service.cli import main
from service.db import StudyStatus, dal, session_scope
from service.jobs import driver
from service.settings import Settings
from service.submission import store_study
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.spec import StudySpec

KEYS = [TrialKey("demon_sgdm", lr, 0.9, 0) for lr in (0.01, 0.1, 1.0)]


def outcome(key: TrialKey, ok: bool) -> TrialResult:
    if ok:
        return TrialResult(key=key, status=TrialStatus.COMPLETED, val_metric=0.2, test_metric=0.25, epochs_done=1)
    return TrialResult(key=key, status=TrialStatus.FAILED, error="RuntimeError: boom")


def run_to_the_end(engine: Engine, oks: list[bool]) -> Any:
    with session_scope(engine) as session:
        study = dal.create_study(
            session,
            name="s",
            workload="synthetic",
            spec={"workload": "synthetic"},
            spec_hash="h",
            trial_keys=KEYS,
            launcher="local",
        )
        dal.claim_queued_studies(session, limit=1, launcher_id="test")
    for key, ok in zip(KEYS, oks, strict=True):
        with session_scope(engine) as session:
            dal.record_trial_result(session, study.id, outcome(key, ok))
    with session_scope(engine) as session:  # the driver's word: it ran everything
        return dal.finish_study(session, study.id, status=StudyStatus.COMPLETED, error=None)


@pytest.mark.parametrize(
    ("oks", "status"),
    [
        ([True, True, True], StudyStatus.COMPLETED),
        ([True, False, True], StudyStatus.COMPLETED_WITH_FAILURES),
        ([False, False, False], StudyStatus.FAILED),
    ],
)
def test_the_outcome_follows_the_trials(engine: Engine, oks: list[bool], status: StudyStatus) -> None:
    study = run_to_the_end(engine, oks)
    assert study.status is status
    with session_scope(engine, read_only=True) as session:
        assert dal.get_study(session, study.id).status is status  # stored, on both engines
        page, count = dal.list_studies(session, status=status)
        assert [s.id for s in page] == [study.id]
        assert count == 1


def test_a_missing_dataset_fails_the_study_once_at_driver_start(engine: Engine, settings: Settings) -> None:
    spec = StudySpec.model_validate(
        {"name": "c", "workload": "cifar10_resnet20", "arms": ["demon_sgdm"], "lr": [0.1, 0.01]}
        | {"beta_init": [0.9], "seeds": 3, "epochs": 1}
    )
    with session_scope(engine) as session:  # stored past the submission check, as on a cluster
        study = store_study(session, spec, launcher="ray")
        (claimed,) = dal.claim_queued_studies(session, limit=1, launcher_id="test")
    assert driver.execute(study.id, settings, attempt=claimed.attempts) == 1
    with session_scope(engine, read_only=True) as session:
        failed = dal.get_study(session, study.id)
        trials, _ = dal.list_trials(session, study.id, offset=0, limit=100)
    assert failed.status is StudyStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("the dataset of 'cifar10_resnet20' is not available: CIFAR-10 not found")
    assert failed.error.count("CIFAR-10 not found") == 1
    assert len(trials) == 6
    assert all(t.error is None for t in trials)  # not the same error stored per trial


@pytest.mark.parametrize(
    ("oks", "code", "status"),
    [
        ([True, True, True], 0, "completed"),
        ([True, False, True], 1, "completed_with_failures"),
        ([False, False, False], 1, "failed"),
    ],
)
def test_submit_wait_exits_non_zero_unless_every_trial_ran(
    live_server: Any,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    oks: list[bool],
    code: int,
    status: str,
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nworkload: synthetic\narms: [demon_sgdm]\nlr: [0.01, 0.1, 1.0]\nbeta_init: [0.9]\nepochs: 1\n"
    )
    with live_server() as url:
        result: list[int] = []
        waiter = threading.Thread(target=lambda: result.append(main(["submit", str(spec), "--wait", "--url", url])))
        waiter.start()
        study_id = _the_queued_study(engine)
        with session_scope(engine) as session:
            dal.claim_queued_studies(session, limit=1, launcher_id="test")
        for key, ok in zip(KEYS, oks, strict=True):
            with session_scope(engine) as session:
                dal.record_trial_result(session, study_id, outcome(key, ok))
        with session_scope(engine) as session:
            dal.finish_study(session, study_id, status=StudyStatus.COMPLETED)
        waiter.join(timeout=30)
    assert result == [code]
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"study {study_id}: {status.replace('_', ' ')}"  # as a person reads it


def _the_queued_study(engine: Engine) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with session_scope(engine, read_only=True) as session:
            rows, _ = dal.list_studies(session)
        if rows:
            return rows[0].id
        time.sleep(0.05)
    raise AssertionError("the CLI did not submit the study")
