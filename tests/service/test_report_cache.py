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
from service.report_cache import COMPUTE_NICENESS, ReportCache, SettledAnswers, reports
from service.settings import Settings
from studies.results import TrialKey
from studies.vocab import StudyStatus


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


def _finished_study(api: TestClient, spec: dict[str, Any]) -> str:
    """A study submitted, claimed, every trial recorded and finished: its id."""
    study_id = submit(api, spec)
    claim(engine_of(api))
    _record(api, study_id, all_keys())
    finish(engine_of(api), study_id)
    return study_id


def test_a_finished_studys_report_is_stored_and_survives_a_restart(api: TestClient, smoke_spec: dict[str, Any]) -> None:
    """The first visitor after every restart recomputed a finished study's report (5 s at 100,000
    trials); it is stored with the study now, and dropped with it."""
    from sqlalchemy import func, select

    from service.db.models import StudyReport

    study_id = _finished_study(api, smoke_spec)
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


def test_a_report_stored_by_an_older_metrics_version_is_computed_again(
    api: TestClient, smoke_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade that changes the figures or the verdict (a new outcome, say) must not serve the
    reports its predecessor stored: the stored key carries the metrics version."""
    from studies.metrics import models

    study_id = _finished_study(api, smoke_spec)
    url = f"/api/v1/studies/{study_id}/sensitivity"
    assert api.get(url).status_code == 200
    reports.forget(study_id)
    before = reports.computations
    monkeypatch.setattr(models, "METRICS_VERSION", models.METRICS_VERSION + 1)  # the upgraded service

    assert api.get(url).status_code == 200

    assert reports.computations == before + 1


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


def test_settled_answers_are_rechecked_per_study_in_the_background_when_due() -> None:
    clock = Clock()
    answers = SettledAnswers(recheck_seconds=5.0, clock=clock)
    progress = {"s1": "done-1", "s2": "done-2"}
    checks: list[str] = []

    def now(study_id: str) -> Any:
        def read() -> Any:
            checks.append(study_id)
            if study_id not in progress:
                return None
            if progress[study_id] == "broken":
                raise OSError("the database is down")
            return progress[study_id]

        return read

    grid, sens, other = ("grid", "s1", "arm"), ("sensitivity", "s1", "test"), ("grid", "s2", "arm")
    answers.put(grid, "done-1", b"grid")
    answers.put(sens, "done-1", b"sens")
    answers.put(other, "done-2", b"other")
    clock.now = 4.9
    assert answers.get(grid, now("s1")) == b"grid"
    assert answers.get(("grid", "s1", "another arm"), now("s1")) is None
    assert checks == []  # not due: no check
    clock.now = 5.0
    assert answers.get(grid, now("s1")) == b"grid"  # due: served as it is, checked in the background
    assert answers.get(sens, now("s1")) == b"sens"  # one check at a time per study
    answers.settle()
    assert checks == ["s1"]
    assert answers.get(sens, now("s1")) == b"sens"  # confirmed at 5.0: both answers, until 10.0
    answers.settle()
    assert checks == ["s1"]

    progress["s1"] = "done-1 and a late result"
    clock.now = 10.0
    assert answers.get(grid, now("s1")) == b"grid"
    answers.settle()
    assert answers.get(grid, now("s1")) is None  # the study changed: its answers are dropped
    assert answers.get(sens, now("s1")) is None
    assert answers.get(other, now("s2")) == b"other"  # another study's stay (due: checked now)
    answers.settle()
    assert answers.get(other, now("s2")) == b"other"

    del progress["s2"]  # deleted by another process
    clock.now = 20.0
    assert answers.get(other, now("s2")) == b"other"
    answers.settle()
    assert answers.get(other, now("s2")) is None

    answers.put(grid, "done-1", b"grid")
    progress["s1"] = "broken"
    clock.now = 30.0
    assert answers.get(grid, now("s1")) == b"grid"
    answers.settle()
    assert answers.get(grid, now("s1")) is None  # a failed check drops them: the next reader asks the database

    answers.put(grid, "done-1", b"grid")
    answers.put(sens, "done-2", b"new")  # computed at a newer progress: the older answers go
    assert answers.get(grid, now("s1")) is None
    assert answers.get(sens, now("s1")) == b"new"
    answers.forget("s1")
    assert answers.get(sens, now("s1")) is None
    assert len(answers) == 0


class _Statements:
    """Counts the SQL statements an engine runs."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.count = 0
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self._engine, "before_cursor_execute", self._seen)


