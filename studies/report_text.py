"""The sensitivity report as printed text: the verdict lines, the per-arm summary table, the per-pair
figures and the heatmap's caption, for ``demonlab run``, the CLI's ``status``/``sensitivity`` and
the demo.

They read the typed report (``studies.metrics.models``), so a renamed field fails mypy, not a
sentence, and show its numbers as the study page does (``studies.units``: error rates in percent,
their differences and shares' in percentage points). The module needs only pydantic: the CLI's API
commands print these lines without importing pandas, numpy or torch (``studies.report``, which
writes the trial tables and heatmaps, does).
"""

from __future__ import annotations

from typing import Any

from .metrics.models import Delta, Estimate, PairError, SensitivityReport
from .units import FIGURE_KINDS, Units, percent


def as_report(report: Any) -> SensitivityReport:
    """A report given as the model or as its JSON (``metrics.json``, the API's body)."""
    return report if isinstance(report, SensitivityReport) else SensitivityReport.model_validate(report)


def target_caption(report: SensitivityReport) -> str:
    """The target of a report in words, for every place that prints a success figure."""
    target = report.target
    if target.raw_value is None:
        return "target, which is none: no run trained"
    how = "given" if target.chosen_on == "given" else f"the lower quartile of trained runs on {target.chosen_on}"
    return f"target {report.split} <= {report.units.score(target.raw_value)} ({how})"


def heatmap_note(report: SensitivityReport) -> str:
    """The heatmap caption's success figure: each arm's share of the grid reaching the target (and,
    for a study without a validation split, that no cell was chosen)."""
    shares = ", ".join(f"{arm} {estimate_text(a.success.share, pct=True)}" for arm, a in report.arms.items())
    prefix = "full-train replication: no validation split, no cell chosen. " if report.selected_on is None else ""
    return prefix + f"share of the grid whose runs reach the {target_caption(report)}: {shares}"


def protocol_of(report: Any) -> str | None:
    """The study's protocol note (a full_train study's), from metrics.json's or the API's ``study``."""
    study = report.get("study") if isinstance(report, dict) else getattr(report, "study", None)
    note = study.get("protocol") if isinstance(study, dict) else getattr(study, "protocol", None)
    return None if note is None else str(note)


def estimate_text(estimate: Estimate, *, pct: bool = False, raw: bool = False, units: Units = Units()) -> str:
    """'41.0% [33.0%, 49.0%]' (a share), '2.6% [2.4%, 2.9%]' (an error rate, raw), '0.123 [0.118, 0.131]'
    (raw units), or '-' with the reason there is no interval: '0.41 (no interval: too few seeds)'."""
    value = estimate.raw_value if raw else estimate.value
    low, high = (
        (estimate.interval.raw_low, estimate.interval.raw_high)
        if raw
        else (estimate.interval.low, estimate.interval.high)
    )

    def show(x: float | None) -> str:
        if x is None:
            return "-"
        return percent(x) if pct else units.score(x) if raw else f"{x:.3g}"

    if value is None:
        return f"- ({estimate.interval.status.replace('_', ' ')})"
    if low is None or high is None:
        return f"{show(value)} (no interval: {estimate.interval.status.replace('_', ' ')})"
    return f"{show(value)} [{show(low)}, {show(high)}]"


def verdict_lines(report: Any) -> list[str]:
    """Each pair's verdict in one sentence, printed before anything else."""
    typed = as_report(report)
    lines = []
    for pair in typed.pairs:
        if isinstance(pair, PairError):
            lines.append(f"VERDICT {pair.arm_a} vs {pair.arm_b}: not comparable: {pair.error}")
        else:
            lines.append(f"VERDICT {pair.arm_a} vs {pair.arm_b}: {pair.verdict.statement}")
    if not lines:
        lines.append("VERDICT: no pair to compare (a pair is a demon_* arm against a baseline)")
    return lines


