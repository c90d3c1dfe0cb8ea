"""The sensitivity report (``/sensitivity``, ``metrics_version`` 3) in sentences a reader understands.

Everything that maps a field of the report to words lives here, in two tables (``ARM_FIGURES`` for
per-arm figures, ``DELTA_LABELS`` for the pair comparisons), so a renamed field is one line to change.
The words follow the README's "Sensitivity figures" section:

- cell and peak intervals are order-statistic intervals at their real ``level`` ("at 75%" with 3
  seeds), or none, with the reason;
- a pair's Δ is positive when the first arm is better, and its interval is a conservative bound:
  "coverage ≥ 95%" (``min_level``), or none below ``min_bootstrap_seeds`` seeds;
- every ε-figure carries the ε it was computed with.

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

NOT_ESTIMATED = "not estimated: "
MIN_BOOTSTRAP_SEEDS = 6  # the report's ``min_bootstrap_seeds`` when it does not say (README)


@dataclass(frozen=True)
class Line:
    """One figure: a short label and the sentence."""

    label: str
    sentence: str


@dataclass(frozen=True)
class Context:
    """What every sentence may need: the metric's name, the split, ε and where ε came from, and the
    fewest seeds a pair interval needs."""

    metric: str
    split: str
    eps: float | None
    relative: bool
    eps_source: str | None = None
    min_bootstrap_seeds: int = MIN_BOOTSTRAP_SEEDS


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


def signed(value: float) -> str:
    """A Δ with its sign: '+0.055', '-0.167', '0'."""
    if value == 0:
        return "0"
    return ("+" if value > 0 else "-") + num(abs(value))


def pct(value: Any) -> str:
    """A share as a percentage, '–' for none."""
    try:
        return f"{100 * float(value):.0f}%"
    except (TypeError, ValueError):
        return "–"


def level_pct(value: Any) -> str:
    """An interval's level as a percentage to 0.1 point, without a trailing '.0': 0.96875 → '96.9%',
    0.75 → '75%' (rounding 0.875 to '88%' would claim a level the interval does not have)."""
    try:
        level = float(value)
    except (TypeError, ValueError):
        return "–"
    shown = round(100 * level, 1)
    return "> 99.9%" if shown >= 100 > 100 * level else f"{shown:g}%"  # many seeds: never "100%"


def eps_text(eps: Any, relative: bool) -> str:
    """'ε = 0.01', or 'ε = 1% of the peak' for a relative ε."""
    return f"ε = {pct(eps)} of the peak" if relative else f"ε = {num(eps)}"


def _reason(status: Any) -> str:
    return str(status or "undefined").replace("_", " ")


def cell_interval(figure: Any) -> str:
    """A cell's or the peak's interval (``score_interval``) in raw units at its real level:
    'interval [a, b] at 75%', or 'no interval: <why>'."""
    if not isinstance(figure, dict):
        return ""
    low, high = figure.get("raw_low", figure.get("low")), figure.get("raw_high", figure.get("high"))
    if low is None or high is None or not figure.get("level"):
        status = figure.get("status")
        if status == "too_few_seeds":
            return "no interval: too few seeds (one seed)"
        return f"no interval: {_reason(status)}"
    return f"interval [{num(low)}, {num(high)}] at {level_pct(figure['level'])}"


def pair_interval(figure: Any, min_seeds: int = MIN_BOOTSTRAP_SEEDS, fmt: Callable[[Any], str] = num) -> str:
    """A pair interval (of a Δ or a win probability): 'interval [a, b], coverage ≥ 95%' (the bound
    ``min_level``), or 'no interval: too few seeds (n < 6)'."""
    if not isinstance(figure, dict):
        return ""
    low, high, level = figure.get("low"), figure.get("high"), figure.get("min_level")
    if low is None or high is None or level is None:
        status = figure.get("status")
        if status == "too_few_seeds":
            return f"no interval: too few seeds (n < {min_seeds})"
        return f"no interval: {_reason(status)}"
    return f"interval [{fmt(low)}, {fmt(high)}], coverage ≥ {level_pct(level)}"


def _status_note(label: str, figure: dict[str, Any]) -> Line | None:
    status = figure.get("status", "ok")
    if status in (None, "ok"):
        return None
    return Line(label, f"{NOT_ESTIMATED}{_reason(status)}")


def _peak(f: dict[str, Any], c: Context) -> str:
    text = (
        f"the best cell (chosen on validation) is lr {num(f.get('lr'))}, β_init {num(f.get('beta_init'), 4)}: "
        f"median {c.split} {c.metric} {num(f.get('raw_score'))}"
    )
    interval = cell_interval(f.get("score_interval"))
    text += f", {interval}" if interval else ""
    if f.get("n_seeds") is not None:
        text += f", over {f['n_seeds']} seeds"
    if f.get("divergence_rate"):
        text += f", {pct(f['divergence_rate'])} of them diverged"
    return text


def _eps_good(f: dict[str, Any], c: Context) -> str:
    eps = eps_text(f.get("eps", c.eps), bool(f.get("relative", c.relative)))
    return (
        f"with {eps}: {pct(f.get('fraction'))} of the grid ({f.get('n_good', '–')} of {f.get('n_cells', '–')} cells) "
        f"has a median within ε of the best cell's (a cell is good up to {c.split} {c.metric} "
        f"{num(f.get('raw_threshold'))})"
    )


def _eps_good_lr_width(f: dict[str, Any], c: Context) -> str:
    text = (
        f"with {eps_text(c.eps, c.relative)}: good learning rates span {num(f.get('mean_decades'), 2)} decades "
        "on average over β_init"
    )
    every = f.get("all_betas")
    if isinstance(every, dict) and every.get("decades") is not None:
        text += f", {num(every['decades'], 2)} decades are good for every β_init"
    if f.get("edge"):
        sides = [str(s) for s in f.get("edge_sides", []) if str(s).startswith("lr_")]
        names = " and ".join({"lr_min": "smallest lr", "lr_max": "largest lr"}.get(s, s) for s in sides)
        text += f" (the good region touches the grid's {names or 'edge'}: the true range may be wider)"
    return text


def _expected_best(f: dict[str, Any], c: Context) -> str:
    ks = f.get("ks", [])
    values = f.get("raw_without_replacement", [])
    pairs = ", ".join(f"k={k}: {num(v)}" for k, v in zip(ks, values, strict=False))
    return f"trying k random cells and keeping the best by validation gives an expected {c.split} {c.metric} of {pairs}"


def _lr_sensitivity(f: dict[str, Any], c: Context) -> str:
    return (
        f"a cell's {c.split} {c.metric} is on average {num(f.get('pooled'))} worse than at the best lr of its "
        f"β_init ({num(f.get('joint'))} worse than the grid's best cell; lower is more robust)"
    )


def _variance(f: dict[str, Any], c: Context) -> str:
    if f.get("method") == "optuna_fanova":
        importance = f.get("fanova_importance") or {}
        parts = ", ".join(f"{name.replace('_', ' ')} {pct(v)}" for name, v in importance.items())
        return f"Optuna's fANOVA importances on an incomplete grid (not comparable with ANOVA shares): {parts}"
    shares = f.get("anova_shares") or {}
    parts = ", ".join(f"{name.replace('_', ' ')} {pct(v)}" for name, v in shares.items())
    return f"share of the score's variance explained by (ANOVA): {parts}"


def _coverage(f: dict[str, Any], c: Context) -> str:
    return (
        f"{f.get('n_completed', '–')} completed, {f.get('n_diverged', '–')} diverged, "
        f"{f.get('n_missing', '–')} missing of {f.get('n_trials_expected', '–')} trials; "
        f"{f.get('n_cells_present', '–')} of {f.get('n_cells', '–')} cells have results"
    )


# Per-arm figures: report field → (label, sentence). Order = order on the page.
ARM_FIGURES: dict[str, tuple[str, Callable[[dict[str, Any], Context], str]]] = {
    "peak": ("Peak", _peak),
    "eps_good": ("ε-good region", _eps_good),
    "eps_good_lr_width": ("Good lr range", _eps_good_lr_width),
    "expected_best": ("Best of k tries", _expected_best),
    "lr_sensitivity": ("lr sensitivity", _lr_sensitivity),
    "variance": ("Variance", _variance),
    "coverage": ("Coverage", _coverage),
}
ARM_SKIP = {
    "arm",
    "orientation",
    "selected_on",
    "split",
    "y_fail",
    "grid",
    "eps",
    "relative",
    "eps_source",
    "metrics_version",
}

# Pair comparisons: the Δ's ``metric`` → (noun, unit, comparative when Δ > 0, when Δ < 0, carries ε).
# Δ > 0 always means the first arm is better: for a score (``score_valued``) its raw error is lower.
DELTA_LABELS: dict[str, tuple[str, str, str, str, bool]] = {
    "peak": ("peak {split} {metric}", "", "lower", "higher", False),
    "expected_best": ("expected best {split} {metric} of k tries", "", "lower", "higher", False),
    "eps_good_fraction": ("ε-good share of the grid", "", "larger", "smaller", True),
    "eps_good_lr_width_mean": ("good lr range, mean over β_init,", " decades", "wider", "narrower", True),
    "eps_good_lr_width_all_betas": ("lr range good for every β_init", " decades", "wider", "narrower", True),
    "lr_sensitivity": ("lr sensitivity", "", "smaller", "larger", False),
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


def delta_sentence(delta: dict[str, Any], arm_a: str, arm_b: str, context: Context) -> Line:
    """'demon_sgdm's peak test error is 0.055 lower than sgdm_step's: Δ = +0.055 (positive means
    demon_sgdm is better), interval [0.044, 0.066], coverage ≥ 95%; …'."""
    metric = str(delta.get("metric", "?"))
    noun, unit, up, down, with_eps = DELTA_LABELS.get(metric, (metric.replace("_", " "), "", "", "", False))
    noun = noun.format(split=context.split, metric=context.metric)
    label = noun.rstrip(",") + (f" (k={delta['k']})" if delta.get("k") is not None else "")
    note = _status_note(label, delta)
    if note is not None:
        return note
    try:
        value = float(delta["delta"])
    except (KeyError, TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        return Line(label, "no estimate")
    if with_eps:
        label += f" ({eps_text(context.eps, context.relative)})"
    if value == 0:
        text = f"{arm_a}'s and {arm_b}'s {noun.rstrip(',')} are equal"
    elif up:
        text = f"{arm_a}'s {noun} is {num(abs(value))}{unit} {up if value > 0 else down} than {arm_b}'s"
    else:
        text = f"{arm_b} is better" if value < 0 else f"{arm_a} is better"
    text += f": Δ = {signed(value)} (positive means {arm_a} is better)"
    interval = pair_interval(delta.get("interval"), context.min_bootstrap_seeds)
    text += f", {interval}" if interval else ""
    shares = [delta.get(f"bootstrap_share_{side}") for side in ("positive", "ties", "negative")]
    if all(isinstance(s, int | float) for s in shares):
        text += f"; bootstrap replicates: {pct(shares[0])} Δ > 0, {pct(shares[1])} Δ = 0, {pct(shares[2])} Δ < 0"
    return Line(label, text)


def _win_probability(win: dict[str, Any], a: str, b: str, context: Context) -> Line:
    note = _status_note("Win probability", win)
    if note is not None:
        return note
    ks, wins = win.get("ks", []), win.get("a_wins", [])
    intervals = {i.get("k"): i for i in win.get("intervals", []) if isinstance(i, dict)}
    texts = {k: pair_interval(intervals.get(k), context.min_bootstrap_seeds, pct) for k in ks}
    shared = next(iter(set(texts.values()))) if len(set(texts.values())) == 1 and ks else None
    if shared is not None and shared.startswith("no interval"):
        parts = ", ".join(f"k={k}: {pct(p)}" for k, p in zip(ks, wins, strict=False))
        return Line("Win probability", f"{a}'s pick of k random cells beats {b}'s with probability {parts} ({shared})")
    parts = ", ".join(f"k={k}: {pct(p)} ({texts[k]})" for k, p in zip(ks, wins, strict=False))
    return Line("Win probability", f"{a}'s pick of k random cells beats {b}'s with probability {parts}")


def pair_lines(pair: dict[str, Any], context: Context) -> list[Line]:
    """A pair comparison in words: every Δ, the win probability and P(improvement)."""
    a, b = str(pair.get("arm_a", "a")), str(pair.get("arm_b", "b"))
    if pair.get("error"):
        return [Line("not comparable", _short(str(pair["error"])))]
    deltas = [delta_sentence(d, a, b, context) for d in pair.get("deltas", []) if isinstance(d, dict)]
    lines = [line for line in deltas if not line.sentence.startswith(NOT_ESTIMATED)]
    # Δs without a value (every grid figure of a search study: "incomplete") in one line per reason
    reasons: dict[str, list[str]] = {}
    for line in deltas:
        if line.sentence.startswith(NOT_ESTIMATED):
            reasons.setdefault(line.sentence.removeprefix(NOT_ESTIMATED), []).append(line.label)
    lines += [Line(f"Not estimated ({reason})", "; ".join(labels)) for reason, labels in reasons.items()]
    win = pair.get("win_probability")
    if isinstance(win, dict):
        lines.append(_win_probability(win, a, b, context))
    improvement = pair.get("probability_of_improvement")
    if isinstance(improvement, dict):
        lines.append(
            Line(
                "P(improvement)",
                f"a cell of {a} beats the same cell of {b} with probability {pct(improvement.get('matched'))} "
                f"(any cell against any cell: {pct(improvement.get('distributions'))}; point estimates, no interval)",
            )
        )
    return lines


def has_results(report: dict[str, Any]) -> bool:
    """Whether any arm has a cell with results (a report of a study that has not run is all blanks).
    A report without coverage figures is taken to have results."""
    arms = report.get("arms") or {}
    present = [(a.get("coverage") or {}).get("n_cells_present") for a in arms.values() if isinstance(a, dict)]
    known = [p for p in present if isinstance(p, int)]
    return not known or any(p > 0 for p in known)


def report_context(report: dict[str, Any]) -> Context:
    """Metric, split, ε and its source of a report (its ``study`` block first, then its top level)."""
    study = report.get("study", {}) if isinstance(report.get("study"), dict) else {}
    seeds = report.get("min_bootstrap_seeds")
    return Context(
        metric=str(study.get("metric", "score")),
        split=str(study.get("split", report.get("split", "test"))),
        eps=study.get("eps", report.get("eps")),
        relative=bool(study.get("relative", report.get("relative", False))),
        eps_source=report.get("eps_source"),
        min_bootstrap_seeds=seeds if isinstance(seeds, int) else MIN_BOOTSTRAP_SEEDS,
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
