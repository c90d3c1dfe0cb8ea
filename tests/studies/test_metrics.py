"""Sensitivity metrics against numbers computed by hand (or by brute force, or by scipy) on tiny grids.

The main grid is 3 lrs × 2 β_inits × 2 seeds, lower-is-better error rates, y_fail = 0.9. Its raw
cell medians, validation and test, are written out below; every expected number in the cell-table
tests follows from them with a pencil. The seed-wise figures (metrics v4) are checked per seed by
hand, their intervals against ``scipy.stats.ttest_1samp``, the verdict's planning against a
simulation of the paired t test. Oriented scores are y = −value.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import quantile_test, ttest_1samp

from studies.metrics import (
    ComparisonError,
    GridAxes,
    GridError,
    MetricsError,
    VerdictSpec,
    aggregate_robustness,
    cell_table,
    cell_tables,
    default_pairs,
    sensitivity_report,
)
from studies.metrics._cells import median_interval
from studies.metrics._landscape import expected_best, pick_probabilities
from studies.metrics._seedwise import default_threshold, seed_mean, share_floor, success, win_share
from studies.metrics._verdict import holm, power, seeds_needed, smallest_detectable
from studies.metrics.models import PairError, PairReport, SensitivityReport

Y_FAIL = 0.9
LRS = (0.01, 0.1, 1.0)
BETAS = (0.0, 0.9)
AXES = GridAxes(LRS, BETAS, (0, 1))

Trial = tuple[str, float, float]  # (status, raw val, raw test)
NAN = math.nan
DIV: Trial = ("diverged", NAN, NAN)


def ok(val: float, test: float) -> Trial:
    return ("completed", val, test)


# Raw per-seed (val, test). Cell medians, val:  [[0.32, 0.21], [0.12, 0.09], [0.70, 0.90]]
#                                        test: [[0.34, 0.23], [0.11, 0.12], [0.71, 0.90]]
# The best cell on validation, (0.1, 0.9), is not the best on test, (0.1, 0.0).
DEMON: dict[tuple[float, float], list[Trial]] = {
    (0.01, 0.0): [ok(0.30, 0.32), ok(0.34, 0.36)],
    (0.01, 0.9): [ok(0.20, 0.21), ok(0.22, 0.25)],
    (0.1, 0.0): [ok(0.10, 0.10), ok(0.14, 0.12)],
    (0.1, 0.9): [ok(0.08, 0.11), ok(0.10, 0.13)],
    (1.0, 0.0): [ok(0.50, 0.52), ("diverged", 0.05, 0.05)],  # a diverged trial's stored value is ignored
    (1.0, 0.9): [DIV, DIV],
}


def rows(arm: str, cells: dict[tuple[float, float], list[Trial]]) -> list[dict[str, Any]]:
    return [
        {"arm": arm, "lr": lr, "beta_init": beta, "seed": seed, "status": status, "val": val, "test": test}
        for (lr, beta), trials in cells.items()
        for seed, (status, val, test) in enumerate(trials)
    ]


def frame(*arms: tuple[str, dict[tuple[float, float], list[Trial]]]) -> pd.DataFrame:
    return pd.DataFrame([row for arm, cells in arms for row in rows(arm, cells)])


def shifted(cells: dict[tuple[float, float], list[Trial]], by: float) -> dict[tuple[float, float], list[Trial]]:
    """The same grid with every completed raw value worse by ``by``."""
    return {
        key: [(s, v + by, t + by) if s == "completed" else (s, v, t) for s, v, t in trials]
        for key, trials in cells.items()
    }


def strict_json(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False)


# --- the grid and its input checks ----------------------------------------------------------------


def test_lr_bounds_even_and_uneven() -> None:
    assert np.allclose(AXES.lr_bounds(), [-2.5, -1.5, -0.5, 0.5])
    uneven = GridAxes((1e-4, 1e-2, 10**-1.75, 10**-1.5), (0.9,), (0,))
    assert np.allclose(uneven.lr_bounds(), [-5.0, -3.0, -1.875, -1.625, -1.375])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lrs": (0.1, 0.01), "betas": (0.9,), "seeds": (0,)}, "ascending"),
        ({"lrs": (0.0, 0.1), "betas": (0.9,), "seeds": (0,)}, "positive"),
        ({"lrs": (0.1,), "betas": (0.9, 0.5), "seeds": (0,)}, "ascending"),
        ({"lrs": (0.1,), "betas": (0.9,), "seeds": (0, 0)}, "distinct"),
        ({"lrs": (), "betas": (0.9,), "seeds": (0,)}, "lrs"),
    ],
)
def test_grid_axes_rejects_bad_grids(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(GridError, match=match):
        GridAxes(**kwargs)


def test_rows_off_the_grid_repeated_or_unknown_are_refused() -> None:
    base = frame(("demon_sgdm", DEMON))
    off = base.copy()
    off.loc[0, "lr"] = 0.02
    with pytest.raises(GridError, match="lr values off the grid") as refused:
        cell_table(off, AXES, "demon_sgdm", Y_FAIL)
    assert "np.float64" not in str(refused.value)  # plain numbers, as the user wrote them (numpy 2's repr leaked)
    with pytest.raises(GridError, match="repeated trial key"):
        cell_table(pd.concat([base, base.iloc[:1]]), AXES, "demon_sgdm", Y_FAIL)
    odd = base.copy()
    odd.loc[0, "status"] = "exploded"
    with pytest.raises(GridError, match="unknown trial status"):
        cell_table(odd, AXES, "demon_sgdm", Y_FAIL)
    with pytest.raises(GridError, match="lacks the columns"):
        cell_table(base.drop(columns="test"), AXES, "demon_sgdm", Y_FAIL)
    with pytest.raises(MetricsError, match="no trials for arm"):
        cell_table(base, AXES, "adam", Y_FAIL)
    absent = cell_table(base, AXES, "adam", Y_FAIL, empty=True)  # a search arm not sampled yet: all missing
    assert np.asarray(absent.n_results).sum() == 0
    assert np.isnan(np.asarray(absent.raw_median, dtype=float)).all()
    both = cell_tables(base, AXES, Y_FAIL, ["demon_sgdm", "adam"], empty=True)
    assert np.array_equal(both["demon_sgdm"].raw_median, cell_table(base, AXES, "demon_sgdm", Y_FAIL).raw_median)


def test_lr_values_match_within_float_tolerance() -> None:
    data = frame(("demon_sgdm", DEMON))
    data["lr"] = data["lr"] * (1 + 1e-12)
    assert np.allclose(cell_table(data, AXES, "demon_sgdm", Y_FAIL).raw_median[1], [0.11, 0.12])


# --- 1. cell table ---------------------------------------------------------------------------------


def test_cell_table_by_hand() -> None:
    table = cell_table(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL)
    assert np.allclose(table.raw_median, [[0.34, 0.23], [0.11, 0.12], [0.71, 0.90]])
    assert np.allclose(table.median, -table.raw_median)
    assert np.allclose(table.raw_mean, [[0.34, 0.23], [0.11, 0.12], [0.71, 0.90]])  # two seeds
    s2 = math.sqrt(2)
    assert np.allclose(table.std, [[0.04 / s2, 0.04 / s2], [0.02 / s2, 0.02 / s2], [0.38 / s2, 0.0]])
    assert table.n_completed.tolist() == [[2, 2], [2, 2], [1, 0]]
    assert table.n_diverged.tolist() == [[0, 0], [0, 0], [1, 2]]
    assert table.n_missing.tolist() == [[0, 0], [0, 0], [0, 0]]
    assert np.allclose(table.divergence_rate, [[0.0, 0.0], [0.0, 0.0], [0.5, 1.0]])
    # Two seeds: the only order-statistic interval is [min, max], and it covers the median with
    # chance 1 − 2·(½)² = ½ — reported as such, never as 95%.
    assert np.allclose(table.raw_interval_low, [[0.32, 0.21], [0.10, 0.11], [0.52, 0.90]])
    assert np.allclose(table.raw_interval_high, [[0.36, 0.25], [0.12, 0.13], [0.90, 0.90]])
    assert np.allclose(table.interval_low, -table.raw_interval_high)
    assert np.allclose(table.interval_level, 0.5)
    assert {status for row in table.interval_status for status in row} == {"reduced_level"}


def test_cell_table_on_validation_and_json() -> None:
    table = cell_table(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL, split="val")
    assert np.allclose(table.raw_median, [[0.32, 0.21], [0.12, 0.09], [0.70, 0.90]])
    out = json.loads(strict_json(table.to_dict()))
    assert out["orientation"] == "higher is better (y = -value)"
    cell = out["cells"][1]  # row-major: (0.01, 0.9)
    assert (cell["lr"], cell["beta_init"]) == (0.01, 0.9)
    assert cell["raw_median"] == pytest.approx(0.21)
    assert cell["median"] == pytest.approx(-0.21)
    interval = cell["median_interval"]
    assert interval["raw_low"] == pytest.approx(0.20)
    assert interval["high"] == pytest.approx(-0.20)
    assert (interval["level"], interval["status"]) == (0.5, "reduced_level")


def test_failed_missing_and_clipped_trials() -> None:
    cells = {
        (0.01, 0.0): [ok(0.30, 0.32), ("failed", NAN, NAN)],  # one seed missing
        (0.01, 0.9): [("cancelled", NAN, NAN), ("pending", NAN, NAN)],  # no result at all
        (0.1, 0.0): [ok(0.10, 0.10), ok(0.14, 1.70)],  # 1.70 is worse than y_fail: clipped to 0.9
        (0.1, 0.9): [ok(0.08, NAN), ok(0.10, 0.13)],  # completed without a test value: missing on test
        (1.0, 0.0): [DIV, ("running", NAN, NAN)],
        # (1.0, 0.9): absent rows
    }
    table = cell_table(frame(("demon_sgdm", cells)), AXES, "demon_sgdm", Y_FAIL)
    assert table.n_completed.tolist() == [[1, 0], [2, 1], [0, 0]]
    assert table.n_diverged.tolist() == [[0, 0], [0, 0], [1, 0]]
    assert table.n_missing.tolist() == [[1, 2], [0, 1], [1, 2]]
    expected = np.array([[0.32, NAN], [(0.10 + 0.90) / 2, 0.13], [0.90, NAN]])
    assert np.allclose(table.raw_median, expected, equal_nan=True)
    assert np.isnan(table.std[0, 0])
    assert np.isnan(table.divergence_rate[0, 1])
    out = json.loads(strict_json(table.to_dict()))
    missing = out["cells"][1]
    assert missing["median"] is None
    assert missing["median_interval"]["raw_low"] is None
    assert missing["median_interval"]["status"] == "no_results"
    one_seed = out["cells"][0]  # (0.01, 0.0): one result, no interval at any level
    assert one_seed["median_interval"] | {"method": None} == {
        "low": None,
        "high": None,
        "raw_low": None,
        "raw_high": None,
        "level": None,
        "status": "too_few_seeds",
        "method": None,
    }
    assert missing["divergence_rate"] is None
    assert missing["n_missing"] == 2
    assert table.raw_mean[2, 0] == pytest.approx(0.9)  # diverged → y_fail


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 9, 10, 17, 40])
def test_cell_intervals_are_scipys_order_statistic_intervals_with_their_real_level(n: int) -> None:
    x = np.sort(np.random.default_rng(n).normal(size=n))
    low, high, level, status = median_interval(x[None], np.array([n]))
    # The exact coverage of [x_(r), x_(n+1-r)] for the median, by brute force over Bin(n, 1/2).
    r = int(np.flatnonzero(x == low[0])[0]) + 1
    assert high[0] == x[n - r]
    exact = sum(math.comb(n, j) for j in range(r, n - r + 1)) / 2**n
    assert level[0] == pytest.approx(exact)
    if n <= 5:  # no order-statistic interval reaches 95%: [min, max] at its real level
        assert (r, status[0]) == (1, "reduced_level")
        assert level[0] == pytest.approx(1 - 2 ** (1 - n))
    else:
        assert status[0] == "ok"
        assert level[0] >= 0.95
        ci = quantile_test(x, p=0.5).confidence_interval(0.95)
        assert (low[0], high[0]) == (ci.low, ci.high)


# --- seed-wise figures (metrics v4) ----------------------------------------------------------------


def seeded(arm: str, val: Any, test: Any | None = None, diverged: Any | None = None) -> pd.DataFrame:
    """Rows of one arm from raw (S, I, J) arrays on the grid ``axes_for(val)``; ``diverged`` marks trials."""
    val = np.asarray(val, dtype=float)
    test = val if test is None else np.asarray(test, dtype=float)
    div = np.zeros(val.shape, bool) if diverged is None else np.asarray(diverged, bool)
    lrs, betas = LRS[: val.shape[1]], BETAS[: val.shape[2]]
    return pd.DataFrame(
        [
            {
                "arm": arm,
                "lr": lrs[i],
                "beta_init": betas[j],
                "seed": s,
                "status": "diverged" if div[s, i, j] else "completed",
                "val": NAN if div[s, i, j] else val[s, i, j],
                "test": NAN if div[s, i, j] else test[s, i, j],
            }
            for (s, i, j), _ in np.ndenumerate(val)
        ]
    )


def axes_for(val: Any) -> GridAxes:
    n_seeds, n_lrs, n_betas = np.asarray(val).shape
    return GridAxes(LRS[:n_lrs], BETAS[:n_betas], tuple(range(n_seeds)))


def landscape(n_seeds: int, shift: float = 0.0, seed: int = 0, sd: float = 0.02) -> Any:
    """Raw errors (S, 3, 2) around a valley at lr 0.1, plus ``shift``, with noise."""
    base = np.array([[0.30, 0.25], [0.12, 0.10], [0.40, 0.35]]) + shift
    return base + np.random.default_rng(seed).normal(0, sd, (n_seeds, 3, 2))


def report_of(*arms: pd.DataFrame, axes: GridAxes, **kwargs: Any) -> SensitivityReport:
    return sensitivity_report(pd.concat(arms), axes, Y_FAIL, **kwargs)


def only_pair(report: SensitivityReport) -> PairReport:
    (pair,) = report.pairs
    assert isinstance(pair, PairReport)
    return pair


def test_success_share_width_and_per_beta_by_hand() -> None:
    # Two seeds, target 0.2 (given): a run succeeds when its test error is at most 0.2.
    val = [[[0.30, 0.10], [0.15, 0.12], [0.50, 0.19]], [[0.25, 0.30], [0.18, 0.11], [0.10, 0.40]]]
    report = report_of(seeded("a", val), axes=axes_for(val), target=0.2)
    success = report.arms["a"].success
    # seed 0 succeeds in 4 of 6 cells, seed 1 in 3 of 6: the mean share is 7/12
    assert success.share.value == pytest.approx(7 / 12)
    assert success.share.n_seeds == 2
    assert success.share.interval.status == "too_few_seeds"  # fewer than 8 seeds: no interval
    # per β_init column: β 0.0 → seed 0: 1 of 3, seed 1: 2 of 3; β 0.9 → 3 of 3, 1 of 3
    assert [b.share.value for b in success.per_beta] == [pytest.approx(0.5), pytest.approx(4 / 6)]
    # the longest run of succeeding lrs per column, one decade per lr: seed 0 → (1, 3), seed 1 → (2, 1)
    assert success.lr_width.value == pytest.approx(((1 + 3) / 2 + (2 + 1) / 2) / 2)
    assert success.n_seeds_touching_lr_edge == 2
    assert report.target.raw_value == 0.2
    assert report.target.chosen_on == "given"


def test_default_target_is_the_pooled_lower_quartile_of_trained_validation_runs() -> None:
    a, b = landscape(8, seed=1), landscape(8, 0.05, seed=2)
    report = report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a))
    pooled = np.concatenate([a.ravel(), b.ravel()])
    assert report.target.raw_value == pytest.approx(np.quantile(pooled, 0.25))
    assert report.target.chosen_on == "val"
    # diverged runs are not in the pool: a baseline that diverges in half its runs moves nothing
    div = np.zeros(b.shape, bool)
    div[:, 2, :] = True  # its largest lr diverges in every seed
    again = report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b, diverged=div), axes=axes_for(a))
    assert again.target.raw_value == pytest.approx(np.quantile(np.concatenate([a.ravel(), b[:, :2].ravel()]), 0.25))


def test_a_target_at_or_above_the_failure_score_is_refused() -> None:
    a = landscape(2)
    with pytest.raises(MetricsError, match="target"):
        report_of(seeded("a", a), axes=axes_for(a), target=Y_FAIL)


def test_seed_intervals_are_t_intervals_over_seeds() -> None:
    # seeds that differ (noise 0.05 around a 0.2 target): the spread is above the floor for a share
    a, b = landscape(9, seed=3, sd=0.05), landscape(9, 0.03, seed=4, sd=0.05)
    report = report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a), target=0.2)
    per_seed_a = (a <= 0.2).mean(axis=(1, 2))
    per_seed_b = (b <= 0.2).mean(axis=(1, 2))
    pair = only_pair(report)
    # a given target: the jackknife standard error is sd/√n, the interval scipy's one-sample t interval
    expected = ttest_1samp(per_seed_a - per_seed_b, 0.0).confidence_interval(0.95)
    assert pair.primary.value == pytest.approx(float(np.mean(per_seed_a - per_seed_b)))
    assert (pair.primary.interval.low, pair.primary.interval.high) == (
        pytest.approx(expected.low),
        pytest.approx(expected.high),
    )
    assert pair.primary.p_value == pytest.approx(ttest_1samp(per_seed_a - per_seed_b, 0.0).pvalue)
    q1 = report.arms["demon_sgdm"].expected_best.values[0]
    assert q1.k == 1
    mean_error = a.mean(axis=(1, 2))  # q(1): one configuration at random, its expected test error
    ci = ttest_1samp(mean_error, 0.0).confidence_interval(0.95)
    assert q1.estimate.raw_value == pytest.approx(float(mean_error.mean()))
    assert (q1.estimate.interval.raw_low, q1.estimate.interval.raw_high) == (
        pytest.approx(ci.low),
        pytest.approx(ci.high),
    )


def test_a_share_difference_the_same_in_every_seed_still_has_an_interval() -> None:
    """One cell decides: a succeeds there in every seed, b in none. Every seed's Δ is 1/6, a spread of
    0, yet neither share is known exactly: the Δ's standard error is floored by the arms' floors (its
    interval had width 0 and p = 0; in such a landscape that covered 80%)."""
    a = np.full((8, 3, 2), 0.5)
    a[:, 1, 1] = 0.1
    b = np.full((8, 3, 2), 0.5)
    pair = only_pair(report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a), target=0.2))
    assert pair.primary.value == pytest.approx(1 / 6)
    assert pair.primary.interval.low is not None
    assert pair.primary.interval.high is not None
    assert pair.primary.interval.high - pair.primary.interval.low > 0.05
    assert pair.primary.p_value is not None
    assert pair.primary.p_value > 0


def test_a_share_the_same_in_every_seed_still_has_an_interval() -> None:
    # every seed: the same one cell of six succeeds; the seeds' spread is 0, the share is not known exactly
    val = np.full((8, 3, 2), 0.5)
    val[:, 1, 1] = 0.1
    report = report_of(seeded("a", val), axes=axes_for(val), target=0.2)
    share = report.arms["a"].success.share
    assert share.value == pytest.approx(1 / 6)
    ok = success(-val, np.asarray(-0.2))
    assert share.interval.low is not None
    assert share.interval.high is not None
    half_width = share.interval.high - share.value
    assert half_width == pytest.approx(2.3646 * float(share_floor(ok)), rel=1e-3)  # t(7) × the Jeffreys floor
    assert share.interval.low < 1 / 6 < share.interval.high


def test_a_width_delta_the_same_in_every_seed_still_has_an_interval() -> None:
    """Every seed: a succeeds at the two smallest lrs, b at the middle one, so every seed gives the same
    Δ width; neither width is known exactly, so the Δ is not either (its interval had width 0 and
    p = 0, and covered 76% of studies where one cell decided, against the 93% docs/statistics.md states)."""
    val_a, val_b = np.full((8, 3, 2), 0.5), np.full((8, 3, 2), 0.5)
    val_a[:, :2, :] = 0.1
    val_b[:, 1, :] = 0.1
    spec = VerdictSpec(primary="success_lr_width")
    report = report_of(
        seeded("demon_sgdm", val_a), seeded("sgdm_step", val_b), axes=axes_for(val_a), target=0.2, verdict=spec
    )
    delta = only_pair(report).primary
    assert delta.figure == "success_lr_width"
    assert delta.value == pytest.approx(1.0)  # one more lr step (a decade) in every seed
    assert delta.interval.low is not None
    assert delta.interval.high is not None
    assert delta.interval.high - delta.interval.low > 0.1
    assert delta.interval.low < 1.0 < delta.interval.high
    assert delta.p_value is not None
    assert delta.p_value > 0


def test_the_jackknife_carries_the_default_target_s_own_noise() -> None:
    x = -np.random.default_rng(5).uniform(0.05, 0.5, size=(10, 12))  # oriented scores of runs that trained
    theta, theta_jk = default_threshold(x, Y_FAIL)
    assert theta == pytest.approx(np.quantile(x, 0.75))
    assert theta_jk is not None
    for s in range(10):
        assert theta_jk[s] == pytest.approx(np.quantile(np.delete(x, s, axis=0), 0.75))
    # with the left-out values equal to the full ones, the jackknife is the t interval exactly
    values = np.random.default_rng(6).normal(size=10)
    loo = np.broadcast_to(values, (10, 10))
    plain, jack = seed_mean(values), seed_mean(values, loo)
    assert float(jack.se) == pytest.approx(float(plain.se))
    assert float(plain.se) == pytest.approx(values.std(ddof=1) / math.sqrt(10))


# --- failure is never robustness -----------------------------------------------------------------


def test_an_arm_that_never_trains_gets_no_figures_and_loses_the_verdict() -> None:
    a = landscape(8)
    div = np.ones(a.shape, bool)
    report = report_of(seeded("demon_sgdm", a), seeded("sgdm_step", a, diverged=div), axes=axes_for(a))
    base = report.arms["sgdm_step"]
    assert base.status == "never_trained"
    assert (base.coverage.n_cells_trained, base.coverage.n_diverged) == (0, 48)
    for status in (base.peak.status, base.success.status, base.expected_best.status, base.lr_sensitivity.status):
        assert status == "never_trained"
    assert base.success.share.value is None  # not "every cell alike": no figure at all
    pair = only_pair(report)
    assert pair.verdict.outcome == "never_trained"
    assert (pair.verdict.winner, pair.verdict.never_trained) == ("demon_sgdm", ["sgdm_step"])
    assert pair.verdict.statement.startswith("sgdm_step never trained")
    assert all(d.status == "never_trained" and d.value is None for d in [pair.primary, *pair.exploratory])


def test_an_arm_that_trained_in_some_seeds_did_train() -> None:
    """Demon reaches 2% error everywhere in 3 seeds of 8 and diverges in the rest; the baseline sits at
    60% everywhere (chance 66.7%). Every Demon cell's median is the failure score, and the verdict
    called Demon "never trained", the baseline the one that trains; a fourth good seed flipped it to
    Demon +37.5 pts. An arm never trained only when no run did: here the primary figure decides."""
    rng = np.random.default_rng(3)
    b = 0.60 + rng.normal(0, 0.01, (8, 3, 2))
    a = 0.02 + rng.normal(0, 0.005, (8, 3, 2))
    div = np.zeros(a.shape, bool)
    div[3:] = True
    a[3:] = np.nan
    report = sensitivity_report(
        pd.concat([seeded("demon_sgdm", a, diverged=div), seeded("sgdm_step", b)]), axes_for(a), 2 / 3
    )
    demon = report.arms["demon_sgdm"]
    assert (demon.status, demon.coverage.n_cells_trained, demon.coverage.n_runs_trained) == ("ok", 0, 18)
    pair = only_pair(report)
    assert pair.verdict.never_trained == []
    assert pair.primary.value is not None
    assert pair.primary.value > 0.3  # Demon's 3 good seeds of 8 against none: +35 pts, not a loss
    assert pair.verdict.outcome == "inconclusive_too_few_seeds"  # 3 of 8 seeds on 6 cells: [-0.6, 71.5]


def test_a_figure_the_grid_cannot_have_is_undefined_not_incomplete() -> None:
    """On one learning rate the lr figures cannot exist: the pair said "incomplete" (the arm table
    "undefined") and, as the primary, "rerun the trials without a result" though none was missing."""
    one_lr = landscape(8)[:, :1, :]
    frames = (seeded("demon_sgdm", one_lr), seeded("sgdm_step", one_lr + 0.01))
    pair = only_pair(report_of(*frames, axes=axes_for(one_lr)))
    statuses = {d.figure: d.status for d in pair.exploratory}
    assert statuses["lr_sensitivity"] == statuses["success_lr_width"] == "undefined"
    primary = VerdictSpec(primary="lr_sensitivity", difference_of_interest=0.01)  # the spec refuses it; the API not
    said = only_pair(report_of(*frames, axes=axes_for(one_lr), verdict=primary)).verdict.statement
    assert said.startswith("No verdict: Δ lr sensitivity")
    assert "it has one learning rate" in said
    assert "rerun" not in said


def test_a_cell_whose_median_is_the_failure_score_never_succeeds() -> None:
    val = np.full((2, 3, 2), 0.1)
    div = np.zeros(val.shape, bool)
    div[:, 0, :] = True  # lr 0.01 diverges in every seed
    report = report_of(seeded("a", val, diverged=div), axes=axes_for(val), target=0.85)
    success_ = report.arms["a"].success
    assert success_.share.value == pytest.approx(4 / 6)
    assert report.arms["a"].coverage.n_cells_trained == 4
    assert success_.lr_width.value == pytest.approx(2.0)  # lrs 0.1 and 1: the diverged lr is not in the run


# --- ties: one rule for the peak and q(k) ----------------------------------------------------------


def test_cells_tied_on_validation_are_one_random_choice_for_the_peak_and_for_q() -> None:
    val = np.array([[[0.2, 0.1], [0.1, 0.3], [0.5, 0.4]]])  # one seed; (0.01, 0.9) and (0.1, 0.0) tie
    test = np.array([[[0.2, 0.12], [0.16, 0.3], [0.5, 0.4]]])
    report = report_of(seeded("a", val, test), axes=axes_for(val))
    arm = report.arms["a"]
    assert (arm.peak.lr, arm.peak.beta_init, arm.peak.n_tied) == (0.01, 0.9, 2)
    assert arm.peak.raw_score == pytest.approx(0.14)  # the mean of 0.12 and 0.16
    assert arm.peak.score_interval.status == "tied"
    best_of_all = arm.expected_best.values[-1]
    assert best_of_all.k == 6
    assert best_of_all.estimate.raw_value == pytest.approx(arm.peak.raw_score)  # q(N) is the peak


def test_identical_arms_give_an_exact_zero_and_no_detectable_difference() -> None:
    a = landscape(12, seed=7)
    report = report_of(seeded("demon_sgdm", a), seeded("sgdm_step", a), axes=axes_for(a))
    pair = only_pair(report)
    for delta in [pair.primary, *pair.exploratory]:
        if delta.value is None:
            continue
        assert delta.value == pytest.approx(delta.null, abs=1e-12), delta.figure
        assert delta.significant in (False, None), delta.figure
    assert pair.primary.p_value == 1.0
    assert pair.verdict.outcome in ("no_detectable_difference", "inconclusive_too_few_seeds")


# --- the verdict, the family and seed planning -----------------------------------------------------


def test_verdict_when_one_arm_reaches_the_target_over_more_of_the_grid() -> None:
    a, b = landscape(8, seed=8), landscape(8, 0.15, seed=9)
    forward = only_pair(report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a), target=0.2))
    assert forward.verdict.outcome == "a_less_sensitive"
    assert forward.verdict.winner == "demon_sgdm"
    assert forward.verdict.statement.startswith("demon_sgdm is less sensitive than sgdm_step: Δ share of the grid")
    assert forward.primary.interval.low is not None
    assert forward.primary.interval.low > 0
    assert forward.verdict.smallest_detectable_difference is not None
    backward = only_pair(report_of(seeded("demon_sgdm", b), seeded("sgdm_step", a), axes=axes_for(a), target=0.2))
    assert backward.verdict.outcome == "b_less_sensitive"
    assert backward.verdict.winner == "sgdm_step"


def test_too_few_seeds_says_how_many_would_do() -> None:
    a, b = landscape(4, seed=10), landscape(4, 0.01, seed=11)
    pair = only_pair(report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a), target=0.2))
    verdict = pair.verdict
    assert verdict.outcome == "inconclusive_too_few_seeds"
    assert verdict.seeds_needed is not None
    assert verdict.seeds_needed >= 8
    assert f"about {verdict.seeds_needed} seeds would detect a Δ of 10.0 pts with 80% power" in verdict.statement
    assert pair.primary.interval.status == "too_few_seeds"


def test_a_difference_too_small_to_plan_for_says_so_not_the_floor() -> None:
    """With a spread to plan from but no count up to 10,000 seeds that detects the difference, the
    statement says "more than 10,000", not the minimum seeds for an interval."""
    a, b = landscape(4, seed=10), landscape(4, 0.01, seed=11)
    spec = VerdictSpec(difference_of_interest=0.0001)
    pair = only_pair(
        report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a), target=0.2, verdict=spec)
    )
    assert pair.verdict.outcome == "inconclusive_too_few_seeds"
    assert pair.verdict.seeds_needed is None
    assert "more than 10,000 seeds would detect" in pair.verdict.statement, pair.verdict.statement


def flat_but_poor(n_seeds: int, seed: int) -> Any:
    """Raw errors of an arm that barely trains: the same everywhere, well above a good arm's valley,
    below the failure score (it is not "never trained")."""
    return 0.6 + np.random.default_rng(seed).normal(0, 0.02, (n_seeds, 3, 2))


@pytest.mark.parametrize("poor_is_a", [False, True])
def test_a_flat_landscape_that_is_worse_at_its_best_is_not_called_less_sensitive(poor_is_a: bool) -> None:
    """Lr sensitivity is a gap to each arm's own best: an arm that trains a little, alike at every lr,
    has the smaller gap. With that figure as the primary, the verdict names no winner and says the
    flatter arm is worse at its best; the other primaries still favour the arm that trains."""
    good, poor = landscape(10, seed=21), flat_but_poor(10, seed=22)
    arms = [("demon_sgdm", poor), ("sgdm_step", good)] if poor_is_a else [("demon_sgdm", good), ("sgdm_step", poor)]
    frames = [seeded(name, values) for name, values in arms]
    flatter = arms[0][0] if poor_is_a else arms[1][0]
    spec = VerdictSpec(primary="lr_sensitivity", difference_of_interest=0.05)
    pair = only_pair(report_of(*frames, axes=axes_for(good), verdict=spec))
    assert pair.primary.interval.low is not None
    assert pair.primary.interval.high is not None
    assert (pair.primary.interval.high < 0) if not poor_is_a else (pair.primary.interval.low > 0)  # flatter indeed
    verdict = pair.verdict
    assert verdict.outcome == "flatter_but_worse", verdict.statement
    assert (verdict.winner, verdict.flatter) == (None, flatter)
    assert verdict.statement.startswith(f"{flatter} has the flatter lr landscape"), verdict.statement
    assert "worse at its best" in verdict.statement
    default = only_pair(report_of(*frames, axes=axes_for(good)))  # success share
    assert default.verdict.winner not in (None, flatter), default.verdict.statement


def test_without_a_validation_split_the_flatter_arm_is_still_checked_at_its_best() -> None:
    """A full_train study has no validation split, so q(all cells) (best by validation) is undefined;
    "worse at its best" then reads each seed's best score on the split, where it used to be skipped
    and an arm that barely trains was named less sensitive (+13.7 pts [13.0, 14.5])."""
    good, poor = landscape(10, seed=21), flat_but_poor(10, seed=22)
    nothing = np.full(good.shape, NAN)
    frames = [seeded("demon_sgdm", nothing, poor), seeded("sgdm_step", nothing, good)]
    spec = VerdictSpec(primary="lr_sensitivity", difference_of_interest=0.05, target=0.05)  # reached by no run
    report = report_of(*frames, axes=axes_for(good), verdict=spec)
    assert report.selected_on is None
    pair = only_pair(report)
    assert pair.primary.interval.low is not None
    assert pair.primary.interval.low > 0
    assert pair.verdict.outcome == "flatter_but_worse", pair.verdict.statement
    assert pair.verdict.flatter == "demon_sgdm"
    assert "worse at its best (Δ best score = -" in pair.verdict.statement


def test_whether_cells_are_chosen_on_validation_is_read_from_the_completed_runs() -> None:
    """A full_train study (no validation score on its completed runs) with diverged runs chooses no
    cell; a study whose runs all failed still has its validation split. (Any validation score used to
    decide: a diverged run's imputed one made the first "chosen on val", no score at all the second
    "no validation split".)"""
    good = landscape(8, seed=30)
    diverged = np.zeros(good.shape, bool)
    diverged[:, -1, :] = True
    nothing = np.full(good.shape, NAN)
    frames = [seeded(arm, nothing, good, diverged=diverged) for arm in ("demon_sgdm", "sgdm_step")]
    assert report_of(*frames, axes=axes_for(good)).selected_on is None
    failed = [f.assign(status="failed", val=NAN, test=NAN) for f in frames]
    assert report_of(*failed, axes=axes_for(good)).selected_on == "val"


def test_failing_throughout_a_beta_column_or_a_seed_is_not_flatness() -> None:
    """Lr sensitivity measures a column with no trained cell from the seed's best cell, and a seed with
    no trained cell has none: an arm flat where it trains but diverging throughout one of its two β
    columns used to get a gap of 0 there, and was called the less sensitive arm."""
    good = landscape(10, seed=24)
    half = good.copy()
    diverged = np.zeros(good.shape, bool)
    diverged[:, :, 1] = True  # every run of the second β column diverges
    spec = VerdictSpec(primary="lr_sensitivity", difference_of_interest=0.01)
    flat = np.full(good.shape, 0.10) + np.random.default_rng(25).normal(0, 0.005, good.shape)
    frames = [seeded("demon_sgdm", flat, diverged=diverged), seeded("sgdm_step", good)]
    pair = only_pair(report_of(*frames, axes=axes_for(good), verdict=spec))
    assert pair.verdict.winner != "demon_sgdm", pair.verdict.statement
    assert pair.primary.value is not None
    assert pair.primary.value < 0  # the failing column costs it
    gone = np.zeros(good.shape, bool)
    gone[:2] = True  # two seeds with no trained cell: no lr sensitivity there
    report = report_of(seeded("demon_sgdm", half, diverged=gone), seeded("sgdm_step", good), axes=axes_for(good))
    assert report.arms["demon_sgdm"].lr_sensitivity.pooled is not None
    assert report.arms["demon_sgdm"].lr_sensitivity.pooled.n_seeds == 8


@pytest.mark.parametrize(("target", "words"), [(0.01, "no run reaches the target"), (0.8, "every run of both arms")])
def test_a_target_that_separates_no_runs_is_said_to_not_a_seed_plan(target: float, words: str) -> None:
    a, b = landscape(8, seed=30), landscape(8, 0.1, seed=31)
    pair = only_pair(report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a), target=target))
    assert pair.verdict.outcome == "inconclusive_too_few_seeds"
    assert pair.verdict.statement.startswith(f"Inconclusive: the target separates no runs ({words}")
    assert "seeds would detect" not in pair.verdict.statement


def test_one_learning_rate_has_no_lr_sensitivity() -> None:
    """With one lr there is no other lr to be sensitive to: the figure is undefined, not a perfect 0."""
    one = landscape(8, seed=29)[:, :1, :]
    report = report_of(seeded("demon_sgdm", one), axes=axes_for(one))
    assert report.arms["demon_sgdm"].lr_sensitivity.status == "undefined"


def test_an_arm_with_no_result_yet_gets_no_verdict_not_never_trained() -> None:
    good = landscape(8, seed=26)
    frames = [seeded("demon_sgdm", good), seeded("sgdm_step", good)]
    frames[1]["status"] = "cancelled"
    pair = only_pair(report_of(*frames, axes=axes_for(good)))
    assert (pair.verdict.outcome, pair.verdict.winner) == ("inconclusive_too_few_seeds", None)
    assert pair.verdict.statement == "sgdm_step has no results yet (no trial completed or diverged): no verdict."
    assert pair.verdict.never_trained == []
    frames[0]["status"] = "pending"
    both = only_pair(report_of(*frames, axes=axes_for(good)))
    assert both.verdict.statement == (
        "demon_sgdm and sgdm_step have no results yet (no trial completed or diverged): no verdict."
    )


def test_without_a_validation_split_a_flat_arm_that_reaches_the_target_less_is_not_less_sensitive() -> None:
    """A full_train study has no best-by-validation; the success share still shows the flat arm fails more."""
    good, poor = landscape(10, seed=27), flat_but_poor(10, seed=28)
    frames = [seeded("demon_sgdm", poor), seeded("sgdm_step", good)]
    for frame in frames:
        frame["val"] = np.nan
    spec = VerdictSpec(primary="lr_sensitivity", difference_of_interest=0.05)
    pair = only_pair(report_of(*frames, axes=axes_for(good), verdict=spec))
    assert (pair.verdict.outcome, pair.verdict.flatter) == ("flatter_but_worse", "demon_sgdm"), pair.verdict.statement
    assert "reaches the target over less of the grid" in pair.verdict.statement


def test_a_flatter_arm_as_good_at_its_best_is_less_sensitive() -> None:
    """The guard only holds back an arm that is worse at its best: one equally good there and flatter
    elsewhere is less sensitive by lr sensitivity."""
    sharp = landscape(10, seed=23)
    flat = sharp.copy()
    flat[:, [0, 2], :] = flat[:, [0, 2], :] * 0.5 + 0.05  # the same valley, shallower walls
    spec = VerdictSpec(primary="lr_sensitivity", difference_of_interest=0.05)
    pair = only_pair(
        report_of(seeded("demon_sgdm", flat), seeded("sgdm_step", sharp), axes=axes_for(flat), verdict=spec)
    )
    assert pair.verdict.outcome == "a_less_sensitive", pair.verdict.statement
    assert pair.verdict.winner == "demon_sgdm"
    assert pair.verdict.flatter is None


def test_the_spec_names_the_primary_figure_and_the_difference_that_matters() -> None:
    a, b = landscape(8, seed=12), landscape(8, 0.05, seed=13)
    spec = VerdictSpec(primary="expected_best", k=1, difference_of_interest=0.02)
    pair = only_pair(report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a), verdict=spec))
    assert (pair.primary.figure, pair.primary.k, pair.primary.role) == ("expected_best", 1, "primary")
    assert (pair.verdict.primary, pair.verdict.difference_of_interest) == ("expected_best", 0.02)
    assert ("success_share", None) in {(d.figure, d.k) for d in pair.exploratory}
    with pytest.raises(ValueError, match="difference_of_interest is required"):
        VerdictSpec(primary="lr_sensitivity")


def test_holm_adjusts_the_exploratory_family_only() -> None:
    assert holm([0.01, 0.04, None, 0.03]) == [pytest.approx(0.03), pytest.approx(0.06), None, pytest.approx(0.06)]
    a, b = landscape(8, seed=14), landscape(8, 0.06, seed=15)
    pair = only_pair(report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a)))
    tested = [d for d in pair.exploratory if d.p_value is not None]
    assert [d.holm_p_value for d in tested] == pytest.approx(holm([d.p_value for d in tested]))
    assert all(d.significant == (d.holm_p_value is not None and d.holm_p_value < 0.05) for d in tested)
    assert pair.primary.holm_p_value is None  # the primary is tested alone, fixed before the data
    assert f"Holm's adjustment over the {len(tested)} of them" in pair.family


def test_planned_seeds_reach_the_power_in_a_simulated_paired_t_test() -> None:
    sd, difference = 0.12, 0.1
    n = seeds_needed(sd, difference, 0.95, 0.8, at_least=2)
    assert n is not None
    rng = np.random.default_rng(16)

    def simulated(seeds: int) -> float:
        d = rng.normal(difference, sd, (20_000, seeds))
        t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(seeds))
        from scipy.stats import t as student_t

        return float((np.abs(t) > student_t.ppf(0.975, seeds - 1)).mean())

    assert simulated(n) >= 0.79
    assert simulated(n - 1) < 0.8
    assert power(sd, n, difference, 0.95) == pytest.approx(simulated(n), abs=0.015)
    # the smallest detectable difference is the Δ that n seeds detect with 80% power
    mde = smallest_detectable(sd / math.sqrt(n), n, 0.95, 0.8)
    assert mde is not None
    assert power(sd, n, mde, 0.95) == pytest.approx(0.8, abs=0.03)


# --- the other per-arm and pair figures ------------------------------------------------------------


def test_expected_best_by_hand() -> None:
    # five cells, ascending by validation = ascending by test here; q(k) without replacement
    v = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    t = np.array([[10.0, 20.0, 30.0, 40.0, 50.0]])
    q = expected_best(v, t, (1, 2, 5), replacement=False)[0]
    assert q[0] == pytest.approx(30.0)  # the mean
    assert q[1] == pytest.approx(sum(math.comb(i - 1, 1) * 10 * i for i in range(2, 6)) / math.comb(5, 2))
    assert q[2] == pytest.approx(50.0)  # the best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_best_matches_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 3, size=6).astype(float)  # many ties on validation
    t = rng.normal(size=6)
    for k in (1, 2, 3, 6):
        total = 0.0
        subsets = list(itertools.combinations(range(6), k))
        for subset in subsets:
            best = max(v[list(subset)])
            tied = [c for c in subset if v[c] == best]
            total += float(np.mean(t[tied]))  # a tie on validation: a uniform choice
        expected = expected_best(v[None], t[None], (k,), replacement=False)[0, 0]
        assert expected == pytest.approx(total / len(subsets))
    probs = pick_probabilities(v[None], (2,), replacement=False)
    assert probs.sum() == pytest.approx(1.0)


def test_win_share_and_improvement_match_brute_force_on_one_seed() -> None:
    rng = np.random.default_rng(17)
    va, ta, vb, tb = (rng.integers(0, 4, size=(1, 3, 2)).astype(float) for _ in range(4))
    got = win_share(va, ta, vb, tb, (2,))[0, 0]
    cells = list(itertools.combinations(range(6), 2))
    total = 0.0

    def pick(v: Any, t: Any, subset: tuple[int, ...]) -> list[float]:
        best = max(v.ravel()[list(subset)])
        return [t.ravel()[c] for c in subset if v.ravel()[c] == best]

    for sa in cells:
        for sb in cells:
            xs, ys = pick(va, ta, sa), pick(vb, tb, sb)
            total += float(np.mean([(np.sign(x - y) + 1) / 2 for x in xs for y in ys]))
    assert got == pytest.approx(total / len(cells) ** 2)


def test_lr_sensitivity_delta_is_positive_when_the_first_arm_is_less_sensitive() -> None:
    flat = np.full((8, 3, 2), 0.1) + np.random.default_rng(18).normal(0, 0.005, (8, 3, 2))
    steep = landscape(8, seed=19)
    pair = only_pair(report_of(seeded("demon_sgdm", flat), seeded("sgdm_step", steep), axes=axes_for(flat)))
    gap = next(d for d in pair.exploratory if d.figure == "lr_sensitivity")
    assert gap.value is not None
    assert gap.value > 0
    assert gap.interval.low is not None
    assert gap.interval.low > 0


def test_paired_seeds_remove_a_shared_seed_effect() -> None:
    # a large seed effect shared by both arms; b is worse by 0.05 everywhere (± 0.002 of its own): the
    # paired Δ of q(1) is 0.05 in every seed, so its interval is tight although each arm's q(1) varies
    # a lot. (A Δ exactly the same in every seed would take the divergence floor: test below.)
    rng = np.random.default_rng(20)
    effect = rng.normal(0, 0.1, (8, 1, 1))
    a = landscape(8, sd=0.0) + effect
    b = a + 0.05 + rng.normal(0, 0.002, a.shape)
    pair = only_pair(report_of(seeded("demon_sgdm", a), seeded("sgdm_step", b), axes=axes_for(a)))
    q1 = next(d for d in pair.exploratory if d.figure == "expected_best" and d.k == 1)
    assert q1.value == pytest.approx(0.05, abs=0.003)
    assert q1.interval.high - q1.interval.low < 0.01  # type: ignore[operator]
    assert np.ptp(effect) > 0.2  # each arm's q(1) spreads 20 times wider than the paired Δ's interval


def test_float_rounding_is_no_difference_and_names_no_winner() -> None:
    """Both arms' best is exactly 0.3 in every seed; q(N) averages tied cells, and summed in another
    order the baseline's came out 0.29999999999999993: a Δ of -6e-17 whose zero-width interval beside
    0 named the baseline less sensitive (with p = 1) and called a flatter Demon "worse at its best"."""
    a = np.full((8, 3, 2), 0.30)
    b = np.full((8, 3, 2), 0.30)
    b[:, 2, 1] = 0.30 + np.random.default_rng(1).uniform(0.05, 0.10, 8)
    frames = (seeded("demon_sgdm", a), seeded("sgdm_step", b))
    primary = only_pair(
        report_of(
            *frames, axes=axes_for(a), verdict=VerdictSpec(primary="expected_best", k=6, difference_of_interest=0.01)
        )
    )
    assert primary.primary.value == 0.0
    assert primary.primary.significant is False
    assert primary.verdict.winner is None
    flatter = only_pair(
        report_of(*frames, axes=axes_for(a), verdict=VerdictSpec(primary="lr_sensitivity", difference_of_interest=0.01))
    )
    assert flatter.verdict.outcome != "flatter_but_worse"
    assert "worse at its best" not in flatter.verdict.statement


def test_a_score_delta_the_same_in_every_seed_is_not_exact() -> None:
    """The baseline is worse by 0.05 in one cell in every seed; Demon's chosen cell diverges in 15% of
    seeds, so the true Δ q(1) favours the baseline. Where no seed showed it, every seed gave the same
    Δ: a zero-width interval with p = 0 called Demon less sensitive in 57 of 200 studies. The score
    figures now take the divergence floor there, as the shares do; the planning never says 0 pts."""
    b = np.full((8, 3, 2), 0.30)
    b[:, 2, 1] = 0.35
    rng = np.random.default_rng(0)
    wrong = 0
    for _ in range(100):
        a = np.full((8, 3, 2), 0.30)
        a[:, 0, 0] = np.where(rng.random(8) < 0.15, Y_FAIL, 0.30)
        frames = (seeded("demon_sgdm", a, diverged=a == Y_FAIL), seeded("sgdm_step", b))
        pair = only_pair(
            report_of(
                *frames,
                axes=axes_for(a),
                verdict=VerdictSpec(primary="expected_best", k=1, difference_of_interest=0.01),
            )
        )
        wrong += pair.verdict.outcome == "a_less_sensitive"
    assert wrong <= 5  # nominal 2.5%
    same = only_pair(
        report_of(seeded("demon_sgdm", np.full((8, 3, 2), 0.30)), seeded("sgdm_step", b), axes=axes_for(b))
    )
    for delta in [same.primary, *same.exploratory]:
        if delta.figure in ("expected_best", "lr_sensitivity") and delta.value:
            assert delta.interval.low is not None
            assert delta.interval.high is not None
            assert delta.interval.high - delta.interval.low > 0.01, delta
    gap = only_pair(
        report_of(
            seeded("demon_sgdm", np.full((8, 3, 2), 0.30)),
            seeded("sgdm_step", b),
            axes=axes_for(b),
            verdict=VerdictSpec(primary="lr_sensitivity", difference_of_interest=0.01),
        )
    )
    assert (gap.verdict.smallest_detectable_difference or 0) > 0.01


def test_variance_shares_describe_the_cell_means() -> None:
    val = np.array([[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]])
    variance = report_of(seeded("a", val), axes=axes_for(val)).arms["a"].variance
    assert variance.method == "anova"
    assert variance.descriptive is True
    # additive: lr effects ±0.2, β effects ±0.05, no interaction, no seed noise
    rows, cols = (0.2**2 * 2) / 3, 0.05**2
    assert variance.anova_shares.lr == pytest.approx(rows / (rows + cols))
    assert variance.anova_shares.beta_init == pytest.approx(cols / (rows + cols))
    assert variance.anova_shares.interaction == pytest.approx(0.0, abs=1e-12)
    assert variance.anova_shares.seed == pytest.approx(0.0, abs=1e-12)


def test_an_incomplete_grid_says_so_for_every_seed_wise_figure() -> None:
    a = landscape(8, seed=21)
    data = seeded("demon_sgdm", a)
    data = data[~((data["lr"] == 1.0) & (data["beta_init"] == 0.9))]  # a cell never run
    b = seeded("sgdm_step", landscape(8, 0.05, seed=22))
    report = report_of(data, b, axes=axes_for(a), target=0.2)
    arm = report.arms["demon_sgdm"]
    assert arm.coverage.complete is False
    assert arm.success.share.value is None  # not a share of the cells that happen to have run
    assert arm.success.share.n_seeds == 0
    assert arm.success.lr_width.interval.status == "incomplete"
    assert arm.expected_best.status == "incomplete"
    assert arm.variance.method == "optuna_fanova"
    pair = only_pair(report)
    assert pair.primary.interval.status == "incomplete"
    assert pair.verdict.outcome == "inconclusive_too_few_seeds"
    assert {d.figure for d in pair.exploratory if d.status == "incomplete"} >= {"success_lr_width", "expected_best"}


@pytest.mark.parametrize("status", ["failed", "pending", "cancelled"])
def test_a_failed_run_never_succeeds_and_a_run_not_made_leaves_its_seed_without_a_share(status: str) -> None:
    """Two arms with the same runs, except at the largest lr: b's diverge, a's are ``status``. A failed
    trial ran and ended without a result: like a diverged one it never reaches the target, so the
    shares are equal. A trial not run (pending, cancelled) is no verdict on its configuration: its
    seeds have no share. Before, the share was taken over the cells that had results, which named a
    the less sensitive arm (+22 pts, for identical runs)."""
    a = landscape(8, seed=21)
    largest = np.zeros(a.shape, bool)
    largest[:, -1, :] = True
    rows = seeded("demon_sgdm", a)
    rows.loc[rows["lr"] == LRS[2], ["status", "val", "test"]] = [status, NAN, NAN]
    report = report_of(rows, seeded("sgdm_step", a, diverged=largest), axes=axes_for(a), target=0.2)
    share_a, share_b = report.arms["demon_sgdm"].success.share, report.arms["sgdm_step"].success.share
    pair = only_pair(report)
    assert share_b.value == pytest.approx(float((a[:, :2, :] <= 0.2).sum(axis=(1, 2)).mean() / 6))
    if status == "failed":
        assert share_a.value == pytest.approx(share_b.value)
        assert share_a.n_seeds == 8
        assert pair.primary.value == pytest.approx(0.0)
        assert pair.verdict.outcome not in ("a_less_sensitive", "b_less_sensitive")
    else:
        assert share_a.value is None
        assert pair.primary.interval.status == "incomplete"
        assert pair.verdict.outcome == "inconclusive_too_few_seeds"


def test_report_is_strict_json_deterministic_and_has_no_old_names() -> None:
    a, b = landscape(8, seed=23), landscape(8, 0.04, seed=24)
    data = pd.concat([seeded("demon_sgdm", a), seeded("sgdm_step", b)])
    first = sensitivity_report(data, axes_for(a), Y_FAIL).model_dump(mode="json")
    second = sensitivity_report(data.sample(frac=1.0, random_state=1), axes_for(a), Y_FAIL).model_dump(mode="json")
    assert strict_json(first) == strict_json(second)
    assert first["metrics_version"] == 7
    text = strict_json(first)
    for old in ("eps_good", "min_level", "bootstrap", "deltas", "probability_of_improvement"):
        assert old not in text


def test_pairs_on_different_grids_are_refused_or_reported() -> None:
    a = landscape(3)
    short = seeded("sgdm_step", a)
    short = short[short["seed"] < 2]
    with pytest.raises(ComparisonError, match="not comparable"):
        report_of(seeded("demon_sgdm", a), short, axes=axes_for(a), pairs=[("demon_sgdm", "sgdm_step")])
    report = report_of(seeded("demon_sgdm", a), short, axes=axes_for(a))
    (pair,) = report.pairs
    assert isinstance(pair, PairError)
    assert "seed values only in 'demon_sgdm': [2]" in pair.error
    with pytest.raises(MetricsError, match="cannot compare"):
        report_of(seeded("demon_sgdm", a), axes=axes_for(a), pairs=[("demon_sgdm", "nope")])


def test_default_pairs() -> None:
    assert default_pairs(["sgdm_step", "demon_adam", "demon_sgdm", "adam"]) == [
        ("demon_adam", "adam"),
        ("demon_adam", "sgdm_step"),
        ("demon_sgdm", "adam"),
        ("demon_sgdm", "sgdm_step"),
    ]


def test_cell_tables_for_every_arm() -> None:
    tables = cell_tables(frame(("demon_sgdm", DEMON), ("sgdm", shifted(DEMON, 0.1))), AXES, Y_FAIL)
    assert list(tables) == ["demon_sgdm", "sgdm"]
    assert tables["sgdm"].raw_median[0, 0] == pytest.approx(0.44)


def test_aggregate_robustness_keeps_each_study_s_interval() -> None:
    runs = [landscape(8, seed=s) for s in (25, 26)]
    entries = []
    for n, a in enumerate(runs):
        report = report_of(seeded("demon_sgdm", a), axes=axes_for(a), target=0.2)
        entries.append({"study_id": f"s{n}", "key": {"workload": "w"}, "arms": report.arms})
    result = aggregate_robustness(entries)
    (group,) = result.groups
    assert (group.n_studies, group.study_ids, group.n_never_trained) == (2, ["s0", "s1"], 0)
    shares = [float((a <= 0.2).mean()) for a in runs]
    assert [s.value for s in group.success_share.studies] == pytest.approx(shares)
    assert all(s.interval.status == "ok" for s in group.success_share.studies)
    assert (group.success_share.range_low, group.success_share.range_high) == (
        pytest.approx(min(shares)),
        pytest.approx(max(shares)),
    )
    with pytest.raises(MetricsError, match="entry 0"):
        aggregate_robustness([{"key": {}, "arms": {"a": {"not": "a report"}}}])


def test_invalid_arguments() -> None:
    a = landscape(2)
    with pytest.raises(MetricsError, match="split"):
        report_of(seeded("a", a), axes=axes_for(a), split="train")
    with pytest.raises(MetricsError, match="ks"):
        report_of(seeded("a", a), axes=axes_for(a), ks=(0,))


def test_the_spec_s_verdict_block_is_checked_against_the_workload() -> None:
    from studies.spec import EXAMPLE, StudySpec

    spec = StudySpec.model_validate({**EXAMPLE, "verdict": {"target": 0.2, "difference_of_interest": 0.15}})
    assert spec.verdict is not None
    assert (spec.verdict.primary, spec.verdict.target, spec.verdict.difference) == ("success_share", 0.2, 0.15)
    with pytest.raises(ValueError, match=r"verdict\.target: 0\.9 is not below the failure score 0\.666667 of error"):
        StudySpec.model_validate({**EXAMPLE, "verdict": {"target": 0.9}})
    with pytest.raises(ValueError, match=r"verdict\.k applies only"):
        StudySpec.model_validate({**EXAMPLE, "verdict": {"k": 2}})
    with pytest.raises(ValueError, match="primary"):
        StudySpec.model_validate({**EXAMPLE, "verdict": {"primary": "peak"}})


def test_without_a_validation_split_nothing_is_chosen() -> None:
    """A full_train study (no validation scores): the target is taken on the split, and the figures
    that choose a cell on validation — the peak, q(k), win probabilities — are not given."""
    a, b = landscape(8, seed=27), landscape(8, 0.15, seed=28)
    data = pd.concat([seeded("demon_sgdm", a), seeded("sgdm_step", b)])
    data["val"] = NAN
    report = sensitivity_report(data, axes_for(a), Y_FAIL)
    assert report.selected_on is None
    assert report.target.chosen_on == "test"
    pooled = np.concatenate([a.ravel(), b.ravel()])
    assert report.target.raw_value == pytest.approx(np.quantile(pooled, 0.25))
    arm = report.arms["demon_sgdm"]
    assert (arm.status, arm.coverage.n_cells_present) == ("ok", 6)
    assert (arm.peak.status, arm.expected_best.status) == ("undefined", "undefined")
    assert arm.success.share.value == pytest.approx(float((a <= report.target.raw_value).mean()))
    pair = only_pair(report)
    assert pair.verdict.outcome == "a_less_sensitive"
    undefined = {d.figure for d in pair.exploratory if d.status == "undefined"}
    assert undefined == {"expected_best"}  # (a 6-cell grid is too small for a win probability)
    from studies.report_text import summary_table

    table = summary_table(report.model_dump(mode="json") | {"study": {"protocol": "trained on the whole set"}})
    assert table.splitlines()[:2] == [
        "trained on the whole set",
        f"figures on test (no cell chosen: no validation split); success: a run reaches the target test <= "
        f"{report.target.raw_value:.3g} (the lower quartile of trained runs on test); [95% intervals] from 8 seeds",
    ]
