"""The replication report on synthetic paper-shaped studies (no GPU, no dataset).

The paper's side is checked against its own README (the counts recomputed from the packaged
digitized cells); the example specs against the panels they reproduce; our side on studies whose
trials are built from the paper's cells plus seed noise, so that the right verdict is known: Demon's
advantage reproduced, no advantage (not reproduced), a tie (inconclusive), one seed, a missing cell.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from studies.replicate import (
    PANELS,
    StudyInfo,
    from_files,
    paper_cells,
    replication_report,
    report_text,
    write_report,
)
from studies.spec import FULL_TRAIN_NOTE, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "studies" / "examples"
SPECS = {
    "fig2-wrn": "paper_fig2_wrn_stl10.yaml",
    "fig2-vgg": "paper_fig2_vgg16_cifar100.yaml",
    "fig2-rn20": "paper_fig2_resnet20_cifar10_adam.yaml",
}


def test_the_papers_counts_from_the_packaged_cells() -> None:
    """The reference README's figures, recounted (error ≤ threshold)."""
    wrn_demon, wrn_sgdm = paper_cells("WRN_Demon"), paper_cells("WRN_SGDM")
    assert (wrn_demon.error <= 0.22).sum(axis=0).tolist() == [5, 6, 6, 5, 5, 6]
    assert (wrn_sgdm.error <= 0.22).sum(axis=0).tolist() == [1, 2, 3, 2, 3, 1]
    assert int((paper_cells("VGG_Demon").error <= 0.31).sum()) == 11
    assert int((paper_cells("VGG_SGDM").error <= 0.31).sum()) == 5
    adam, demon_adam = paper_cells("RN20_Adam"), paper_cells("RN20_DemonAdam")
    same = (adam.error == demon_adam.error) & ~adam.clipped()
    assert int(same.sum()) == 26
    for cells in (wrn_demon, adam):
        assert cells.error.shape == (len(cells.lrs), 6)


@pytest.mark.parametrize("key", list(PANELS))
def test_each_example_spec_runs_its_panel_as_the_paper_did(key: str) -> None:
    spec = load_spec(EXAMPLES / SPECS[key])
    chosen = PANELS[key]
    cells = paper_cells(chosen.demon_panel)
    assert spec.workload == chosen.workload
    assert (spec.epochs, spec.batch_size) == (chosen.epochs, chosen.batch_size)
    assert spec.full_train
    assert spec.workload_params["val_size"] == 0
    assert [a.name for a in spec.arms] == [chosen.demon_arm, *chosen.baselines]
    assert np.allclose(spec.lr_values, cells.lrs)
    assert np.allclose(spec.beta_init, cells.momenta)


def paper_shaped(
    key: str,
    *,
    seeds: int = 3,
    noise: float = 0.004,
    demon_from: str | None = None,
    shift: float = 0.0,
    drop: tuple[str, float, float] | None = None,
) -> pd.DataFrame:
    """Trials of a study shaped like panel ``key``: each arm's error is its paper heatmap's cell (or
    ``demon_from``'s for the Demon arm, plus ``shift``) plus Gaussian seed noise; ``drop`` removes
    (arm, lr, beta) from every seed."""
    chosen = PANELS[key]
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    sources = {chosen.demon_arm: (demon_from or chosen.demon_panel, shift)}
    sources |= dict.fromkeys(chosen.baselines, (chosen.baseline_panel, 0.0))
    for arm, (panel_name, offset) in sources.items():
        cells = paper_cells(panel_name)
        for (i, j), value in np.ndenumerate(cells.error):
            lr, beta = cells.lrs[i], cells.momenta[j]
            if drop == (arm, lr, beta):
                continue
            for seed in range(seeds):
                error = value + offset + rng.normal(0.0, noise)
                rows.append({"arm": arm, "lr": lr, "beta_init": beta, "seed": seed, "status": "completed"})
                rows[-1]["test_metric"] = error
    return pd.DataFrame(rows)


def study(key: str, **changes: Any) -> StudyInfo:
    chosen = PANELS[key]
    base = {
        "id": "abc123",
        "name": "synthetic paper-shaped",
        "workload": chosen.workload,
        "status": "completed",
        "epochs": chosen.epochs,
        "batch_size": chosen.batch_size,
        "full_train": True,
    }
    return StudyInfo.model_validate(base | changes)


def test_a_study_like_the_paper_reproduces_its_claims() -> None:
    report = replication_report(paper_shaped("fig2-wrn"), study("fig2-wrn"), paper="fig2-wrn")
    assert [c.baseline_arm for c in report.claims] == ["sgdm_step", "sgdm_linear"]
    for claim in report.claims:
        assert claim.verdict == "reproduced", claim.reason
        assert claim.paper_demon.per_column == [5, 6, 6, 5, 5, 6]
        assert claim.paper_baseline.per_column == [1, 2, 3, 2, 3, 1]
        assert claim.paper_demon.read_range[0] <= 33 <= claim.paper_demon.read_range[1]
        assert abs(claim.ours_demon.total - 33) <= 4  # the seed noise moves a few border cells
        assert claim.interval is not None
        assert claim.interval[0] > 0
    demon = report.arms[0]
    assert demon.mean_abs_difference is not None
    assert demon.mean_abs_difference < 0.006  # noise 0.004 per seed, median of 3
    assert FULL_TRAIN_NOTE in report.notes


