"""``execution.mode: packed`` through the API: accepted and stored for a workload that packs, refused
with a 422 naming ``execution`` and the reason for one that does not (nothing stored); and run end to
end by a real local driver (slow)."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import wait_until
from fastapi.testclient import TestClient
from test_end_to_end import RUN_TIMEOUT, STALE_AFTER_SECONDS, Service, assert_each_key_once, finished, slow_spec
from test_end_to_end import service as packed_service  # noqa: F401 (test_end_to_end's `service` fixture)
from test_optuna_record import mirrored, stored_results

from service.settings import Settings
from studies.executors import execute_study
from studies.packed.checkpoint import PackState
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.spec import StudySpec

STUDIES = "/api/v1/studies"


def test_packed_spec_is_stored_with_its_execution(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    response = api.post(STUDIES, json=smoke_spec | {"execution": {"mode": "packed", "pack_size": 4}})
    assert response.status_code == 202, response.text
    study = api.get(f"{STUDIES}/{response.json()['id']}").json()
    assert study["spec"]["execution"] == {"mode": "packed", "pack_size": 4}


def test_unpackable_workload_is_refused_naming_the_field(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    before = api.get(STUDIES).json()["count"]
    spec = smoke_spec | {"workload": "mnist_vae", "execution": {"mode": "packed"}}
    response = api.post(STUDIES, json=spec)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "execution"
    assert "execution.mode 'packed' is not available for workload 'mnist_vae'" in body["detail"]
    assert "workloads that pack: " in body["detail"]
    assert api.get(STUDIES).json()["count"] == before


@pytest.mark.slow
def test_packed_study_runs_through_a_local_driver_without_ray(
    packed_service: Service,  # noqa: F811 (the fixture imported above)
    smoke_spec: dict[str, Any],
) -> None:
    service = packed_service
    """A packed study goes scheduler → local driver → packs in the driver's process (no Ray):
    every trial stored once with its curve, marked running once."""
    created = service.client.submit(smoke_spec | {"execution": {"mode": "packed"}})
    study = service.wait_for(created.id, finished)
    assert study.status == "completed", service.logs()
    assert (study.progress.done, study.progress.total, study.progress.failed) == (24, 24, 0)
    trials = service.trials(created.id)
    assert len(trials) == 24
    assert_each_key_once(service.engine, created.id)
    assert {t.attempts for t in trials} == {1}
    for trial in trials:
        assert "/" not in trial.node, "ran on Ray"
        if trial.status is TrialStatus.COMPLETED:
            assert trial.epochs_done == 2


@pytest.mark.slow
# SQLite only: a killed driver relaunched on PostgreSQL is test_end_to_end.py's (per trial).
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_killed_packed_driver_is_relaunched_and_resumes_its_packs_from_their_checkpoints(
    packed_service: Service,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """SIGKILL the local driver while its two forked packs train (each has checkpointed an epoch):
    the relaunched driver resumes both packs from their checkpoints instead of starting over, and
    every trial is stored once with the per-trial run's figures, bit for bit."""
    kill_a_packed_driver_and_check_it_resumes(packed_service, tmp_path)


def kill_a_packed_driver_and_check_it_resumes(service: Service, tmp_path: Path) -> None:
    """The test above, on ``service`` (also run with drivers forked from the warm process)."""
    data = slow_spec("packed-kill", [0.01, 0.1]) | {"execution": {"mode": "packed", "pack_size": 8}}
    created = service.client.submit(data)
    study = service.wait_for(created.id, lambda s: s.job_id is not None or finished(s))
    first = service.drivers.note(study.job_id)
    folder = service.data_dir / "packs"

    def both_packs_checkpointed() -> bool:
        states = [PackState.load(p) for p in folder.glob("*/*.pack.pt")]
        return len(states) == 2 and all(s is not None and s.epoch >= 2 for s in states)

    deadline = time.monotonic() + RUN_TIMEOUT
    while not both_packs_checkpointed():
        assert time.monotonic() < deadline, service.logs()
        assert not finished(service.client.get_study(created.id)), "the packs ran out before the kill"
        time.sleep(0.05)
    os.kill(first, signal.SIGKILL)
    study = service.wait_for(created.id, finished, timeout=RUN_TIMEOUT + STALE_AFTER_SECONDS)
    assert study.status == "completed", service.logs()
    assert study.attempts == 2
    assert_each_key_once(service.engine, created.id)
    trials = service.trials(created.id)
    assert len(trials) == 16
    assert all(t.extra.get("resumed_from_epoch", 0) >= 2 for t in trials), [t.extra for t in trials]
    assert list(folder.glob("*/*.pack.pt")) == []  # deleted when each pack finished
    assert list(folder.iterdir()) == []  # and their folder when the study ended
    # The mirror in Optuna's storage holds every result once, those of the killed driver included.
    settings = Settings(
        data_dir=service.data_dir, database_url=service.engine.url.render_as_string(hide_password=False)
    )
    stored = stored_results(service.engine, created.id)  # the driver writes it after the study's end
    wait_until(lambda: set(mirrored(settings, created.id)) == stored, timeout=60, what="the Optuna mirror")

    reference: list[TrialResult] = []
    execute_study(StudySpec.model_validate(data), reference.append, executor="inprocess", data_dir=tmp_path)
    by_key = {r.key: r for r in reference}
    for trial in trials:
        expected = by_key[TrialKey(trial.arm, trial.lr, trial.beta_init, trial.seed)]
        assert (trial.status, trial.epochs_done) == (expected.status, expected.epochs_done)
        for field in ("val_metric", "val_loss", "test_metric", "test_loss", "best_val_metric"):
            mine, theirs = getattr(trial, field), getattr(expected, field)
            assert mine == theirs or (math.isnan(mine) and math.isnan(theirs)), (trial.arm, trial.lr, field)
