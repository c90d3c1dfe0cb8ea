"""Errors raised by the metric code (``studies.metrics``), importable without it.

They live outside the package so that a caller that only maps them (the service's error handlers)
imports neither the metric code nor scipy.

    ValueError
    └── MetricsError            anything wrong with what the metric code was given
        ├── GridError           rows that do not fit the grid (off-grid values, duplicates, bad columns)
        └── ComparisonError     two arms that cannot be compared (different grids or seeds)

Callers (the service) catch ``MetricsError`` to answer 4xx, or a subclass to be more specific.
"""

from __future__ import annotations


class MetricsError(ValueError):
    """The scores, grid or arguments handed to the metric code are unusable."""


class GridError(MetricsError):
    """A score row lies off the grid, repeats a key, or the frame lacks a column."""


class ComparisonError(MetricsError):
    """Two arms were run on different grids or seeds, so their grid metrics are not comparable."""
