"""The sensitivity report (``/sensitivity``) in sentences a reader understands.

Everything that maps a field of the report to words lives here, in two tables (``ARM_FIGURES`` for
per-arm figures, ``DELTA_LABELS`` for the pair comparisons), so a renamed field is one line to change.
The report is read defensively: a missing key leaves its figure out, an unknown figure is shown as
its name and value, and a figure with a status other than ``ok`` says why it has no value. Nothing
here escapes HTML: the templates do (autoescape).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_LEVEL = 0.95  # the report's intervals when it does not state their level (METRICS.md)


@dataclass(frozen=True)
class Line:
    """One figure: a short label and the sentence."""

    label: str
    sentence: str


@dataclass(frozen=True)
class Context:
    """What every sentence may need: the metric's name, the split and ε."""

    metric: str
    split: str
    eps: float | None
    relative: bool


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


def level_of(figure: dict[str, Any]) -> float:
    """The interval's level as the report states it (``level``), else the documented 95%."""
    level = figure.get("level", figure.get("interval_level"))
    try:
        return float(level) if level is not None else DEFAULT_LEVEL
    except (TypeError, ValueError):
        return DEFAULT_LEVEL


def interval(figure: dict[str, Any], low: str = "ci_low", high: str = "ci_high") -> str:
    """'[a, b] (95%)', or '' when the figure has no interval."""
    if figure.get(low) is None and figure.get(high) is None:
        return ""
    return f"interval [{num(figure.get(low))}, {num(figure.get(high))}] at {pct(level_of(figure))}"


def _status_note(label: str, figure: dict[str, Any]) -> Line | None:
    status = figure.get("status", "ok")
    if status in (None, "ok"):
        return None
    return Line(label, f"not estimated: {str(status).replace('_', ' ')}")


def _peak(f: dict[str, Any], c: Context) -> str:
    ci = interval(f, "raw_score_ci_low", "raw_score_ci_high")
    text = (
        f"the best cell (chosen on validation) is lr {num(f.get('lr'))}, β_init {num(f.get('beta_init'))}: "
        f"median {c.split} {c.metric} {num(f.get('raw_score', f.get('score')))}"
    )
    text += f", {ci}" if ci else ""
    if f.get("n_seeds") is not None:
        text += f", over {f['n_seeds']} seeds"
    if f.get("divergence_rate"):
        text += f", {pct(f['divergence_rate'])} of them diverged"
    return text


def _good_fraction(f: dict[str, Any], c: Context) -> str:
    eps = f.get("eps", c.eps)
    rel = f.get("relative", c.relative)
    eps_text = f"ε = {pct(eps)} of the peak" if rel else f"ε = {num(eps)}"
    return (
        f"{pct(f.get('fraction'))} of the grid ({f.get('n_good', '–')} of {f.get('n_cells', '–')} cells) is within "
        f"{eps_text} of the best cell (a cell is good up to {c.metric} {num(f.get('raw_threshold'))})"
    )


def _good_lr_width(f: dict[str, Any], c: Context) -> str:
    text = f"good learning rates span {num(f.get('mean_decades'), 2)} decades on average over β_init"
    if f.get("edge"):
        sides = ", ".join(str(s) for s in f.get("edge_sides", [])) or "an edge"
        text += f" (the good region touches the grid's {sides}: the true range may be wider)"
    return text


def _expected_best(f: dict[str, Any], c: Context) -> str:
    ks = f.get("ks", [])
    values = f.get("raw_without_replacement", f.get("without_replacement", []))
    pairs = ", ".join(f"k={k}: {num(v)}" for k, v in zip(ks, values, strict=False))
    return f"trying k random cells and keeping the best by validation gives a median {c.metric} of {pairs}"


def _lr_sensitivity(f: dict[str, Any], c: Context) -> str:
    return (
        f"moving lr by one grid step changes the score by {num(f.get('pooled'))} on average "
        f"(lr and β_init together: {num(f.get('joint'))})"
    )


def _variance(f: dict[str, Any], c: Context) -> str:
    shares = f.get("shares", {})
    parts = ", ".join(f"{name.replace('_', ' ')} {pct(v)}" for name, v in shares.items())
    return f"share of the score's variance explained by: {parts}"


def _coverage(f: dict[str, Any], c: Context) -> str:
    return (
        f"{f.get('n_completed', '–')} completed, {f.get('n_diverged', '–')} diverged, "
        f"{f.get('n_missing', '–')} missing of {f.get('n_trials_expected', '–')} trials; "
        f"{f.get('n_cells_present', '–')} of {f.get('n_cells', '–')} cells have results"
    )


# Per-arm figures: report field → (label, sentence). Order = order on the page.
ARM_FIGURES: dict[str, tuple[str, Callable[[dict[str, Any], Context], str]]] = {
    "peak": ("Peak", _peak),
    "good_fraction": ("ε-good region", _good_fraction),
    "good_lr_width": ("Good lr range", _good_lr_width),
    "expected_best": ("Best of k tries", _expected_best),
    "lr_sensitivity": ("lr sensitivity", _lr_sensitivity),
    "variance": ("Variance", _variance),
    "coverage": ("Coverage", _coverage),
}
ARM_SKIP = {"arm", "orientation", "selected_on", "split", "y_fail", "grid", "eps", "relative", "metrics_version"}