def summary_table(report: Any) -> str:
    """A plain-text table, one row per arm: the peak (raw units, lower is better) with its interval,
    the share of the grid reaching the target, the lr width of that region and q(1), each with its
    95% interval, and the diverged runs as a count."""
    typed = as_report(report)
    split, units = typed.split, typed.units
    protocol = protocol_of(report)
    chosen = "cells chosen on val" if typed.selected_on == "val" else "no cell chosen: no validation split"
    lines = [
        *([protocol] if protocol else []),
        f"figures on {split} ({chosen}); success: a run reaches the {target_caption(typed)}; "
        f"[95% intervals] from {typed.min_interval_seeds} seeds",
        f"{'arm':<16} {'best ' + split:>26} {'success share':>20} {'lr width (dec)':>20}"
        f" {'E[best@1]':>22} {'diverged':>12}",
    ]
    for arm, metrics in typed.arms.items():
        cover = metrics.coverage
        ran = cover.n_completed + cover.n_diverged
        diverged = f"{cover.n_diverged}/{ran}"
        if metrics.status != "ok":
            lines.append(
                f"{arm:<16} {metrics.status.replace('_', ' '):>26} {'-':>20} {'-':>20} {'-':>22} {diverged:>12}"
            )
            continue
        peak = Estimate(
            value=metrics.peak.score, raw_value=metrics.peak.raw_score, interval=metrics.peak.score_interval
        )
        q1 = next((k.estimate for k in metrics.expected_best.values if k.k == 1), Estimate())
        lines.append(
            f"{arm:<16} {estimate_text(peak, raw=True, units=units):>26}"
            f" {estimate_text(metrics.success.share, pct=True):>20} {estimate_text(metrics.success.lr_width):>20}"
            f" {estimate_text(q1, raw=True, units=units):>22} {diverged:>12}"
        )
    unit = "error rates in percent" if units.percent else "workload units"
    return "\n".join([*lines, SUMMARY_LEGEND[0].format(unit=unit), *SUMMARY_LEGEND[1:]])


SUMMARY_LEGEND = (
    "best: the cell picked on validation, its median ({unit}, lower is better) [its seeds' interval];",
    "success share: the share of the grid whose run reaches the target, per seed, averaged over seeds;",
    "lr width: per seed and β_init, the longest run of succeeding lrs in decades, averaged; E[best@1]: the",
    "expected score of one configuration drawn at random; diverged: runs that blew up, of those that ran",
    "(docs/statistics.md says what the intervals cover).",
)


def pair_lines(report: Any) -> list[str]:
    """Per pair: the primary figure with its interval and p-value, then the exploratory figures
    with their intervals and Holm-adjusted p-values, and the family statement."""
    typed = as_report(report)
    lines = []
    for pair in typed.pairs:
        if isinstance(pair, PairError):
            continue
        lines.append(f"{pair.arm_a} vs {pair.arm_b} (Δ > 0: {pair.arm_a} better; probabilities: {pair.arm_a} better):")
        for delta in [pair.primary, *pair.exploratory]:
            lines.append("  " + delta_text(delta, typed.units))
        lines.append("  " + pair.family)
    return lines


def delta_text(delta: Delta, units: Units = Units()) -> str:
    """'primary  success_share  +23.0 pts [14.0, 31.0]  p=0.0004' and the like (``studies.units``)."""
    name = delta.figure + (f" k={delta.k}" if delta.k is not None else "")
    if delta.value is None:
        return f"{delta.role:<11} {name:<22} - ({delta.status.replace('_', ' ')})"
    interval = delta.interval
    shown = units.delta(FIGURE_KINDS[delta.figure], delta.value, interval.low, interval.high)
    if interval.low is None or interval.high is None:
        shown += f" (no interval: {interval.status.replace('_', ' ')})"
    text = f"{delta.role:<11} {name:<22} {shown}"
    if delta.role == "primary" and delta.p_value is not None:
        text += f"  p={delta.p_value:.2g}"
    elif delta.holm_p_value is not None:
        text += f"  Holm p={delta.holm_p_value:.2g}" + ("  significant" if delta.significant else "")
    return text
