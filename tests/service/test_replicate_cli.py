"""``demonlab replicate`` and ``GET /studies/{id}/replication`` against a real server: a synthetic
study shaped like the paper's WRN panel (the synthetic workload on the paper's grid and arms), its
results recorded straight into the database as a driver would (each arm's error the paper's cell
plus seed noise), then the report as text, as JSON (the endpoint's equal to the command's) and as
files; a study without the panel's arms is a one-line error (a 422 from the API). And a full-train
study (its dataset's files present) is served with the sensitivity JSON saying that no cell was chosen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from sqlalchemy import Engine
from test_http import cli, cli_submit, complete

from service.db import dal, session_scope
from studies.replicate import PANELS, paper_cells
from studies.results import EpochRecord, TrialKey, TrialResult, TrialStatus
from studies.spec import FULL_TRAIN_NOTE

LiveServer = Callable[..., AbstractContextManager[str]]
WRN = PANELS["fig2-wrn"]


@pytest.fixture(autouse=True)
def _no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMONLAB_TOKEN", raising=False)
    monkeypatch.delenv("DEMONLAB_URL", raising=False)


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[str]:
    with live_server() as url:
        yield url


def paper_shaped_spec(tmp_path: Path) -> Path:
    cells = paper_cells(WRN.demon_panel)
    spec = {
        "name": "wrn-shaped",
        "workload": "synthetic",
        "arms": [WRN.demon_arm, *WRN.baselines],
        "lr": list(cells.lrs),
        "beta_init": list(cells.momenta),
        "seeds": 2,
        "epochs": 1,
    }
    path = tmp_path / "wrn_shaped.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def record_paper_shaped(engine: Engine, study_id: str) -> None:
    rng = np.random.default_rng(1)
    for arm, panel in [(WRN.demon_arm, WRN.demon_panel)] + [(b, WRN.baseline_panel) for b in WRN.baselines]:
        cells = paper_cells(panel)
        for (i, j), value in np.ndenumerate(cells.error):
            for seed in (0, 1):
                error = float(value + rng.normal(0.0, 0.003))
                result = TrialResult(
                    key=TrialKey(arm, cells.lrs[i], cells.momenta[j], seed),
                    status=TrialStatus.COMPLETED,
                    epochs=(EpochRecord(1, 0.5, 0.5, error),),
                    val_metric=error,
                    val_loss=0.5,
                    test_metric=error,
                    test_loss=0.5,
                    epochs_done=1,
                    wall_seconds=0.1,
                )
                with session_scope(engine) as session:
                    dal.record_trial_result(session, study_id, result)


# SQLite only: the command reads the study through the API, whose database side runs on both elsewhere.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_replicate_a_paper_shaped_study(
    server: str, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study_id = cli_submit(capsys, server, paper_shaped_spec(tmp_path))
    record_paper_shaped(engine, study_id)
    complete(engine, study_id)

    code, out, err = cli(capsys, "replicate", study_id, "--paper", "fig2-wrn", "--url", server, "--out", str(tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{WRN.title}: study {study_id} (wrn-shaped)"
    verdicts = [line for line in lines if line.startswith("  verdict: ")]
    assert len(verdicts) == 2
    assert all(v.startswith("  verdict: REPRODUCED: demon_sgdm has more cells at or under 22% error") for v in verdicts)
    assert "- the study's workload 'synthetic' is not the paper's 'stl10_wrn16_8'" in out
    assert err.startswith("wrote ")
    assert sorted(p.name for p in tmp_path.glob("replication.*")) == [
        "replication.json",
        "replication.png",
        "replication.svg",
    ]

    code, out, _ = cli(capsys, "replicate", study_id, "--paper", "fig2-wrn", "--url", server, "--json")
    report = json.loads(out)
    assert report["study"] == {
        "id": study_id,
        "name": "wrn-shaped",
        "workload": "synthetic",
        "status": "completed",
        "epochs": 1,
        "batch_size": None,
        "full_train": False,
        "workload_params": {},
    }
    assert [c["verdict"] for c in report["claims"]] == ["reproduced", "reproduced"]
    assert report["claims"][0]["paper_demon"]["per_column"] == [5, 6, 6, 5, 5, 6]
    assert report["claims"][0]["seeds"] == [0, 1]

    api = httpx.get(f"{server}/api/v1/studies/{study_id}/replication", params={"paper": "fig2-wrn"})
    assert api.status_code == 200
    assert api.json() == report  # the endpoint serves what the command line prints
    for paper, words in (("fig2-rn20", "has no arm 'demon_adam'"), ("fig3", "fig2-wrn")):
        api = httpx.get(f"{server}/api/v1/studies/{study_id}/replication", params={"paper": paper})
        assert api.status_code == 422
        assert words in api.text

    code, _, err = cli(capsys, "replicate", study_id, "--paper", "fig2-rn20", "--url", server)
    assert (code, err) == (
        2,
        f"demonlab: error: study {study_id} has no arm 'demon_adam': fig2-rn20 compares it with the paper's\n",
    )
    code, _, err = cli(capsys, "replicate", "0123456789ab", "--paper", "fig2-wrn", "--url", server)
    assert code == 2
    assert "not found" in err
    for typo in (["runs/bse"], ["0123456789ab", "--spec", "s.yaml"]):  # a mistyped path is not a study id
        code, _, err = cli(capsys, "replicate", *typo, "--paper", "fig2-wrn", "--url", server)
        assert (code, err) == (2, f"demonlab: error: {typo[0]}: no such file or folder (a study id is 12 hex digits)\n")


def test_the_cli_offers_every_panel() -> None:
    from typing import get_args

    from service.cli import build_parser
    from studies.replicate import PanelKey

    assert get_args(PanelKey) == tuple(PANELS)
    parser = build_parser()
    replicate = parser._subparsers._group_actions[0].choices["replicate"]  # type: ignore[union-attr]
    paper = next(a for a in replicate._actions if a.dest == "paper")
    assert tuple(paper.choices) == tuple(PANELS)  # type: ignore[arg-type]


def test_sensitivity_of_a_full_train_study_says_no_cell_was_chosen(
    live_server: LiveServer, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "datasets" / "cifar-10-batches-py"  # submission checks the files are there
    folder.mkdir(parents=True)
    for name in [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]:
        (folder / name).touch()
    spec: dict[str, Any] = {
        "name": "full-train",
        "workload": "cifar10_resnet20",
        "full_train": True,
        "arms": ["demon_sgdm", "sgdm_step"],
        "lr": [0.1],
        "beta_init": [0.9],
        "seeds": 2,
        "epochs": 1,
    }
    path = tmp_path / "full_train.yaml"
    path.write_text(yaml.safe_dump(spec))
    with live_server(dataset_dir=tmp_path / "datasets") as url:
        study_id = cli_submit(capsys, url, path)
        for arm in ("demon_sgdm", "sgdm_step"):
            for seed in (0, 1):
                result = TrialResult(
                    key=TrialKey(arm, 0.1, 0.9, seed),
                    status=TrialStatus.COMPLETED,
                    epochs=(EpochRecord(1, 2.0, float("nan"), float("nan")),),
                    test_metric=0.5 + 0.1 * seed,
                    test_loss=1.5,
                    epochs_done=1,
                    wall_seconds=0.1,
                )
                with session_scope(engine) as session:
                    dal.record_trial_result(session, study_id, result)
        complete(engine, study_id)
        code, out, err = cli(capsys, "sensitivity", study_id, "--url", url, "--json")
        assert code == 0, err
        assert json.loads(out)["study"]["protocol"] == FULL_TRAIN_NOTE
        code, out, err = cli(capsys, "sensitivity", study_id, "--url", url)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("VERDICT demon_sgdm vs sgdm_step: ")  # the answer first, then the protocol
        assert lines[1] == FULL_TRAIN_NOTE
        assert lines[2].startswith(
            "figures on test (no cell chosen: no validation split); success: a run reaches the target test <= "
        )
        assert lines[2].endswith("(the lower quartile of trained runs on test); [95% intervals] from 8 seeds")