# Pair comparisons: the Δ's ``metric`` → the noun of the sentence.
DELTA_LABELS: dict[str, str] = {
    "peak": "peak score",
    "good_fraction": "ε-good region",
    "good_lr_width": "good lr range (decades)",
    "good_lr_width_mean": "good lr range (decades, mean over β_init)",
    "good_lr_width_all_betas": "lr range good for every β_init (decades)",
    "expected_best": "best of k tries",
    "lr_sensitivity": "lr sensitivity",
}


def arm_lines(arm: dict[str, Any], context: Context) -> list[Line]:
    """One arm's figures in words; unknown figures as name: value."""
    lines = []
    for key, (label, sentence) in ARM_FIGURES.items():
        figure = arm.get(key)
        if not isinstance(figure, dict):
            continue
        note = _status_note(label, figure)
        lines.append(note or Line(label, _safe(sentence, figure, context)))
    for key, value in arm.items():
        if key in ARM_FIGURES or key in ARM_SKIP:
            continue
        lines.append(Line(key.replace("_", " "), _compact(value)))
    return lines


def delta_sentence(delta: dict[str, Any], arm_a: str, arm_b: str) -> Line:
    """'demon_sgdm's ε-good region is 0.12 larger than sgdm_step's, interval [..] at 95%; better for …'."""
    metric = str(delta.get("metric", "?"))
    noun = DELTA_LABELS.get(metric, metric.replace("_", " "))
    if delta.get("k") is not None:
        noun += f" (k={delta['k']})"
    note = _status_note(noun, delta)
    if note is not None:
        return note
    estimate = delta.get("raw_estimate", delta.get("estimate"))
    try:
        value = float(estimate) if estimate is not None else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        return Line(noun, "no estimate")
    oriented = delta.get("estimate", estimate)
    higher_is_better = delta.get("higher_is_better", True)
    direction = "larger" if value > 0 else "smaller"
    text = f"{arm_a}'s {noun} is {num(abs(value))} {direction} than {arm_b}'s" if value else "no difference"
    ci = interval(delta, "raw_ci_low", "raw_ci_high") if "raw_ci_low" in delta else interval(delta)
    text += f", {ci}" if ci else ""
    # The share of bootstrap resamples whose oriented Δ favours arm a.
    share = delta.get("bootstrap_share_positive", delta.get("p_positive" if higher_is_better else "p_negative"))
    if share is not None:
        text += f"; {pct(share)} of bootstrap resamples favour {arm_a}"
    better = None
    if isinstance(oriented, int | float) and oriented != 0:
        better = (oriented > 0) == bool(higher_is_better)
    if better is not None:
        text += f" (better for {arm_a if better else arm_b})"
    return Line(noun, text)


def pair_lines(pair: dict[str, Any]) -> list[Line]:
    """A pair comparison in words: every Δ, the win probability and P(improvement)."""
    a, b = str(pair.get("arm_a", "a")), str(pair.get("arm_b", "b"))
    if pair.get("error"):
        return [Line("not comparable", _short(str(pair["error"])))]
    lines = [delta_sentence(d, a, b) for d in pair.get("deltas", []) if isinstance(d, dict)]
    win = pair.get("win_probability")
    if isinstance(win, dict):
        note = _status_note("Win probability", win)
        pairs = ", ".join(f"k={k}: {pct(p)}" for k, p in zip(win.get("ks", []), win.get("a_wins", []), strict=False))
        lines.append(note or Line("Win probability", f"{a}'s pick of k random cells beats {b}'s: {pairs}"))
    improvement = pair.get("probability_of_improvement")
    if isinstance(improvement, dict):
        lines.append(
            Line(
                "P(improvement)",
                f"a cell of {a} beats the same cell of {b} with probability {pct(improvement.get('matched'))} "
                f"(any cell against any cell: {pct(improvement.get('distributions'))})",
            )
        )
    if "ties" in pair:
        lines.append(Line("ties", _compact(pair["ties"])))
    return lines


def has_results(report: dict[str, Any]) -> bool:
    """Whether any arm has a cell with results (a report of a study that has not run is all blanks).
    A report without coverage figures is taken to have results."""
    arms = report.get("arms") or {}
    present = [(a.get("coverage") or {}).get("n_cells_present") for a in arms.values() if isinstance(a, dict)]
    known = [p for p in present if isinstance(p, int)]
    return not known or any(p > 0 for p in known)


def report_context(report: dict[str, Any]) -> Context:
    """Metric, split and ε of a report (its ``study`` block first, then its top level)."""
    study = report.get("study", {}) if isinstance(report.get("study"), dict) else {}
    return Context(
        metric=str(study.get("metric", "score")),
        split=str(study.get("split", report.get("split", "test"))),
        eps=study.get("eps", report.get("eps")),
        relative=bool(study.get("relative", report.get("relative", False))),
    )


def _safe(sentence: Callable[[dict[str, Any], Context], str], figure: dict[str, Any], context: Context) -> str:
    try:
        return sentence(figure, context)
    except (TypeError, ValueError, KeyError, AttributeError):
        return _compact(figure)  # a figure of an unexpected shape is shown as it is


def _short(text: str, limit: int = 300) -> str:
    """A long message (a list of every lr value) cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _compact(value: Any) -> str:
    return json.dumps(value, default=str, separators=(", ", ": "))[:400]
