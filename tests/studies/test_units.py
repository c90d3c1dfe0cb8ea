"""One convention for numbers people read (``studies.units``): an error rate in percent, differences
of error rates and of shares in percentage points ("+8.3 pts [-0.7, 17.4]"), losses in their own
units; the verdict's statement, ``demonlab run``'s summary and the CLI's compare table say it the
same way, while the JSON keeps raw fractions."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from studies.metrics import GridAxes, sensitivity_report
from studies.metrics.models import PairReport, SensitivityReport
from studies.report_text import delta_text, pair_lines, summary_table, verdict_lines
from studies.units import Units, is_percent, percent, points

LRS = (0.01, 0.1, 1.0)
BETAS = (0.5, 0.9)
Y_FAIL = 1.0


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: percent(0.083), "8.3%"),
        (lambda: percent(1.0), "100%"),
        (lambda: percent(None), "-"),
        (lambda: points(0.083), "+8.3 pts"),
        (lambda: points(-0.007), "-0.7 pts"),
        (lambda: points(0.0), "0.0 pts"),
        (lambda: points(0.0004), "0.0 pts"),  # rounds to nothing: no sign
        (lambda: Units(percent=True).score(0.0264), "2.6%"),
        (lambda: Units(percent=False).score(0.0264), "0.0264"),
        (lambda: Units(percent=False).score(2.345678), "2.35"),
        (lambda: Units(percent=True).delta("share", 0.083, -0.007, 0.174), "+8.3 pts [-0.7, 17.4]"),
        (lambda: Units(percent=False).delta("share", 0.083, -0.007, 0.174), "+8.3 pts [-0.7, 17.4]"),
        (lambda: Units(percent=True).delta("score", 0.0081, 0.002, 0.0142), "+0.8 pts [0.2, 1.4]"),
        (lambda: Units(percent=False).delta("score", 0.0081, 0.002, 0.0142), "+0.0081 [0.002, 0.0142]"),
        (lambda: Units(percent=True).delta("probability", 0.625, 0.51, 0.74), "62.5% [51.0, 74.0]"),
        (lambda: Units(percent=True).delta("decades", 0.5, -0.25, 1.25), "+0.5 [-0.25, 1.25]"),
        (lambda: Units(percent=True).delta("score", None), "-"),
    ],
)
def test_numbers_read_one_way(call: Any, expected: str) -> None:
    assert call() == expected


def test_an_error_rate_is_shown_in_percent_and_nothing_else_is() -> None:
    assert is_percent("error", np.array([0.02, 0.5]), 0.9)
    assert is_percent("top1_err", [0.02, 0.5], None)
    assert not is_percent("loss", [0.02, 0.5], 0.9)  # a loss keeps its units, even within [0, 1]
    assert not is_percent("error", [0.02, 1.5], 2.0)  # an "error" outside [0, 1] is not a rate
    assert not is_percent("error", [0.02, 0.5], 2.3)  # its failure score is outside [0, 1]
    assert not is_percent("error", [float("nan")], 0.9)  # nothing to tell by


def rows(arm: str, errors: np.ndarray) -> pd.DataFrame:
    """One arm's trials from raw (S, I, J) errors on LRS × BETAS."""
    return pd.DataFrame(
        [
            {"arm": arm, "lr": LRS[i], "beta_init": BETAS[j], "seed": s, "status": "completed", "val": v, "test": v}
            for (s, i, j), v in np.ndenumerate(errors)
        ]
    )


def study(metric: str | None, *, scale: float = 1.0) -> SensitivityReport:
    """demon_sgdm clearly better than sgdm_step over 8 seeds; scores × ``scale``."""
    base = np.array([[0.30, 0.25], [0.12, 0.10], [0.40, 0.35]])
    noise = np.random.default_rng(3).normal(0, 0.02, (2, 8, 3, 2))
    a, b = (base + noise[0]) * scale, (base + 0.15 + noise[1]) * scale
    scores = pd.concat([rows("demon_sgdm", a), rows("sgdm_step", b)])
    axes = GridAxes(LRS, BETAS, tuple(range(8)))
    return sensitivity_report(scores, axes, Y_FAIL * scale, target=0.2 * scale, metric=metric)


def only_pair(report: SensitivityReport) -> PairReport:
    (pair,) = report.pairs
    assert isinstance(pair, PairReport)
    return pair


def test_the_verdict_of_an_error_rate_is_worded_in_points_and_its_json_stays_fractions() -> None:
    report = study("error")
    pair = only_pair(report)
    assert report.score_unit == "percent"
    low, high = pair.primary.interval.low, pair.primary.interval.high
    assert pair.primary.value is not None
    assert low is not None
    assert high is not None
    assert 0 < low <= pair.primary.value <= high <= 1  # a fraction of the grid in the JSON
    shown = Units(percent=True).delta("share", pair.primary.value, low, high)
    assert re.fullmatch(r"\+\d+\.\d pts \[-?\d+\.\d, \d+\.\d\]", shown), shown
    assert pair.verdict.statement == (
        "demon_sgdm is less sensitive than sgdm_step: Δ share of the grid whose runs reach the target = "
        f"{shown} (95% interval, 8 seeds; > 0: demon_sgdm better)."
    )
    assert report.model_dump(mode="json")["target"]["raw_value"] == pytest.approx(0.2)