def test_the_interval_is_students_t_over_the_per_seed_differences() -> None:
    report = replication_report(paper_shaped("fig2-vgg", seeds=4), study("fig2-vgg"), paper="fig2-vgg")
    claim = report.claims[0]
    diffs = np.array(claim.difference_per_seed, dtype=float)
    assert len(diffs) == 4
    assert diffs.tolist() == [
        d - b for d, b in zip(claim.ours_demon.per_seed_totals, claim.ours_baseline.per_seed_totals, strict=True)
    ]
    half = 3.182446305284263 * diffs.std(ddof=1) / math.sqrt(4)  # t(0.975, 3 df), from tables
    assert claim.interval == pytest.approx((diffs.mean() - half, diffs.mean() + half), rel=1e-9)


def test_no_advantage_is_not_reproduced_and_a_tie_is_inconclusive() -> None:
    worse = paper_shaped("fig2-wrn", demon_from="WRN_SGDM", shift=0.03)  # Demon = SGDM's cells, 3 points worse
    claim = replication_report(worse, study("fig2-wrn"), paper="fig2-wrn").claims[0]
    assert claim.verdict == "not_reproduced", claim.reason
    tie = paper_shaped("fig2-vgg", demon_from="VGG_SGDM", noise=0.01, seeds=5)  # the same cells, other noise
    for claim in replication_report(tie, study("fig2-vgg"), paper="fig2-vgg").claims:
        assert claim.interval is not None
        assert claim.interval[0] < 0 < claim.interval[1]
        assert claim.verdict == "inconclusive"
        assert claim.reason.startswith("the interval of the difference includes 0")


def test_one_seed_or_a_missing_cell_is_inconclusive() -> None:
    claim = replication_report(paper_shaped("fig2-wrn", seeds=1), study("fig2-wrn"), paper="fig2-wrn").claims[0]
    assert (claim.verdict, claim.interval) == ("inconclusive", None)
    assert "1 seed: no interval" in claim.reason
    holed = paper_shaped("fig2-wrn", drop=("demon_sgdm", 0.05, 0.9))
    report = replication_report(holed, study("fig2-wrn"), paper="fig2-wrn")
    assert report.claims[0].verdict == "inconclusive"
    assert "no result in 1 of the paper's cells" in report.claims[0].reason
    assert report.arms[0].ours[5][4] is None  # lr 0.05 is row 5, β 0.9 column 4


def test_diverged_trials_are_chance_level_and_never_under_the_threshold() -> None:
    trials = paper_shaped("fig2-wrn")
    best = (trials["arm"] == "demon_sgdm") & (trials["lr"] == 0.1)
    trials.loc[best, "status"] = "diverged"
    trials.loc[best, "test_metric"] = math.nan
    report = replication_report(trials, study("fig2-wrn"), paper="fig2-wrn")
    assert report.arms[0].ours[7] == [0.9] * 6  # stl10_wrn16_8's chance error
    assert report.claims[0].ours_demon.per_column[0] < 5


def test_notes_say_where_the_study_departs_from_the_paper() -> None:
    info = study("fig2-wrn", workload="synthetic", full_train=False, epochs=1, batch_size=32, status="running")
    notes = replication_report(paper_shaped("fig2-wrn"), info, paper="fig2-wrn").notes
    text = "\n".join(notes)
    assert "'synthetic' is not the paper's 'stl10_wrn16_8'" in text
    assert "the study is running" in text
    assert "held out a validation split" in text
    assert "trained 1 epochs at batch 32; the paper 50 epochs at batch 64" in text
    rn20 = replication_report(paper_shaped("fig2-rn20"), study("fig2-rn20"), paper="fig2-rn20")
    assert rn20.claims == []
    assert any("26 identical cells" in note for note in rn20.notes)


@pytest.mark.parametrize(
    ("arms", "paper", "message"),
    [
        (["sgdm_step"], "fig2-wrn", "has no arm 'demon_sgdm'"),
        (["demon_sgdm", "sgdm_cosine"], "fig2-wrn", "no trials of fig2-wrn's baseline arms (sgdm_step, sgdm_linear)"),
        (
            ["demon_sgdm", "sgdm_step"],
            "fig3",
            "unknown paper panel 'fig3'; valid choices: fig2-wrn, fig2-vgg, fig2-rn20",
        ),
        ([], "fig2-wrn", "has no trials yet"),  # a search that has sampled nothing (not "no arm 'demon_sgdm'")
    ],
)
def test_a_study_without_the_panels_arms_is_refused(arms: list[str], paper: str, message: str) -> None:
    trials = paper_shaped("fig2-wrn")
    trials["arm"] = trials["arm"].replace({"sgdm_linear": "sgdm_cosine"})
    trials = trials[trials["arm"].isin(arms)]
    with pytest.raises(ValueError, match=re.escape(message)):
        replication_report(trials, study("fig2-wrn"), paper=paper)


