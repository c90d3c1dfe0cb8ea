"""Reports of a running study are recomputed at most every few seconds, one computation per report at
a time, on a thread that yields the CPU to training; a finished study's report is computed once.

Before this, every result a running study recorded made each reader recompute its sensitivity report
(20 readers cut the study's throughput to a quarter). The clock here is the test's own.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api import all_keys, claim, engine_of, finish, make_result, submit

from service.db import dal, session_scope
from service.report_cache import COMPUTE_NICENESS, ReportCache, reports
from service.settings import Settings
from studies.results import TrialKey


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_running_studys_report_is_recomputed_at_most_every_few_seconds() -> None:
    clock = Clock()
    cache = ReportCache(recompute_seconds=5.0, clock=clock)
    calls: list[int] = []

    def report(progress: int) -> Any:
        return cache.get("r", progress=progress, running=True, compute=lambda: calls.append(progress) or progress)

    assert report(1) == 1  # the first reader waits for it
    clock.now = 4.9
    assert report(2) == 1  # a newer result, but the report is under 5 s old: served as it is
    assert calls == [1]
    clock.now = 5.1
    assert report(3) == 1  # 5 s old: served at once, and recomputed in the background
    cache.settle()
    assert calls == [1, 3]
    assert report(3) == 3  # the next reader gets the new one
    assert report(4) == 3  # and it is fresh again
    cache.settle()
    assert calls == [1, 3]


def test_a_finished_studys_report_follows_its_progress_at_once() -> None:
    cache = ReportCache(recompute_seconds=5.0, clock=Clock())
    calls: list[str] = []
    assert cache.get("r", progress="running", running=True, compute=lambda: calls.append("a") or "a") == "a"
    assert cache.get("r", progress="done", running=False, compute=lambda: calls.append("b") or "b") == "b"
    assert cache.get("r", progress="done", running=False, compute=lambda: calls.append("c") or "c") == "b"
    assert calls == ["a", "b"]


def test_readers_of_one_report_share_one_computation() -> None:
    cache = ReportCache(recompute_seconds=5.0, clock=Clock())
    release = threading.Event()
    started = threading.Event()
    calls: list[int] = []

    def slow() -> int:
        started.set()
        release.wait(timeout=30)
        calls.append(1)
        return 42

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(cache.get("r", progress=1, running=True, compute=slow)))
    first.start()
    assert started.wait(timeout=30)  # the first reader's computation is under way
    others = [
        threading.Thread(target=lambda: results.append(cache.get("r", progress=1, running=True, compute=slow)))
        for _ in range(9)
    ]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(timeout=30)
    assert results == [42] * 10
    assert calls == [1]
    assert cache.computations == 1


def test_reports_are_computed_at_a_lower_cpu_priority_than_the_callers() -> None:
    """Linux gives each thread its own nice value (``getpriority(PRIO_PROCESS, 0)`` is the caller's)."""
    caller = os.getpriority(os.PRIO_PROCESS, 0)
    computing = ReportCache().get("nice", progress=0, running=False, compute=lambda: os.getpriority(os.PRIO_PROCESS, 0))
    assert computing == min(19, caller + COMPUTE_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, 0) == caller  # the callers (request threads) keep theirs


def test_sensitivity_of_a_running_study_is_not_recomputed_for_each_new_result(
    api: TestClient, smoke_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "recompute_seconds", 3600.0)  # however slow this machine is today
    study_id = submit(api, smoke_spec)
    claim(engine_of(api))
    keys = all_keys()
    _record(api, study_id, keys[:12])
    url = f"/api/v1/studies/{study_id}/sensitivity"
    before = reports.computations
    first = api.get(url)
    assert first.status_code == 200, first.text
    _record(api, study_id, keys[12:20])  # more results land while readers read
    for _ in range(5):
        assert api.get(url).json() == first.json()  # the report of a few seconds ago, not recomputed
    assert reports.computations == before + 1

    _record(api, study_id, keys[20:])
    finish(engine_of(api), study_id)
    final = api.get(url)
    assert final.json() != first.json()  # finished: the final report at once
    assert reports.computations == before + 2


def _record(api: TestClient, study_id: str, keys: list[TrialKey]) -> None:
    for key in keys:
        with session_scope(engine_of(api)) as session:
            dal.record_trial_result(session, study_id, make_result(key))


def test_a_finished_studys_report_is_stored_and_survives_a_restart(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    """The first visitor after every restart recomputed a finished study's report (5 s at 100,000
    trials); it is stored with the study now, and dropped with it."""
    from sqlalchemy import func, select

    from service.db.models import StudyReport

    study_id = submit(api, smoke_spec)
    claim(engine_of(api))
    _record(api, study_id, all_keys())
    finish(engine_of(api), study_id)
    url = f"/api/v1/studies/{study_id}/sensitivity"
    before = reports.computations
    first = api.get(url)
    assert first.status_code == 200, first.text
    assert reports.computations == before + 1

    reports.forget(study_id)  # what a restart forgets
    again = api.get(url)
    assert again.json() == first.json()
    assert reports.computations == before + 1  # read back, not computed

    def stored() -> int:
        with session_scope(engine_of(api), read_only=True) as session:
            return (
                session.scalar(select(func.count()).select_from(StudyReport).where(StudyReport.study_id == study_id))
                or 0
            )

    assert stored() == 1
    maps = f"/api/v1/studies/{study_id}/heatmaps?split=test"  # the study page's other costly answer
    assert api.get(maps).status_code == 200
    reports.forget(study_id)
    computed = reports.computations
    assert api.get(maps).status_code == 200
    assert reports.computations == computed
    assert stored() == 2
    assert api.delete(f"/api/v1/studies/{study_id}").status_code == 204
    assert stored() == 0


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the store is tested on both databases above
def test_the_driver_stores_the_reports_of_both_splits_its_page_offers(
    api: TestClient, smoke_spec: dict[str, Any], settings: Settings
) -> None:
    """When a study ends, its driver stores the sensitivity report and the heatmaps on test and on
    validation: switching the page to validation recomputed for 10-21 s on a big study before."""
    from sqlalchemy import select

    from service.db.models import StudyReport
    from service.jobs.driver import execute

    study_id = submit(api, smoke_spec)
    claim(engine_of(api))
    assert execute(study_id, settings) == 0  # trains the 24 trials, finishes and stores the reports
    with session_scope(engine_of(api), read_only=True) as session:
        keys = session.scalars(select(StudyReport.key).where(StudyReport.study_id == study_id)).all()
    stored = {(json.loads(key)[0], json.loads(key)[3]) for key in keys}  # (what, study, metric, split, ...)
    assert stored == {(what, split) for what in ("sensitivity", "dashboard-heatmaps") for split in ("test", "val")}
    reports.forget(study_id)  # a restarted server: nothing in memory
    before = reports.computations
    for split in ("val", "test"):
        assert api.get(f"/api/v1/studies/{study_id}/sensitivity?split={split}").status_code == 200
        assert api.get(f"/api/v1/studies/{study_id}/heatmaps?split={split}").status_code == 200
    assert reports.computations == before  # every answer read back from the store, none computed