def test_a_score_primary_is_in_points_for_an_error_rate_and_in_its_units_for_a_loss() -> None:
    from studies.metrics import VerdictSpec

    spec = VerdictSpec(primary="expected_best", difference_of_interest=0.05)
    for metric, scale, unit in (("error", 1.0, r" pts"), ("loss", 3.0, r"")):
        base = np.array([[0.30, 0.25], [0.12, 0.10], [0.40, 0.35]]) * scale
        noise = np.random.default_rng(4).normal(0, 0.02, (2, 4, 3, 2))
        scores = pd.concat([rows("demon_sgdm", base + noise[0]), rows("sgdm_step", base + 0.1 + noise[1])])
        report = sensitivity_report(
            scores, GridAxes(LRS, BETAS, tuple(range(4))), Y_FAIL * scale, verdict=spec, metric=metric
        )
        statement = only_pair(report).verdict.statement
        assert report.score_unit == ("percent" if metric == "error" else "raw")
        # 4 seeds: no interval; the value and the difference of interest in the study's units
        value = only_pair(report).primary.value
        assert value is not None
        expected = f"{100 * value:+.1f} pts" if unit else f"{value:+.3g}"
        assert f"= {expected} (> 0: demon_sgdm better)" in statement, statement
        assert f"would detect a Δ of {'5.0 pts' if unit else '0.05'} with 80% power" in statement, statement


def test_a_report_without_a_metric_name_stays_in_raw_units() -> None:
    report = study(None)
    assert report.score_unit == "raw"
    assert "pts" in only_pair(report).verdict.statement  # a share's difference is in points whatever the metric


def test_demonlab_run_summary_and_pair_lines_read_as_the_page() -> None:
    report = study("error")
    pair = only_pair(report)
    table = summary_table(report)
    peak = report.arms["demon_sgdm"].peak
    assert peak.raw_score is not None
    assert f"{100 * peak.raw_score:.1f}% [" in table  # the best cell's error in percent
    assert "target test <= 20.0% (given)" in table
    assert "error rates in percent" in table
    primary = delta_text(pair.primary, report.units)
    assert primary.startswith("primary     success_share          +")
    assert " pts [" in primary
    lines = pair_lines(report)
    assert lines[1] == "  " + primary
    assert verdict_lines(report) == [f"VERDICT demon_sgdm vs sgdm_step: {pair.verdict.statement}"]
    loss = study("loss", scale=3.0)
    loss_peak = loss.arms["demon_sgdm"].peak.raw_score
    assert loss_peak is not None
    assert f"{loss_peak:.3g} [" in summary_table(loss)
    assert "workload units" in summary_table(loss)


def test_a_study_where_every_run_diverged_is_in_the_unit_of_its_maps() -> None:
    """No finite score, so the scores alone cannot say "percent"; the maps show the failure score (an
    error rate in [0, 1]) in percent, and the report says so too (it said "raw"), and its target
    caption reads as a sentence ("a run reaches the no target" before)."""
    from studies.report_text import target_caption

    errors = np.full((8, 3, 2), np.nan)
    scores = pd.concat([rows("demon_sgdm", errors), rows("sgdm_step", errors)]).assign(status="diverged")
    report = sensitivity_report(scores, GridAxes(LRS, BETAS, tuple(range(8))), Y_FAIL, metric="error")
    assert report.score_unit == "percent"
    assert f"a run reaches the {target_caption(report)}" == "a run reaches the target, which is none: no run trained"


def test_an_interval_that_excludes_zero_never_reads_as_zero() -> None:
    """A decisive Δ of 0.04 pts [0.040, 0.043] (error rates on a 10k test set) read "0.0 pts [0.0, 0.0]"
    in the verdict: as many decimals as the bound nearest 0 needs (up to 4), and only then."""
    from studies.units import Units

    shown = Units(percent=True)
    assert shown.delta("score", 0.00041, 0.000396, 0.000425) == "+0.04 pts [0.04, 0.04]"
    assert shown.delta("share", -0.0004, -0.0005, -0.0003) == "-0.04 pts [-0.05, -0.03]"
    assert shown.delta("share", 0.083, -0.007, 0.174) == "+8.3 pts [-0.7, 17.4]"  # spans 0: one decimal
    assert shown.delta("share", 0.0, 0.0, 0.0) == "0.0 pts [0.0, 0.0]"
    assert shown.delta("probability", 0.5006, 0.5003, 0.501) == "50.06% [50.03, 50.10]"  # its null is 50%
    assert shown.delta("probability", 0.625, 0.51, 0.74) == "62.5% [51.0, 74.0]"
