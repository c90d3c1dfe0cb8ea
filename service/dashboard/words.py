"""The sensitivity report (``/sensitivity``, ``metrics_version`` 7) in sentences a reader understands.

Every sentence reads the typed report (``studies.metrics.models``), so a renamed field fails mypy
or a test instead of silently dropping a sentence. The words follow ``docs/statistics.md``:

- each pair's verdict comes first, in the words of ``Verdict.statement``;
- every figure printed with digits carries its 95% interval, or says why it has none ("too few
  seeds: intervals from 8"); the variance shares say they describe these runs only;
- the probabilities are a's chance of being better (null ½), the Δs are positive when the first arm
  is better, and "significant" appears only with the family it was adjusted over (Holm);
- numbers read as everywhere else (``studies.units``): an error rate in percent, a difference of error
  rates or of shares in percentage points (``+8.3 pts``), losses in their own units.

Nothing here escapes HTML: the templates do (autoescape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from studies.metrics.models import (
    ArmReport,
    Delta,
    Estimate,
    Interval,
    PairError,
    PairReport,
    SensitivityReport,
)
from studies.units import FIGURE_KINDS, Units


@dataclass(frozen=True)
class Line:
    """One figure: a short label and the sentence."""

    label: str
    sentence: str


@dataclass(frozen=True)
class Context:
    """What every sentence may need: the metric's name, the split, the target, the fewest seeds
    an interval needs and how the scores read (``units``)."""

    metric: str
    split: str
    raw_target: float | None
    target_source: str
    min_interval_seeds: int = 8
    units: Units = field(default_factory=Units)

    @property
    def target(self) -> str:
        """The target as a score ('2.6%' for an error rate)."""
        return self.units.score(self.raw_target)

    def gap(self, value: float) -> str:
        """A difference of two scores: '1.2 pts' for an error rate, '0.034' for a loss."""
        return self.units.number("score", value) + self.units.unit("score")


def num(value: Any, digits: int = 3) -> str:
    """A number for people: 3 significant digits, '–' for none."""
    if value is None or isinstance(value, bool):
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "–"
    return f"{number:.{digits}g}"


def pct(value: Any) -> str:
    """A share as a percentage, '–' for none."""
    try:
        return f"{100 * float(value):.0f}%"
    except (TypeError, ValueError):
        return "–"


def level_pct(value: Any) -> str:
    """An interval's level as a percentage to 0.1 point, without a trailing '.0': 0.95 → '95%'."""
    try:
        level = float(value)
    except (TypeError, ValueError):
        return "–"
    shown = round(100 * level, 1)
    return "> 99.9%" if shown >= 100 > 100 * level else f"{shown:g}%"


def _reason(status: str, context: Context) -> str:
    if status == "too_few_seeds":
        return f"too few seeds (intervals from {context.min_interval_seeds})"
    return status.replace("_", " ")


def _shown(context: Context, *, raw: bool, share: bool, gap: bool) -> Any:
    """How one figure's numbers read: a share in percent, a score (raw) in the study's units, a gap
    between scores as a difference of them, anything else (decades) with 3 digits."""
    return pct if share else context.units.score if raw else context.gap if gap else num


def interval_text(
    interval: Interval, context: Context, *, raw: bool = False, share: bool = False, gap: bool = False
) -> str:
    """'95% interval [a, b]' (raw units for a score), or 'no interval: <why>'."""
    low, high = (interval.raw_low, interval.raw_high) if raw else (interval.low, interval.high)
    if low is None or high is None or interval.level is None:
        return f"no interval: {_reason(interval.status, context)}"
    fmt = _shown(context, raw=raw, share=share, gap=gap)
    return f"{level_pct(interval.level)} interval [{fmt(low)}, {fmt(high)}]"


def estimate_text(
    estimate: Estimate, context: Context, *, raw: bool = False, share: bool = False, gap: bool = False
) -> str:
    """'41% (95% interval [33%, 49%], 8 seeds)'; a score (``raw``) as '2.6%' for an error rate; a
    difference of scores (``gap``) as '1.2 pts'."""
    value = estimate.raw_value if raw else estimate.value
    if value is None:
        return f"not estimated: {_reason(estimate.interval.status, context)}"
    shown = _shown(context, raw=raw, share=share, gap=gap)(value)
    interval = interval_text(estimate.interval, context, raw=raw, share=share, gap=gap)
    return f"{shown} ({interval}, {estimate.n_seeds} seeds)"


