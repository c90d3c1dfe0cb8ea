"""Numbers for people, one convention everywhere: the study page, the PNG heatmaps, the CLI,
``demonlab run``, ``make run`` and the verdict's statement print a figure the same way.

- An error-rate metric (its name says "err", its scores and failure score lie in [0, 1]) is shown in
  percent with one decimal (``2.6%``), and a difference of two error rates in percentage points
  (``+0.8 pts``).
- A share (of the grid, of seeds) is shown in percent, a difference of shares in percentage points:
  ``+8.3 pts [-0.7, 17.4]`` (the value carries the unit, its interval the same unit).
- A probability is shown in percent (``62.5%``).
- Losses, perplexities and lr widths (decades) keep their own units, 3 significant digits.

The module imports nothing heavy (not even numpy): the HTTP client and the CLI read reports with it.
The JSON keeps raw fractions (``0.083``): only the words change. The study page follows the same rule
in ``service/dashboard/static/common.js`` (``scoreFormat``) and ``study_answer.js``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FIGURE_KINDS", "FigureKind", "Units", "is_percent", "percent", "points"]

FigureKind = Literal["share", "probability", "decades", "score"]

FIGURE_KINDS: dict[str, FigureKind] = {
    "success_share": "share",
    "success_lr_width": "decades",
    "expected_best": "score",
    "lr_sensitivity": "score",
    "win_probability": "probability",
    "improvement_matched": "probability",
    "improvement_any": "probability",
}
"""What each figure of a pair is, and so how its value is shown (a score in the metric's units)."""


def is_percent(metric_label: str, scores: Sequence[float] | np.ndarray[Any, Any], y_fail: float | None) -> bool:
    """Whether a metric is an error rate shown in percent: its name says "err" (error, error rate,
    top1_err) and its finite scores and failure score (None: not known here) lie in [0, 1]."""
    values = scores.ravel().tolist() if hasattr(scores, "ravel") else list(scores)
    finite = [float(x) for x in values if math.isfinite(x)]
    in_unit = bool(finite) and min(finite) >= 0.0 and max(finite) <= 1.0 and (y_fail is None or y_fail <= 1.0)
    return in_unit and "err" in metric_label.lower()


def _hundredths(fraction: float, decimals: int = 1) -> str:
    """A fraction as a number of percent: one decimal ('8.3'), none from 100 on ('100', '250')."""
    shown = 100.0 * fraction
    text = f"{shown:.{decimals}f}" if abs(shown) < 99.95 else f"{shown:.0f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _decimals_apart(low: float, high: float, null: float = 0.0) -> int:
    """The decimals (of percent: 1 to 4) that show an interval excluding its null (0 for a Δ, ½ for a
    probability) without its nearer bound reading as the null: a decisive Δ of 0.04 pts [0.040, 0.043]
    read "0.0 pts [0.0, 0.0]", a probability [50.03, 50.1] read "[50.0, 50.1]"."""
    if not (low > null or high < null):
        return 1
    nearest = low if low > null else high

    def shown(x: float, decimals: int) -> float:
        return float(f"{100 * x:.{decimals}f}")

    decimals = 1
    while decimals < 4 and shown(nearest, decimals) == shown(null, decimals):
        decimals += 1
    return decimals


def _sign(value: float, text: str) -> str:
    return "+" + text if value > 0 and not text.startswith("+") and float(text) != 0 else text


def percent(fraction: float | None) -> str:
    """A share or a probability: ``0.083`` → ``8.3%`` ('-' for none)."""
    return "-" if fraction is None or not math.isfinite(fraction) else _hundredths(fraction) + "%"


def points(difference: float | None, *, signed: bool = True) -> str:
    """A difference of two fractions in percentage points: ``0.083`` → ``+8.3 pts``."""
    if difference is None or not math.isfinite(difference):
        return "-"
    text = _hundredths(difference)
    return (_sign(difference, text) if signed else text) + " pts"


def _raw(value: float, *, signed: bool = False) -> str:
    text = "0" if value == 0 else f"{value:.3g}"
    return _sign(value, text) if signed else text


@dataclass(frozen=True)
class Units:
    """How one study's scores read: ``percent`` for an error rate (``is_percent``), else raw."""

    percent: bool = False

    def score(self, value: float | None) -> str:
        """A score: ``2.6%`` (an error rate) or ``0.234`` (a loss)."""
        if value is None or not math.isfinite(value):
            return "-"
        return percent(value) if self.percent else _raw(value)

    def number(self, kind: FigureKind, value: float, *, signed: bool = False, decimals: int = 1) -> str:
        """A figure's number without its unit (an interval's bounds): ``8.3`` for 0.083 points
        (``decimals`` of a percent; raw numbers keep 3 significant digits)."""
        if not math.isfinite(value):
            return "-"
        if kind in ("share", "probability") or (kind == "score" and self.percent):
            text = _hundredths(value, decimals)
            return _sign(value, text) if signed else text
        return _raw(value, signed=signed)

    def unit(self, kind: FigureKind, *, difference: bool = True) -> str:
        """The unit a figure's number is in: ' pts', '%', or '' (raw units and decades)."""
        if kind == "probability" or (not difference and kind == "share"):
            return "%"
        if kind == "share" or (kind == "score" and self.percent):
            return " pts" if difference else "%"
        return ""

    def delta(self, kind: FigureKind, value: float | None, low: float | None = None, high: float | None = None) -> str:
        """A difference with its interval, as the page shows it: ``+8.3 pts [-0.7, 17.4]``; a
        probability as itself: ``62.5% [51.0, 74.0]``."""
        if value is None or not math.isfinite(value):
            return "-"
        signed = kind != "probability"
        null = 0.5 if kind == "probability" else 0.0
        decimals = 1 if low is None or high is None else _decimals_apart(low, high, null)
        text = self.number(kind, value, signed=signed, decimals=decimals) + self.unit(kind)
        if low is not None and high is not None:
            text += f" [{self.number(kind, low, decimals=decimals)}, {self.number(kind, high, decimals=decimals)}]"
        return text
