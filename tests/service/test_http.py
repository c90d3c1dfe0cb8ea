"""The API over real HTTP (uvicorn on a free port, no scheduler), on SQLite, through
the Python client (``DemonlabClient``: every method) and the command line (``service.cli.main``).

Results are recorded straight into the database with the data-access layer, as a driver would.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import Engine

from service.cli import main
from service.client import ApiError, DemonlabClient, ServiceUnreachable
from service.db import StudyStatus, dal, session_scope
from service.errors import DemonlabError
from service.settings import clear_settings_cache
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus

# The client and the CLI over HTTP: what they send and print does not depend on the database's kind
# (the routes' database side runs on both backends in test_api.py and test_storage.py).
ONE_BACKEND = "sqlite"

LiveServer = Callable[..., AbstractContextManager[str]]
ARMS = ("demon_sgdm", "sgdm_step")
LRS = (0.01, 0.1, 1.0)
BETAS = (0.8, 0.9)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMOKE_SPEC_PATH = Path(__file__).resolve().parents[2] / "studies" / "examples" / "synthetic_smoke.yaml"


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[str]:
    """The base URL of the app served over HTTP on the test's database (no scheduler)."""
    with live_server() as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[DemonlabClient]:
    with DemonlabClient(server, timeout=30) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMONLAB_TOKEN", raising=False)
    monkeypatch.delenv("DEMONLAB_URL", raising=False)


def result_for(key: TrialKey) -> TrialResult:
    """Completed with test error 0.1·(lr row + 1) + 0.01·β column, except sgdm_step at lr 1: diverged."""
    if key.arm == "sgdm_step" and key.lr == 1.0:
        return TrialResult(
            key=key,
            status=TrialStatus.DIVERGED,
            epochs=(EpochRecord(0, math.nan, math.inf, math.nan),),
            val_loss=math.inf,
            test_loss=math.nan,
            epochs_done=1,
            wall_seconds=0.1,
            node="node-b",
        )
    value = 0.1 * (LRS.index(key.lr) + 1) + 0.01 * BETAS.index(key.beta_init) + 0.001 * key.seed
    return TrialResult(
        key=key,
        status=TrialStatus.COMPLETED,
        epochs=(EpochRecord(0, 1.0, 0.8, value + 0.05), EpochRecord(1, 0.9, 0.7, value)),
        val_metric=value,
        val_loss=0.7,
        test_metric=value + 0.02,
        test_loss=0.75,
        best_val_metric=value,
        epochs_done=2,
        wall_seconds=0.3,
        node="node-b",
    )


def record_all(engine: Engine, study_id: str) -> None:
    keys = [TrialKey(arm, lr, beta, seed) for arm in ARMS for lr in LRS for beta in BETAS for seed in (0, 1)]
    for key in keys:
        with session_scope(engine) as session:
            dal.record_trial_result(session, study_id, result_for(key))


def complete(engine: Engine, study_id: str) -> None:
    with session_scope(engine) as session:
        dal.claim_queued_studies(session, limit=100, launcher_id="test")
        dal.finish_study(session, study_id, status=StudyStatus.COMPLETED)


# --------------------------------------------------------------------------------------------- client


def test_client_health(client: DemonlabClient) -> None:
    assert client.healthz() == {"status": "ok"}
    assert client.readyz() == {"status": "ready", "database": "ok", "migrations": "head"}


def test_client_submit_list_get(client: DemonlabClient, smoke_spec: dict[str, Any]) -> None:
    created = client.submit(smoke_spec, idempotency_key="once")
    again = client.submit(smoke_spec, idempotency_key="once")
    other = client.submit(smoke_spec | {"name": "other", "seeds": 1})

    assert created.status == "queued"
    assert created.trials_total == 24
    assert created.url == f"/api/v1/studies/{created.id}"
    assert again.id == created.id
    assert other.trials_total == 12
    page = client.list_studies()
    assert page.count == 2
    assert [s.id for s in page.data] == [other.id, created.id]
    assert [s.id for s in client.list_studies(name="other").data] == [other.id]
    assert [s.id for s in client.list_studies(status="queued", workload="synthetic", limit=1, offset=1).data] == [
        created.id
    ]
    assert client.list_studies(status="running").count == 0
    study = client.get_study(created.id)
    assert study.name == "synthetic-smoke"
    assert study.progress.total == 24
    assert study.spec["epochs"] == 2