def _target(context: Context) -> str:
    return f"{context.split} {context.metric} ≤ {context.target}"


def arm_lines(arm: ArmReport, context: Context) -> list[Line]:
    """One arm's figures in words, in page order."""
    cover = arm.coverage
    counts = Line(
        "Coverage",
        f"{cover.n_completed} completed, {cover.n_diverged} diverged, {cover.n_missing} missing of "
        f"{cover.n_trials_expected} runs; {cover.n_cells_present} of {cover.n_cells} cells have results, "
        f"{cover.n_cells_trained} trained (a count, not an estimate)",
    )
    if arm.status != "ok":
        why = "never trained: no run beat the failure score" if arm.status == "never_trained" else "no results"
        return [Line("Status", f"{why}, so no landscape figure is given (failure is never robustness)"), counts]
    lines = [_peak(arm, context)]
    success = arm.success
    lines.append(
        Line(
            "Success share",
            f"per seed, the share of the grid whose run reaches {_target(context)}, averaged over seeds: "
            + estimate_text(success.share, context, share=True),
        )
    )
    per_beta = "; ".join(
        f"β_init {num(b.beta_init, 4)}: {estimate_text(b.share, context, share=True)}" for b in success.per_beta
    )
    lines.append(Line("Per β_init", per_beta))
    width = f"the longest run of succeeding learning rates spans {estimate_text(success.lr_width, context)} decades"
    if success.n_seeds_touching_lr_edge:
        width += (
            f"; in {success.n_seeds_touching_lr_edge} seeds it touches the smallest or largest lr (a count: the "
            "good range may extend beyond the grid)"
        )
    lines.append(Line("Good lr range", width))
    if arm.expected_best.values:
        tries = "; ".join(f"k={v.k}: {estimate_text(v.estimate, context, raw=True)}" for v in arm.expected_best.values)
        lines.append(
            Line(
                "Best of k tries",
                f"the best-by-validation of k random configurations scores {context.split} {context.metric} {tries}",
            )
        )
    if arm.lr_sensitivity.pooled.value is not None:
        lines.append(
            Line(
                "lr sensitivity",
                "a cell is on average worse than the best lr of its β_init by "
                + estimate_text(arm.lr_sensitivity.pooled, context, gap=True)
                + " (lower is more robust)",
            )
        )
    lines.append(_variance(arm))
    lines.append(counts)
    return lines


def _peak(arm: ArmReport, context: Context) -> Line:
    p = arm.peak
    if p.status != "ok":
        why = "no validation split, so no cell is chosen" if arm.selected_on is None else _reason(p.status, context)
        return Line("Peak", f"not given: {why}")
    score = context.units.score(p.raw_score)
    if p.n_tied > 1:  # no one cell: the score is the tied cells' mean, the cell named is the first of them
        text = (
            f"{p.n_tied} cells tie as the best on validation (the first: lr {num(p.lr)}, β_init "
            f"{num(p.beta_init, 4)}): the mean of their median {context.split} {context.metric}s {score}"
        )
    else:
        text = (
            f"the best cell (chosen on validation) is lr {num(p.lr)}, β_init {num(p.beta_init, 4)}: "
            f"median {context.split} {context.metric} {score}"
        )
    text += f", {interval_text(p.score_interval, context, raw=True)}"
    if p.divergence_rate:
        text += f", {pct(p.divergence_rate)} of its {p.n_seeds} seeds diverged"
    return Line("Peak", text)


def _variance(arm: ArmReport) -> Line:
    v = arm.variance
    if v.method == "optuna_fanova":
        parts = f"log10 lr {pct(v.fanova_importance.log10_lr)}, β_init {pct(v.fanova_importance.beta_init)}"
        return Line(
            "Variance",
            f"Optuna's fANOVA importances on an incomplete grid: {parts} (describes these runs; no interval)",
        )
    s = v.anova_shares
    parts = f"lr {pct(s.lr)}, β_init {pct(s.beta_init)}, interaction {pct(s.interaction)}, seed {pct(s.seed)}"
    return Line(
        "Variance", f"shares of these runs' cell-mean variance (ANOVA): {parts} (describes these runs; no interval)"
    )


