"""The study event stream (``GET /api/v1/studies/{id}/events``) over real HTTP, on SQLite and
PostgreSQL: progress, each recorded trial, status changes, the end; ``Last-Event-ID`` resumes; idle
streams carry heartbeats; the Python client and ``demonlab submit --wait`` follow it.

Results are recorded with the data-access layer from a thread, as a driver would, while the stream
is open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine
from test_http import ARMS, BETAS, LRS, result_for

from service.cli import main
from service.client import ApiError, DemonlabClient, StudyEvent, parse_stream
from service.db import StudyStatus, dal, session_scope
from studies.results import TrialKey

LiveServer = Callable[..., AbstractContextManager[str]]
FAST = {"events_poll_seconds": 0.05, "events_heartbeat_seconds": 0.3}
KEYS = [TrialKey(arm, lr, beta, seed) for arm in ARMS for lr in LRS for beta in BETAS for seed in (0, 1)]


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[str]:
    with live_server(**FAST) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[DemonlabClient]:
    with DemonlabClient(server, timeout=30) as client:
        yield client


def start(engine: Engine) -> None:
    with session_scope(engine) as session:
        dal.claim_queued_studies(session, limit=100, launcher_id="test")


def record(engine: Engine, study_id: str, keys: list[TrialKey]) -> None:
    for key in keys:
        with session_scope(engine) as session:
            dal.record_trial_result(session, study_id, result_for(key))


def finish(engine: Engine, study_id: str) -> None:
    with session_scope(engine) as session:
        dal.finish_study(session, study_id, status=StudyStatus.COMPLETED)


def run_later(action: Callable[[], None], delay: float = 0.3) -> threading.Thread:
    def target() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_stream_follows_a_study_to_its_end(client: DemonlabClient, engine: Engine, smoke_spec: dict[str, Any]) -> None:
    study_id = client.submit(smoke_spec).id

    def drive() -> None:
        start(engine)
        time.sleep(0.2)
        record(engine, study_id, KEYS)
        finish(engine, study_id)

    events: list[StudyEvent] = []
    thread: threading.Thread | None = None
    for event in client.events(study_id, timeout=60):
        events.append(event)
        if thread is None:  # the stream is open: now the "driver" starts
            thread = run_later(drive, delay=0.1)
    assert thread is not None
    thread.join()

    kinds = [e.event for e in events]
    assert kinds[0] == "progress"
    assert events[0].data["status"] == "queued"
    assert kinds[-1] == "end"
    assert events[-1].data == {"status": "completed"}
    trials = [e for e in events if e.event == "trial"]
    assert sorted((t.data["arm"], t.data["lr"], t.data["beta_init"], t.data["seed"]) for t in trials) == sorted(
        (k.arm, k.lr, k.beta_init, k.seed) for k in KEYS
    )
    assert len({t.id for t in trials}) == len(KEYS)  # each trial once, each with its own cursor
    assert {t.data["status"] for t in trials} == {"completed", "diverged"}
    statuses = [(e.data["previous"], e.data["status"]) for e in events if e.event == "status"]
    assert statuses == [("queued", "running"), ("running", "completed")]
    done = [e.data["progress"]["done"] for e in events if e.event == "progress"]
    assert done == sorted(done)
    assert done[0] == 0
    assert done[-1] == len(KEYS)
    assert events[-2].event == "progress"
    assert events[-2].data["status"] == "completed"


def test_last_event_id_resumes_after_the_last_trial_received(
    server: str, client: DemonlabClient, engine: Engine, smoke_spec: dict[str, Any]
) -> None:
    study_id = client.submit(smoke_spec).id
    start(engine)
    record(engine, study_id, KEYS[:2])
    # A fresh stream starts at the present: its first event's id is the cursor of the newest trial.
    first = next(iter(client.events(study_id, timeout=10)))
    assert first.event == "progress"
    assert first.id is not None
    record(engine, study_id, KEYS[2:5])

    received: list[StudyEvent] = []
    for event in client.events(study_id, last_event_id=first.id, timeout=10):
        received.append(event)
        if len([e for e in received if e.event == "trial"]) == 3:
            break
    trials = [e for e in received if e.event == "trial"]
    assert [t.data["seed"] for t in trials] == [k.seed for k in KEYS[2:5]]
    assert [t.data["beta_init"] for t in trials] == [k.beta_init for k in KEYS[2:5]]

    record(engine, study_id, KEYS[5:6])
    resumed = []
    for event in client.events(study_id, last_event_id=trials[1].id, timeout=10):
        resumed.append(event)
        if len([e for e in resumed if e.event == "trial"]) == 2:
            break
    assert [(e.data["beta_init"], e.data["seed"]) for e in resumed if e.event == "trial"] == [
        (k.beta_init, k.seed) for k in (KEYS[4], KEYS[5])
    ]


def test_idle_stream_sends_heartbeats(server: str, client: DemonlabClient, smoke_spec: dict[str, Any]) -> None:
    study_id = client.submit(smoke_spec).id
    lines: list[str] = []
    t0 = time.monotonic()
    with (
        httpx.Client(base_url=server, timeout=10) as http,
        http.stream("GET", f"/api/v1/studies/{study_id}/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            lines.append(line)
            if lines.count(": heartbeat") == 2:
                break
    assert time.monotonic() - t0 >= 0.5  # two heartbeats 0.3 s apart, not a busy loop
    assert [e for e, _, _ in parse_stream(iter(lines))] == ["progress"]


def test_stream_errors(client: DemonlabClient, server: str, smoke_spec: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as missing:
        next(iter(client.events("000000000000")))
    assert missing.value.status == 404
    study_id = client.submit(smoke_spec).id
    with pytest.raises(ApiError) as bad:
        next(iter(client.events(study_id, last_event_id="yesterday")))
    assert bad.value.status == 422
    assert bad.value.field == "Last-Event-ID"
    for beyond in ("9" * 20 + ".1", "1." + "9" * 20):  # past datetime's years, past a 64-bit trial id
        with pytest.raises(ApiError) as huge:
            next(iter(client.events(study_id, last_event_id=beyond)))
        assert (huge.value.status, huge.value.field) == (422, "Last-Event-ID")


def test_deleted_study_ends_its_stream(client: DemonlabClient, smoke_spec: dict[str, Any]) -> None:
    study_id = client.submit(smoke_spec).id
    events = []
    for event in client.events(study_id, timeout=10):
        events.append(event)
        if len(events) == 1:  # the stream is open: delete the study (on another connection of the pool)
            client.delete(study_id)
    assert [e.event for e in events] == ["progress", "end"]
    assert events[-1].data == {"status": "deleted"}


def test_submit_wait_follows_the_stream(
    server: str, engine: Engine, smoke_spec: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(smoke_spec))

    def drive() -> None:
        with session_scope(engine, read_only=True) as session:
            study_id = dal.list_studies(session)[0][0].id
        start(engine)
        record(engine, study_id, KEYS)
        finish(engine, study_id)

    def when_submitted() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with session_scope(engine, read_only=True) as session:
                if dal.list_studies(session)[1]:
                    break
            time.sleep(0.05)
        drive()

    thread = run_later(when_submitted, delay=0)
    code = main(["submit", str(path), "--wait", "--url", server])
    thread.join()
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.strip().splitlines()[-1].endswith(": completed")
    assert f"{len(KEYS)}/{len(KEYS)}" in out.err  # the progress bar reached the end
