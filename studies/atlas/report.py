"""The atlas report as HTML: one body for the offline file and for the dashboard page.

``render_report`` gives a self-contained file: the stylesheet inlined, every figure a ``data:`` URI
(SVG for plots, PNG for heatmaps), no script, nothing fetched, so it opens offline and prints as it
shows. ``render_body`` gives the same content for a page, with figure URLs of the caller's choosing
(the API's figure endpoints). Both read the typed ``AtlasResult``; templates are Jinja2 with
autoescape on (workload labels and study names are user text).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from .figures import OUTCOME_WORDS
from .models import AtlasResult, ComparisonSummary

HERE = Path(__file__).resolve().parent / "templates"
FigureSource = Callable[[str, str], str]
FORMAT_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def figure_names(result: AtlasResult) -> list[str]:
    """Every figure the report shows: the overview, one forest plot per comparison, one heatmap per workload."""
    names = ["overview"] if result.comparisons else []
    names += [forest_name(c) for c in result.comparisons]
    for index, label in enumerate(result.labels):
        names += [heatmap_name(index, cell.family) for cell in result.cells if cell.label == label]
    return names


def heatmap_name(index: int, family: str) -> str:
    """The figure name of workload ``index``'s heatmaps for one family."""
    return f"heatmap-{index}-{family}"


def forest_name(summary: ComparisonSummary) -> str:
    """The figure name of a comparison's forest plot."""
    return f"forest-{summary.demon}-vs-{summary.baseline}"


def data_uri(data: bytes, fmt: str) -> str:
    """``data`` as a ``data:`` URI of its image type."""
    return f"data:{FORMAT_TYPES[fmt]};base64,{base64.b64encode(data).decode()}"


@cache
def stylesheet() -> str:
    """The report's CSS (inlined offline, served for the page)."""
    return (HERE / "atlas.css").read_text()


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), autoescape=True, trim_blocks=True)


def render_body(
    result: AtlasResult,
    figure: FigureSource,
    export: FigureSource | None = None,
    *,
    heatmaps: bool = True,
    commit: str | None = None,
) -> str:
    """The report's content (a ``<div class="atlas">``): ``figure(name, fmt)`` is each image's source,
    ``export(name, fmt)`` each download link (none when omitted)."""
    from markupsafe import Markup, escape

    def exports(name: str) -> Markup:
        if export is None:
            return Markup("")
        links = [f'<a href="{escape(export(name, fmt))}" download>{fmt.upper()}</a>' for fmt in ("png", "svg")]
        return Markup("download " + " ".join(links))

    template = _environment().get_template("body.html")
    return template.render(
        r=result,
        figure=figure,
        exports=exports,
        heatmaps=heatmaps,
        commit=commit or _commit(result),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        figure_words=_figure_words(result),
        anchor=lambda c: f"comparison-{c.demon}-vs-{c.baseline}",
        forest_name=forest_name,
        heatmap_name=heatmap_name,
        outcome_words=lambda o: "running" if o is None else OUTCOME_WORDS.get(o, o),
        num=_num,
        signed=lambda x: "—" if x is None else f"{x:+.3f}",
        interval=_interval,
        pct=lambda x: "—" if x is None else f"{100 * x:.0f}%",
        software=_software,
        nodes=_nodes,
    )


def render_report(result: AtlasResult, figure: FigureSource, export: FigureSource | None = None, **kwargs: Any) -> str:
    """The self-contained HTML file: ``figure`` should give ``data:`` URIs (``data_uri``)."""
    from markupsafe import Markup

    body = render_body(result, figure, export, **kwargs)
    return str(_environment().get_template("report.html").render(r=result, body=Markup(body), css=Markup(stylesheet())))


def _figure_words(result: AtlasResult) -> str:
    figures = sorted({c.figure for c in result.comparisons if c.figure})
    return "primary figure: " + (", ".join(figures) if figures else "none yet")


def _commit(result: AtlasResult) -> str | None:
    for cell in result.cells:
        for study in cell.studies:
            software = (study.environment or {}).get("software") or {}
            if software.get("git_commit"):
                return str(software["git_commit"])[:12]
    return None


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _interval(low: float | None, high: float | None, level: float | None) -> str:
    if low is None or high is None:
        return "no interval"
    at = f" at {100 * level:.0f}%" if level is not None else ""
    return f"[{low:+.3f}, {high:+.3f}]{at}"


def _software(environment: Mapping[str, Any] | None) -> str:
    software = (environment or {}).get("software") or {}
    if not software:
        return "not recorded yet"
    commit = software.get("git_commit")
    parts = [f"demonlab {software.get('demonlab') or '?'}" + (f" @ {str(commit)[:12]}" if commit else "")]
    parts += [f"{name} {software[name]}" for name in ("python", "torch", "numpy") if software.get(name)]
    return ", ".join(parts)


def _nodes(environment: Mapping[str, Any] | None) -> str:
    nodes = (environment or {}).get("nodes") or []
    if not nodes:
        machine = (environment or {}).get("driver") or {}
        return str(machine.get("cpu") or "—")
    described = []
    for n in nodes:
        gpus = ", ".join(n.get("gpus") or []) or "no GPU"
        described.append(f"{n.get('node')}: {n.get('cpu') or '?'}, {gpus}, {n.get('trials', 0)} trials")
    return "; ".join(described)