def test_client_results(client: DemonlabClient, engine: Engine, smoke_spec: dict[str, Any]) -> None:
    study_id = client.submit(smoke_spec).id
    record_all(engine, study_id)

    page = client.trials(study_id, arm="demon_sgdm", lr=0.1, beta_init=0.9, curves=True)
    assert [(t.seed, t.status) for t in page.data] == [(0, "completed"), (1, "completed")]
    assert page.data[0].curve is not None
    assert [e.epoch for e in page.data[0].curve] == [0, 1]
    assert client.trials(study_id, status="diverged", limit=2, offset=3).count == 4
    assert len(client.trials(study_id, limit=5).data) == 5
    diverged = client.trials(study_id, status="diverged", curves=True).data[0]
    assert diverged.val_loss is None
    assert diverged.curve is not None
    assert diverged.curve[0].val_loss is None

    grid = client.grid(study_id, arm="demon_sgdm", stat="mean", split="val")
    assert grid.lrs == list(LRS)
    assert grid.values[1][1] == pytest.approx(0.2 + 0.01 + 0.0005)
    step = client.grid(study_id, arm="sgdm_step")
    assert step.diverged[2] == [2, 2]
    assert client.grid(study_id, metric="loss").metric == "loss"

    report = client.sensitivity(study_id, target=0.2, split="val")
    assert set(report.arms) == set(ARMS)
    assert report.target.raw_value == 0.2
    assert client.sensitivity(study_id, metric="loss").study.metric == "loss"

    assert client.heatmap(study_id).startswith(PNG_SIGNATURE)
    assert b"<svg" in client.heatmap(study_id, fmt="svg", arms=["sgdm_step"], split="val", metric="loss")[:1000]
    csv = pd.read_csv(io.BytesIO(client.export(study_id)))
    parquet = pd.read_parquet(io.BytesIO(client.export(study_id, fmt="parquet")))
    assert len(csv) == len(parquet) == 24
    assert sorted(parquet["status"].unique()) == ["completed", "diverged"]

    assert client.robustness("synthetic").query.studies == 0
    complete(engine, study_id)
    robust = client.robustness("synthetic", arm="demon_sgdm", epochs=2)
    assert robust.query.studies == 1
    assert [g.key["arm"] for g in robust.groups] == ["demon_sgdm"]


def test_client_cancel_wait_delete(client: DemonlabClient, smoke_spec: dict[str, Any]) -> None:
    study_id = client.submit(smoke_spec).id
    with pytest.raises(TimeoutError, match="still queued"):
        client.wait(study_id, timeout=0.5)

    cancelled = client.cancel(study_id)
    seen: list[str] = []
    waited = client.wait(study_id, timeout=5, on_progress=lambda s: seen.append(s.status))

    assert cancelled.status == "cancelled"
    assert waited.status == "cancelled"
    assert seen == ["cancelled"]
    assert client.trials(study_id, status="cancelled").count == 24
    client.delete(study_id)
    with pytest.raises(ApiError) as gone:
        client.get_study(study_id)
    assert gone.value.status == 404
    assert "not found" in gone.value.detail


