"""Each study pair's verdict, read from its sensitivity report (the atlas's only view of a study's figures).

Metrics v4 reports carry ``pair["verdict"]``: the outcome, the statement, the primary figure's Δ
and its interval at its level (``docs/statistics.md``). The atlas takes them as they are: it never
recomputes a study's verdict. Older reports (metrics v3, no verdict) are read through a stand-in
rule stated in ``LEGACY_RULE``, so an atlas over old studies still answers, and says that it did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from .models import Outcome, PairVerdict

OUTCOMES: tuple[str, ...] = get_args(Outcome)
LEGACY_FIGURE = "eps_good_fraction"
LEGACY_RULE = (
    "metrics v3 report (no verdict): Δ ε-good fraction with its paired-bootstrap interval; "
    "outcome by whether the interval excludes 0"
)


def pair_verdicts(report: Mapping[str, Any] | Any) -> list[PairVerdict]:
    """Every comparable pair's verdict in ``report`` (its JSON, or a pydantic report model; pairs that
    could not be compared are skipped)."""
    if hasattr(report, "model_dump"):
        report = report.model_dump(mode="json")
    cells = _cell_count(report)
    verdicts = []
    for pair in report.get("pairs", []):
        if "error" in pair:
            continue
        if isinstance(pair.get("verdict"), Mapping):
            verdicts.append(_from_v4(pair, cells))
        else:
            verdicts.append(_from_v3(pair, cells))
    return verdicts


def _cell_count(report: Mapping[str, Any]) -> int:
    grid = report.get("grid") or {}
    return max(1, len(grid.get("lrs") or []) * len(grid.get("betas") or []))


def _from_v4(pair: Mapping[str, Any], cells: int) -> PairVerdict:
    verdict = pair["verdict"]
    interval = verdict.get("interval") or {}
    usable = interval.get("status", "ok") == "ok" and interval.get("low") is not None
    figure = str(verdict.get("primary", ""))
    k = verdict.get("k")
    return PairVerdict(
        arm_a=str(pair["arm_a"]),
        arm_b=str(pair["arm_b"]),
        outcome=verdict["outcome"],
        statement=str(verdict.get("statement", "")),
        figure=figure + (f" (k={k})" if k else ""),
        delta=verdict.get("delta"),
        low=interval.get("low") if usable else None,
        high=interval.get("high") if usable else None,
        level=verdict.get("level") or interval.get("level"),
        n_seeds=int(verdict.get("n_seeds") or 0),
        n_cells=cells,
        seeds_needed=verdict.get("seeds_needed"),
        smallest_detectable=verdict.get("smallest_detectable_difference"),
        source="verdict",
    )


def _from_v3(pair: Mapping[str, Any], cells: int) -> PairVerdict:
    delta: Mapping[str, Any] = next((d for d in pair.get("deltas", []) if d.get("metric") == LEGACY_FIGURE), {})
    interval = delta.get("interval") or {}
    low, high = interval.get("low"), interval.get("high")
    value = delta.get("delta")
    arm_a, arm_b = str(pair["arm_a"]), str(pair["arm_b"])
    outcome: Outcome
    if interval.get("status") != "ok" or low is None or high is None or value is None:
        outcome, words = "inconclusive_too_few_seeds", "no interval"
    elif low > 0:
        outcome, words = "a_less_sensitive", f"{arm_a} less sensitive"
    elif high < 0:
        outcome, words = "b_less_sensitive", f"{arm_b} less sensitive"
    else:
        outcome, words = "no_detectable_difference", "no detectable difference"
    shown = "?" if value is None else f"{value:+.3g}"
    return PairVerdict(
        arm_a=arm_a,
        arm_b=arm_b,
        outcome=outcome,
        statement=f"{words}: Δ {LEGACY_FIGURE} = {shown} (> 0: {arm_a} better) [{LEGACY_RULE}]",
        figure=LEGACY_FIGURE,
        delta=value,
        low=low,
        high=high,
        level=interval.get("min_level"),
        n_seeds=0,
        n_cells=cells,
        source="legacy_v3",
    )
