"""The answer across workloads from study verdicts: counts, headline, where the claim fails, and which
rows are pooled; and the verdicts read from v4 and v3 sensitivity reports."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from studies.atlas.models import CellResult, Outcome, PairVerdict, StudyRecord
from studies.atlas.summary import comparison, comparisons
from studies.atlas.verdicts import LEGACY_FIGURE, pair_verdicts


def verdict(outcome: str, delta: float | None, low: float | None, high: float | None) -> PairVerdict:
    return PairVerdict(
        arm_a="demon_sgdm",
        arm_b="sgdm_step",
        outcome=outcome,  # type: ignore[arg-type]
        statement=outcome,
        figure="success_share",
        delta=delta,
        low=low,
        high=high,
        level=0.95 if low is not None else None,
        n_seeds=8,
        n_cells=66,
    )


def cell(label: str, status: str, verdicts: list[PairVerdict]) -> CellResult:
    return CellResult(
        label=label,
        family="sgdm",
        workload="synthetic_family",
        workload_params={},
        arms=["demon_sgdm", "sgdm_none", "sgdm_step"],
        epochs=1,
        lrs=[0.1],
        betas=[0.9],
        seeds=list(range(8)),
        status=status,  # type: ignore[arg-type]
        studies=[
            StudyRecord(id=f"id-{label}", name=label, status="completed", seeds=[0], trials_total=1, trials_done=1)
        ],
        verdicts=verdicts,
    )


CELLS = [
    cell("a", "done", [verdict("a_less_sensitive", 0.3, 0.1, 0.5)]),
    cell("b", "done", [verdict("a_less_sensitive", 0.2, 0.05, 0.35)]),
    cell("c", "done", [verdict("no_detectable_difference", 0.01, -0.1, 0.12)]),
    cell("d", "done", [verdict("b_less_sensitive", -0.2, -0.3, -0.1)]),
    cell("e", "done", [verdict("never_trained", None, None, None)]),
    cell("f", "done", [verdict("inconclusive_too_few_seeds", 0.1, None, None)]),
    cell("g", "running", []),
]


def test_counts_headline_and_where_the_claim_fails() -> None:
    summary = comparison(CELLS, "demon_sgdm", "sgdm_step")
    c = summary.counts
    assert (c.a_less_sensitive, c.no_detectable_difference, c.b_less_sensitive) == (2, 1, 1)
    assert (c.never_trained, c.inconclusive_too_few_seeds, c.pending) == (1, 1, 1)
    assert summary.headline.startswith(
        "demon_sgdm less sensitive in 2 of 6 workloads, no detectable difference in 1, more sensitive in 1"
    )
    assert "1 still running" in summary.headline
    assert summary.fails == ["d"]
    assert summary.not_shown == ["c", "e", "f", "g"]


@pytest.mark.parametrize("outcome", get_args(Outcome))
def test_every_outcome_a_study_can_give_is_counted_and_judged(outcome: str) -> None:
    """The atlas's outcomes are the studies' (one vocabulary): each has its count and is judged."""
    summary = comparison([cell("x", "done", [verdict(outcome, None, None, None)])], "demon_sgdm", "sgdm_step")
    assert getattr(summary.counts, outcome) == 1
    assert " of 1 workloads" in summary.headline, summary.headline


def test_only_rows_with_an_interval_are_pooled() -> None:
    summary = comparison(CELLS, "demon_sgdm", "sgdm_step")
    assert [r.label for r in summary.rows if r.pooled] == ["a", "b", "c", "d"]
    assert summary.pooled.k == 4
    assert summary.pooled.status == "ok"
    assert summary.pooled.low is not None
    assert summary.pooled.high is not None
    assert summary.pooled.low < summary.pooled.estimate < summary.pooled.high  # type: ignore[operator]


def test_a_comparison_per_demon_baseline_pair_and_pending_rows_without_verdicts() -> None:
    found = comparisons(CELLS)
    assert [(s.demon, s.baseline) for s in found] == [("demon_sgdm", "sgdm_none"), ("demon_sgdm", "sgdm_step")]
    none = found[0]
    assert none.counts.pending == 7  # no cell has a sgdm_none verdict: counted as pending, never guessed
    assert none.pooled.status == "no_estimates"


def v4_report() -> dict[str, Any]:
    interval = {"low": 0.02, "high": 0.2, "level": 0.95, "status": "ok", "method": "t"}
    return {
        "metrics_version": 4,
        "grid": {"lrs": [0.1, 1.0], "betas": [0.9], "seeds": [0, 1]},
        "pairs": [
            {
                "arm_a": "demon_sgdm",
                "arm_b": "sgdm_step",
                "verdict": {
                    "outcome": "a_less_sensitive",
                    "statement": "demon_sgdm is less sensitive",
                    "primary": "success_share",
                    "delta": 0.11,
                    "interval": interval,
                    "level": 0.95,
                    "n_seeds": 8,
                    "seeds_needed": None,
                },
            },
            {"arm_a": "demon_sgdm", "arm_b": "sgdm_none", "error": "different grids"},
        ],
    }


def test_v4_verdicts_are_taken_as_they_are() -> None:
    (found,) = pair_verdicts(v4_report())
    assert (found.outcome, found.figure, found.delta, found.low, found.high) == (
        "a_less_sensitive",
        "success_share",
        0.11,
        0.02,
        0.2,
    )
    assert found.n_cells == 2
    assert found.source == "verdict"


@pytest.mark.parametrize(
    ("low", "high", "outcome"),
    [(0.1, 0.3, "a_less_sensitive"), (-0.3, -0.1, "b_less_sensitive"), (-0.1, 0.1, "no_detectable_difference")],
)
def test_v3_reports_are_read_through_the_stated_stand_in(low: float, high: float, outcome: str) -> None:
    report = {
        "metrics_version": 3,
        "grid": {"lrs": [0.1], "betas": [0.9]},
        "pairs": [
            {
                "arm_a": "demon_adam",
                "arm_b": "adam_none",
                "deltas": [
                    {
                        "metric": LEGACY_FIGURE,
                        "delta": (low + high) / 2,
                        "interval": {"low": low, "high": high, "min_level": 0.95, "status": "ok"},
                    }
                ],
            }
        ],
    }
    (found,) = pair_verdicts(report)
    assert found.outcome == outcome
    assert found.source == "legacy_v3"
    assert "metrics v3" in found.statement
