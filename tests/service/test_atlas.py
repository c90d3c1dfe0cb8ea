"""The atlas through the service, on SQLite and PostgreSQL: its studies are submitted once, an
interrupted atlas resumes without re-running a finished study, more seeds reuse what exists (the
cell's figures come from the union of its studies on exactly its seeds), and the API answers with
the verdicts, the pooled estimate, a self-contained report and its figures; bad input is a 422 or a
404 naming what is wrong, never a 500 and never a stored study.

The studies run for real (the smoke suite: tiny synthetic problems, one epoch) through the study
driver, claimed as the scheduler would claim them.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from service.atlas import atlas_id, atlas_result, parse_key, plan_cells, submit_atlas
from service.db import dal, session_scope
from service.errors import InvalidInput, NotFound
from service.jobs.driver import execute
from service.settings import Settings
from studies.atlas.report import figure_names
from studies.atlas.suites import suite_labels

ATLASES = "/api/v1/atlases"


def run_queued(engine: Engine, settings: Settings, *, leave: int = 0) -> list[str]:
    """Claim and drive every queued study as the scheduler and its driver would; the last ``leave``
    are claimed but not run (a driver that died). Returns the ids run."""
    ran = []
    with session_scope(engine) as session:
        queued = [s.id for s in dal.list_studies(session, status="queued", limit=500)[0]]
    for n, _ in enumerate(queued):
        with session_scope(engine) as session:
            (claimed,) = dal.claim_queued_studies(session, limit=1, launcher_id="test")
            study_id = claimed.id
        if n < len(queued) - leave:
            assert execute(study_id, settings) == 0
            ran.append(study_id)
    return ran


def study_states(engine: Engine) -> dict[str, tuple[str, int]]:
    with session_scope(engine, read_only=True) as session:
        studies = dal.list_studies(session, limit=500)[0]
        return {s.id: (s.status.value, s.trials_done) for s in studies}


@pytest.mark.slow
# One backend each for the two slow atlas tests (SQLite here, PostgreSQL for the report below): their
# database side is the DAL's, tested on both in test_storage.py.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_atlas_resumes_and_reuses_studies_for_more_seeds(engine: Engine, settings: Settings) -> None:
    aid = atlas_id("smoke", 6)
    first = submit_atlas(engine, settings, aid)
    assert first.progress["studies"] == 4
    assert first.status == "running"
    ids = {s.id for c in first.cells for s in c.studies}
    assert len(ids) == 4
    # interrupted: three studies finished, one was claimed by a driver that died
    run_queued(engine, settings, leave=1)
    before = study_states(engine)
    again = submit_atlas(engine, settings, aid)  # resume: nothing new is submitted
    assert {s.id for c in again.cells for s in c.studies} == ids
    assert study_states(engine) == before
    with session_scope(engine) as session:  # the scheduler relaunches the dead driver's study
        stuck = next(iter(dal.list_studies(session, status="running")[0]))
        dal.requeue_study(session, stuck.id)
    assert run_queued(engine, settings) == [stuck.id]
    finished_before = {k: v for k, v in study_states(engine).items() if k != stuck.id}

    done = atlas_result(engine, aid)
    assert done.status == "done"
    assert [(c.demon, c.baseline) for c in done.comparisons] == [
        ("demon_sgdm", "sgdm_none"),
        ("demon_sgdm", "sgdm_step"),
        ("demon_adam", "adam_none"),
    ]
    for summary in done.comparisons:
        assert [r.label for r in summary.rows] == suite_labels("smoke")
        assert all(r.outcome is not None for r in summary.rows)
        counts = summary.counts
        assert counts.pending == 0
        judged = counts.a_less_sensitive + counts.no_detectable_difference + counts.b_less_sensitive
        judged += counts.inconclusive_too_few_seeds + counts.never_trained + counts.flatter_but_worse
        assert judged == 2
        assert f"in {counts.a_less_sensitive} of 2 workloads" in summary.headline

    more = submit_atlas(engine, settings, atlas_id("smoke", 8))  # two more seeds: only those run
    assert study_states(engine).items() >= finished_before.items()
    new = {s.id for c in more.cells for s in c.studies} - ids
    assert len(new) == 4
    with session_scope(engine, read_only=True) as session:
        for study_id in new:
            assert dal.get_study(session, study_id).spec["seeds"] == [6, 7]
    run_queued(engine, settings)
    extended = atlas_result(engine, atlas_id("smoke", 8))
    assert extended.status == "done"
    assert all(len(c.studies) == 2 and c.seeds == list(range(8)) for c in extended.cells)
    assert all(v.n_cells == 6 for c in extended.cells for v in c.verdicts)
    # the 6-seed atlas still reads only its own seeds from the same studies
    assert atlas_result(engine, aid).trials == done.trials


def test_atlas_keys_round_trip_and_bad_ones_are_not_found() -> None:
    whole = atlas_id("cpu", 8)
    assert whole.key() == "cpu-s8"
    assert parse_key("cpu-s8") == whole
    subset = atlas_id("cpu", 10, ["wine_mlp", "digits_mlp"])
    assert subset.labels == ("digits_mlp", "wine_mlp")  # suite order, whatever order was given
    assert parse_key(subset.key()) == subset
    assert "--workloads 'digits_mlp' 'wine_mlp'" in subset.command()
    for bad in ("cpu", "cpu-8", "gpu-s8", "cpu-s8-w0", "cpu-s8-wfffff", "cpu-s1", "cpu-s8-x1"):
        with pytest.raises(NotFound):
            parse_key(bad)


@pytest.mark.parametrize(
    ("suite", "seeds", "workloads", "field"),
    [
        ("gpu", 8, None, "suite"),
        ("cpu", 1, None, "seeds"),
        ("cpu", 8, ["mnist"], "workloads"),
        ("cpu", 8, [], "workloads"),  # ``--workloads`` with nothing after it: not the whole suite
    ],
)
def test_bad_atlas_requests_name_their_field(suite: str, seeds: int, workloads: list[str] | None, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        atlas_id(suite, seeds, workloads)
    assert caught.value.field == field


def test_atlas_api_submits_once_and_refuses_bad_input(api: TestClient, engine: Engine) -> None:
    assert api.get(f"{ATLASES}/smoke-s6").status_code == 404
    for body, field in (
        ({"suite": "gpu"}, "suite"),
        ({"suite": "smoke", "seeds": 1}, "seeds"),
        ({"suite": "smoke", "workloads": ["nope"]}, "workloads"),
        ({"suite": "smoke", "extra": 1}, "extra"),
    ):
        response = api.post(ATLASES, json=body)
        assert response.status_code == 422, response.text
        assert field in response.json()["field"], response.json()
    assert study_states(engine) == {}
    response = api.post(ATLASES, json={"suite": "smoke", "seeds": 6})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"{ATLASES}/smoke-s6"
    body = response.json()
    assert body["key"] == "smoke-s6"
    assert body["progress"]["studies"] == 4
    assert api.post(ATLASES, json={"suite": "smoke", "seeds": 6}).json()["cells"] == body["cells"]
    assert len(study_states(engine)) == 4
    got = api.get(f"{ATLASES}/smoke-s6").json()
    assert got["status"] == "running"
    assert got["comparisons"][0]["counts"]["pending"] == 2
    assert api.get(f"{ATLASES}/smoke-s6/figures/nope.png").status_code == 404
    assert api.get(f"{ATLASES}/smoke-s6/figures/overview.gif").status_code == 422
    assert api.get(f"{ATLASES}/not-a-key").status_code == 422  # the path's pattern


def test_an_atlas_whose_studies_all_ended_badly_says_so_instead_of_not_found(api: TestClient, engine: Engine) -> None:
    """Every study of an atlas cancelled: it is still that atlas (a 404 before), failed, each cell
    naming its cancelled study and how to retry, and submitting it again retries them."""
    created = api.post(ATLASES, json={"suite": "smoke", "seeds": 6}).json()
    for cell in created["cells"]:
        for study in cell["studies"]:
            assert api.post(f"/api/v1/studies/{study['id']}/cancel").status_code == 200
    got = api.get(f"{ATLASES}/smoke-s6")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["status"] == "failed"
    for cell in body["cells"]:
        assert cell["status"] == "failed"
        assert [s["status"] for s in cell["studies"]] == ["cancelled"]
        assert "submit the atlas again" in cell["error"]
    assert api.get(f"{ATLASES}/smoke-s6/report.html").status_code == 200
    again = api.post(ATLASES, json={"suite": "smoke", "seeds": 6}).json()
    assert again["status"] == "running"
    assert len(study_states(engine)) == 8  # each cell retried once


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the rule is the atlas's, not the engine's
def test_more_seeds_past_the_trial_limit_submit_only_the_missing_ones(api: TestClient) -> None:
    """The trial limit is per study: more seeds submit the missing ones as a study of their own, so
    a cell may hold more trials in all than one study may (found by schemathesis: the atlas answered
    a 500 once a cell's seeds together passed the limit)."""
    body = {"suite": "cpu", "workloads": ["wine_mlp"]}  # two cells of 330 and 264 trials a seed
    assert api.post(ATLASES, json=body | {"seeds": 2}).status_code == 202
    response = api.post(ATLASES, json=body | {"seeds": 62})  # 60 more: 19,800 trials; 20,460 in all
    assert response.status_code == 202, response.text
    assert [cell["seeds"] for cell in response.json()["cells"]] == [list(range(62))] * 2
    key = response.json()["key"]
    got = api.get(f"{ATLASES}/{key}")
    assert got.status_code == 200, got.text
    assert [len(cell["studies"]) for cell in got.json()["cells"]] == [2, 2]
    too_many = api.post(ATLASES, json=body | {"seeds": 200})  # 138 missing seeds in one study
    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["field"] == "seeds"  # not "spec", which an atlas request has not
    assert (
        "more than the limit of 20,000 trials a study: add at most 60 seeds at a time (up to 122"
        in (too_many.json()["detail"])
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the rule is the atlas's, not the engine's
def test_a_cell_is_retried_after_an_earlier_try_was_deleted(api: TestClient, engine: Engine) -> None:
    """Cancel a cell's study, retry it, cancel the retry, delete the first: the next submission runs
    the seeds again (it reused the retry's key, replayed the cancelled retry, and never retried)."""
    first = api.post(ATLASES, json={"suite": "smoke", "seeds": 2}).json()["cells"][0]["studies"][0]["id"]
    assert api.post(f"/api/v1/studies/{first}/cancel").status_code == 200
    again = api.post(ATLASES, json={"suite": "smoke", "seeds": 2}).json()["cells"][0]["studies"]
    (retry,) = [s["id"] for s in again if s["id"] != first and s["status"] == "queued"]
    assert api.post(f"/api/v1/studies/{retry}/cancel").status_code == 200
    assert api.delete(f"/api/v1/studies/{first}").status_code == 204
    cell = api.post(ATLASES, json={"suite": "smoke", "seeds": 2}).json()["cells"][0]
    assert cell["status"] == "queued", cell
    (new,) = cell["studies"]
    assert new["status"] == "queued"
    assert new["id"] not in (first, retry)
    assert len(study_states(engine)) == 4 + 1 + 1 - 1  # the suite's 4, the retry, the new one; one deleted


def test_paper_suite_is_refused_here_saying_what_is_missing(api: TestClient, engine: Engine) -> None:
    response = api.post(ATLASES, json={"suite": "paper", "seeds": 8})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] in ("workload", "resources.gpu")
    assert "not available here" in body["detail"] or "GPU" in body["detail"]
    assert study_states(engine) == {}  # all or nothing: no study of the suite was stored


@pytest.mark.slow
@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_report_is_self_contained_and_figures_export(api: TestClient, engine: Engine, settings: Settings) -> None:
    api.post(ATLASES, json={"suite": "smoke", "seeds": 6})
    run_queued(engine, settings)
    result = api.get(f"{ATLASES}/smoke-s6").json()
    assert result["status"] == "done"
    html = api.get(f"{ATLASES}/smoke-s6/report.html")
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    text = html.text
    assert_self_contained(text)
    assert "demonlab atlas --suite smoke --seeds 6" in text
    for summary in result["comparisons"]:
        assert summary["headline"] in text
    from studies.atlas.models import AtlasResult

    for name in figure_names(AtlasResult.model_validate(result)):
        png = api.get(f"{ATLASES}/smoke-s6/figures/{name}.png")
        svg = api.get(f"{ATLASES}/smoke-s6/figures/{name}.svg")
        assert png.content.startswith(b"\x89PNG")
        assert png.headers["content-type"] == "image/png"
        assert b"<svg" in svg.content[:500]
        assert svg.headers["content-type"] == "image/svg+xml"
    plans = plan_cells(engine, atlas_id("smoke", 6))
    assert all(p.studies and not p.missing for p in plans)


def assert_self_contained(text: str) -> None:
    """No script, no external stylesheet, every image inlined, no URL fetched."""
    assert "<script" not in text
    assert "<link" not in text
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources
    assert all(s.startswith("data:image/") for s in sources), sources[:3]
    assert not re.search(r"url\((?!data:)", text)
    assert not re.search(r'(src|href)="(https?:)?//', text)


def test_adding_a_workload_submits_only_its_studies(engine: Engine, settings: Settings) -> None:
    one = submit_atlas(engine, settings, atlas_id("smoke", 6, ["tiny κ=100"]))
    assert one.key == "smoke-s6-w2"
    first = {s.id for c in one.cells for s in c.studies}
    assert len(first) == 2
    both = submit_atlas(engine, settings, atlas_id("smoke", 6))
    cells = {c.label: {s.id for s in c.studies} for c in both.cells}
    assert cells["tiny κ=100"] <= first  # reused, not submitted again
    assert len(study_states(engine)) == 4