def test_client_errors(client: DemonlabClient, smoke_spec: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as bad:
        client.submit(smoke_spec | {"epochs": -1})
    assert bad.value.status == 422
    assert bad.value.field == "epochs"
    assert "epochs" in str(bad.value)
    study_id = client.submit(smoke_spec).id
    with pytest.raises(ApiError) as bad_stat:
        client.grid(study_id, stat="mode")
    assert bad_stat.value.status == 422
    assert bad_stat.value.field == "stat"
    with pytest.raises(ApiError) as bad_format:
        client.export(study_id, fmt="xlsx")
    assert bad_format.value.status == 404


def test_client_with_token(server: str, client: DemonlabClient, engine: Engine, smoke_spec: dict[str, Any]) -> None:
    with session_scope(engine) as session:
        token = dal.create_token(session, "client")

    with pytest.raises(ApiError) as refused:
        client.submit(smoke_spec)
    with DemonlabClient(server, token=token) as authorised:
        created = authorised.submit(smoke_spec)
        authorised.cancel(created.id)
        authorised.delete(created.id)

    assert refused.value.status == 401
    assert "Bearer" in refused.value.detail
    assert client.list_studies().count == 0


# ------------------------------------------------------------------------------------------------ CLI


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``demonlab ARGS``; returns the exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cli_submit(capsys: pytest.CaptureFixture[str], url: str, spec: Path = SMOKE_SPEC_PATH, *extra: str) -> str:
    code, out, err = cli(capsys, "submit", str(spec), "--url", url, *extra)
    assert code == 0, err
    match = re.fullmatch(rf"study ([0-9a-f]{{12}}): queued, \d+ trials, {re.escape(url)}/api/v1/studies/\1\n", out)
    assert match, out
    return match.group(1)


def test_cli_submit_status_list(server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    study_id = cli_submit(capsys, server)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "json-spec", "workload": "synthetic", "arms": ["demon_sgdm"]} | SMALL))
    other = cli_submit(capsys, server, spec, "--idempotency-key", "k1")
    assert cli_submit(capsys, server, spec, "--idempotency-key", "k1") == other

    code, out, _ = cli(capsys, "status", study_id, "--url", server)
    assert code == 0
    assert out == f"{study_id} 'synthetic-smoke' [synthetic] queued: 0/24 done, 0 diverged, 0 failed\n"

    code, out, _ = cli(capsys, "list", "--url", server)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "status", "done/total", "workload", "name"]
    assert [line.split()[0] for line in lines[1:-1]] == [other, study_id]
    assert lines[-1] == "(2 of 2)"
    code, out, _ = cli(capsys, "list", "--url", server, "--status", "queued", "--workload", "synthetic", "--limit", "1")
    assert code == 0
    assert out.splitlines()[-1] == "(1 of 2)"
    code, out, _ = cli(capsys, "list", "--url", server, "--name", "json-spec")
    assert code == 0
    assert out.splitlines()[1].split()[:3] == [other, "queued", "0/1"]
    code, out, _ = cli(capsys, "list", "--url", server, "--name", "SMOKE")  # a part of the name, as its help says
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == [study_id]
    assert out.splitlines()[-1] == "(1 of 1)"


SMALL = {"lr": [0.1], "beta_init": [0.9], "seeds": 1, "epochs": 1}


