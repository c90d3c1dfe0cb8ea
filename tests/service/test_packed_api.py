"""``execution.mode: packed`` through the API: accepted and stored for a workload that packs, refused
with a 422 naming ``execution`` and the reason for one that does not (nothing stored); and run end to
end by a real local driver (slow)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_end_to_end import Service, assert_each_key_once, finished
from test_end_to_end import service as packed_service  # noqa: F401 (test_end_to_end's `service` fixture)

from studies.results import TrialStatus

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
    assert "own loss" in body["detail"]
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
