"""A real two-node Ray cluster on this machine, studies launched on it as Ray Jobs.

The head (2 CPUs, the dashboard, so the Jobs API) and a worker (1 CPU and a custom resource
``special``) are started with ``ray start``; the service (real HTTP, PostgreSQL) uses the ``ray``
launcher, so every study's driver is a Ray Job on the cluster.

Which node runs a trial is decided by resources alone, so the test can prove both nodes ran trials
whatever Ray's scheduling order: one study asks for ``special`` (only the worker has it), the other
for 2 CPUs and nothing custom (only the head has 2 CPUs). The node stored with every trial must be
the worker for the first study and the head for the second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import RayCluster, assert_each_trial_once, ray_cluster, synthetic_spec, wait_for_study

from service.client import DemonlabClient

ON_POSTGRES = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[RayCluster]:
    """A head (2 CPUs, dashboard) and a worker (1 CPU, ``special``: 4), killed at the end, on failure too."""
    with ray_cluster() as cluster:
        cluster.start_head(num_cpus=2, dashboard=True)
        cluster.add_worker(num_cpus=1, resources={"special": 4})
        yield cluster


@pytest.fixture
def no_ray_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Jobs API client in this process talks to a cluster without token auth."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def _node_ids(cluster: RayCluster) -> tuple[str, str]:
    nodes = cluster.nodes()
    assert len(nodes) == 2, nodes
    head = next(n["node_id"] for n in nodes if n["is_head_node"])
    worker = next(n["node_id"] for n in nodes if "special" in n["resources_total"])
    return head[:12], worker[:12]


def _ray_node(node: str | None) -> str:
    """``<hostname>/<ray node id[:12]>`` → the node id part."""
    assert node is not None
    assert "/" in node, f"not a Ray node: {node!r}"
    return node.rsplit("/", 1)[1]


@pytest.mark.slow
@ON_POSTGRES
@pytest.mark.usefixtures("no_ray_auth")
@pytest.mark.parametrize("mode", ["per_trial", "packed"])
def test_trials_run_on_both_nodes_as_their_resources_ask(
    two_nodes: RayCluster, live_server: Any, db_url: str, data_dir: Path, mode: str
) -> None:
    """Per trial (each trial a Ray Tune trial) and packed (each pack a Ray task): the study asking
    for ``special`` runs on the worker only, the one asking for 2 CPUs on the head only; packed, each
    study is one pack of its 3 trials (one node runs it: ``auto`` makes one pack per slot)."""
    head_id, worker_id = _node_ids(two_nodes)
    special = synthetic_spec(
        f"on-worker-{mode}",
        lrs=(0.01, 0.1, 1.0),
        resources={"cpu": 1, "gpu": 0, "custom": {"special": 1}},
        mode=mode,
    )
    plain = synthetic_spec(f"on-head-{mode}", lrs=(0.01, 0.1, 1.0), resources={"cpu": 2, "gpu": 0}, mode=mode)
    with (
        live_server(run_scheduler=True, launcher="ray", ray_address=two_nodes.dashboard_url) as url,
        DemonlabClient(url) as client,
    ):
        ids = {name: client.submit(spec).id for name, spec in (("special", special), ("plain", plain))}
        studies = {name: wait_for_study(client, sid, timeout=150) for name, sid in ids.items()}
    for name, study in studies.items():
        assert study.status == "completed", f"{name}: {study.status} {study.error}\n{_driver_logs(data_dir)}"
        assert study.error is None
        assert (study.job_id or "").startswith("ray:"), study.job_id  # the driver ran as a Ray Job
        assert study.attempts == 1
    on_worker = assert_each_trial_once(db_url, ids["special"], total=3, epochs=2)
    on_head = assert_each_trial_once(db_url, ids["plain"], total=3, epochs=2)
    assert {_ray_node(r["node"]) for r in on_worker} == {worker_id}, "trials asking for 'special' left the worker"
    assert {_ray_node(r["node"]) for r in on_head} == {head_id}, "trials asking for 2 CPUs left the head"
    packs = {r["extra"].get("pack_size") for r in on_worker + on_head}
    assert packs == ({None} if mode == "per_trial" else {3}), f"{mode}: pack sizes {packs}"
    # so both nodes ran trials (head_id != worker_id: two distinct Ray nodes)
    assert head_id != worker_id


@pytest.mark.slow
@ON_POSTGRES
@pytest.mark.usefixtures("no_ray_auth")
def test_a_gpu_study_on_a_cluster_without_gpus_fails_at_once_naming_the_resources(
    two_nodes: RayCluster, live_server: Any, data_dir: Path
) -> None:
    spec = synthetic_spec("wants-a-gpu", resources={"cpu": 1, "gpu": 1})
    with (
        live_server(run_scheduler=True, launcher="ray", ray_address=two_nodes.dashboard_url) as url,
        DemonlabClient(url) as client,
    ):
        created = client.submit(spec)  # a cluster is not this machine: the driver checks its nodes
        assert created.status == "queued"
        study = wait_for_study(client, created.id, timeout=90)  # failed at once, not left waiting for a GPU
        trials = client.trials(created.id).data
    assert study.status == "failed", f"{study.status}: {study.error}\n{_driver_logs(data_dir)}"
    error = study.error or ""
    assert "GPU=1" in error, error
    assert "no node of the Ray cluster" in error, error
    assert "special=4" in error, f"the worker is not described: {error}"
    assert "CPU=2" in error, f"the head is not described: {error}"
    assert all(t.status != "completed" for t in trials)


def test_a_gpu_study_with_the_local_launcher_and_no_cluster_is_refused_with_422(api: Any) -> None:
    import torch

    if torch.cuda.device_count() > 0:
        pytest.skip("this machine has a GPU: the local launcher accepts the spec")
    response = api.post("/api/v1/studies", json=synthetic_spec("wants-a-gpu", resources={"cpu": 1, "gpu": 1}))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "resources.gpu"
    assert "GPU" in body["detail"]


def _driver_logs(data_dir: Path) -> str:
    """What the drivers' logs say (for a failing assertion's message)."""
    logs = sorted((data_dir / "logs").glob("*.log")) if (data_dir / "logs").exists() else []
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