FIGURE_NOUNS: dict[str, str] = {
    "success_share": "share of the grid reaching the target",
    "success_lr_width": "width of the succeeding lr range (decades)",
    "expected_best": "expected best score of k random configurations",
    "lr_sensitivity": "lr sensitivity (b's minus a's: a is more robust when > 0)",
    "win_probability": "chance that a's best of k random configurations beats b's",
    "improvement_matched": "chance that a's run beats b's in the same cell and seed",
    "improvement_any": "chance that a's run in a random cell beats b's in another",
}


def delta_line(delta: Delta, a: str, context: Context) -> Line:
    """One compared figure: 'Δ … = +0.23 (95% interval […]); p = …' or the probability form."""
    label = FIGURE_NOUNS.get(delta.figure, delta.figure) + (f" (k={delta.k})" if delta.k is not None else "")
    if delta.value is None:
        return Line(label, f"not estimated: {_reason(delta.status, context)}")
    kind = FIGURE_KINDS.get(delta.figure, "score")
    if delta.null == 0.5:
        interval = interval_text(delta.interval, context, share=True)
        text = f"{pct(delta.value)} for {a} ({interval}; 50% = no difference)"
    else:  # '+8.3 pts (positive means a is better; 95% interval [-0.7, 17.4])', as the forest plot
        units, iv = context.units, delta.interval
        if iv.low is None or iv.high is None or iv.level is None:
            interval = f"no interval: {_reason(iv.status, context)}"
        else:
            interval = f"{level_pct(iv.level)} interval [{units.number(kind, iv.low)}, {units.number(kind, iv.high)}]"
        text = f"Δ = {units.delta(kind, delta.value)} (positive means {a} is better; {interval})"
    if delta.role == "primary":
        text += f"; p = {num(delta.p_value, 2)}" if delta.p_value is not None else ""
    elif delta.holm_p_value is not None:
        text += f"; Holm-adjusted p = {num(delta.holm_p_value, 2)}" + (
            " (significant in the family)" if delta.significant else ""
        )
    return Line(("Primary: " if delta.role == "primary" else "") + label, text)


def pair_lines(pair: PairReport | PairError, context: Context) -> list[Line]:
    """A pair in words: the verdict, the primary figure, then the exploratory ones and their family."""
    if isinstance(pair, PairError):
        return [Line("not comparable", _short(pair.error))]
    lines = [Line("Verdict", pair.verdict.statement)]
    if pair.verdict.outcome == "never_trained":
        return lines
    lines.append(delta_line(pair.primary, pair.arm_a, context))
    # figures without a value (every grid figure of a search study: incomplete) in one line per reason
    missing: dict[str, list[str]] = {}
    for delta in pair.exploratory:
        if delta.value is None:
            missing.setdefault(_reason(delta.status, context), []).append(delta_line(delta, pair.arm_a, context).label)
        else:
            lines.append(delta_line(delta, pair.arm_a, context))
    lines += [Line(f"Not estimated ({reason})", "; ".join(labels)) for reason, labels in missing.items()]
    lines.append(Line("Exploratory figures", pair.family))
    return lines


def has_results(report: SensitivityReport) -> bool:
    """Whether any arm has a cell with results (a report of a study that has not run is all blanks)."""
    return any(a.coverage.n_cells_present > 0 for a in report.arms.values())


def report_context(report: SensitivityReport, metric: str = "score") -> Context:
    """Metric (from the report's ``study`` when it has one), split, target and the interval rule."""
    study = getattr(report, "study", None)
    return Context(
        metric=str(getattr(study, "metric", metric)),
        split=report.split,
        raw_target=report.target.raw_value,
        target_source=report.target.source,
        min_interval_seeds=report.min_interval_seeds,
        units=report.units,
    )


def _short(text: str, limit: int = 300) -> str:
    """A long message (a list of every lr value) cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
