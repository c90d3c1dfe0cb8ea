"""The replication report in words (``report_text``) and as one figure (``write_figure``).

The text leads with the verdict of each claim, then the notes, then per arm three lr × β_init
tables in percent: ours (median over seeds), the paper's, and ours − paper (``*`` marks a paper
value clipped at its colour bar, ``-`` a cell without a result). The figure puts, per arm, the
paper's heatmap and ours on the paper's colour scale, and their difference on a diverging scale.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from .compare import ArmCells, ClaimResult, OurCount, PaperCount
from .report import ReplicationReport

__all__ = ["report_text", "write_figure"]

VERDICT_WORDS = {"reproduced": "REPRODUCED", "not_reproduced": "NOT REPRODUCED", "inconclusive": "INCONCLUSIVE"}


def report_text(report: ReplicationReport) -> str:
    """The report as plain text, verdicts first."""
    lines = [f"{report.title}: study {report.study.id} ({report.study.name})", f"source: {report.source}", ""]
    if not report.claims:
        lines.append("claims: the paper's text gives no count for this panel; the cells are compared below")
    for claim in report.claims:
        lines += _claim_lines(claim)
    lines += ["", "notes:", *(f"- {note}" for note in report.notes)]
    for arm in report.arms:
        lines += ["", *_arm_lines(arm, report.lrs, report.momenta)]
    return "\n".join(lines)


def _claim_lines(claim: ClaimResult) -> list[str]:
    scope = "per beta_init column" if claim.per_column else "over the grid"
    interval = "no interval" if claim.interval is None else f"{claim.interval[0]:+.1f} … {claim.interval[1]:+.1f}"
    return [
        f"claim ({claim.demon_arm} vs {claim.baseline_arm}): {claim.claim}",
        f"  verdict: {VERDICT_WORDS[claim.verdict]}: {claim.reason}",
        f"  cells at or under {claim.threshold:.0%} error {scope}:",
        f"    paper {claim.demon_arm:<14} {_paper_count(claim.paper_demon, claim.per_column)}",
        f"    paper {claim.baseline_arm:<14} {_paper_count(claim.paper_baseline, claim.per_column)}",
        f"    ours  {claim.demon_arm:<14} {_our_count(claim.ours_demon, claim.per_column)}",
        f"    ours  {claim.baseline_arm:<14} {_our_count(claim.ours_baseline, claim.per_column)}",
        f"  difference per seed {claim.difference_per_seed} (seeds {claim.seeds}); mean "
        f"{_number(claim.difference_mean)}, {claim.level:.0%} interval {interval} ({claim.method})",
    ]


def _paper_count(count: PaperCount, per_column: bool) -> str:
    columns = f"{', '.join(str(c) for c in count.per_column)}; " if per_column else ""
    low, high = count.read_range
    return f"{columns}total {count.total} (read range {low}-{high})"


def _our_count(count: OurCount, per_column: bool) -> str:
    columns = f"{', '.join(f'{c:.1f}' for c in count.per_column)}; " if per_column else ""
    return f"{columns}total {count.total:.1f} (per seed {count.per_seed_totals})"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _arm_lines(arm: ArmCells, lrs: list[float], momenta: list[float]) -> list[str]:
    header = f"{'lr':>8} " + " ".join(f"{m:>6g}" for m in momenta)
    mad = "-" if arm.mean_abs_difference is None else f"{arm.mean_abs_difference:.1%}"
    lines = [f"{arm.arm} beside the paper's {arm.paper_panel} (test error %, rows lr, columns beta_init)"]
    blocks: list[tuple[str, list[list[float | None]], bool, bool]] = [  # title, values, signed, marked
        ("ours (median over seeds)", arm.ours, False, False),
        ("paper (* at its colour bar's end)", [list(r) for r in arm.paper], False, True),
        (
            f"ours - paper (points; mean |difference| {mad} where the paper's is not clipped)",
            arm.difference,
            True,
            True,
        ),
    ]
    for title, values, signed, marked in blocks:
        lines += [f"  {title}", f"  {header}"]
        for i, lr in enumerate(lrs):
            cells = [_cell(values[i][j], signed, marked and arm.paper_clipped[i][j]) for j in range(len(momenta))]
            lines.append(f"  {lr:>8g} " + " ".join(cells))
    return lines


def _cell(value: float | None, signed: bool, clipped: bool) -> str:
    if value is None or math.isnan(value):
        return f"{'-':>6}"
    text = f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return f"{text + ('*' if clipped else ''):>6}"


def write_figure(report: ReplicationReport, path: Path) -> Path:
    """Draw the report (paper, ours, difference per arm) to ``path`` (.png or .svg)."""
    from matplotlib.colors import Normalize, TwoSlopeNorm
    from matplotlib.figure import Figure

    low, high = report.colour_scale
    shared = Normalize(vmin=100 * low, vmax=100 * high)
    spread = max([abs(v) for a in report.arms for row in a.difference for v in row if v is not None] or [0.01])
    diverging = TwoSlopeNorm(vcenter=0.0, vmin=-100 * spread, vmax=100 * spread)
    figure = Figure(figsize=(11, 3.6 * len(report.arms) + 0.8))
    axes = figure.subplots(len(report.arms), 3, squeeze=False)
    for row, arm in zip(axes, report.arms, strict=True):
        panels = [
            (f"paper: {arm.paper_panel}", np.array(arm.paper, dtype=float), shared, "viridis_r"),
            (f"ours: {arm.arm}", _array(arm.ours), shared, "viridis_r"),
            ("ours - paper (points)", _array(arm.difference), diverging, "RdBu_r"),
        ]
        for ax, (title, values, norm, cmap) in zip(row, panels, strict=True):
            image = ax.imshow(np.ma.masked_invalid(100 * values), cmap=cmap, norm=norm, aspect="auto")
            ax.set_title(title, fontsize=9)
            ax.set_xticks(range(len(report.momenta)), [f"{m:g}" for m in report.momenta], fontsize=7)
            ax.set_yticks(range(len(report.lrs)), [f"{lr:g}" for lr in report.lrs], fontsize=7)
            ax.set_xlabel("beta_init", fontsize=8)
            ax.set_ylabel("lr", fontsize=8)
            figure.colorbar(image, ax=ax, shrink=0.85).ax.tick_params(labelsize=7)
    figure.suptitle(
        f"{report.title}: study {report.study.id}; test error %, one colour scale for paper and ours "
        f"({100 * low:.0f}-{100 * high:.0f}%, clipped)",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=110)
    path.write_bytes(buffer.getvalue())
    return path


def _array(values: list[list[float | None]]) -> np.ndarray:
    return np.array([[math.nan if v is None else v for v in row] for row in values], dtype=float)
