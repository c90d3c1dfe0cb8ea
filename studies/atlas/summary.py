"""The answer across workloads: per comparison, each study's verdict, the counts and one pooled Δ.

A comparison is a (Demon arm, baseline) pair, e.g. ``demon_sgdm`` vs ``sgdm_step``; its rows are
the workloads whose cell ran that pair. The counts are the study verdicts as they are (a workload's
verdict is its own study's, at the study's level: no re-testing here). The pooled Δ
(``studies.atlas.pooling``) uses the rows whose verdict has an interval on the same primary figure;
never-trained and interval-less rows are counted, not pooled.
"""

from __future__ import annotations

from collections.abc import Sequence

from studies.vocab.arms import arm

from .models import CellResult, ComparisonSummary, Counts, WorkloadRow
from .pooling import pool, se_from_interval

LESS = "a_less_sensitive"
MORE = "b_less_sensitive"


def comparisons(cells: Sequence[CellResult]) -> list[ComparisonSummary]:
    """Every comparison the cells hold, in the order their arms are listed."""
    pairs: list[tuple[str, str]] = []
    for cell in cells:
        demon = next((a for a in cell.arms if arm(a).demon), None)  # the registry's rule, as default_pairs
        for baseline in (a for a in cell.arms if not arm(a).demon):
            if demon is not None and (demon, baseline) not in pairs:
                pairs.append((demon, baseline))
    return [comparison(cells, demon, baseline) for demon, baseline in pairs]


def comparison(cells: Sequence[CellResult], demon: str, baseline: str) -> ComparisonSummary:
    """The summary of ``demon`` against ``baseline`` over the ``cells`` that ran both."""
    rows: list[WorkloadRow] = []
    counts = Counts()
    figures: list[str] = []
    estimates: list[float] = []
    ses: list[float] = []
    levels: list[float] = []
    for cell in cells:
        if demon not in cell.arms or baseline not in cell.arms:
            continue
        verdict = next((v for v in cell.verdicts if (v.arm_a, v.arm_b) == (demon, baseline)), None)
        ids = [s.id for s in cell.studies]
        if verdict is None or cell.status != "done":
            counts.pending += 1
            rows.append(WorkloadRow(label=cell.label, outcome=None, pooled=False, study_ids=ids))
            continue
        setattr(counts, verdict.outcome, getattr(counts, verdict.outcome) + 1)
        figures.append(verdict.figure)
        usable = (
            verdict.outcome != "never_trained"
            and verdict.delta is not None
            and verdict.low is not None
            and verdict.high is not None
            and verdict.level is not None
        )
        if usable:
            assert verdict.delta is not None
            assert verdict.low is not None
            assert verdict.high is not None
            assert verdict.level is not None
            estimates.append(verdict.delta)
            ses.append(se_from_interval(verdict.low, verdict.high, verdict.level, floor=1 / (2 * verdict.n_cells)))
            levels.append(verdict.level)
        rows.append(
            WorkloadRow(
                label=cell.label,
                outcome=verdict.outcome,
                statement=verdict.statement,
                delta=verdict.delta,
                low=verdict.low,
                high=verdict.high,
                level=verdict.level,
                n_seeds=verdict.n_seeds or len(cell.seeds),
                pooled=usable,
                study_ids=ids,
            )
        )
    figure = figures[0] if figures and len(set(figures)) == 1 else ("mixed: " + ", ".join(sorted(set(figures))))
    pooled = pool(estimates, ses, level=min(levels, default=0.95)) if len(set(figures)) <= 1 else pool([], [])
    return ComparisonSummary(
        demon=demon,
        baseline=baseline,
        figure=figure if figures else "",
        rows=rows,
        pooled=pooled,
        counts=counts,
        headline=headline(demon, counts),
        fails=[r.label for r in rows if r.outcome == MORE],
        not_shown=[r.label for r in rows if r.outcome not in (LESS, MORE)],
    )


def headline(demon: str, counts: Counts) -> str:
    """ "Demon less sensitive in a of b workloads, no detectable difference in c, more sensitive in d"."""
    judged = (
        counts.a_less_sensitive
        + counts.no_detectable_difference
        + counts.b_less_sensitive
        + counts.inconclusive_too_few_seeds
        + counts.never_trained
        + counts.flatter_but_worse
    )
    text = (
        f"{demon} less sensitive in {counts.a_less_sensitive} of {judged} workloads, "
        f"no detectable difference in {counts.no_detectable_difference}, "
        f"more sensitive in {counts.b_less_sensitive}"
    )
    extra = [
        f"inconclusive in {counts.inconclusive_too_few_seeds}" if counts.inconclusive_too_few_seeds else "",
        f"an arm never trained in {counts.never_trained}" if counts.never_trained else "",
        f"the flatter arm worse at its best in {counts.flatter_but_worse}" if counts.flatter_but_worse else "",
        f"{counts.pending} still running" if counts.pending else "",
    ]
    return "; ".join([text, *[e for e in extra if e]])
