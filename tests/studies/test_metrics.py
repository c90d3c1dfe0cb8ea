"""Sensitivity metrics against numbers computed by hand (or by brute force) on tiny grids.

The main grid is 3 lrs × 2 β_inits × 2 seeds, lower-is-better error rates, y_fail = 0.9. Its raw
cell medians, validation and test, are written out below; every expected number in these tests
follows from them with a pencil. Oriented scores are y = −value.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu, quantile_test

from studies.metrics import (
    ComparisonError,
    GridAxes,
    GridError,
    MetricsError,
    aggregate_robustness,
    arm_metrics,
    cell_table,
    cell_tables,
    default_pairs,
    pair_metrics,
    sensitivity_report,
)
from studies.metrics._cells import median_interval
from studies.metrics._landscape import expected_best, pick_probabilities
from studies.metrics._pair import prob_greater, win_probabilities
from studies.metrics._resample import resampled_medians
from studies.report import pair_lines

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
    with pytest.raises(GridError, match="lr values off the grid"):
        cell_table(off, AXES, "demon_sgdm", Y_FAIL)
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


def test_paired_resampled_medians_keep_seeds_together() -> None:
    # Two cells, three seeds; a replicate taking seeds (2, 2, 0) must read seed 2 twice in *both*
    # cells (and on both splits: the same function serves both).
    by_seed = np.array([[1.0, 2.0, 3.0], [30.0, 20.0, 10.0]])
    med = resampled_medians(by_seed, np.array([[2, 2, 0], [1, 1, 1]]))
    assert med.tolist() == [[3.0, 10.0], [2.0, 20.0]]


# --- 2–7. per arm ----------------------------------------------------------------------------------


def test_peak_is_chosen_on_validation_and_reported_on_test() -> None:
    peak = arm_metrics(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL).peak
    assert (peak.lr, peak.beta_init) == (0.1, 0.9)  # best validation median 0.09 …
    assert peak.val == pytest.approx(-0.09)
    assert peak.score == pytest.approx(-0.12)  # … reported by its test median, not the best test 0.11
    assert (peak.interval_low, peak.interval_high, peak.interval_level) == pytest.approx((-0.13, -0.11, 0.5))
    assert peak.n_seeds == 2
    assert peak.divergence_rate == 0.0
    out = peak.to_dict()
    assert out["raw_score"] == pytest.approx(0.12)
    interval = out["score_interval"]
    assert (interval["raw_low"], interval["raw_high"], interval["level"]) == pytest.approx((0.11, 0.13, 0.5))
    assert interval["status"] == "reduced_level"


@pytest.mark.parametrize(
    ("eps", "relative", "n_good", "raw_threshold", "widths", "all_betas", "edge", "sides"),
    [
        # raw test medians [[0.34, 0.23], [0.11, 0.12], [0.71, 0.90]]; the anchor y* is the best
        # test median, 0.11 (not 0.12, the test score of the cell chosen on validation)
        (0.02, False, 2, 0.13, (1.0, 1.0), (1.0, 0.1, 0.1), False, ("beta_min", "beta_max")),
        (0.25, False, 4, 0.36, (2.0, 2.0), (2.0, 0.01, 0.1), True, ("lr_min", "beta_min", "beta_max")),
        (0.1, True, 2, 0.121, (1.0, 1.0), (1.0, 0.1, 0.1), False, ("beta_min", "beta_max")),
        (1.2, True, 3, 0.242, (1.0, 2.0), (1.0, 0.1, 0.1), True, ("lr_min", "beta_min", "beta_max")),
    ],
)
def test_good_fraction_widths_and_edge(
    eps: float,
    relative: bool,
    n_good: int,
    raw_threshold: float,
    widths: tuple[float, float],
    all_betas: tuple[float, float, float],
    edge: bool,
    sides: tuple[str, ...],
) -> None:
    metrics = arm_metrics(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL, eps=eps, relative=relative)
    good = metrics.good_fraction
    assert good.status == "ok"
    assert good.n_cells == 6
    assert good.n_good == n_good
    assert good.fraction == pytest.approx(n_good / 6)
    assert good.to_dict()["raw_threshold"] == pytest.approx(raw_threshold)
    width = metrics.good_lr_width
    assert [run.decades for run in width.per_beta] == pytest.approx(list(widths))
    assert width.mean_decades == pytest.approx(sum(widths) / 2)
    assert width.all_betas is not None
    assert (width.all_betas.decades, width.all_betas.lr_low, width.all_betas.lr_high) == pytest.approx(all_betas)
    assert width.edge is edge
    assert width.edge_sides == sides


def test_a_cell_exactly_eps_from_the_peak_is_good() -> None:
    # 0.12 + 0.01 is 0.12999999999999998 in floating point; the cell at 0.13 still counts.
    cells = {(lr, 0.9): [ok(v, v)] for lr, v in zip(LRS, (0.12, 0.13, 0.5), strict=True)}
    axes = GridAxes(LRS, (0.9,), (0,))
    metrics = arm_metrics(frame(("a", cells)), axes, "a", Y_FAIL, eps=0.01)
    assert metrics.good_fraction.n_good == 2


def test_width_on_an_uneven_grid_is_measured_in_decades() -> None:
    # log10 lr = −4, −2, −1.75, −1.5: the cells span 2, 1.125, 0.25, 0.25 decades. Good cells are
    # {0} (2 decades) and {2, 3} (0.5 decades): the longest in decades is the single cell.
    lrs = (1e-4, 1e-2, 10**-1.75, 10**-1.5)
    axes = GridAxes(lrs, (0.9,), (0,))
    cells = {(lr, 0.9): [ok(v, v)] for lr, v in zip(lrs, (0.10, 0.50, 0.11, 0.11), strict=True)}
    width = arm_metrics(frame(("a", cells)), axes, "a", Y_FAIL, eps=0.02).good_lr_width
    (run,) = width.per_beta
    assert (run.decades, run.lr_low, run.lr_high, run.n_cells) == pytest.approx((2.0, 1e-4, 1e-4, 1))
    assert width.edge is True
    assert width.edge_sides == ("lr_min", "lr_max", "beta_min", "beta_max")


def test_expected_best_by_hand() -> None:
    expected = arm_metrics(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL).expected_best
    assert expected.ks == (1, 2, 4)  # 8 and 16 exceed the 6 cells
    raw = expected.to_dict()["raw_without_replacement"]
    assert raw[0] == pytest.approx((0.34 + 0.23 + 0.11 + 0.12 + 0.71 + 0.90) / 6)  # q(1): the grid mean
    # q(2): pairs of cells, the better validation median wins; validation order (worst first) is
    # (1.0, 0.9), (1.0, 0.0), (0.01, 0.0), (0.01, 0.9), (0.1, 0.0), (0.1, 0.9) with test medians
    # 0.90, 0.71, 0.34, 0.23, 0.11, 0.12: weights C(i−1, 1)/C(6, 2) = (i − 1)/15.
    tests = [0.90, 0.71, 0.34, 0.23, 0.11, 0.12]
    assert raw[1] == pytest.approx(sum(i * t for i, t in enumerate(tests)) / 15)


def _brute_force_best(v: np.ndarray, t: np.ndarray, k: int, replacement: bool) -> float:
    draws = itertools.product(range(v.size), repeat=k) if replacement else itertools.combinations(range(v.size), k)
    values = []
    for draw in draws:
        best = max(v[c] for c in draw)
        values.append(np.mean([t[c] for c in draw if v[c] == best]))  # ties broken uniformly
    return float(np.mean(values))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_best_matches_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = rng.choice([0.1, 0.2, 0.3], size=7)  # many ties
    t = rng.choice([0.1, 0.2, 0.3, 0.4], size=7)
    ks = tuple(range(1, 8))
    without = expected_best(v[None], t[None], ks, replacement=False)[0]
    assert without == pytest.approx([_brute_force_best(v, t, k, False) for k in ks])
    assert without[-1] == pytest.approx(np.mean(t[v == v.max()]))
    with_ = expected_best(v[None], t[None], (1, 2, 3), replacement=True)[0]
    assert with_ == pytest.approx([_brute_force_best(v, t, k, True) for k in (1, 2, 3)])
    picks = pick_probabilities(v[None], ks, replacement=False)[:, 0]
    assert picks.sum(axis=1) == pytest.approx(np.ones(len(ks)))
    assert (picks * t).sum(axis=1) == pytest.approx(without)


def test_expected_best_on_the_arm_matches_brute_force() -> None:
    metrics = arm_metrics(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL, ks=(1, 2, 3, 4, 5, 6))
    v = -np.array([0.32, 0.21, 0.12, 0.09, 0.70, 0.90])
    t = -np.array([0.34, 0.23, 0.11, 0.12, 0.71, 0.90])
    ks = metrics.expected_best.ks
    assert ks == (1, 2, 3, 4, 5, 6)
    assert metrics.expected_best.without_replacement == pytest.approx([_brute_force_best(v, t, k, False) for k in ks])
    assert metrics.expected_best.without_replacement[-1] == pytest.approx(metrics.peak.score)


def test_budgets_larger_than_the_grid_are_dropped() -> None:
    data = frame(("demon_sgdm", DEMON), ("sgdm_step", shifted(DEMON, 0.05)))
    expected = arm_metrics(data, AXES, "demon_sgdm", Y_FAIL, ks=(8, 16)).expected_best
    assert (expected.status, expected.ks, expected.without_replacement) == ("ok", (), ())
    pair = pair_metrics(data, AXES, "demon_sgdm", "sgdm_step", Y_FAIL, ks=(8,), n_resamples=20)
    assert pair.win_probability.ks == ()
    assert [d.metric for d in pair.deltas if d.metric == "expected_best"] == []


def test_lr_sensitivity_by_hand() -> None:
    sensitivity = arm_metrics(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL).lr_sensitivity
    # β = 0: test medians 0.34, 0.11, 0.71 → gaps to 0.11: 0.23, 0, 0.60; β = 0.9: 0.23, 0.12, 0.90
    # → gaps 0.11, 0, 0.78. Joint: gaps to 0.11 over all six cells.
    assert sensitivity.per_beta == pytest.approx((0.83 / 3, 0.89 / 3))
    assert sensitivity.pooled == pytest.approx(1.72 / 6)
    assert sensitivity.joint == pytest.approx((0.23 + 0.12 + 0 + 0.01 + 0.60 + 0.79) / 6)


def test_anova_shares_on_an_additive_grid() -> None:
    # Seeds {m − 1, m + 1} around cell means [[1, 3], [5, 7]]: lr effects ±2 (variance 4), β effects
    # ±1 (variance 1), no interaction, within-cell sample variance (ddof 1, unbiased) 2; total 7.
    cells = {
        (0.01, 0.0): [ok(0, 0), ok(2, 2)],
        (0.01, 0.9): [ok(2, 2), ok(4, 4)],
        (0.1, 0.0): [ok(4, 4), ok(6, 6)],
        (0.1, 0.9): [ok(6, 6), ok(8, 8)],
    }
    axes = GridAxes((0.01, 0.1), BETAS, (0, 1))
    variance = arm_metrics(frame(("a", cells)), axes, "a", y_fail=100.0).variance
    assert variance.method == "anova"
    assert variance.status == "ok"
    shares = (variance.lr, variance.beta_init, variance.interaction, variance.seed)
    assert shares == pytest.approx((4 / 7, 1 / 7, 0.0, 2 / 7))
    assert variance.total_variance == pytest.approx(7.0)
    out = variance.to_dict()
    assert out["anova_shares"]["seed"] == pytest.approx(2 / 7)
    assert out["fanova_importance"] == {"log10_lr": None, "beta_init": None}


def test_anova_shares_on_the_main_grid_match_a_hand_computation() -> None:
    variance = arm_metrics(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL).variance
    seeds = {  # oriented test scores per cell, diverged at −0.9
        (0, 0): [-0.32, -0.36],
        (0, 1): [-0.21, -0.25],
        (1, 0): [-0.10, -0.12],
        (1, 1): [-0.11, -0.13],
        (2, 0): [-0.52, -0.90],
        (2, 1): [-0.90, -0.90],
    }
    m = {c: sum(s) / 2 for c, s in seeds.items()}
    grand = sum(m.values()) / 6
    row = [sum(m[i, j] for j in range(2)) / 2 - grand for i in range(3)]
    col = [sum(m[i, j] for i in range(3)) / 3 - grand for j in range(2)]
    v_lr = sum(r * r for r in row) / 3
    v_beta = sum(c * c for c in col) / 2
    v_int = sum((m[i, j] - grand - row[i] - col[j]) ** 2 for i, j in m) / 6
    v_seed = sum(sum((x - m[c]) ** 2 for x in s) / (2 - 1) for c, s in seeds.items()) / 6  # ddof 1
    total = v_lr + v_beta + v_int + v_seed
    shares = (variance.lr, variance.beta_init, variance.interaction, variance.seed)
    assert shares == pytest.approx((v_lr / total, v_beta / total, v_int / total, v_seed / total))
    assert sum(s for s in shares if s is not None) == pytest.approx(1.0)


def test_anova_without_seed_noise_and_without_variance() -> None:
    one_seed = GridAxes(LRS, BETAS, (0,))
    data = frame(("a", {key: trials[:1] for key, trials in DEMON.items()}))
    variance = arm_metrics(data, one_seed, "a", Y_FAIL).variance
    assert variance.seed is None
    assert (variance.lr or 0) + (variance.beta_init or 0) + (variance.interaction or 0) == pytest.approx(1.0)
    flat = frame(("a", {key: [ok(0.2, 0.2)] for key in DEMON}))
    assert arm_metrics(flat, one_seed, "a", Y_FAIL).variance.status == "undefined"


def test_incomplete_grid_says_so_and_uses_optuna() -> None:
    cells = dict(DEMON)
    cells[(1.0, 0.9)] = [("failed", NAN, NAN), ("failed", NAN, NAN)]
    metrics = arm_metrics(frame(("demon_sgdm", cells)), AXES, "demon_sgdm", Y_FAIL)
    assert metrics.coverage.complete is False
    assert metrics.coverage.missing_cells == ((1.0, 0.9),)
    assert (metrics.coverage.n_completed, metrics.coverage.n_diverged, metrics.coverage.n_missing) == (9, 1, 2)
    assert metrics.peak.status == "ok"
    assert (metrics.peak.lr, metrics.peak.beta_init) == (0.1, 0.9)
    for part in (metrics.good_fraction, metrics.good_lr_width, metrics.expected_best, metrics.lr_sensitivity):
        assert part.status == "incomplete"
    assert metrics.good_fraction.fraction is None
    variance = metrics.variance
    assert variance.method == "optuna_fanova"
    assert variance.status == "ok"
    assert (variance.fanova_lr or 0) + (variance.fanova_beta_init or 0) == pytest.approx(1.0)
    # fANOVA importances never appear under the ANOVA's field names
    assert (variance.lr, variance.beta_init, variance.interaction, variance.seed) == (None, None, None, None)
    out = json.loads(strict_json(metrics.to_dict()))["variance"]
    assert out["anova_shares"] == {"lr": None, "beta_init": None, "interaction": None, "seed": None}
    assert out["fanova_importance"]["log10_lr"] == pytest.approx(variance.fanova_lr)


def test_one_lr_grid_has_no_width() -> None:
    axes = GridAxes((0.1,), BETAS, (0, 1))
    data = frame(("a", {key: trials for key, trials in DEMON.items() if key[0] == 0.1}))
    metrics = arm_metrics(data, axes, "a", Y_FAIL)
    assert metrics.good_lr_width.status == "undefined"
    assert metrics.good_fraction.status == "ok"
    strict_json(metrics.to_dict())


def test_arm_metrics_json_has_no_nan_and_names_its_conventions() -> None:
    out = json.loads(strict_json(arm_metrics(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL).to_dict()))
    assert out["orientation"] == "higher is better (y = -value)"
    assert (out["selected_on"], out["split"]) == ("val", "test")
    assert out["eps_good"]["eps"] == 0.01  # the default
    assert out["eps_good"]["anchor_rule"] == "best cell median on the analysis split"
    assert out["variance"]["method"] == "anova"


def test_invalid_arguments() -> None:
    data = frame(("demon_sgdm", DEMON))
    with pytest.raises(MetricsError, match="eps"):
        arm_metrics(data, AXES, "demon_sgdm", Y_FAIL, eps=-1.0)
    with pytest.raises(MetricsError, match="ks"):
        arm_metrics(data, AXES, "demon_sgdm", Y_FAIL, ks=(0, 2))
    with pytest.raises(MetricsError, match="split"):
        arm_metrics(data, AXES, "demon_sgdm", Y_FAIL, split="train")
    with pytest.raises(MetricsError, match="y_fail"):
        arm_metrics(data, AXES, "demon_sgdm", math.nan)


# --- per pair --------------------------------------------------------------------------------------


def more_seeds(cells: dict[tuple[float, float], list[Trial]], n: int) -> dict[tuple[float, float], list[Trial]]:
    """``n`` seeds per cell: seed s repeats seed s mod 2 of ``cells``, 0.001·s worse where completed."""
    return {
        key: [
            (st, v + 0.001 * s, t + 0.001 * s) if st == "completed" else (st, v, t)
            for s, (st, v, t) in ((s, trials[s % len(trials)]) for s in range(n))
        ]
        for key, trials in cells.items()
    }


AXES6 = GridAxes(LRS, BETAS, tuple(range(6)))


def test_pair_deltas_on_an_obvious_case() -> None:
    data = frame(("demon_sgdm", more_seeds(DEMON, 6)), ("sgdm_step", more_seeds(shifted(DEMON, 0.05), 6)))
    pair = pair_metrics(data, AXES6, "demon_sgdm", "sgdm_step", Y_FAIL, eps=0.02, n_resamples=300)
    peak = pair.delta("peak")
    assert peak.delta == pytest.approx(0.05)  # a's error is 0.05 lower: positive means a is better
    assert (peak.bootstrap_share_positive, peak.bootstrap_share_ties, peak.bootstrap_share_negative) == (1.0, 0.0, 0.0)
    assert peak.interval_low is not None
    assert peak.interval_low > 0
    out = peak.to_dict()
    assert out["interval"]["min_level"] == 0.95
    assert "level" not in out["interval"]  # a bound, never labelled as an exact level
    assert out["positive_means"] == "arm_a is better"
    assert "raw_estimate" not in out
    assert "p_positive" not in out
    for k in (1, 2, 4):
        assert (pair.delta("expected_best", k).delta or 0) > 0
    assert pair.improvement.matched == pytest.approx(5.5 / 6)  # a better in 5 cells, both diverged in 1
    assert pair.win_probability.ks == (1, 2, 4)
    assert pair.win_probability.a_wins[-1] > 0.9
    lows, highs = pair.win_probability.low, pair.win_probability.high
    for won, low, high in zip(pair.win_probability.a_wins, lows, highs, strict=True):
        assert low is not None
        assert high is not None
        assert low <= won <= high
    body = json.loads(strict_json(pair.to_dict()))
    assert body["resampling"] == "seeds, paired across cells, splits and arms"
    assert body["win_probability"]["intervals"][0]["min_level"] == 0.95


def test_pair_intervals_are_printed_as_a_bound_on_their_coverage() -> None:
    data = frame(("demon_sgdm", more_seeds(DEMON, 6)), ("sgdm_step", more_seeds(shifted(DEMON, 0.05), 6)))
    report = sensitivity_report(data, AXES6, Y_FAIL, eps=0.02, n_resamples=300)
    assert report["min_level"] == 0.95
    assert "level" not in report
    (line,) = pair_lines(report)
    assert "(>= 95%)" in line  # the percentile interval covers at least 95%, not exactly


def test_pair_intervals_need_enough_seeds() -> None:
    data = frame(("demon_sgdm", DEMON), ("sgdm_step", shifted(DEMON, 0.05)))
    pair = pair_metrics(data, AXES, "demon_sgdm", "sgdm_step", Y_FAIL, eps=0.02)
    peak = pair.delta("peak")
    assert peak.delta == pytest.approx(0.05)  # the estimate stands …
    assert (peak.interval_low, peak.interval_status) == (None, "too_few_seeds")  # … its interval doesn't
    assert peak.bootstrap_share_positive is None
    assert pair.win_probability.interval_status == "too_few_seeds"
    assert peak.to_dict()["interval"] | {"method": None} == {
        "low": None,
        "high": None,
        "min_level": None,
        "status": "too_few_seeds",
        "method": None,
    }


def test_lr_sensitivity_delta_is_positive_when_the_first_arm_is_less_sensitive() -> None:
    # b's worst lr is much worse than a's; same best cells: a is less sensitive, so Δ > 0.
    worse = dict(DEMON.items())
    worse[(0.01, 0.0)] = [ok(0.60, 0.62), ok(0.64, 0.66)]
    data = frame(("a", more_seeds(DEMON, 6)), ("b", more_seeds(worse, 6)))
    pair = pair_metrics(data, AXES6, "a", "b", Y_FAIL, n_resamples=200)
    a = arm_metrics(data, AXES6, "a", Y_FAIL).lr_sensitivity.pooled
    b = arm_metrics(data, AXES6, "b", Y_FAIL).lr_sensitivity.pooled
    assert a is not None
    assert b is not None
    assert b > a
    assert pair.delta("lr_sensitivity").delta == pytest.approx(b - a)


def test_paired_seeds_remove_a_shared_seed_effect() -> None:
    # Seed s shifts every cell of both arms by the same amount (initialisation, data order); a is
    # better by exactly 0.01 everywhere. Paired replicates see Δpeak = 0.01 every time; replicates
    # that resampled the arms' seeds independently would mix the seed effect into Δ.
    shift = [0.0, 0.05, -0.03, 0.02, -0.04, 0.06]
    base = {key: [ok(0.2 + 0.01 * n, 0.2 + 0.01 * n)] for n, key in enumerate(DEMON)}
    a = {key: [ok(v + d, t + d) for d in shift for _, v, t in trials] for key, trials in base.items()}
    b = {key: [ok(v + d + 0.01, t + d + 0.01) for d in shift for _, v, t in trials] for key, trials in base.items()}
    pair = pair_metrics(frame(("a", a), ("b", b)), AXES6, "a", "b", Y_FAIL, n_resamples=500)
    peak = pair.delta("peak")
    assert (peak.interval_low, peak.interval_high) == pytest.approx((0.01, 0.01))
    assert peak.bootstrap_share_positive == 1.0


def test_validation_and_test_are_resampled_together() -> None:
    # Arm a's first cell has three good seeds (0.10 on both splits) and three bad ones (0.30 on
    # both); every other cell, and every cell of arm b, scores 0.20. A replicate chooses a's first
    # cell on validation only when most of its resampled seeds are good, and then, with the same
    # seeds on test, reports 0.10; otherwise the peak is a 0.20 cell. So a's peak is never worse
    # than b's in any replicate. Resampling the splits independently would pair a good validation
    # median with a bad test median (0.30) and put replicates below zero.
    flat = [ok(0.20, 0.20)] * 6
    cells = dict.fromkeys(DEMON, flat)
    a = dict(cells)
    a[(0.01, 0.0)] = [ok(0.10, 0.10)] * 3 + [ok(0.30, 0.30)] * 3
    pair = pair_metrics(frame(("a", a), ("b", cells)), AXES6, "a", "b", Y_FAIL, n_resamples=2000)
    peak = pair.delta("peak")
    assert peak.bootstrap_share_negative == 0.0
    assert peak.interval_low == pytest.approx(0.0)
    assert 0 < (peak.bootstrap_share_positive or 0) < 1  # both outcomes occur


def test_pair_point_deltas_equal_the_arm_metric_differences() -> None:
    data = frame(("demon_sgdm", DEMON), ("sgdm_step", shifted(DEMON, 0.05)))
    a = arm_metrics(data, AXES, "demon_sgdm", Y_FAIL, eps=0.25)
    b = arm_metrics(data, AXES, "sgdm_step", Y_FAIL, eps=0.25)
    pair = pair_metrics(data, AXES, "demon_sgdm", "sgdm_step", Y_FAIL, eps=0.25, n_resamples=50)
    assert a.good_fraction.fraction is not None
    assert b.good_fraction.fraction is not None
    assert pair.delta("eps_good_fraction").delta == pytest.approx(a.good_fraction.fraction - b.good_fraction.fraction)
    assert a.good_lr_width.mean_decades is not None
    assert b.good_lr_width.mean_decades is not None
    assert pair.delta("eps_good_lr_width_mean").delta == pytest.approx(
        a.good_lr_width.mean_decades - b.good_lr_width.mean_decades
    )
    assert a.lr_sensitivity.pooled is not None
    assert b.lr_sensitivity.pooled is not None
    # a gap: Δ = b − a, so that Δ > 0 still means a is better
    assert pair.delta("lr_sensitivity").delta == pytest.approx(b.lr_sensitivity.pooled - a.lr_sensitivity.pooled)
    for n, k in enumerate(a.expected_best.ks):
        diff = a.expected_best.without_replacement[n] - b.expected_best.without_replacement[n]
        assert pair.delta("expected_best", k).delta == pytest.approx(diff)


def test_probability_of_improvement_by_hand() -> None:
    axes = GridAxes((0.01, 0.1), BETAS, (0,))
    a = {
        (0.01, 0.0): [ok(0.1, 0.1)],
        (0.01, 0.9): [ok(0.2, 0.2)],
        (0.1, 0.0): [ok(0.3, 0.3)],
        (0.1, 0.9): [ok(0.4, 0.4)],
    }
    b = {
        (0.01, 0.0): [ok(0.2, 0.2)],
        (0.01, 0.9): [ok(0.2, 0.2)],
        (0.1, 0.0): [ok(0.1, 0.1)],
        (0.1, 0.9): [ok(0.5, 0.5)],
    }
    pair = pair_metrics(frame(("a", a), ("b", b)), axes, "a", "b", Y_FAIL, n_resamples=20)
    # matched cells: a better, tie, b better, a better → (1 + ½ + 0 + 1) / 4
    assert pair.improvement.matched == pytest.approx(0.625)
    # all 16 pairs: a's 0.1 beats 0.2, 0.2, 0.5 and ties 0.1 (3.5); 0.2 ties twice and beats 0.5 (2);
    # 0.3 and 0.4 beat only 0.5 (1 + 1): 7.5 / 16
    assert pair.improvement.distributions == pytest.approx(7.5 / 16)
    x, y = -np.array([0.1, 0.2, 0.3, 0.4]), -np.array([0.2, 0.2, 0.1, 0.5])
    assert pair.improvement.distributions == pytest.approx(mannwhitneyu(x, y).statistic / 16)


def test_win_probability_matches_brute_force() -> None:
    axes = GridAxes((0.01, 0.1), BETAS, (0,))
    # validation ties in both arms, so the uniform tie-break matters
    a_val, a_test = [0.2, 0.2, 0.1, 0.4], [0.25, 0.15, 0.12, 0.3]
    b_val, b_test = [0.1, 0.3, 0.3, 0.2], [0.2, 0.1, 0.35, 0.15]
    keys = [(0.01, 0.0), (0.01, 0.9), (0.1, 0.0), (0.1, 0.9)]
    a = {key: [ok(v, t)] for key, v, t in zip(keys, a_val, a_test, strict=True)}
    b = {key: [ok(v, t)] for key, v, t in zip(keys, b_val, b_test, strict=True)}
    pair = pair_metrics(frame(("a", a), ("b", b)), axes, "a", "b", Y_FAIL, ks=(1, 2, 3, 4), n_resamples=20)

    def picks(val: list[float], test: list[float], subset: tuple[int, ...]) -> list[float]:
        best = min(val[c] for c in subset)  # raw: lower is better
        return [-test[c] for c in subset if val[c] == best]

    for k, won in zip((1, 2, 3, 4), pair.win_probability.a_wins, strict=True):
        outcomes = []
        for sa in itertools.combinations(range(4), k):
            for sb in itertools.combinations(range(4), k):
                xs, ys = picks(a_val, a_test, sa), picks(b_val, b_test, sb)
                outcomes.append(np.mean([(x > y) + 0.5 * (x == y) for x in xs for y in ys]))
        assert won == pytest.approx(float(np.mean(outcomes)))


def test_prob_greater_counts_ties_as_half() -> None:
    x, y = np.array([1.0, 2.0]), np.array([1.0, 0.0, 3.0])
    px, py = np.array([0.5, 0.5]), np.array([0.2, 0.3, 0.5])
    # x=1: beats 0 (0.3), ties 1 (0.2·½); x=2: beats 1 and 0 (0.5)
    assert prob_greater(x, px, y, py) == pytest.approx(0.5 * (0.3 + 0.1) + 0.5 * 0.5)


def test_pairs_on_different_grids_are_refused() -> None:
    fewer_seeds = {key: trials[:1] for key, trials in DEMON.items()}
    with pytest.raises(ComparisonError, match="seed values only in 'a'"):
        pair_metrics(frame(("a", DEMON), ("b", fewer_seeds)), AXES, "a", "b", Y_FAIL)
    fewer_lrs = {key: trials for key, trials in DEMON.items() if key[0] != 1.0}
    with pytest.raises(ComparisonError, match=r"lr values only in 'a': \[1.0\]"):
        pair_metrics(frame(("a", DEMON), ("b", fewer_lrs)), AXES, "a", "b", Y_FAIL)
    assert issubclass(ComparisonError, ValueError)


def test_a_pair_with_an_incomplete_arm() -> None:
    cells = dict(DEMON)
    cells[(1.0, 0.9)] = [("failed", NAN, NAN), ("failed", NAN, NAN)]
    pair = pair_metrics(frame(("a", DEMON), ("b", cells)), AXES, "a", "b", Y_FAIL, n_resamples=50)
    assert pair.delta("peak").status == "ok"
    assert pair.delta("eps_good_fraction").status == "incomplete"
    assert pair.win_probability.status == "incomplete"
    assert pair.improvement.n_matched == 5
    strict_json(pair.to_dict())


# --- the report and the aggregate ------------------------------------------------------------------


def test_default_pairs() -> None:
    assert default_pairs(["sgdm_step", "demon_sgdm", "adam", "demon_adam"]) == [
        ("demon_adam", "adam"),
        ("demon_adam", "sgdm_step"),
        ("demon_sgdm", "adam"),
        ("demon_sgdm", "sgdm_step"),
    ]


def test_sensitivity_report_is_strict_json_and_deterministic() -> None:
    incomplete = {key: trials for key, trials in DEMON.items() if key != (1.0, 0.9)}
    data = frame(("demon_sgdm", DEMON), ("sgdm_step", shifted(DEMON, 0.05)), ("adam", incomplete))
    report = sensitivity_report(data, AXES, Y_FAIL, eps=0.02, n_resamples=100)
    text = strict_json(report)
    assert text == strict_json(sensitivity_report(data, AXES, Y_FAIL, eps=0.02, n_resamples=100))
    assert report["orientation"] == "higher is better (y = -value)"
    assert sorted(report["arms"]) == ["adam", "demon_sgdm", "sgdm_step"]
    assert [(p["arm_a"], p["arm_b"]) for p in report["pairs"]] == [("demon_sgdm", "adam"), ("demon_sgdm", "sgdm_step")]
    standalone = pair_metrics(data, AXES, "demon_sgdm", "sgdm_step", Y_FAIL, eps=0.02, n_resamples=100)
    assert report["pairs"][1] == standalone.to_dict()


def test_sensitivity_report_pairs() -> None:
    fewer_seeds = {key: trials[:1] for key, trials in DEMON.items()}
    data = frame(("demon_sgdm", DEMON), ("sgdm_step", fewer_seeds))
    report = sensitivity_report(data, AXES, Y_FAIL, n_resamples=20)
    assert "not comparable" in report["pairs"][0]["error"]  # a default pair reports, …
    with pytest.raises(ComparisonError):  # … a requested one raises
        sensitivity_report(data, AXES, Y_FAIL, pairs=[("demon_sgdm", "sgdm_step")], n_resamples=20)
    with pytest.raises(MetricsError, match="cannot compare"):
        sensitivity_report(data, AXES, Y_FAIL, pairs=[("demon_sgdm", "adam")], n_resamples=20)


def test_cell_tables_for_every_arm() -> None:
    tables = cell_tables(frame(("b", DEMON), ("a", shifted(DEMON, 0.05))), AXES, Y_FAIL)
    assert list(tables) == ["a", "b"]
    assert np.allclose(tables["a"].interval_level, 0.5)
    assert tables["a"].raw_median[0, 0] == pytest.approx(0.39)


def test_aggregate_robustness() -> None:
    incomplete = {key: trials for key, trials in DEMON.items() if key != (1.0, 0.9)}
    one = arm_metrics(frame(("demon_sgdm", DEMON)), AXES, "demon_sgdm", Y_FAIL, eps=0.25).to_dict()
    two = arm_metrics(frame(("demon_sgdm", shifted(DEMON, 0.05))), AXES, "demon_sgdm", Y_FAIL, eps=0.25).to_dict()
    three = arm_metrics(frame(("demon_sgdm", incomplete)), AXES, "demon_sgdm", Y_FAIL, eps=0.25).to_dict()
    key = {"workload": "digits_mlp", "epochs": 3}
    out = aggregate_robustness(
        [
            {"key": key, "metrics": one, "study_id": "s1"},
            {"key": key, "arms": {"demon_sgdm": two}, "study_id": "s2"},
            {"key": key, "metrics": three, "study_id": "s3"},
            {"key": {"workload": "cifar10", "epochs": 3}, "metrics": one},
        ]
    )
    strict_json(out)
    first, second = out["groups"]
    assert first["key"] == {**key, "arm": "demon_sgdm", "split": "test", "eps": 0.25, "relative": False}
    assert first["n_studies"] == 3
    assert first["study_ids"] == ["s1", "s2", "s3"]
    fractions = [one["eps_good"]["fraction"], two["eps_good"]["fraction"]]
    assert out["metrics_version"] == 3
    assert first["eps_good_fraction"] == pytest.approx(
        {"mean": sum(fractions) / 2, "min": min(fractions), "max": max(fractions), "count": 2}
    )
    assert first["peak_score"]["count"] == 3
    assert first["raw_peak_score"]["min"] == pytest.approx(0.12)
    q1 = first["expected_best"][0]
    assert q1["k"] == 1
    assert q1["count"] == 2
    assert second["n_studies"] == 1
    with pytest.raises(MetricsError):
        aggregate_robustness([{"key": key}])


# --- ε: the anchor and the default ------------------------------------------------------------------


def test_a_worse_peak_does_not_buy_a_higher_eps_good_fraction() -> None:
    # Both arms have the same test landscape. Arm "lucky_val" picks, on validation, the cell that
    # is also best on test; arm "bad_pick" picks a cell whose test score is 0.04 worse. Anchored on
    # the chosen cell's test score (the old rule), bad_pick's threshold would drop by 0.04 and
    # count 4 of 6 cells good against 2 of 6; anchored on the best test median, both count 2.
    test = {(0.01, 0.0): 0.10, (0.01, 0.9): 0.11, (0.1, 0.0): 0.14, (0.1, 0.9): 0.15, (1.0, 0.0): 0.3, (1.0, 0.9): 0.4}
    lucky = {key: [ok(value, value)] * 1 for key, value in test.items()}
    bad = {key: [ok(0.05 if key == (0.1, 0.0) else value, value)] for key, value in test.items()}
    axes = GridAxes(LRS, BETAS, (0,))
    data = frame(("lucky_val", lucky), ("bad_pick", bad))
    a = arm_metrics(data, axes, "lucky_val", Y_FAIL, eps=0.015)
    b = arm_metrics(data, axes, "bad_pick", Y_FAIL, eps=0.015)
    assert a.peak.score == pytest.approx(-0.10)
    assert b.peak.score == pytest.approx(-0.14)  # the worse peak …
    assert a.good_fraction.anchor == b.good_fraction.anchor == pytest.approx(-0.10)
    assert a.good_fraction.fraction == b.good_fraction.fraction == pytest.approx(2 / 6)  # … gains nothing
    pair = pair_metrics(data, axes, "lucky_val", "bad_pick", Y_FAIL, eps=0.015)
    assert pair.delta("peak").delta == pytest.approx(0.04)
    assert pair.delta("eps_good_fraction").delta == pytest.approx(0.0)


def test_default_eps_for_losses_is_the_seed_spread_at_the_peaks() -> None:
    # Arm a's peak (0.1, 0.9) has test seeds 0.11, 0.13 (variance 0.0002); arm b's the same +0.05.
    data = frame(("demon_sgdm", DEMON), ("sgdm_step", shifted(DEMON, 0.05)))
    report = sensitivity_report(data, AXES, Y_FAIL, eps="seed_spread")
    assert report["eps"] == pytest.approx(math.sqrt(0.0002))
    assert (report["relative"], report["eps_source"].split(":")[0]) == (False, "seed spread")
    assert report["arms"]["demon_sgdm"]["eps_good"]["eps"] == report["eps"]  # one ε for every arm
    one_seed = frame(("a", {key: trials[:1] for key, trials in DEMON.items()}))
    fallback = sensitivity_report(one_seed, GridAxes(LRS, BETAS, (0,)), Y_FAIL, eps="seed_spread")
    assert (fallback["eps"], fallback["relative"]) == (0.01, True)
    assert fallback["eps_source"].startswith("seed spread unmeasurable")
    with pytest.raises(MetricsError, match="eps"):
        sensitivity_report(data, AXES, Y_FAIL, eps="wide")


def test_win_probabilities_of_many_replicates_match_the_pairwise_sum() -> None:
    rng = np.random.default_rng(7)
    va, ta, vb, tb = (rng.integers(0, 4, size=(50, 9)).astype(float) for _ in range(4))  # many ties
    ks = (1, 3, 9)
    pa, pb = pick_probabilities(va, ks, replacement=False), pick_probabilities(vb, ks, replacement=False)
    beats = (np.sign(ta[:, :, None] - tb[:, None, :]) + 1) / 2
    expected = np.einsum("kri,rij,krj->rk", pa, beats, pb)
    assert win_probabilities(va, ta, vb, tb, ks) == pytest.approx(expected)


def test_replicates_that_lose_a_cell_have_no_grid_figures() -> None:
    # Seeds 1–5 of one cell failed: a replicate without seed 0 has no result there, so its grid
    # figures and win probabilities are undefined (not computed from a NaN); the Δ intervals say so.
    cells = more_seeds(DEMON, 6)
    cells[(0.01, 0.0)] = [cells[(0.01, 0.0)][0]] + [("failed", NAN, NAN)] * 5
    data = frame(("a", cells), ("b", more_seeds(shifted(DEMON, 0.05), 6)))
    pair = pair_metrics(data, AXES6, "a", "b", Y_FAIL, n_resamples=200)
    assert pair.delta("expected_best", 1).status == "ok"
    assert pair.delta("expected_best", 1).interval_status == "undefined"
    assert pair.win_probability.status == "ok"
    assert pair.win_probability.interval_status == "undefined"
    assert pair.win_probability.low == (None, None, None)
    assert pair.delta("peak").interval_status == "ok"  # the peak needs only the chosen cell


def test_studies_with_a_seed_spread_eps_aggregate_by_the_rule() -> None:
    one = sensitivity_report(frame(("demon_sgdm", DEMON)), AXES, Y_FAIL, eps="seed_spread")
    two = sensitivity_report(
        frame(("demon_sgdm", shifted(more_seeds(DEMON, 6), 0.01))), AXES6, Y_FAIL, eps="seed_spread"
    )
    assert one["eps"] != two["eps"]
    key = {"workload": "w", "metric": "loss"}
    out = aggregate_robustness([{"key": key, "arms": one["arms"]}, {"key": key, "arms": two["arms"]}])
    (group,) = out["groups"]
    assert group["key"]["eps"] == "seed_spread"
    assert group["n_studies"] == 2