def test_cli_results(server: str, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    study_id = cli_submit(capsys, server)
    record_all(engine, study_id)
    with session_scope(engine) as session:  # one seed of one cell diverges instead
        dal.record_trial_result(
            session, study_id, TrialResult(TrialKey("demon_sgdm", 0.01, 0.8, 1), TrialStatus.DIVERGED, ())
        )

    code, out, _ = cli(capsys, "grid", study_id, "--url", server, "--arm", "sgdm_step", "--stat", "max")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("sgdm_step: max test error (%) over seeds")  # an error rate: percent, as elsewhere
    assert lines[1].split() == ["lr", "0.8", "0.9"]
    assert lines[2].split() == ["0.01", "12.1", "13.1"]
    assert lines[4].split() == ["1", "x", "x"]  # every seed diverged
    code, out, _ = cli(capsys, "grid", study_id, "--url", server, "--arm", "demon_sgdm")
    assert out.splitlines()[2].split()[1].endswith("*")  # one of its seeds diverged: marked, not hidden

    code, out, _ = cli(capsys, "sensitivity", study_id, "--url", server)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("VERDICT demon_sgdm vs sgdm_step: ")
    assert lines[1].startswith("figures on test (cells chosen on val); success: a run reaches the target test <= ")
    assert lines[2].split()[:3] == ["arm", "best", "test"]
    assert {line.split()[0] for line in lines[3 : 3 + len(ARMS)]} == set(ARMS)
    assert any(line.startswith("  primary     success_share") for line in lines)
    code, out, _ = cli(capsys, "sensitivity", study_id, "--url", server, "--json", "--target", "0.5", "--split", "val")
    assert code == 0
    report = json.loads(out)
    assert set(report["arms"]) == set(ARMS)
    assert report["target"]["raw_value"] == 0.5

    code, out, _ = cli(capsys, "compare", study_id, "--url", server, "--a", "demon_sgdm", "--b", "sgdm_step", "--json")
    assert code == 0
    assert [(p["arm_a"], p["arm_b"]) for p in json.loads(out)] == [("demon_sgdm", "sgdm_step")]
    code, _, err = cli(capsys, "compare", study_id, "--url", server, "--a", "adam_step")
    assert code == 2
    assert err.startswith(
        "demonlab: error: no pair adam_step vs any arm in the report; the pairs it has: --a demon_sgdm"
    )

    for name in ("map.png", "map.svg"):
        code, out, _ = cli(capsys, "heatmap", study_id, "--url", server, "--out", str(tmp_path / name))
        assert code == 0
        assert out == f"wrote {tmp_path / name}\n"
    assert (tmp_path / "map.png").read_bytes().startswith(PNG_SIGNATURE)
    assert b"<svg" in (tmp_path / "map.svg").read_bytes()[:1000]
    one_arm = str(tmp_path / "one.png")
    assert cli(capsys, "heatmap", study_id, "--url", server, "--out", one_arm, "--arms", "sgdm_step")[0] == 0

    for name in ("trials.csv", "trials.parquet"):
        code, out, _ = cli(capsys, "export", study_id, "--url", server, "--out", str(tmp_path / name))
        assert code == 0
        assert out == f"wrote {tmp_path / name}\n"
    csv, parquet = pd.read_csv(tmp_path / "trials.csv"), pd.read_parquet(tmp_path / "trials.parquet")
    assert len(csv) == len(parquet) == 24
    # diverged: sgdm_step at lr 1 (4 trials), and one demon_sgdm seed
    assert (csv["status"] == "diverged").sum() == (parquet["status"] == "diverged").sum() == 5


def test_cli_errors(server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE_SPEC_PATH.read_text().replace("epochs: 2", "epochs: -1"))

    code, _, err = cli(capsys, "submit", str(bad), "--url", server)
    assert code == 2
    assert err.startswith("demonlab: error: invalid spec: epochs:")
    assert err.rstrip().endswith("(field: epochs)")
    code, _, err = cli(capsys, "submit", str(tmp_path / "missing.yaml"), "--url", server)
    assert code == 2
    assert "missing.yaml" in err
    code, _, err = cli(capsys, "status", "000000000000", "--url", server)
    assert code == 2
    assert "not found" in err
    code, _, err = cli(capsys, "grid", "000000000000", "--url", server)
    assert code == 2
    code, _, err = cli(capsys, "status", "000000000000", "--url", "http://127.0.0.1:9")  # nothing listens
    assert code == 2
    assert "cannot reach the server at http://127.0.0.1:9" in err
    assert cli(capsys, "list", "--url", server)[1].splitlines()[-1] == "(0 of 0)"


def test_cli_token_create(
    server: str,
    db_url: str,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMONLAB_DATABASE_URL", db_url)
    monkeypatch.setenv("DEMONLAB_DATA_DIR", str(data_dir))
    clear_settings_cache()
    try:
        code, out, err = cli(capsys, "token", "create", "--name", "cli")
    finally:
        clear_settings_cache()
    assert code == 0
    token = out.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", token)
    assert "shown once" in err

    code, _, err = cli(capsys, "submit", str(SMOKE_SPEC_PATH), "--url", server)
    assert code == 2
    assert "Authorization: Bearer" in err
    cli_submit(capsys, server, SMOKE_SPEC_PATH, "--token", token)
    monkeypatch.setenv("DEMONLAB_TOKEN", token)
    cli_submit(capsys, server)
    code, out, _ = cli(capsys, "list", "--url", server)
    assert out.splitlines()[-1] == "(2 of 2)"


def test_client_against_a_closed_port() -> None:
    with DemonlabClient("http://127.0.0.1:9", timeout=2) as client, pytest.raises(ServiceUnreachable) as caught:
        client.healthz()
    assert isinstance(caught.value, ApiError)
    assert isinstance(caught.value, DemonlabError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "cannot reach the server at http://127.0.0.1:9" in str(caught.value)


@pytest.mark.parametrize("db_url", [ONE_BACKEND], indirect=True)
def test_head_of_the_live_events_stream_ends_after_its_headers(
    server: str, client: DemonlabClient, smoke_spec: dict[str, Any]
) -> None:
    """A HEAD of a stream that never ends by itself (server-sent events) answers with its headers and
    ends: through uvicorn, not only the test client; the server stays well."""
    study_id = client.submit(smoke_spec).id
    with httpx.Client(timeout=10) as http:
        head = http.head(f"{server}/api/v1/studies/{study_id}/events")
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert head.content == b""
        assert http.get(f"{server}/healthz").status_code == 200
