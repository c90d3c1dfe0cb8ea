"""The command line against a real server (uvicorn on a free port, no scheduler), on SQLite:
``cancel``, ``delete``, ``trials``, ``compare`` (table and JSON), ``robustness``, the export's
suffix check and metadata, clear errors (unreachable server, malformed YAML), following a study's
progress off a terminal, API tokens (``token list`` / ``revoke``, expiry enforced by the API), and
that no API command imports torch, scipy, pandas, numpy or Ray.

Results are recorded straight into the database with the data-access layer, as a driver would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, update
from test_http import ARMS, BETAS, LRS, SMALL, SMOKE_SPEC_PATH, cli, cli_submit, complete, record_all, result_for

from service.client import DemonlabClient
from service.console import STARTING, Progress, compare_table, follow
from service.db import ApiToken, Study, StudyStatus, dal, session_scope
from service.schemas import StudyPublic
from service.settings import clear_settings_cache
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.units import Units

# What the commands print does not depend on the database's kind (the routes' database side runs on
# both backends in test_api.py and test_storage.py).
ONE_BACKEND = "sqlite"

LiveServer = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[str]:
    with live_server() as url:
        yield url


@pytest.fixture(autouse=True)
def _no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMONLAB_TOKEN", raising=False)
    monkeypatch.delenv("DEMONLAB_URL", raising=False)


def test_cli_trials_cancel_delete(server: str, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    study_id = cli_submit(capsys, server)
    key = TrialKey("demon_sgdm", 0.1, 0.9, 0)
    with session_scope(engine) as session:
        dal.record_trial_result(session, study_id, result_for(key))

    code, out, _ = cli(capsys, "trials", study_id, "--url", server, "--status", "completed")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["arm", "lr", "beta_init", "seed", "status", "val", "test", "epochs", "seconds", "node"]
    assert lines[1].split()[:5] == ["demon_sgdm", "0.1", "0.9", "0", "completed"]
    shown = lines[1].split()[5]  # an error rate, in percent as every other output shows it
    assert shown.endswith("%")
    assert float(shown.removesuffix("%")) == pytest.approx(100 * result_for(key).val_metric, abs=0.05)
    assert lines[-1] == "(1 of 1, from 0)"
    code, out, _ = cli(capsys, "trials", study_id, "--url", server, "--limit", "5", "--json")
    assert code == 0
    assert len(json.loads(out)) == 5

    with session_scope(engine) as session:  # a driver has it: running
        dal.claim_queued_studies(session, limit=1, launcher_id="test")
    code, out, err = cli(capsys, "delete", study_id, "--url", server)
    assert code == 2
    assert "is running: cancel it first" in err
    code, out, _ = cli(capsys, "cancel", study_id, "--url", server)
    assert (code, out) == (0, f"study {study_id}: cancelled\n")
    code, out, _ = cli(capsys, "delete", study_id, "--url", server)
    assert (code, out) == (0, f"study {study_id}: deleted\n")
    code, _, err = cli(capsys, "status", study_id, "--url", server)
    assert code == 2
    assert "not found" in err


def test_a_reader_that_stops_early_ends_the_command_quietly(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`demonlab trials ID | head -1`: the pipe closes under the command; it printed "demonlab: error:
    [Errno 32] Broken pipe" and exited 2. Now it stops quietly, 141 as a shell reports SIGPIPE."""
    import subprocess
    import sys

    study_id = cli_submit(capsys, server)
    command = f"{sys.executable} -m service.cli trials {study_id} --url {server} | true"  # closed before it writes
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.stderr == "", done.stderr
    assert done.returncode == 141


