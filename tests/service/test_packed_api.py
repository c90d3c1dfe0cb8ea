"""``execution.mode: packed`` through the API: accepted and stored for a workload that packs, refused
with a 422 naming ``execution`` and the reason for one that does not (nothing stored)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

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
