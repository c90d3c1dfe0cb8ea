"""What the paper's Fig. 2 shows, as data: its three panels, their cells and their claims.

Each ``Panel`` pairs the paper's two heatmaps (Demon and its baseline, names as in the digitized
file ``data/paper_fig2_digitized.csv``, see its README) with the arms of a study that reproduce them,
the paper's training budget, and the claim the paper's text makes about the panel: a count of
cells under an error threshold (per momentum column for WRN, over the whole grid for VGG). The
ResNet-20 panel comes with no count in the text, so it has no claim.

The cells are read from the figure to ± 0.005 (``READ_PRECISION``) and clipped to each panel's
colour bar; both are kept so that every comparison can say how sure a paper value is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["PANELS", "READ_PRECISION", "Claim", "Panel", "PanelKey", "PaperCells", "panel", "paper_cells"]

PanelKey = Literal["fig2-wrn", "fig2-vgg", "fig2-rn20"]
"""The panels' names, as the API and the command line offer them (``PANELS`` has one each)."""

READ_PRECISION = 0.005
"""How precisely an error was read from the figure's colours."""

SGDM_LRS = (0.003, 0.005, 0.008, 0.01, 0.03, 0.05, 0.08, 0.1, 0.3, 0.5, 0.8)
ADAM_LRS = (1e-5, 3e-5, 6e-5, 1e-4, 3e-4, 6e-4, 1e-3, 3e-3, 6e-3, 0.01, 0.03, 0.06, 0.1)
MOMENTA = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class Claim:
    """The paper's count: cells with test error ≤ ``threshold``, ``per_column`` or over the grid."""

    threshold: float
    per_column: bool
    text: str  # the paper's words


@dataclass(frozen=True)
class Panel:
    """One panel of Fig. 2: the paper's two heatmaps and the arms of a study that reproduce them.

    ``baselines``: the baseline arms a study may carry for the paper's baseline heatmap (the paper's
    SGDM is "LR step" and "the highest-performing LR schedule": for WRN-16-8 at 50 epochs Table 3's
    best is linear, so both count).
    """

    key: str
    title: str
    workload: str
    epochs: int
    batch_size: int
    demon_panel: str
    baseline_panel: str
    demon_arm: str
    baselines: tuple[str, ...]
    lrs: tuple[float, ...]
    claim: Claim | None
    caveat: str = ""


PANELS: dict[str, Panel] = {
    p.key: p
    for p in (
        Panel(
            key="fig2-wrn",
            title="Fig. 2 (left): Wide ResNet 16-8 on STL-10, Demon SGDM against SGDM",
            workload="stl10_wrn16_8",
            epochs=50,
            batch_size=64,
            demon_panel="WRN_Demon",
            baseline_panel="WRN_SGDM",
            demon_arm="demon_sgdm",
            baselines=("sgdm_step", "sgdm_linear"),
            lrs=SGDM_LRS,
            claim=Claim(0.22, True, "≈1 configuration per momentum column under 22% error for SGDM, ≈5 for Demon SGDM"),
        ),
        Panel(
            key="fig2-vgg",
            title="Fig. 2 (middle): VGG-16 on CIFAR-100, Demon SGDM against SGDM",
            workload="cifar100_vgg16",
            epochs=100,
            batch_size=128,
            demon_panel="VGG_Demon",
            baseline_panel="VGG_SGDM",
            demon_arm="demon_sgdm",
            baselines=("sgdm_step", "sgdm_linear"),
            lrs=SGDM_LRS,
            claim=Claim(0.31, False, "almost three times as many configurations under 31% error for Demon SGDM"),
        ),
        Panel(
            key="fig2-rn20",
            title="Fig. 2 (right): ResNet-20 on CIFAR-10, Demon Adam against Adam",
            workload="cifar10_resnet20",
            epochs=100,
            batch_size=128,
            demon_panel="RN20_DemonAdam",
            baseline_panel="RN20_Adam",
            demon_arm="demon_adam",
            baselines=("adam_none",),
            lrs=ADAM_LRS,
            claim=None,
            caveat="the paper's two ResNet-20 panels share 26 identical cells away from the colour-bar ends, "
            "so a cell-by-cell comparison of this panel is weak; its text gives no count to recompute",
        ),
    )
}


def panel(key: str) -> Panel:
    """The panel called ``key``; ``ValueError`` listing the valid keys."""
    try:
        return PANELS[key]
    except KeyError:
        raise ValueError(f"unknown paper panel {key!r}; valid choices: {', '.join(PANELS)}") from None


@dataclass(frozen=True)
class PaperCells:
    """One heatmap of the paper: ``error[i, j]`` at ``lrs[i]`` × ``momenta[j]``, and its colour bar."""

    name: str
    lrs: tuple[float, ...]
    momenta: tuple[float, ...]
    error: np.ndarray
    colour_min: float
    colour_max: float

    def clipped(self) -> np.ndarray:
        """Where a value sits at an end of the colour bar (the true error may lie beyond it)."""
        return (self.error <= self.colour_min) | (self.error >= self.colour_max)


@cache
def _table() -> pd.DataFrame:
    source = resources.files("studies.replicate").joinpath("data/paper_fig2_digitized.csv")
    with source.open("r") as handle:
        return pd.read_csv(handle)


def paper_cells(name: str) -> PaperCells:
    """The paper's heatmap ``name`` (a ``panel`` column value of the digitized file)."""
    rows = _table()[_table()["panel"] == name]
    if rows.empty:
        raise ValueError(f"no paper panel {name!r} in the digitized Fig. 2")
    grid = rows.pivot(index="lr", columns="momentum", values="error_read").sort_index().sort_index(axis=1)
    return PaperCells(
        name=name,
        lrs=tuple(float(v) for v in grid.index),
        momenta=tuple(float(v) for v in grid.columns),
        error=grid.to_numpy(dtype=np.float64),
        colour_min=float(rows["colour_min"].iloc[0]),
        colour_max=float(rows["colour_max"].iloc[0]),
    )
