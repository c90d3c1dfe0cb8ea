"""Heatmaps: valid PNG and SVG of the expected layout, with the arms, values and marks in them."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from studies.heatmaps import DPI, figure_size, render_heatmap, write_heatmaps
from studies.metrics import GridAxes

Y_FAIL = 0.9
AXES = GridAxes((0.01, 0.1, 1.0), (0.0, 0.9), (0, 1))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAN = math.nan

# (lr, β) → per seed (status, val, test). Test medians in %: 34.0, 23.0 / 11.0, 12.0 / 71.0 with one
# of two seeds diverged, (1.0, 0.9) all diverged; arm "sgdm_step" has no result at (0.01, 0.9).
CELLS = {
    (0.01, 0.0): [("completed", 0.30, 0.32), ("completed", 0.34, 0.36)],
    (0.01, 0.9): [("completed", 0.20, 0.21), ("completed", 0.22, 0.25)],
    (0.1, 0.0): [("completed", 0.10, 0.10), ("completed", 0.14, 0.12)],
    (0.1, 0.9): [("completed", 0.08, 0.11), ("completed", 0.10, 0.13)],
    (1.0, 0.0): [("completed", 0.50, 0.52), ("diverged", NAN, NAN)],
    (1.0, 0.9): [("diverged", NAN, NAN), ("diverged", NAN, NAN)],
}


def scores() -> pd.DataFrame:
    rows = []
    for arm in ("demon_sgdm", "sgdm_step"):
        for (lr, beta), trials in CELLS.items():
            for seed, (status, val, test) in enumerate(trials):
                if arm == "sgdm_step" and (lr, beta) == (0.01, 0.9):
                    status, val, test = "failed", NAN, NAN
                rows.append(
                    {"arm": arm, "lr": lr, "beta_init": beta, "seed": seed, "status": status, "val": val, "test": test}
                )
    return pd.DataFrame(rows)


def svg_text(data: bytes) -> str:
    root = ET.fromstring(data)
    return " ".join(t.strip() for t in root.itertext() if t.strip())


def test_png_decodes_to_the_expected_size() -> None:
    data = render_heatmap(scores(), AXES, Y_FAIL)
    assert data.startswith(PNG_SIGNATURE)
    image = matplotlib.image.imread(io.BytesIO(data))
    width, height = figure_size(2, 3, 2)
    assert image.shape[0] == pytest.approx(height * DPI, abs=2)
    assert image.shape[1] == pytest.approx(width * DPI, abs=2)
    one = matplotlib.image.imread(io.BytesIO(render_heatmap(scores(), AXES, Y_FAIL, arms=["demon_sgdm"])))
    assert one.shape[0] == image.shape[0]
    assert one.shape[1] < image.shape[1]  # one panel fewer, side by side


def test_figure_grows_with_arms_and_grid() -> None:
    one, three = figure_size(1, 11, 6), figure_size(3, 11, 6)
    assert three[0] > 2.5 * (one[0] - 1.5)
    assert three[1] == one[1]
    assert figure_size(1, 22, 6)[1] > one[1]


def test_svg_names_the_arms_and_shows_values_and_marks() -> None:
    text = svg_text(render_heatmap(scores(), AXES, Y_FAIL, fmt="svg"))
    assert "demon_sgdm" in text
    assert "sgdm_step" in text
    for value in ("34.0", "23.0", "11.0", "12.0", "71.0"):  # medians in percent
        assert value in text
    assert "×" in text  # the all-diverged cell
    assert "1/2✗" in text  # one of two seeds diverged
    assert "n/a" in text  # sgdm_step's cell without results
    assert "divergence rate" in text


def test_non_error_metrics_are_not_shown_in_percent() -> None:
    data = scores().assign(val=lambda f: f["val"] * 100, test=lambda f: f["test"] * 100)
    text = svg_text(render_heatmap(data, AXES, 90.0, arms=["demon_sgdm"], metric_label="perplexity", fmt="svg"))
    assert "34" in text
    assert "34.0" not in text
    assert "(%)" not in text
    assert "sgdm_step" not in text


def test_write_heatmaps_writes_png_and_svg(tmp_path: Path) -> None:
    paths = write_heatmaps(scores(), AXES, Y_FAIL, tmp_path / "out", stem="grid")
    assert [p.name for p in paths] == ["grid.png", "grid.svg"]
    assert paths[0].read_bytes().startswith(PNG_SIGNATURE)
    ET.fromstring(paths[1].read_bytes())


def test_concurrent_renders_agree() -> None:
    expected = {fmt: render_heatmap(scores(), AXES, Y_FAIL, fmt=fmt) for fmt in ("png", "svg")}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda fmt: (fmt, render_heatmap(scores(), AXES, Y_FAIL, fmt=fmt)), ["png", "svg"] * 2))
    for fmt, data in results:
        assert data == expected[fmt]


def test_bad_requests() -> None:
    with pytest.raises(ValueError, match="fmt"):
        render_heatmap(scores(), AXES, Y_FAIL, fmt="jpg")
    with pytest.raises(ValueError, match="no trials"):
        render_heatmap(scores().iloc[:0], AXES, Y_FAIL)


@pytest.mark.parametrize("note_words", [0, 40, 90])
def test_the_title_and_the_legend_never_overlap(note_words: int) -> None:
    """A long note (the success shares of three arms, say) wraps the title onto more lines: the figure
    grows and the legend moves under it (its third line was drawn over the legend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from studies.heatmaps import build_figure

    note = " ".join(["word"] * note_words) or None
    figure = build_figure(scores(), AXES, Y_FAIL, note=note)
    renderer = FigureCanvasAgg(figure).get_renderer()
    title, legend = (text.get_window_extent(renderer) for text in figure.texts[:2])
    assert legend.y1 <= title.y0, (title, legend)  # display coordinates: y grows upwards
    top_panel = max(ax.get_window_extent(renderer).y1 for ax in figure.axes)
    assert top_panel <= legend.y0