def test_cli_compare_table_and_robustness(server: str, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    study_id = cli_submit(capsys, server)
    record_all(engine, study_id)

    code, out, _ = cli(capsys, "compare", study_id, "--url", server)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["a", "vs", "b", "verdict", "primary"]
    assert lines[1].startswith("demon_sgdm vs sgdm_step")
    assert lines[-1].startswith("Δ > 0 favours a; 95% interval: a t interval over seeds")
    code, out, _ = cli(capsys, "compare", study_id, "--url", server, "--json")
    pairs = json.loads(out)
    assert [(p["arm_a"], p["arm_b"]) for p in pairs] == [("demon_sgdm", "sgdm_step")]
    verdict, primary = pairs[0]["verdict"], pairs[0]["primary"]
    # the table shows what the JSON says: the outcome, the primary figure and its Δ (a share's, in points)
    assert lines[1].split()[3:5] == [verdict["outcome"], primary["figure"]]
    interval = primary["interval"]
    assert Units().delta("share", primary["value"], interval["low"], interval["high"]) in lines[1]
    assert lines[2] == f"demon_sgdm vs sgdm_step: {verdict['statement']}"

    code, out, _ = cli(capsys, "robustness", "synthetic", "--url", server)
    assert code == 0
    assert out.strip() == "workload synthetic: 0 completed studies; nothing to aggregate"
    complete(engine, study_id)
    code, out, _ = cli(capsys, "robustness", "synthetic", "--url", server, "--epochs", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "workload synthetic: 1 completed study"
    assert lines[1].split()[:6] == ["arm", "epochs", "grid", "target", "studies", "never"]
    assert sorted(line.split()[0] for line in lines[2:4]) == sorted(ARMS)
    # the grid and the target tell rows of one arm apart (two rows that looked the same before)
    for line in lines[2:4]:
        assert line.split()[1:][:11] == ["2", "3", "lr", "0.01..1", "×", "2", "β,", "2", "seeds", "default", "1"]
    assert lines[-1].endswith("not an interval")
    code, out, _ = cli(capsys, "robustness", "synthetic", "--url", server, "--arm", "sgdm_step", "--json")
    assert [g["key"]["arm"] for g in json.loads(out)["groups"]] == ["sgdm_step"]

    # A pair the report does not have: which pairs it has, and the swapped one when that exists.
    code, out, err = cli(capsys, "compare", study_id, "--url", server, "--a", "sgdm_step", "--b", "sgdm_cosine")
    assert (code, out) == (2, "")  # a refused request, as the README says: one error line, exit 2
    assert err == (
        "demonlab: error: no pair sgdm_step vs sgdm_cosine in the report; "
        "the pairs it has: --a demon_sgdm --b sgdm_step\n"
    )
    code, _, err = cli(capsys, "compare", study_id, "--url", server, "--a", "sgdm_step", "--b", "demon_sgdm")
    assert "(did you mean --a demon_sgdm --b sgdm_step?)" in err
    # A workload by half its name: the server suggests the full ones.
    code, _, err = cli(capsys, "robustness", "digits", "--url", server)
    assert code == 2
    assert "unknown workload 'digits' (did you mean digits_cnn or digits_mlp?); valid choices: " in err, err
    assert err.endswith("(field: workload)\n")


def test_reports_of_a_study_whose_stored_spec_this_version_cannot_read_are_one_error_line(
    server: str, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A spec stored by another release (an arm renamed since): each report printed the server's 500;
    now the 409's one line and exit 2, ``status`` still shows the study and says why it has no verdict,
    and ``robustness`` leaves the study out, naming it."""
    study_id = cli_submit(capsys, server)
    record_all(engine, study_id)
    complete(engine, study_id)
    with session_scope(engine) as session:
        spec = dict(dal.get_study(session, study_id).spec)
        renamed = [spec["arms"][0], {**spec["arms"][1], "name": "sgdm_oldname"}]
        session.execute(update(Study).where(Study.id == study_id).values(spec={**spec, "arms": renamed}))
    said = f"study {study_id}'s stored spec cannot be read by this version: arms.1: unknown arm 'sgdm_oldname'"

    reports = [["sensitivity"], ["grid"], ["compare"], ["heatmap", "--out", str(tmp_path / "heat.png")]]
    for report in reports:
        code, out, err = cli(capsys, report[0], study_id, *report[1:], "--url", server)
        assert (code, out) == (2, ""), report
        assert err.startswith(f"demonlab: error: {said}"), err
        assert err.count("\n") == 1, err
    code, out, _ = cli(capsys, "status", study_id, "--url", server)
    assert code == 0
    assert out.startswith(f"no verdict: {said}")
    assert f"{study_id} 'synthetic-smoke' [synthetic] completed: 24/24 done" in out
    code, out, _ = cli(capsys, "robustness", "synthetic", "--url", server)
    assert code == 0
    assert out.strip() == (
        f"workload synthetic: 0 completed studies (left out, their stored spec unreadable by this version: "
        f"{study_id}); nothing to aggregate"
    )


def test_compare_on_a_study_without_a_pair_says_why(
    server: str, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One arm: it read "no pair any arm vs any arm: the report compares no arms"."""
    spec = tmp_path / "one-arm.json"
    one_arm = {"name": "one-arm", "workload": "synthetic", "arms": ["sgdm_step"], "lr": [0.1, 1.0], "beta_init": [0.9]}
    spec.write_text(json.dumps(one_arm | {"seeds": 2, "epochs": 2}))
    study_id = cli_submit(capsys, server, spec)
    for lr, seed in ((0.1, 0), (0.1, 1), (1.0, 0), (1.0, 1)):
        with session_scope(engine) as session:
            dal.record_trial_result(session, study_id, result_for(TrialKey("sgdm_step", lr, 0.9, seed)))
    complete(engine, study_id)
    code, out, err = cli(capsys, "compare", study_id, "--url", server)
    assert (code, out) == (1, ""), err
    assert err == (
        "demonlab: nothing to compare: the report has no pair of arms (a pair is a Demon arm and a baseline; "
        "arms: sgdm_step)\n"
    )


def test_cli_sensitivity_explains_its_columns(server: str, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    study_id = cli_submit(capsys, server)
    record_all(engine, study_id)
    code, out, _ = cli(capsys, "sensitivity", study_id, "--url", server)
    assert code == 0
    assert out.startswith("VERDICT demon_sgdm vs sgdm_step: ")  # the answer first
    legend = out[out.index("\nbest:") :]
    for column in ("best", "success share", "lr width", "E[best@1]", "diverged"):
        assert f"{column}:" in legend


def test_export_refuses_what_it_cannot_write_and_carries_metadata(
    server: str, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study_id = cli_submit(capsys, server)
    record_all(engine, study_id)
    environment = {
        "software": {"demonlab": "0.1.0", "git_commit": "0123456789abcdef", "torch": "2.13.0"},
        "nodes": [{"node": "n1", "cpu": "X", "gpus": ["G"], "trials": 24}],
        "seeds": {"trials": [0, 1], "search": None},
    }
    with session_scope(engine) as session:
        dal.set_environment(session, study_id, environment)

    code, _out, err = cli(capsys, "export", study_id, "--url", server, "--out", str(tmp_path / "t.xlsx"))
    assert code == 2
    assert (
        err == "demonlab: error: --out: exports are .csv or .parquet (got 't.xlsx'); name the file with one of those\n"
    )
    assert not (tmp_path / "t.xlsx").exists()

    code, _, _ = cli(capsys, "export", study_id, "--url", server, "--out", str(tmp_path / "t.PARQUET"))
    assert code == 0
    code, _, err = cli(capsys, "heatmap", study_id, "--url", server, "--out", str(tmp_path / "h.PNG"))  # as export
    assert code == 0, err
    assert (tmp_path / "h.PNG").read_bytes().startswith(b"\x89PNG")
    about = json.loads(pq.read_schema(tmp_path / "t.PARQUET").metadata[b"demonlab"])
    assert about["study_id"] == study_id
    assert about["environment"] == environment
    assert about["spec"]["name"] == "synthetic-smoke"
    with DemonlabClient(server) as client:
        assert client.get_study(study_id).environment == environment
    code, out, _ = cli(capsys, "status", study_id, "--url", server)
    assert out.splitlines()[1:] == [
        "ran with demonlab 0.1.0 (git 0123456789ab), torch 2.13.0",
        "  node n1: X; G; 24 trials",
        "  seeds [0, 1]",
    ]


def test_cli_errors_are_messages_not_tracebacks(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narms: [demon_sgdm\nlr: {")
    code, out, err = cli(capsys, "submit", str(bad), "--url", server)
    assert code == 2
    assert err.startswith(f"demonlab: error: {bad}: the spec is not valid YAML:")
    assert "Traceback" not in err + out
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2]")
    code, _, err = cli(capsys, "submit", str(listy), "--url", server)
    assert (code, err) == (2, f"demonlab: error: {listy}: a spec must be a mapping of fields, not list\n")
    two = tmp_path / "two.yaml"  # two bad fields: both named, on one line (the API lists both)
    two.write_text("name: x\nworkload: synthetic\narms: [demon_sgdm]\nlr: [0.1]\nbeta_init: [0.9]\nseeds: -1\n")
    code, _, err = cli(capsys, "submit", str(two), "--url", server)
    assert code == 2
    assert err.count("\n") == 1
    assert "seeds: a seed count must be between 1 and 1000" in err
    assert "epochs: Field required" in err
    for text, where in (("lr: [0.1, .nan]", "lr[1]: nan"), ("verdict: {target: -.inf}", "verdict.target: -inf")):
        odd = tmp_path / "odd.yaml"
        odd.write_text(f"name: x\nworkload: synthetic\narms: [demon_sgdm]\n{text}\n")
        code, _, err = cli(capsys, "submit", str(odd), "--url", server)
        assert (code, err) == (
            2,
            f"demonlab: error: {odd}: {where} is not a finite number (every number in a spec must be)\n",
        )

    for args in (
        ["status", "000000000000"],
        ["cancel", "000000000000"],
        ["trials", "000000000000"],
        ["robustness", "synthetic"],
        ["submit", str(SMOKE_SPEC_PATH)],
    ):
        code, _, err = cli(capsys, *args, "--url", "http://127.0.0.1:9")  # nothing listens there
        assert code == 2, args
        assert err.startswith("demonlab: error: cannot reach the server at http://127.0.0.1:9: "), err
    for url in ("127.0.0.1:9", "http://[::1"):  # no scheme; not a URL at all
        code, _, err = cli(capsys, "list", "--url", url)
        assert code == 2
        assert err.startswith(f"demonlab: error: cannot reach the server at {url}: "), err


class Lines(io.StringIO):
    """A stream (not a terminal) that tells waiters when a line with some text has been written."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
        return written

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: text in self.getvalue(), timeout=timeout):
                raise TimeoutError(f"{text!r} never shown; shown: {self.getvalue()!r}")


def test_follow_off_a_terminal_says_when_ray_starts_and_prints_each_change_once(
    server: str, engine: Engine, smoke_spec: dict[str, Any]
) -> None:
    spec = smoke_spec | {"arms": ["demon_sgdm"], "lr": [0.01], "beta_init": [0.8, 0.9], "seeds": 1}
    stream = Lines()
    with DemonlabClient(server, timeout=30) as client:
        study_id = client.submit(spec).id
        keys = [TrialKey("demon_sgdm", 0.01, beta, 0) for beta in (0.8, 0.9)]

        def driver() -> None:  # what a driver does, step by step, each once the follower has shown the last
            stream.wait_for("0/2 trials, queued")
            with session_scope(engine) as session:
                dal.claim_queued_studies(session, limit=1, launcher_id="test")
            stream.wait_for(f"0/2 trials, {STARTING}")
            with session_scope(engine) as session:
                dal.mark_trials_running(session, study_id, keys=keys)
            stream.wait_for("0/2 trials, running")
            for n, key in enumerate(keys, start=1):
                with session_scope(engine) as session:
                    dal.record_trial_result(session, study_id, result_for(key))
                stream.wait_for(f"{n}/2 trials, running")
            with session_scope(engine) as session:
                dal.finish_study(session, study_id, status=StudyStatus.COMPLETED)

        thread = threading.Thread(target=driver, daemon=True)
        thread.start()
        study = follow(client, study_id, stream=stream)
        thread.join(timeout=30)

    assert study.status == "completed"
    text = stream.getvalue()
    assert "\r" not in text
    assert "0trial" not in text
    lines = text.splitlines()
    assert lines == [
        f"{study_id}: 0/2 trials, queued, 0 diverged, 0 failed",
        f"{study_id}: 0/2 trials, {STARTING}, 0 diverged, 0 failed",
        f"{study_id}: 0/2 trials, running, 0 diverged, 0 failed",
        f"{study_id}: 1/2 trials, running, 0 diverged, 0 failed",
        f"{study_id}: 2/2 trials, running, 0 diverged, 0 failed",
        f"{study_id}: 2/2 trials, completed, 0 diverged, 0 failed",
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_starts_with_the_total(
    server: str, engine: Engine, smoke_spec: dict[str, Any]
) -> None:
    stream = Terminal()
    progress = Progress(stream)
    with DemonlabClient(server, timeout=30) as client:
        study_id = client.submit(smoke_spec).id
        with session_scope(engine) as session:
            dal.claim_queued_studies(session, limit=1, launcher_id="test")
        progress.show(client.get_study(study_id), started=False)
        first = stream.getvalue()
        record_all(engine, study_id)
        progress.show(client.get_study(study_id))
        progress.close()
    assert "0trial" not in first
    assert "0/24" in first
    assert STARTING in first
    assert "24/24" in stream.getvalue()


# --------------------------------------------------------------------------------------------- tokens


@pytest.fixture
def token_env(db_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``demonlab token …`` works on the test's database."""
    monkeypatch.setenv("DEMONLAB_DATABASE_URL", db_url)
    monkeypatch.setenv("DEMONLAB_DATA_DIR", str(data_dir))
    clear_settings_cache()
    yield
    clear_settings_cache()


def test_tokens_list_revoke_and_expire(
    server: str, engine: Engine, token_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "token", "create", "--name", "ci", "--expires-in", "30d")
    assert code == 0, err
    ci = out.strip()
    expiry = re.search(r"expires (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", err)
    assert expiry is not None
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert abs(dt.datetime.strptime(expiry[1], "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC) - expected) < dt.timedelta(
        minutes=2
    )
    code, out, _ = cli(capsys, "token", "create", "--name", "laptop")
    laptop = out.strip()
    for bad, reason in (
        ("30", "not a duration"),
        ("0d", "longer than zero"),
        ("99999d", "10-year maximum"),
        ("1000000000d", "10-year maximum"),  # past what a timedelta holds
        ("99999999999999999999w", "10-year maximum"),
    ):
        code, _, err = cli(capsys, "token", "create", "--expires-in", bad)
        assert code == 2
        assert err.startswith(f"demonlab: error: --expires-in: {bad!r}"), err
        assert reason in err

    code, out, _ = cli(capsys, "token", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "created", "(UTC)", "last", "used", "expires", "state"]
    assert [line.split()[1] for line in lines[1:3]] == ["ci", "laptop"]
    assert lines[1].split()[-1] == "active"
    assert expiry[1] in lines[1]
    assert lines[2].split()[-3:] == ["-", "-", "active"]  # never used, no expiry
    assert lines[-1] == "(2 tokens)"

    cli_submit(capsys, server, SMOKE_SPEC_PATH, "--token", ci)
    code, _, _ = cli(capsys, "token", "revoke", "ci")
    assert code == 0
    code, _, err = cli(capsys, "submit", str(SMOKE_SPEC_PATH), "--url", server, "--token", ci)
    assert code == 2
    assert "the bearer token was revoked" in err
    code, _, err = cli(capsys, "token", "revoke", "nobody")
    assert (code, err) == (2, "demonlab: error: token 'nobody' not found\n")

    with session_scope(engine) as session:  # time passes: laptop's token is past its expiry
        session.execute(
            update(ApiToken)
            .where(ApiToken.name == "laptop")
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(1))
        )
    code, _, err = cli(capsys, "submit", str(SMOKE_SPEC_PATH), "--url", server, "--token", laptop)
    assert code == 2
    assert "the bearer token has expired" in err
    code, out, _ = cli(capsys, "token", "list")
    assert [line.split()[-1] for line in out.splitlines()[1:3]] == ["revoked", "expired"]
    assert len(out.splitlines()[1].split()) == 9  # ci was used once: its last-use time is shown
    code, _, err = cli(capsys, "token", "revoke", "--id", "2")
    assert code == 0
    # Every token revoked: the API still asks for one rather than opening up.
    code, _, err = cli(capsys, "submit", str(SMOKE_SPEC_PATH), "--url", server)
    assert code == 2
    assert "requires 'Authorization: Bearer <token>'" in err


def test_token_revoke_by_a_name_of_digits_is_by_name_and_by_id_only_with_id(
    engine: Engine, token_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``token revoke 3`` revoked the token with id 3, not the one named "3"."""
    for name in ("first", "second", "1"):  # ids 1, 2, 3: the token named "1" has id 3
        assert cli(capsys, "token", "create", "--name", name)[0] == 0

    code, out, err = cli(capsys, "token", "revoke", "1")
    assert code == 0, err
    assert out == "revoked token 3 ('1')\n"
    code, out, _ = cli(capsys, "token", "revoke", "--id", "1")
    assert code == 0
    assert out == "revoked token 1 ('first')\n"
    code, out, _ = cli(capsys, "token", "list")
    assert [line.split()[-1] for line in out.splitlines()[1:4]] == ["revoked", "active", "revoked"]

    code, _, err = cli(capsys, "token", "revoke", "--id", "9")
    assert (code, err) == (2, "demonlab: error: token 'id 9' not found\n")
    with pytest.raises(SystemExit) as usage:  # both: argparse refuses it
        cli(capsys, "token", "revoke", "second", "--id", "2")
    assert usage.value.code == 2
    assert "argument --id: not allowed with argument name" in capsys.readouterr().err


def test_status_prints_the_verdict_first_and_a_never_trained_arm_loses(
    server: str, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Through the service: sgdm_step diverges in every trial of an 8-seed study; the finished study's
    status starts with the verdict (sgdm_step never trained, demon_sgdm wins), and the API says so."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_smoke() | {"seeds": 8}))
    study_id = cli_submit(capsys, server, spec)
    for arm in ARMS:
        for lr in (0.01, 0.1, 1.0):
            for beta in (0.8, 0.9):
                for seed in range(8):
                    key = TrialKey(arm, lr, beta, seed)
                    result = result_for(TrialKey("sgdm_step", 1.0, beta, seed) if arm == "sgdm_step" else key)
                    with session_scope(engine) as session:
                        dal.record_trial_result(session, study_id, replace(result, key=key))
    code, out, _ = cli(capsys, "status", study_id, "--url", server)
    assert code == 0
    assert not out.startswith("VERDICT")  # a study still queued has no verdict yet
    complete(engine, study_id)
    code, out, _ = cli(capsys, "status", study_id, "--url", server)
    assert code == 0
    assert out.startswith(
        "VERDICT demon_sgdm vs sgdm_step: sgdm_step never trained (no run beat the failure score): "
        "demon_sgdm is the one that trains.\n"
    )
    assert out.splitlines()[1].startswith(f"{study_id} ")
    report = DemonlabClient(server).sensitivity(study_id)
    assert report.arms["sgdm_step"].status == "never_trained"
    (pair,) = report.pairs
    assert not hasattr(pair, "error")
    assert (pair.verdict.outcome, pair.verdict.winner) == ("never_trained", "demon_sgdm")  # type: ignore[union-attr]


def _smoke() -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(SMOKE_SPEC_PATH.read_text())
    return data


def test_a_file_that_cannot_be_read_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A missing spec, a directory given as a spec (both OSErrors): a message naming it, no traceback."""
    for path, reason in ((tmp_path / "missing.yaml", "No such file or directory"), (tmp_path, "Is a directory")):
        code, out, err = cli(capsys, "submit", str(path), "--url", "http://127.0.0.1:9")
        assert code == 2
        assert err.startswith("demonlab: error: "), err
        assert reason in err, err
        assert str(path) in err, err
        assert err.count("\n") == 1
        assert "Traceback" not in out + err


def test_every_option_and_argument_has_help_with_its_default() -> None:
    from service.cli import build_parser

    def parsers(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from parsers(child, f"{path} {name}")

    seen = 0
    for path, parser in parsers(build_parser(), "demonlab"):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            seen += 1
            assert action.help, f"{path}: {action.dest} has no help"
            shown = action.default not in (None, False) and "default" not in action.help
            if shown and action.option_strings:
                assert f"(default: {action.default})" in " ".join(text.split()), (path, action.dest)
    assert seen > 60
    # a token read from the environment is never printed by --help
    assert "default: $DEMONLAB_TOKEN" in build_parser()._subparsers._group_actions[0].choices["list"].format_help()


def test_human_output_has_no_snake_case_status(server: str, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    study_id = cli_submit(capsys, server)
    crashed = TrialKey("demon_sgdm", 0.01, 0.8, 0)  # one trial crashed: the study ends with failures
    for key in (TrialKey(arm, lr, beta, seed) for arm in ARMS for lr in LRS for beta in BETAS for seed in (0, 1)):
        with session_scope(engine) as session:
            failed = TrialResult(key=key, status=TrialStatus.FAILED, error="boom")
            dal.record_trial_result(session, study_id, failed if key == crashed else result_for(key))
    complete(engine, study_id)
    for args in (["status", study_id], ["list"], ["list", "--status", "completed with failures"]):
        code, out, _ = cli(capsys, *args, "--url", server)
        assert code == 0
        assert "completed with failures" in out, args
        assert "completed_with_failures" not in out, args
    code, out, _ = cli(capsys, "list", "--url", server, "--status", "completed_with_failures")  # the API's spelling
    assert study_id in out


def test_progress_off_a_terminal_is_plain_lines_with_readable_statuses() -> None:
    """``submit --wait`` on a 0-column terminal (or a pipe): one plain line per change, no bar."""

    class NarrowTerminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = NarrowTerminal()
    progress = Progress(stream, columns=0)
    study = StudyPublic.model_validate(
        {
            "id": "abc",
            "name": "n",
            "workload": "synthetic",
            "status": "completed_with_failures",
            "launcher": "local",
            "job_id": None,
            "attempts": 1,
            "progress": {"done": 3, "total": 4, "diverged": 0, "failed": 1, "fraction": 1.0},
            "created_at": "2026-01-01T00:00:00Z",
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": None,
            "error": None,
            "spec": {},
        }
    )
    progress.show(study)
    progress.show(study)
    progress.close()
    assert stream.getvalue() == "abc: 3/4 trials, completed with failures, 0 diverged, 1 failed\n"


def test_token_create_says_where_it_stored_the_token_and_whether_the_server_knows_it(
    server: str, token_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, out, err = cli(capsys, "token", "create", "--name", "here", "--url", server)
    assert code == 0, err
    assert "stored in the database " in err
    assert "(the default" not in err
    assert f"the server at {server} accepts this token" in err

    # No DEMONLAB_DATA_DIR: the default ./.work database, which this server does not use.
    monkeypatch.delenv("DEMONLAB_DATA_DIR")
    monkeypatch.delenv("DEMONLAB_DATABASE_URL")
    monkeypatch.chdir(tmp_path)
    clear_settings_cache()
    code, out, err = cli(capsys, "token", "create", "--name", "elsewhere", "--url", server)
    clear_settings_cache()
    assert code == 0, err
    assert out.startswith("dlt_")
    assert f"stored in the database sqlite:///{tmp_path.resolve()}/.work/demonlab.db (the default:" in err
    assert f"warning: the server at {server} does not know this token: it uses another database" in err

    code, _, err = cli(capsys, "token", "create", "--name", "nowhere", "--url", "http://127.0.0.1:9")
    assert code == 0
    assert "no server answered at http://127.0.0.1:9 to check the token against" in err


def test_the_compare_table_reads_as_the_study_page() -> None:
    """An error-rate study's primary Δ and the smallest Δ it detects, in percentage points."""
    import numpy as np
    import pandas as pd

    from studies.metrics import GridAxes, sensitivity_report
    from studies.metrics.models import PairReport

    errors = np.random.default_rng(3).normal(0, 0.02, (2, 8, 3, 2)) + np.array([[0.3, 0.25], [0.12, 0.1], [0.4, 0.35]])
    errors[1] += 0.15  # sgdm_step worse everywhere
    scores = pd.DataFrame(
        [
            {"arm": arm, "lr": LRS[i], "beta_init": BETAS[j], "seed": s, "status": "completed", "val": v, "test": v}
            for arm, cube in zip(("demon_sgdm", "sgdm_step"), errors, strict=True)
            for (s, i, j), v in np.ndenumerate(cube)
        ]
    )
    axes = GridAxes(LRS, BETAS, tuple(range(8)))
    report = sensitivity_report(scores, axes, 1.0, target=0.2, metric="error")
    (pair,) = report.pairs
    assert isinstance(pair, PairReport)
    iv = pair.primary.interval
    assert pair.primary.value is not None
    assert iv.low is not None
    assert iv.high is not None
    text = compare_table([pair], report.units)
    row = next(line for line in text.splitlines() if line.startswith("demon_sgdm vs sgdm_step "))
    assert Units(percent=True).delta("share", pair.primary.value, iv.low, iv.high) in row  # "+41.7 pts [30.2, 53.1]"
    detects = pair.verdict.smallest_detectable_difference
    assert detects is not None
    assert f" {100 * detects:.1f} pts " in row
    assert "percentage points (pts)" in text


LEAN_ABSENT = ("torch", "scipy", "pandas", "numpy", "ray", "sklearn", "matplotlib", "optuna", "sqlalchemy")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # what a command imports is not the database's
def test_api_commands_import_no_heavy_package(
    server: str, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each API command, run as its own interpreter against a finished study, prints its answer and has
    imported none of torch, scipy, pandas, numpy, Ray, scikit-learn, matplotlib, Optuna or SQLAlchemy:
    what keeps every command near the interpreter's own start (bench/cli_latency.py times them).
    ``status`` of a finished study and ``sensitivity`` print the verdict lines (``studies.report_text``)."""
    import subprocess
    import sys

    study_id = cli_submit(capsys, server)
    record_all(engine, study_id)
    complete(engine, study_id)
    on = ["--url", server]
    commands = {
        "list": ["list", *on],
        "status": ["status", study_id, *on],
        "trials": ["trials", study_id, *on],
        "grid": ["grid", study_id, "--arm", "demon_sgdm", *on],
        "sensitivity": ["sensitivity", study_id, *on],
        "compare": ["compare", study_id, *on],
        "robustness": ["robustness", "synthetic", *on],
        "heatmap": ["heatmap", study_id, "--out", str(tmp_path / "h.png"), *on],
        "export": ["export", study_id, "--out", str(tmp_path / "t.csv"), *on],
    }
    probe = (
        "import json, sys\nfrom service.cli import main\ncode = main(sys.argv[1:])\n"
        f"print(json.dumps([code, sorted(m for m in {LEAN_ABSENT!r} if m in sys.modules)]), file=sys.stderr)"
    )
    for name, argv in commands.items():
        done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
        code, loaded = json.loads(done.stderr.strip().splitlines()[-1])
        assert (name, code, loaded) == (name, 0, []), done.stderr
        if name in ("status", "sensitivity"):
            assert done.stdout.startswith("VERDICT demon_sgdm vs sgdm_step: "), done.stdout


def test_list_shows_a_name_with_control_characters_escaped(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Anyone who may submit names a study: a name holding ESC sequences cleared the screen and printed
    a fake row in colour through ``demonlab list``, a newline broke the table, U+202E reversed the
    rest of the line. The table now shows each such character as its escape."""
    name = "\x1b[2J\x1b[31mFAKE completed\x1b[0m\nsecond line \u202eesrever"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": name, "workload": "synthetic", "arms": ["demon_sgdm"]} | SMALL))
    study_id = cli_submit(capsys, server, spec)
    code, out, _ = cli(capsys, "list", "--url", server)
    assert code == 0
    assert "\x1b" not in out
    assert "\u202e" not in out
    (row,) = [line for line in out.splitlines() if line.startswith(study_id)]
    assert row.endswith(r"\x1b[2J\x1b[31mFAKE completed\x1b[0m\nsecond line \u202eesrever")
    assert len(out.splitlines()) == 3  # the header, the one study, the count
