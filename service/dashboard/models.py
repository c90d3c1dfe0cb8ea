"""Response models of the dashboard's JSON endpoints (``service.dashboard.data``), so the OpenAPI
schema says what the pages draw from.

Values are raw workload scores (lower is better), as ``/grid``; non-finite values appear as null.
Colours are hex strings (``#rrggbb``) from matplotlib's colour maps, grey where a cell has no value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from studies.vocab import ArmName, MetricName, Split
from studies.vocab.statuses import StudyStatus

__all__ = [
    "ArmHeatmap",
    "ArmPoints",
    "ColourScale",
    "CompareMapsPublic",
    "DifferenceMaps",
    "HeatmapsPublic",
    "LegendStop",
    "PairDifference",
    "ParsedSpec",
    "PlacementPublic",
    "PlacementRow",
    "PointsPublic",
    "SearchPoint",
    "SpecText",
]

Colour = str  # "#rrggbb"


class LegendStop(BaseModel):
    """One stop of a colour legend: a raw value and its colour."""

    value: float
    colour: Colour


class ColourScale(BaseModel):
    """The one colour scale every arm's heatmap shares."""

    min: float | None = Field(description="the smallest finite median of every arm (null: no results yet)")
    max: float | None
    log: bool = Field(description="a log scale: the values are positive and span 10× or more")
    legend: list[LegendStop]


class ArmHeatmap(BaseModel):
    """One arm's lr × β_init grid (rows: lrs, columns: betas) with what each cell's colour stands on."""

    arm: ArmName
    values: list[list[float | None]] = Field(description="the median over the cell's seeds")
    colours: list[list[Colour]]
    n: list[list[int]] = Field(description="completed + diverged seeds per cell")
    diverged: list[list[int]]
    missing: list[list[int]]
    interval_low: list[list[float | None]] = Field(description="the median's interval over seeds, lower bound")
    interval_high: list[list[float | None]]
    interval_level: list[list[float | None]] = Field(description="the interval's real coverage; null: no interval")
    divergence_rate: list[list[float | None]] = Field(description="diverged / n; null where n = 0")
    divergence_colours: list[list[Colour]]


class PairDifference(BaseModel):
    """One pair's difference of medians per cell, first arm − second, in raw units (below 0: the first
    arm's score is lower, i.e. better); null where either cell has no result."""

    arm_a: ArmName
    arm_b: ArmName
    values: list[list[float | None]]
    colours: list[list[Colour]]


class DifferenceMaps(BaseModel):
    """Every default pair's difference map on one symmetric diverging scale (blue below 0, red above)."""

    max_abs: float | None = Field(description="the largest |difference| of every pair (null: none yet)")
    legend: list[LegendStop]
    pairs: list[PairDifference]


class HeatmapsPublic(BaseModel):
    """Every arm's median grid on one shared colour scale, its divergence-rate map, and each pair's
    difference map. Arms in the sensitivity report's order."""

    study_id: str
    status: StudyStatus
    metric: MetricName
    split: Split
    stat: Literal["median"]
    lower_is_better: Literal[True]
    percent: bool = Field(description="an error metric shown in percent (as the PNG heatmaps); values stay raw")
    y_fail: float = Field(description="the failure score a diverged seed counts as (raw units)")
    seeds: int = Field(description="seeds per cell in the study's grid")
    lrs: list[float]
    betas: list[float]
    scale: ColourScale
    rate_legend: list[LegendStop] = Field(description="the divergence maps' colour bar, 0 to 1")
    missing_colour: Colour = Field(description="the grey of a cell without a result yet")
    arms: list[ArmHeatmap]
    differences: DifferenceMaps


class CompareMap(BaseModel):
    """One arm of one compared study, coloured on the scale its metric shares with every compared map."""

    study_id: str
    metric: MetricName
    percent: bool
    arm: ArmName
    values: list[list[float | None]]
    colours: list[list[Colour]]
    n: list[list[int]]
    diverged: list[list[int]]


class CompareGrid(BaseModel):
    study_id: str
    lrs: list[float]
    betas: list[float]


class StudyDifference(BaseModel):
    """The same arm in two studies on the same grid: study_a − study_b per cell, raw units (below 0:
    study_a's score is lower, i.e. better)."""

    arm: ArmName
    study_a: str
    study_b: str
    values: list[list[float | None]]
    colours: list[list[Colour]]


class StudyDifferences(BaseModel):
    max_abs: float | None
    legend: list[LegendStop]
    pairs: list[StudyDifference]
    notes: list[str] = Field(description="why a later study has no difference map (another grid or metric)")


class CompareMapsPublic(BaseModel):
    """Several studies' median maps on one colour scale per metric, and each later study's difference
    from the first."""

    split: Split
    studies: list[CompareGrid]
    scales: dict[str, ColourScale] = Field(description="metric → the scale its maps share")
    maps: list[CompareMap]
    differences: StudyDifferences


class PlacementRow(BaseModel):
    """The trials one (node, device) ran and their wall seconds in all."""

    node: str
    device: str | None
    trials: int
    wall_seconds: float


class PlacementPublic(BaseModel):
    """Where a study's trials ran: per (node, device), and the wall seconds of them all."""

    rows: list[PlacementRow]
    wall_seconds: float


class SearchPoint(BaseModel):
    """One sampled (lr, β_init) of a search study: the median over its seeds."""

    lr: float
    beta_init: float
    value: float | None
    seeds: int
    diverged: int
    colour: Colour


class ArmPoints(BaseModel):
    """One arm's sampled points and the importances of lr and β_init for its score."""

    arm: ArmName
    points: list[SearchPoint]
    importances: dict[Literal["lr", "beta_init"], float] = Field(description="empty when not computable")
    importance_method: str
    importance_note: str = Field(description="why there are no importances; empty when there are")


class PointsPublic(BaseModel):
    """A search study's sampled points per arm, coloured on one scale."""

    study_id: str
    split: Split
    metric: MetricName
    percent: bool = Field(description="an error metric shown in percent (as the PNG heatmaps); values stay raw")
    legend: list[LegendStop]
    arms: list[ArmPoints]


class SpecText(BaseModel):
    """A spec as the user wrote it: YAML or JSON text."""

    text: str = Field(max_length=1_000_000)


class ParsedSpec(BaseModel):
    """A spec's text parsed, not yet checked: the object (what ``POST /studies`` takes) and each field's
    line."""

    spec: dict[str, Any] = Field(description="the mapping as written; checked when submitted")
    lines: dict[str, int] = Field(description="each field's dotted path (arms.0.name) → its line, 1-based")
