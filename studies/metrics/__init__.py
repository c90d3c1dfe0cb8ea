"""Sensitivity metrics of METRICS.md, computed from per-seed trial scores on an lr × β_init grid.

What this is: pure functions from a frame of trial scores (one row per trial: ``arm``, ``lr``,
``beta_init``, ``seed``, ``status``, ``val``, ``test``) and the grid the study asked for
(``GridAxes``) to JSON-able results: the cell table, per-arm metrics, pair comparisons, a whole
report and a cross-study aggregate. What it is not: storage, HTTP or plotting (``studies.heatmaps``
draws). It imports numpy, pandas and scipy at load and Optuna lazily (incomplete grids only), so the
service can import it at start-up.

Conventions, everywhere in this package:

- **Orientation.** Raw values are the workload's lower-is-better units (error rate, loss,
  perplexity). Inside, every score is oriented higher-is-better: y = −value. A field named plainly
  (``mean``, ``median``, ``score``, ``val``, ``threshold``, ``without_replacement``) is oriented; a
  field named ``raw_*`` is the same quantity in raw units, for people (``raw_low = −high``).
  Differences and spreads (``std``, ε, ``margin``, widths, lr-sensitivity gaps, variances) carry no
  sign convention and appear once; a pair Δ is oriented so that positive means the first arm is better.
- **Failures.** A diverged trial scores −y_fail whatever it stored; finite scores worse than
  −y_fail are clipped to it. Failed, cancelled, pending and running trials, absent rows, and
  completed trials without a value on a split are missing: excluded and counted.
- **Cell score.** A cell's score is the median over its seeds (robust to the choice of y_fail);
  the peak, F_ε, widths, q(k), lr sensitivity, win probability and probability of improvement use
  cell medians. The variance decomposition uses cell means (an ANOVA decomposes means).
- **Choose on validation, report on the split.** The peak is the cell with the best validation
  median (ties: lowest lr, then lowest β_init), reported by its median on ``split`` ("test" by
  default). q(k) and win probabilities choose each draw's best on validation too; every other
  metric reads the ``split`` medians.
- **ε-good cells.** A cell is good when its ``split`` median is within ε of y*, the best cell
  median on the same split (``anchor``; ε absolute, or ε·|y*| when ``relative``). y* is *not* the
  ``split`` score of the cell chosen on validation: that anchor rewards an arm whose chosen peak
  generalises worse with a lower anchor, a looser threshold and a higher F_ε. Default ε = 0.01
  (one percentage point of error); ``sensitivity_report(eps="seed_spread")`` takes the pooled
  seed standard deviation at the arms' peak cells (the default for losses). Every ε-figure says
  which ε it used (``eps``, ``relative``, ``eps_source``).
- **Complete grids.** A cell is present with at least one result on validation and on ``split``.
  F_ε, widths, q(k), lr sensitivity and win probabilities need every cell and otherwise say
  ``status: "incomplete"``; the variance decomposition then switches to Optuna's fANOVA, says
  ``method: "optuna_fanova"`` and fills ``fanova_importance`` instead of the ANOVA's shares (the
  two are never reported under the same names). Other statuses: ``"ok"``, ``"undefined"`` (e.g. a
  one-lr grid has no width in decades).
- **Intervals, each with its level or its bound.** A cell's (and the peak's) interval is the order-statistic
  interval of its median over seeds, at the level it really has (1 − 2^(1−n) for n ≤ 5 seeds,
  ≥ 95% from 6; none for one seed: ``"too_few_seeds"``). Pair intervals are 95% percentile
  intervals of a **paired seed bootstrap** (``scipy.stats.bootstrap``, 2000 resamples by
  default): each replicate resamples the seed indices once, and every cell, both splits and both
  arms take those seeds ("resampling": "seeds, paired across cells, splits and arms"); under
  ``MIN_BOOTSTRAP_SEEDS`` (6) seeds there is no pair interval. They are conservative for some
  figures (Δ peak and the ε-good figures cover 98–100% in the simulation), so their 0.95 is
  reported as a bound, ``min_level``, never as an exact ``level`` (metrics version 3). Fixed
  random streams make results reproducible. ``tests/studies/test_metrics_coverage.py`` measures
  what each interval covers.
- **Δ orientation.** Every pair Δ is positive when the first arm is better. The shares of
  bootstrap replicates with Δ > 0, = 0 and < 0 are reported under those names; they are not a
  probability that the first arm is better. Probabilities are named and defined where reported
  (win probability against budget k; probability of improvement = Mann–Whitney U / (n·m)).
- **JSON.** ``to_dict()`` never holds NaN or inf: those are None.
"""

from __future__ import annotations

from studies.errors import ComparisonError, GridError, MetricsError
from studies.metrics._arm import (
    DEFAULT_EPS,
    DEFAULT_KS,
    ArmMetrics,
    ExpectedBest,
    GoodFraction,
    GoodLrWidth,
    GridCoverage,
    LrRun,
    LrSensitivity,
    Peak,
    VarianceShares,
    arm_metrics,
)
from studies.metrics._cells import DEFAULT_CONFIDENCE, CellTable, cell_table, cell_tables
from studies.metrics._grid import ORIENTATION, GridAxes
from studies.metrics._pair import (
    DEFAULT_PAIR_RESAMPLES,
    Delta,
    PairMetrics,
    ProbabilityOfImprovement,
    WinProbability,
    pair_metrics,
)
from studies.metrics._report import (
    METRICS_VERSION,
    SEED_SPREAD,
    aggregate_robustness,
    default_pairs,
    sensitivity_report,
)
from studies.metrics._resample import DEFAULT_LEVEL, MIN_BOOTSTRAP_SEEDS, RESAMPLING

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_EPS",
    "DEFAULT_KS",
    "DEFAULT_LEVEL",
    "DEFAULT_PAIR_RESAMPLES",
    "METRICS_VERSION",
    "MIN_BOOTSTRAP_SEEDS",
    "ORIENTATION",
    "RESAMPLING",
    "SEED_SPREAD",
    "ArmMetrics",
    "CellTable",
    "ComparisonError",
    "Delta",
    "ExpectedBest",
    "GoodFraction",
    "GoodLrWidth",
    "GridAxes",
    "GridCoverage",
    "GridError",
    "LrRun",
    "LrSensitivity",
    "MetricsError",
    "PairMetrics",
    "Peak",
    "ProbabilityOfImprovement",
    "VarianceShares",
    "WinProbability",
    "aggregate_robustness",
    "arm_metrics",
    "cell_table",
    "cell_tables",
    "default_pairs",
    "pair_metrics",
    "sensitivity_report",
]
