"""``demonlab demo`` (what ``make run`` runs): a port given with ``--port`` is used or refused, never
silently replaced; a database with API tokens needs ``DEMONLAB_TOKEN``, and with it the whole loop
runs (slow: a real driver and Ray) and records the environment the study ran on."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cli import main
from service.db import dal, make_engine, session_scope, upgrade_to_head
from service.demo import pick_port
from service.settings import clear_settings_cache

SPEC = {
    "name": "demo-test",
    "workload": "synthetic",
    "arms": ["demon_sgdm", "sgdm_step"],
    "lr": [0.01, 0.1],
    "beta_init": [0.9],
    "seeds": 1,
    "epochs": 1,
    "resources": {"cpu": 1, "gpu": 0},
}


@pytest.fixture
def demo_env(db_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The demo's settings on the test's database; yields the database URL."""
    monkeypatch.setenv("DEMONLAB_DATABASE_URL", db_url)
    monkeypatch.setenv("DEMONLAB_DATA_DIR", str(data_dir))
    monkeypatch.delenv("DEMONLAB_TOKEN", raising=False)
    monkeypatch.delenv("DEMONLAB_PORT", raising=False)
    clear_settings_cache()
    yield db_url
    clear_settings_cache()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_busy_port_is_refused_when_asked_for_and_replaced_out_loud_otherwise(busy_port: int) -> None:
    with pytest.raises(ValueError, match=rf"port {busy_port} is already in use"):
        pick_port(busy_port, 8000)
    sock, note = pick_port(None, busy_port)
    with sock:
        port = sock.getsockname()[1]
        assert port != busy_port
        assert note == f"port {busy_port} is already in use; serving on {port} instead (choose one with --port)"
        with pytest.raises(ValueError, match=rf"port {port} is already in use"):  # held from the choice on
            pick_port(port, 8000)
    again, note = pick_port(port, 8000)  # let go, it is served as asked
    with again:
        assert (again.getsockname()[1], note) == (port, None)


def test_port_0_is_a_free_port_bound_by_the_server_itself() -> None:
    sock, note = pick_port(0, 8000)
    with sock:
        port = sock.getsockname()[1]
        assert port != 0
        assert note is None
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # listening already, nobody else's
            pass


def test_demo_refuses_a_busy_port(demo_env: str, busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--port", str(busy_port)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == (
        f"demonlab: error: port {busy_port} is already in use on 127.0.0.1 "
        "(stop what listens there, or choose another with --port or DEMONLAB_PORT)\n"
    )
    assert "starting the service" not in out


def test_demo_refuses_a_busy_port_from_the_environment(
    demo_env: str, busy_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMONLAB_PORT", str(busy_port))
    clear_settings_cache()
    code = main(["demo"])
    assert code == 2
    assert f"port {busy_port} is already in use" in capsys.readouterr().err


def test_demo_with_a_bad_spec_says_so_before_starting_anything(
    demo_env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The spec is checked as the service would check it before the service (and its scheduler, which
    would pick up studies left running in this data dir) starts."""
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nworkload: synthetic\narms: [demon_sgdm]\nlr: [-0.1]\nbeta_init: [0.9]\nepochs: 1\n")
    code = main(["demo", "--spec", str(spec), "--port", "0"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == "demonlab: error: invalid lr: every lr must be a finite number > 0 (got -0.1)\n"
    assert "starting the service" not in out


def test_demo_without_a_token_on_a_database_with_tokens_says_what_to_do(
    demo_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade_to_head(demo_env)
    engine = make_engine(demo_env)
    with session_scope(engine) as session:
        dal.create_token(session, "someone")
    engine.dispose()
    code = main(["demo"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "set DEMONLAB_TOKEN=<token>" in err


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_demo_with_a_token_runs_the_whole_loop_and_records_the_environment(
    demo_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["token", "create", "--name", "demo", "--url", "http://127.0.0.1:9"]) == 0
    token = capsys.readouterr().out.strip()
    monkeypatch.setenv("DEMONLAB_TOKEN", token)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))

    code = main(["demo", "--spec", str(spec), "--exit-when-done", "--port", "0"])
    out, err = capsys.readouterr()

    assert code == 0, err
    assert re.search(r"^dashboard: http://127\.0\.0\.1:[1-9]\d*/ ", out, re.MULTILINE), out  # port 0: a real one
    assert "submitted 'demo-test' as study" in out
    assert ": completed" in out
    assert re.search(r"^first result \d+\.\d s after submission; all 4 trials \d+\.\d s$", out, re.MULTILINE), out
    assert re.search(r"^first result \d+\.\d s after submission$", err, re.MULTILINE), err  # as it happens
    verdict = out.index("VERDICT demon_sgdm vs ")  # printed first, before the summary table and its legend
    assert verdict < out.index("success share: the share of the grid")
    engine = make_engine(demo_env)
    with session_scope(engine, read_only=True) as session:
        (study,) = dal.list_studies(session, status=None, workload=None, name=None, offset=0, limit=5)[0]
        environment = study.environment
    engine.dispose()
    assert environment["software"]["torch"].startswith("2.13.0")
    assert environment["seeds"] == {"trials": [0], "search": None}
    (node,) = environment["nodes"]
    assert node["trials"] == 4
    assert node["cpu"]
    assert node["devices"] == ["cpu"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # uvicorn's SystemExit
@pytest.mark.parametrize("command", ["demo", "atlas"])
def test_demo_and_atlas_print_the_database_url_with_its_password_masked(
    command: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The URL of a database nobody listens on: the command says where it starts, then fails to."""
    with socket.socket() as sock:  # a port that refuses connections while this test runs
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        monkeypatch.setenv("DEMONLAB_DATABASE_URL", f"postgresql+psycopg://demo:s3cret@127.0.0.1:{port}/none")
        monkeypatch.setenv("DEMONLAB_DATA_DIR", str(data_dir))
        monkeypatch.setenv("DEMONLAB_TOKEN", "dlt_unused")  # so the demo does not ask the database first
        spec = data_dir / "spec.json"
        spec.write_text(json.dumps(SPEC))
        monkeypatch.setenv("DEMONLAB_OPTUNA_MIRROR", "false")  # what the atlas sets in its process
        args = {
            "demo": ["demo", "--exit-when-done", "--spec", str(spec), "--port", "0"],
            "atlas": ["atlas", "--suite", "smoke", "--seeds", "8", "--port", "0"],
        }[command]
        clear_settings_cache()
        try:
            code = main(args)
        finally:
            clear_settings_cache()
    out, err = capsys.readouterr()
    assert code != 0
    assert "s3cret" not in out + err
    assert "postgresql+psycopg://demo:***@127.0.0.1" in out
    assert "demonlab: error: the API server did not start" in err
