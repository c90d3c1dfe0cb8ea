"""The lr-range rule of the atlas (``studies.atlas.ranges``) on known curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studies.atlas.ranges import MAX_DECADES, MIN_DECADES, PILOT_LRS, choose_range, pilot_spec
from studies.spec import StudySpec

CHANCE = 0.9


def valley(best_lr: float, width_decades: float, floor: float = 0.05) -> list[float]:
    """Error falling to ``floor`` at ``best_lr``, rising to chance ``width_decades`` away each side."""
    return [
        min(CHANCE, floor + (CHANCE - floor) * (abs(math.log10(lr / best_lr)) / width_decades) ** 2) for lr in PILOT_LRS
    ]


def test_range_holds_the_trainable_run_with_a_margin() -> None:
    picked = choose_range(PILOT_LRS, [valley(0.01, 1.5)], CHANCE)
    assert picked.best_lr == pytest.approx(0.01)
    low, high = picked.trainable
    assert picked.min < low
    assert picked.max > high
    assert MIN_DECADES <= picked.decades <= MAX_DECADES
    assert math.log10(picked.min) * 4 == pytest.approx(round(math.log10(picked.min) * 4))  # quarter decades


def test_the_better_arm_sets_the_range_so_both_good_regions_fit() -> None:
    demon, baseline = valley(0.1, 1.0), valley(0.003, 1.0)
    picked = choose_range(PILOT_LRS, [demon, baseline], CHANCE)
    assert picked.min <= 0.003 / 3
    assert picked.max >= 0.1 * 3


def test_a_wide_flat_region_is_cut_to_four_decades_about_the_best_lr() -> None:
    picked = choose_range(PILOT_LRS, [valley(0.01, 20.0)], CHANCE)
    assert picked.decades == pytest.approx(MAX_DECADES)
    assert picked.min < 0.01 < picked.max


def test_diverged_lrs_count_as_chance() -> None:
    errors = np.array(valley(0.01, 1.0))
    errors[PILOT_LRS.index(next(lr for lr in PILOT_LRS if lr > 0.1)) :] = np.nan
    picked = choose_range(PILOT_LRS, [list(errors)], CHANCE)
    assert picked.best_lr == pytest.approx(0.01)


def test_bad_lrs_are_refused() -> None:
    with pytest.raises(ValueError, match="ascending"):
        choose_range([0.1, 0.01], [[0.1, 0.2]], CHANCE)


def test_pilot_spec_is_a_valid_packed_study_on_its_own_seeds() -> None:
    spec = StudySpec.model_validate(pilot_spec("wine_mlp", {}, ("demon_sgdm", "sgdm_none"), epochs=3, batch_size=16))
    assert spec.execution.mode == "packed"
    assert set(spec.seed_values).isdisjoint(range(1000))
    assert spec.lr_values[0] == pytest.approx(1e-5)
    assert spec.lr_values[-1] == pytest.approx(10.0)