def test_a_finished_studys_grid_and_sensitivity_are_answered_from_memory_until_due_for_a_check(
    api: TestClient, smoke_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached /grid cost ~2.8 ms of server CPU, most of it reading the study row again and the thread
    hop to do so: 20 readers of a finished study waited 50–90 ms. A finished study's answer is served
    from memory now, with no query, and checked against the database in the background when the
    database last confirmed it a few seconds ago."""
    clock = Clock()
    monkeypatch.setattr(reports, "answers", SettledAnswers(recheck_seconds=5.0, clock=clock))
    study_id = _finished_study(api, smoke_spec)
    urls = [f"/api/v1/studies/{study_id}/grid?arm=sgdm_step", f"/api/v1/studies/{study_id}/sensitivity"]
    first = [api.get(url) for url in urls]
    assert [r.status_code for r in first] == [200, 200], [r.text for r in first]
    statements = _Statements(engine_of(api))
    try:
        for _ in range(3):
            assert [api.get(url).content for url in urls] == [r.content for r in first]
        assert statements.count == 0  # answered without the database

        with session_scope(engine_of(api)) as session:  # another process deletes the study
            dal.delete_study(session, study_id)
        assert [api.get(url).status_code for url in urls] == [200, 200]  # not due yet
        clock.now = 5.0
        assert api.get(urls[0]).status_code == 200  # due: served, and the study checked meanwhile
        reports.answers.settle()
        assert statements.count > 0
        assert [api.get(url).status_code for url in urls] == [404, 404]  # the check found it gone
    finally:
        statements.close()


def test_a_settled_answer_goes_with_its_study_deleted_through_the_api(
    api: TestClient, smoke_spec: dict[str, Any]
) -> None:
    study_id = _finished_study(api, smoke_spec)
    url = f"/api/v1/studies/{study_id}/grid"
    assert api.get(url).status_code == 200
    assert api.get(url).status_code == 200
    assert api.delete(f"/api/v1/studies/{study_id}").status_code == 204
    assert api.get(url).status_code == 404  # at once


def test_a_running_studys_grid_is_never_answered_without_the_database(
    api: TestClient, smoke_spec: dict[str, Any]
) -> None:
    """While a study runs, a reader must see it finish as soon as it does: each request reads the study."""
    study_id = submit(api, smoke_spec)
    claim(engine_of(api))
    keys = all_keys()
    _record(api, study_id, keys[:12])
    url = f"/api/v1/studies/{study_id}/grid?arm=sgdm_step"
    assert api.get(url).status_code == 200
    statements = _Statements(engine_of(api))
    try:
        for expected in (1, 2):
            assert api.get(url).status_code == 200
            assert statements.count >= expected
        _record(api, study_id, keys[12:])
        finish(engine_of(api), study_id)
        final = api.get(url).json()
    finally:
        statements.close()
    assert sum(map(sum, final["n"])) == len([k for k in keys if k.arm == "sgdm_step"])  # the finished grid at once


def test_a_failed_study_requeued_elsewhere_stops_being_answered_from_memory(
    api: TestClient, smoke_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed study can be requeued (by another process): once the background check sees it, its
    grid follows the database again on every request."""
    clock = Clock()
    monkeypatch.setattr(reports, "answers", SettledAnswers(recheck_seconds=5.0, clock=clock))
    study_id = submit(api, smoke_spec)
    claim(engine_of(api))
    _record(api, study_id, all_keys()[:12])
    finish(engine_of(api), study_id, StudyStatus.FAILED)
    url = f"/api/v1/studies/{study_id}/grid?arm=sgdm_step"
    assert api.get(url).status_code == 200
    with session_scope(engine_of(api)) as session:
        dal.requeue_study(session, study_id)
    statements = _Statements(engine_of(api))
    try:
        assert api.get(url).status_code == 200
        assert statements.count == 0  # not due: from memory
        clock.now = 5.0
        assert api.get(url).status_code == 200  # due: checked in the background
        reports.answers.settle()
        assert len(reports.answers) == 0  # the check saw it queued: its answer is dropped
        checked = statements.count
        assert checked > 0
        assert api.get(url).status_code == 200
        assert statements.count > checked  # read from the database again
        assert len(reports.answers) == 0  # and not kept while it is not finished
    finally:
        statements.close()


def test_settled_answers_keep_at_most_their_byte_budget_dropping_the_least_recently_read() -> None:
    answers = SettledAnswers(recheck_seconds=5.0, clock=Clock(), max_bytes=250)

    def never() -> Any:
        raise AssertionError("not due: no check")

    for n in range(3):
        answers.put(("grid", f"s{n}", "arm"), "done", b"x" * 100)
    assert len(answers) == 2  # 300 bytes > 250: the oldest went
    assert answers.get(("grid", "s0", "arm"), never) is None
    assert answers.get(("grid", "s1", "arm"), never) == b"x" * 100  # read: now the most recent
    answers.put(("grid", "s3", "arm"), "done", b"y" * 100)
    assert answers.get(("grid", "s2", "arm"), never) is None
    assert answers.get(("grid", "s1", "arm"), never) == b"x" * 100
    answers.put(("grid", "s1", "arm"), "done", b"z" * 10)  # replaced, not counted twice
    answers.put(("grid", "s4", "arm"), "done", b"w" * 100)
    assert len(answers) == 3  # 10 + 100 + 100


def test_a_check_under_way_does_not_vouch_for_an_answer_put_at_a_newer_progress_meanwhile() -> None:
    clock = Clock()
    answers = SettledAnswers(recheck_seconds=5.0, clock=clock)
    key = ("grid", "s1", "arm")
    answers.put(key, "p1", b"old")
    clock.now = 5.0
    started, release = threading.Event(), threading.Event()

    def slow_read() -> str:
        started.set()
        release.wait(30)
        return "p1"  # what the database said when the check read it

    assert answers.get(key, slow_read) == b"old"
    assert started.wait(30)
    answers.put(key, "p2", b"new")  # a reader computed it at a newer progress meanwhile
    release.set()
    answers.settle()
    clock.now = 10.0  # p2 was confirmed at 5.0: due now, and checked against p2, not p1
    assert answers.get(key, lambda: "p2") == b"new"
    answers.settle()
    assert answers.get(key, lambda: "p2") == b"new"  # confirmed, not dropped
