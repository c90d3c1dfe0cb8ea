"""The atlas's pooled estimate across workloads: its interval covers the mean Δ at its level when
workloads differ (between-workload variation) and each study's standard error is itself estimated,
proven by simulation (the table is printed; docs/atlas.md shows it); and the edge cases."""

from __future__ import annotations

import math

import pytest

from studies.atlas.pooling import coverage_table, pool, se_from_interval

LEVEL = 0.95
FLOOR = 0.93  # the verdict battery's rule: at least 93% at a stated 95%, two binomial SEs allowed


@pytest.mark.slow
@pytest.mark.parametrize("skew", [False, True], ids=["normal", "skewed"])
def test_pooled_interval_covers_the_mean_delta_across_workloads(skew: bool) -> None:
    rows = coverage_table(ks=(3, 4, 6, 8, 12), taus=(0.0, 0.03, 0.06, 0.15), reps=1500, skew=skew, rng_seed=11)
    print(f"\ncoverage of the pooled 95% interval ({'skewed' if skew else 'normal'} study errors, 8 seeds)")
    print(f"{'k':>3} {'tau':>6} {'coverage':>9} {'binomial se':>12}")
    for row in rows:
        print(f"{row['k']:>3} {row['tau']:>6.2f} {row['coverage']:>9.3f} {row['binomial_se']:>12.4f}")
    for row in rows:
        assert row["coverage"] >= FLOOR - 2 * row["binomial_se"], row


def test_a_naive_normal_interval_would_not_cover() -> None:
    """The reason for HKSJ: with few, heterogeneous workloads the fixed-effect ±1.96·se interval
    under-covers; the pooled one keeps its level on the same draws."""
    import numpy as np

    rng = np.random.default_rng(3)
    naive = pooled = 0
    reps = 600
    for _ in range(reps):
        truth = 0.1 + 0.1 * rng.standard_normal(5)
        se = rng.uniform(0.02, 0.05, size=5)
        observed = truth + se * rng.standard_normal(5)
        weights = 1 / se**2
        mean = float((weights * observed).sum() / weights.sum())
        half = 1.96 / math.sqrt(weights.sum())
        naive += int(mean - half <= 0.1 <= mean + half)
        result = pool(observed, se)
        assert result.low is not None
        assert result.high is not None
        pooled += int(result.low <= 0.1 <= result.high)
    assert naive / reps < 0.7
    assert pooled / reps >= FLOOR - 2 * math.sqrt(0.93 * 0.07 / reps)


def test_one_workload_is_not_pooled_and_none_gives_no_estimate() -> None:
    single = pool([0.2], [0.05])
    assert single.status == "single_workload"
    assert single.estimate == 0.2
    assert single.low == pytest.approx(0.2 - 1.959964 * 0.05, rel=1e-5)
    empty = pool([], [])
    assert (empty.status, empty.estimate, empty.low) == ("no_estimates", None, None)


def test_agreeing_workloads_have_no_heterogeneity_and_disagreeing_ones_do() -> None:
    same = pool([0.1, 0.1, 0.1, 0.1], [0.05, 0.05, 0.05, 0.05])
    assert same.tau == 0.0
    assert same.estimate == pytest.approx(0.1)
    apart = pool([-0.4, 0.4, -0.4, 0.4], [0.02, 0.02, 0.02, 0.02])
    assert apart.tau is not None
    assert apart.tau > 0.3
    assert apart.low is not None
    assert apart.high is not None
    assert apart.low < 0 < apart.high
    assert apart.i2 is not None
    assert apart.i2 > 0.9


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        pool([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="finite"):
        pool([0.1, math.nan], [0.1, 0.1])
    with pytest.raises(ValueError, match="> 0"):
        pool([0.1, 0.2], [0.1, 0.0])


def test_standard_error_from_an_interval() -> None:
    assert se_from_interval(-1.959964, 1.959964, 0.95) == pytest.approx(1.0, rel=1e-5)
    assert se_from_interval(0.3, 0.3, 0.95, floor=0.01) == 0.01
