"""Optuna search studies through the service: rows appear as the sampler proposes them, the Optuna
study lives beside (never inside) the service's tables, and the results endpoints work on them."""

from __future__ import annotations

import time
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from service.app import create_app
from service.db import make_engine
from service.jobs.optuna_record import optuna_url
from studies.optuna_storage import open_rdb_storage

SEARCH_SPEC: dict[str, Any] = {
    "name": "search",
    "workload": "synthetic",
    "arms": ["demon_sgdm", "sgdm_cosine"],
    "seeds": 2,
    "epochs": 2,
    "search": {
        "mode": "optuna",
        "sampler": "random",
        "n_trials": 3,
        "lr": {"min": 0.001, "max": 1.0},
        "beta_init": {"min": 0.5, "max": 0.95},
        "seed": 7,
    },
}


def _wait(client: TestClient, study_id: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study: dict[str, Any] = client.get(f"/api/v1/studies/{study_id}").json()
        if study["status"] in ("completed", "failed", "cancelled"):
            return study
        time.sleep(0.5)
    raise AssertionError(f"study {study_id} did not finish in {timeout}s")


def test_optuna_storage_is_kept_apart_from_our_tables(settings_factory: Any) -> None:
    settings = settings_factory()
    url = optuna_url(settings)
    assert url != settings.database_url
    storage = open_rdb_storage(url)
    study = optuna.create_study(storage=storage, study_name="apart")
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    engine = make_engine(settings.database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "version_info" not in tables, "Optuna's tables must not land in the service's schema"
    assert len(optuna.load_study(study_name="apart", storage=storage).trials) == 2


@pytest.mark.slow
# On PostgreSQL only: the backend of shared use, where Optuna's storage and ours share a server (the
# SQLite side of the search path runs in test_search_studies's other tests and tests/studies).
@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_search_study_runs_end_to_end(settings_factory: Any) -> None:
    settings = settings_factory(heartbeat_seconds=0.5, stale_after_seconds=20)
    with TestClient(create_app(settings, run_scheduler=True)) as client:
        created = client.post("/api/v1/studies", json=SEARCH_SPEC)
        assert created.status_code == 202, created.text
        study_id = created.json()["id"]
        assert created.json()["trials_total"] == 2 * 3 * 2
        study = _wait(client, study_id)
        assert study["status"] == "completed", study["error"]
        trials = client.get(f"/api/v1/studies/{study_id}/trials", params={"limit": 100}).json()
        assert trials["count"] == 12
        points = {(t["arm"], t["lr"], t["beta_init"]) for t in trials["data"]}
        assert len(points) == 6, "each sampled point runs on both seeds"
        assert all(0.001 <= lr <= 1.0 and 0.5 <= beta <= 0.95 for _, lr, beta in points)
        report = client.get(f"/api/v1/studies/{study_id}/sensitivity")
        assert report.status_code == 200, report.text
        assert set(report.json()["arms"]) == {"demon_sgdm", "sgdm_cosine"}
        assert client.get(f"/api/v1/studies/{study_id}/heatmap.svg").status_code == 200
    storage = open_rdb_storage(optuna_url(settings))
    for arm in ("demon_sgdm", "sgdm_cosine"):
        stored = optuna.load_study(study_name=f"{study_id}:{arm}", storage=storage)
        assert len([t for t in stored.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 3
