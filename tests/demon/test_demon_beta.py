"""Tests of the Demon schedule ``demon_beta`` against hand-computed values.

The expected numbers are DEMON.md's table for β_init = 0.9, worked out by hand from
β_t = β_init (T − t) / (T − β_init t); the clamp past T and the argument checks are the two places
public ports get wrong, so each has its own table.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest

from demon import demon_beta

T = 1000  # makes every fraction in the table an integral t

# (t/T, β_t) for β_init = 0.9, to three decimals (DEMON.md, "The schedule").
HAND_COMPUTED = [
    (0.0, 0.900),
    (0.25, 0.871),
    (0.5, 0.818),
    (0.75, 0.692),
    (0.9, 0.474),
    (0.95, 0.310),
    (0.99, 0.083),
    (1.0, 0.0),
]


@pytest.mark.parametrize(("fraction", "expected"), HAND_COMPUTED)
def test_matches_hand_computed_values(fraction: float, expected: float) -> None:
    step = round(fraction * T)
    assert step == fraction * T
    assert round(demon_beta(step, T, 0.9), 3) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("total_steps", [1, 7, 100, 1000, 12_345])
@pytest.mark.parametrize("beta_init", [0.0, 0.5, 0.9, 0.99])
def test_endpoints_and_monotone(total_steps: int, beta_init: float) -> None:
    betas = [demon_beta(t, total_steps, beta_init) for t in range(total_steps + 1)]
    assert betas[0] == beta_init
    assert betas[-1] == 0.0
    assert all(later <= earlier for earlier, later in itertools.pairwise(betas))
    assert all(0.0 <= b <= beta_init for b in betas)


@pytest.mark.parametrize("beta_init", [0.5, 0.9, 0.95])
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6, 0.8])
def test_future_contribution_falls_linearly(beta_init: float, fraction: float) -> None:
    """β/(1 − β) = (1 − t/T) β_init/(1 − β_init): the defining property of the schedule."""
    beta = demon_beta(round(fraction * T), T, beta_init)
    assert beta / (1 - beta) == pytest.approx((1 - fraction) * beta_init / (1 - beta_init), rel=1e-12)


@pytest.mark.parametrize("step", [T, 1050, 2 * T, 10 * T, round(T / 0.9), 10**12])
def test_clamped_to_zero_past_total_steps(step: int) -> None:
    # 1050 would be negative, T/0.9 is the pole, 2T and 10T exceed 1 without the clamp.
    assert demon_beta(step, T, 0.9) == 0.0


@pytest.mark.parametrize("step", [0, 1, 500, 999, 1000, 5000])
def test_zero_beta_init_is_plain_sgd(step: int) -> None:
    assert demon_beta(step, T, 0.0) == 0.0


BAD_ARGUMENTS = [
    # (step, total_steps, beta_init, message naming the bad value)
    (0, T, 1.0, "Invalid beta_init value: 1.0"),
    (0, T, 1.5, "Invalid beta_init value: 1.5"),
    (0, T, -0.1, "Invalid beta_init value: -0.1"),
    (0, T, math.nan, "Invalid beta_init value: nan"),
    (0, T, math.inf, "Invalid beta_init value: inf"),
    (0, T, "0.9", "Invalid beta_init value: '0.9'"),
    (0, T, True, "Invalid beta_init value: True"),
    (0, 0, 0.9, "Invalid total_steps value: 0"),
    (0, -5, 0.9, "Invalid total_steps value: -5"),
    (0, 1.5, 0.9, "Invalid total_steps value: 1.5"),
    (0, 1000.0, 0.9, "Invalid total_steps value: 1000.0"),
    (0, True, 0.9, "Invalid total_steps value: True"),
    (-1, T, 0.9, "Invalid step value: -1"),
    (2.0, T, 0.9, "Invalid step value: 2.0"),
    (0.5, T, 0.9, "Invalid step value: 0.5"),
    (None, T, 0.9, "Invalid step value: None"),
    (False, T, 0.9, "Invalid step value: False"),
]


@pytest.mark.parametrize(("step", "total_steps", "beta_init", "message"), BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error_naming_the_value(
    step: object, total_steps: object, beta_init: object, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        demon_beta(step, total_steps, beta_init)  # type: ignore[arg-type]