def test_a_study_whose_metric_is_not_an_error_rate_is_refused() -> None:
    """A language model's perplexity (45-61) was shown as a test error of 5442.2% beside the paper's 40%."""
    with pytest.raises(ValueError, match=re.escape("workload ptb_lstm scores perplexity, not an error rate")):
        replication_report(paper_shaped("fig2-wrn"), study("fig2-wrn", workload="ptb_lstm"), paper="fig2-wrn")


def test_text_leads_with_the_verdicts_and_the_files_are_written(tmp_path: Path) -> None:
    report = replication_report(paper_shaped("fig2-wrn"), study("fig2-wrn"), paper="fig2-wrn")
    lines = report_text(report).splitlines()
    assert lines[3] == "claim (demon_sgdm vs sgdm_step): " + PANELS["fig2-wrn"].claim.text  # type: ignore[union-attr]
    assert lines[4].startswith("  verdict: REPRODUCED: demon_sgdm has more cells at or under 22% error")
    assert "    paper demon_sgdm     5, 6, 6, 5, 5, 6; total 33 (read range 30-35)" in lines
    written = write_report(report, tmp_path)
    assert [p.name for p in written] == ["replication.json", "replication.png", "replication.svg"]
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert type(report).model_validate_json(written[0].read_text()) == report


def test_a_local_run_is_read_with_its_spec(tmp_path: Path) -> None:
    trials = paper_shaped("fig2-rn20", seeds=2)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    frame, info = from_files(tmp_path, EXAMPLES / SPECS["fig2-rn20"])
    assert (info.workload, info.full_train, info.epochs) == ("cifar10_resnet20", True, 100)
    assert len(frame) == len(trials)
    with pytest.raises(ValueError, match="--spec: give the spec"):
        from_files(tmp_path, None)


def test_a_local_run_is_refused_with_another_runs_spec_or_broken_trials(tmp_path: Path) -> None:
    """The spec given must be the one the run ran (its metrics.json names the workload and study), its
    arms must hold the trials', and the trials must be one per key with numbers where numbers go;
    each refusal names the file and what is wrong."""
    spec = EXAMPLES / SPECS["fig2-rn20"]
    trials = paper_shaped("fig2-rn20", seeds=2)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    (tmp_path / "metrics.json").write_text(json.dumps({"study": {"name": "base", "workload": "synthetic"}}))
    with pytest.raises(
        ValueError, match=r"has workload 'cifar10_resnet20', but .*metrics\.json says the run's was 'synthetic'"
    ):
        from_files(tmp_path, spec)
    (tmp_path / "metrics.json").unlink()
    with pytest.raises(ValueError, match=r"has no arm \['adam_none', 'demon_adam'\], which .*trials\.csv holds"):
        from_files(tmp_path, EXAMPLES / SPECS["fig2-wrn"])  # the SGDM panel's spec for the Adam panel's trials
    twice = pd.concat([trials, trials.iloc[:1]])
    twice.to_csv(tmp_path / "trials.csv", index=False)
    with pytest.raises(ValueError, match=r"trials\.csv: the trial .* appears more than once"):
        from_files(tmp_path, spec)
    odd = trials.astype({"test_metric": object})
    odd.loc[3, "test_metric"] = "abc"
    odd.to_csv(tmp_path / "trials.csv", index=False)
    with pytest.raises(ValueError, match=r"trials\.csv: column 'test_metric' holds 'abc', not a number"):
        from_files(tmp_path, spec)
    # another budget: the report would state the spec's epochs as the run's (it said "trained 50 epochs"
    # of a 2-epoch run)
    budget = load_spec(spec)
    trials.assign(epochs_done=budget.epochs - 1).to_csv(tmp_path / "trials.csv", index=False)
    with pytest.raises(ValueError, match=rf"trains {budget.epochs} epochs, but completed trials of .* trained "):
        from_files(tmp_path, spec)
    trials.assign(epochs_done=budget.epochs, seed=trials["seed"] + 1000).to_csv(tmp_path / "trials.csv", index=False)
    with pytest.raises(ValueError, match=r"has no seed 1000, which .*trials\.csv holds"):
        from_files(tmp_path, spec)
    trials.assign(epochs_done=budget.epochs).to_csv(tmp_path / "trials.csv", index=False)
    assert len(from_files(tmp_path, spec)[0]) == len(trials)
