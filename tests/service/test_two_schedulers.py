"""Two ``demonlab serve`` processes (API + scheduler each) on one PostgreSQL database: ten studies
submitted at once, half to each, are each launched exactly once.

Both schedulers use the local launcher with its defaults: each study is small and packed, so its
driver is forked from its scheduler's warm process and trains without Ray (which scheduler launched a
study is what is tested, not where its trials run: Ray's part is in test_cluster.py). Exactly once
is checked three ways: every study ran one attempt, its driver log ``<id>-1.log`` exists and no
other, and its trials are stored once each.
Which scheduler claimed which study is up to the race, so both taking part is reported, not asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cluster_helpers import (
    ServeProcess,
    assert_each_trial_once,
    reap_data_dir,
    serve_env,
    study_rows,
    synthetic_spec,
    wait_for_study,
)

from service.client import DemonlabClient

STUDIES = 10


@pytest.fixture
def reaper(data_dir: Path) -> Iterator[Path]:
    """The test's data dir; at the end both servers and every driver still running are killed."""
    yield data_dir
    reap_data_dir(data_dir)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_two_schedulers_launch_each_of_ten_studies_exactly_once(
    db_url: str, reaper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = reaper
    env = serve_env(
        database_url=db_url,
        data_dir=data_dir,
        LAUNCHER="local",
        MAX_CONCURRENT_STUDIES="5",
        HEARTBEAT_SECONDS="2",
    )
    # one after the other: each migrates the database on start-up
    servers = [ServeProcess(env, data_dir / f"serve-{i}.log").start() for i in range(2)]
    clients = [DemonlabClient(s.url) for s in servers]
    specs = [synthetic_spec(f"race-{i}", lrs=(0.01, 0.1), mode="packed") for i in range(STUDIES)]
    with ThreadPoolExecutor(max_workers=STUDIES) as pool:
        ids = list(pool.map(lambda i: clients[i % 2].submit(specs[i]).id, range(STUDIES)))
    assert len(set(ids)) == STUDIES
    studies = [wait_for_study(clients[0], sid, timeout=240) for sid in ids]
    for client in clients:
        client.close()
    for study in studies:
        logs = sorted(p.name for p in (data_dir / "logs").glob(f"{study.id}-*.log"))
        assert study.status == "completed", f"{study.id}: {study.status} {study.error}"
        assert study.attempts == 1, f"{study.id} was launched {study.attempts} times"
        assert logs == [f"{study.id}-1.log"], f"{study.id}: driver logs {logs}"
        assert_each_trial_once(db_url, study.id, total=2, epochs=2)
    rows = study_rows(db_url, ids)
    assert len({r["job_id"] for r in rows.values()}) == STUDIES  # ten drivers, one each
    claimed_by = {r["claimed_by"] for r in rows.values()}
    server_pids = {str(s.process.pid) for s in servers if s.process is not None}
    assert {c.split(":")[1] for c in claimed_by} <= server_pids, claimed_by  # <host>:<pid>:<random>
    with capsys.disabled():
        counts = {c: sum(r["claimed_by"] == c for r in rows.values()) for c in claimed_by}
        print(f"\n{STUDIES} studies claimed by {len(claimed_by)} scheduler(s): {counts}")
