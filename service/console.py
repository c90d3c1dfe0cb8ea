"""What the command line and ``make run`` (``service.demo``) share: reading a spec file, following a
study until it finishes, and the tables a person reads in a terminal.

It sits below both ``service.cli`` and ``service.demo``, so neither imports the other.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from studies.units import Units

STARTING = "starting…"  # the driver is up, no trial has started yet (Ray may be starting)


SHUTDOWN_GRACE_S = 3  # seconds open requests (event streams) get when the server stops


def safe_url(url: str) -> str:
    """A database URL as it may be printed: its password masked (``postgresql://u:***@host/db``)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def read_spec(path: str) -> dict[str, Any]:
    """A spec file as the mapping to submit: parsed (JSON or YAML) by ``studies.spec``, so malformed
    text is a ``ValueError`` naming the file and the reason; validation is the service's job."""
    from studies.spec import read_spec_data

    file = Path(path)
    try:
        data = read_spec_data(file.read_text(), suffix=file.suffix)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a spec must be a mapping of fields, not {type(data).__name__}")
    where = _first_non_finite(data)
    if where is not None:  # JSON has no NaN nor infinity: the request could not even be written
        raise ValueError(f"{path}: {where[0]}: {where[1]} is not a finite number (every number in a spec must be)")
    return data


def _first_non_finite(data: Any, at: str = "") -> tuple[str, float] | None:
    """The field path (``lr[0]``, ``verdict.target``) and value of the first NaN or infinity in ``data``."""
    if isinstance(data, float) and not math.isfinite(data):
        return at or "spec", data
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found = _first_non_finite(value, f"{at}[{key}]" if isinstance(key, int) else f"{at}.{key}".lstrip("."))
        if found is not None:
            return found
    return None


def _started(client: Any, study: Any) -> bool:
    """Whether any trial of a running study has started (asked only until the first result is in)."""
    progress = study.progress
    if progress.done or progress.failed:
        return True
    return bool(client.trials(study.id, status="running", limit=1).count)


MIN_BAR_COLUMNS = 40  # narrower (a 0-column terminal: CI, some IDEs) draws nothing: plain lines instead


class Progress:
    """A study's progress on stderr: a tqdm bar on a terminal at least ``MIN_BAR_COLUMNS`` wide, else
    one plain line per change.

    The bar is made only once the total is known (no stray ``0trial`` line), and while a running study
    has no trial started yet it says so ("starting…") instead of showing "running 0/N"."""

    def __init__(self, stream: TextIO | None = None, *, columns: int | None = None) -> None:
        self.stream = stream or sys.stderr
        terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        width = _columns(self.stream) if columns is None else columns
        self.tty = terminal and width >= MIN_BAR_COLUMNS
        self._bar: Any = None
        self._last = ""

    def show(self, study: Any, *, started: bool = True) -> None:
        """Show one poll of ``study``."""
        p = study.progress
        state = _label(study.status) if (started or study.status != "running") else STARTING
        text = f"{state}, {p.diverged} diverged, {p.failed} failed"
        if not self.tty:
            line = f"{study.id}: {p.done}/{p.total} trials, {text}"
            if line != self._last:
                print(line, file=self.stream, flush=True)
                self._last = line
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=p.total, unit="trial", file=self.stream, dynamic_ncols=True)
        self._bar.total = p.total
        self._bar.n = p.done
        self._bar.set_postfix_str(text, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        """End the bar (a terminal's line stays as it was last drawn)."""
        if self._bar is not None:
            self._bar.close()


def _columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (0 when it has none or will not say)."""
    import os

    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def _label(status: Any) -> str:
    """A study's status as a person reads it (``completed with failures``)."""
    from studies.vocab import StudyStatus

    return StudyStatus(status).label


def follow(
    client: Any, study_id: str, stream: TextIO | None = None, on_progress: Callable[[Any], None] | None = None
) -> Any:
    """Follow a study's event stream until it finishes, showing its progress (and handing each update
    to ``on_progress``); returns the finished study."""
    progress = Progress(stream)
    seen_start = False

    def show(study: Any) -> None:
        nonlocal seen_start
        if study.status == "running" and not seen_start:
            seen_start = _started(client, study)
        progress.show(study, started=seen_start)
        if on_progress is not None:
            on_progress(study)

    try:
        return client.wait(study_id, on_progress=show)  # the study's event stream, not polling
    finally:
        progress.close()


def shown(text: object) -> str:
    """``text`` safe for a terminal: a character Python does not print as itself (control characters
    such as ESC or a newline, bidirectional overrides) is written as its escape (``\\x1b``). Anyone who
    may submit names studies: a name must not clear the screen, recolour or reorder what follows."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in value)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: columns as wide as their widest cell, the first left-aligned, the rest right;
    every cell ``shown`` as a terminal can take it."""
    rows = [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first, *rest = (str(c) for c in cells)
        cells_out = [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        return "  ".join(cells_out).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def num(value: Any, digits: int = 4) -> str:
    """A number for a table (``-`` when absent or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:.{digits}g}"


def compare_table(pairs: list[Any], units: Units | None = None) -> str:
    """One row per pair of arms (a against b): the verdict, the primary figure's Δ (> 0 favours a)
    with its 95% interval, the smallest difference the study detects, and the seeds a plan needs.
    Numbers read as on the study page (``units``, the report's: error rates and shares' differences in
    percentage points)."""
    from studies.metrics.models import PairError
    from studies.units import FIGURE_KINDS, Units

    units = units or Units()
    headers = ["a vs b", "verdict", "primary", "Δ [95% interval]", "detects", "seeds needed"]
    rows = []
    notes = []
    for pair in pairs:
        name = f"{pair.arm_a} vs {pair.arm_b}"
        if isinstance(pair, PairError):
            notes.append(f"{name}: {pair.error}")
            continue
        v, primary = pair.verdict, pair.primary
        kind, iv = FIGURE_KINDS[primary.figure], primary.interval
        shown = units.delta(kind, primary.value, iv.low, iv.high)
        if iv.low is None:
            shown += f" ({iv.status.replace('_', ' ')})"
        detects = v.smallest_detectable_difference
        rows.append(
            [
                name,
                v.outcome,
                primary.figure + (f" k={primary.k}" if primary.k else ""),
                shown,
                "-" if detects is None else units.number(kind, detects) + units.unit(kind),
                str(v.seeds_needed) if v.seeds_needed is not None else "-",
            ]
        )
        notes.append(f"{name}: {v.statement}")
    legend = (
        "Δ > 0 favours a; 95% interval: a t interval over seeds (paired), given from 8 seeds "
        "(its coverage on six simulated landscapes: docs/statistics.md); shares and error rates differ in "
        "percentage points (pts); detects: the smallest Δ this study detects with the planned power; "
        "seeds needed: to detect the spec's difference of interest"
    )
    return "\n".join([table(headers, rows), *notes, legend])


def trials_table(trials: list[Any], *, percent: bool = False) -> str:
    """A page of trials: key, status, scores (an error rate in percent, else raw), epochs, seconds, node."""
    from studies.units import percent as in_percent

    def score(value: Any) -> str:
        return in_percent(value) if percent and isinstance(value, float) else num(value)

    headers = ["arm", "lr", "beta_init", "seed", "status", "val", "test", "epochs", "seconds", "node"]
    rows = [
        [
            t.arm,
            f"{t.lr:g}",
            f"{t.beta_init:g}",
            str(t.seed),
            t.status,
            score(t.val_metric),
            score(t.test_metric),
            str(t.epochs_done),
            f"{t.wall_seconds:.1f}",
            t.node or "-",
        ]
        for t in trials
    ]
    return table(headers, rows)


def robustness_table(result: Any) -> str:
    """One row per group of comparable studies (workload, arm, epochs, target...): per figure, the
    range of the studies' estimates and how many studies gave one (each study's own interval is in
    the JSON; a range of estimates is not an interval)."""
    from studies.units import Units, is_percent, percent

    headers = ["arm", "epochs", "grid", "target", "studies", "never trained", "best score", "success share"]
    headers.append("lr width (dec)")

    def grid(key: dict[str, Any]) -> str:  # what splits groups besides arm and epochs: the rows must differ
        lrs, betas, seeds = key.get("lr_range") or [], key.get("betas") or [], key.get("seeds") or []
        lr = f"lr {num(lrs[0], 3)}..{num(lrs[1], 3)}" if len(lrs) == 2 and None not in lrs else "lr -"
        shown = f"{len(key.get('lrs') or [])} {lr} × {len(betas)} β, {len(seeds)} seeds"
        extra = [f"{k}={v}" for k, v in {**(key.get("workload_params") or {}), **(key.get("arm_params") or {})}.items()]
        extra += [f"batch {key['batch_size']}"] if key.get("batch_size") else []
        extra += [f"weight decay {num(key['weight_decay'], 3)}"] if key.get("weight_decay") else []
        extra += ["full train"] if key.get("full_train") else []
        return shown + (f"; {', '.join(extra)}" if extra else "")

    def spread(across: Any, show: Callable[[float], str] = lambda x: num(x, 3)) -> str:
        if across.n_studies == 0 or across.range_low is None:
            return "-"
        return f"{show(across.range_low)}..{show(across.range_high)} (n={across.n_studies})"

    def score(group: Any) -> Callable[[float], str]:  # an error rate in percent, as the study page shows it
        ends = [x for x in (group.raw_peak_score.range_low, group.raw_peak_score.range_high) if x is not None]
        return Units(percent=is_percent(str(group.key.get("metric", "")), ends, None)).score

    rows = [
        [
            str(group.key.get("arm")),
            str(group.key.get("epochs", "-")),
            grid(group.key),
            str(group.key.get("target", "-")),
            str(group.n_studies),
            str(group.n_never_trained),
            spread(group.raw_peak_score, score(group)),
            spread(group.success_share, percent),
            spread(group.success_lr_width),
        ]
        for group in result.groups
    ]
    count = result.query.studies
    head = f"workload {result.query.workload}: {count} completed stud{'y' if count == 1 else 'ies'}"
    if result.query.unreadable:  # stored by another release: left out, not silently
        head += f" (left out, their stored spec unreadable by this version: {', '.join(result.query.unreadable)})"
    if not rows:
        return f"{head}; nothing to aggregate"
    legend = "cells: lowest..highest estimate over the studies of the row (n: studies with one); not an interval"
    return "\n".join([head, table(headers, rows), legend])


def environment_lines(environment: dict[str, Any]) -> list[str]:
    """What a study ran on, for a terminal: software versions on one line, then one line per node."""
    software = environment.get("software") or {}
    commit = software.get("git_commit")
    versions = ", ".join(
        f"{label} {software[key]}"
        for key, label in (("python", "Python"), ("torch", "torch"), ("ray", "Ray"), ("optuna", "Optuna"))
        if software.get(key)
    )
    head = f"ran with demonlab {software.get('demonlab') or '?'}" + (f" (git {commit[:12]})" if commit else "")
    lines = [f"{head}, {versions}" if versions else head]
    for node in environment.get("nodes") or []:
        gpus = ", ".join(node.get("gpus") or []) or "no GPU"
        lines.append(
            f"  node {node.get('node')}: {node.get('cpu') or 'CPU unknown'}; {gpus}; {node.get('trials', 0)} trials"
        )
    seeds = environment.get("seeds") or {}
    if seeds:
        search = f", search seed {seeds['search']}" if seeds.get("search") is not None else ""
        lines.append(f"  seeds {seeds.get('trials')}{search}")
    return lines
