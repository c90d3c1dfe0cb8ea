"""Sensitivity metrics (``docs/metrics.md``) computed from per-seed trial scores on an lr × β_init grid.

What this is: pure functions from a frame of trial scores (one row per trial: ``arm``, ``lr``,
``beta_init``, ``seed``, ``status``, ``val``, ``test``) and the grid the study asked for
(``GridAxes``) to the report's typed results (``studies.metrics.models``): the cell table, per-arm
figures, pair comparisons with a verdict, a whole report and a cross-study aggregate. What it is
not: storage, HTTP or plotting (``studies.heatmaps`` draws).

Conventions, everywhere in this package (``docs/metrics.md``; the statistics in
``docs/statistics.md``):

- **Orientation.** Raw values are the workload's lower-is-better units (error rate, loss,
  perplexity). Inside, every score is oriented higher-is-better: y = −value; a field named
  ``raw_*`` is the same quantity in raw units (``raw_low = −high``). A pair's Δ is oriented so that
  positive means the first arm is better.
- **Failures.** A diverged trial scores −y_fail whatever it stored; finite scores worse than
  −y_fail are clipped to it. Failed, cancelled, pending and running trials, absent rows, and
  completed trials without a value on a split are missing: excluded and counted. A cell whose
  median is the failure score never trained; an arm with no trained run is ``never_trained`` and
  has no landscape figure: failure is never robustness.
- **Seed-wise figures.** The landscape figures (share of the grid reaching the target, lr width,
  q(k), lr sensitivity, win probability, probability of improvement) are computed on each seed's
  grid — one run per configuration, the paper's protocol — and averaged over seeds, so no anchor
  is chosen across seeds and there is no winner's curse. Their intervals are t intervals over
  seeds (jackknife standard errors), given from ``MIN_INTERVAL_SEEDS`` (8) seeds.
- **Choose on validation, report on the split.** The peak is the cell with the best validation
  median, reported by its median on ``split``; q(k) and win probabilities choose on validation
  within each seed's grid. Ties on validation are one random choice: the mean of the tied cells.
- **JSON.** The models never hold NaN or inf: those are None.

The package imports lazily: ``studies.metrics.models`` and ``MetricsError`` need only pydantic,
so the HTTP client and the service can import them without numpy, pandas or scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studies.errors import (
        ComparisonError as ComparisonError,
    )
    from studies.errors import (
        GridError as GridError,
    )
    from studies.errors import (
        MetricsError as MetricsError,
    )
    from studies.metrics._arm import MIN_INTERVAL_SEEDS as MIN_INTERVAL_SEEDS
    from studies.metrics._cells import (
        DEFAULT_CONFIDENCE as DEFAULT_CONFIDENCE,
    )
    from studies.metrics._cells import (
        CellTable as CellTable,
    )
    from studies.metrics._cells import (
        cell_table as cell_table,
    )
    from studies.metrics._cells import (
        cell_tables as cell_tables,
    )
    from studies.metrics._grid import ORIENTATION as ORIENTATION
    from studies.metrics._grid import GridAxes as GridAxes
    from studies.metrics._report import (
        DEFAULT_TARGET as DEFAULT_TARGET,
    )
    from studies.metrics._report import (
        aggregate_robustness as aggregate_robustness,
    )
    from studies.metrics._report import (
        default_pairs as default_pairs,
    )
    from studies.metrics._report import (
        sensitivity_report as sensitivity_report,
    )
    from studies.metrics.models import DEFAULT_KS as DEFAULT_KS
    from studies.metrics.models import METRICS_VERSION as METRICS_VERSION
    from studies.metrics.models import VerdictSpec as VerdictSpec

_WHERE = {
    "DEFAULT_KS": "models",
    "MIN_INTERVAL_SEEDS": "_arm",
    "DEFAULT_CONFIDENCE": "_cells",
    "CellTable": "_cells",
    "cell_table": "_cells",
    "cell_tables": "_cells",
    "ComparisonError": "studies.errors",
    "GridError": "studies.errors",
    "MetricsError": "studies.errors",
    "ORIENTATION": "_grid",
    "GridAxes": "_grid",
    "DEFAULT_TARGET": "_report",
    "aggregate_robustness": "_report",
    "default_pairs": "_report",
    "sensitivity_report": "_report",
    "METRICS_VERSION": "models",
    "VerdictSpec": "models",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'studies.metrics' has no attribute {name!r}")
    where = _WHERE[name]
    module = where if where.startswith("studies.") else f"studies.metrics.{where}"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
