"""One estimate across workloads: a random-effects summary with the Hartung–Knapp–Sidik–Jonkman interval.

Each workload's study gives its primary Δ (Demon against one baseline) with an interval from the
study's paired seed bootstrap. The question "across workloads, is Demon less sensitive?" has two
sources of uncertainty: the seeds inside each study (the study intervals) and which workloads were
picked (the Δ really differs from workload to workload). A fixed-effect mean, or a bootstrap over
seeds alone, ignores the second and is overconfident as soon as workloads disagree.

Model (DerSimonian & Laird 1986): ``Δ̂_w = μ + u_w + e_w``, ``u_w ~ N(0, τ²)`` between workloads,
``e_w ~ N(0, s_w²)`` within (``s_w`` from the study's interval: its width over ``2 z``, at the
interval's level). μ is estimated with weights ``1/(s_w² + τ̂²)`` and τ² by Paule–Mandel (statsmodels
``combine_effects(method_re="pm")``; preferred to DerSimonian–Laird by Veroniki et al. 2016). The
interval is the Hartung–Knapp–Sidik–Jonkman one (Hartung & Knapp 2001; Sidik & Jonkman 2002) with
its scale truncated at 1 (Röver, Knapp & Friede 2015): ``μ̂ ± t_{k−1} · sqrt(max(1, q) · V)``. With
few workloads (an atlas has 4–8) the usual ``μ̂ ± 1.96 sqrt(V)`` is known to under-cover badly
(IntHout, Ioannidis & Borm 2014); HKSJ's t quantile and empirical scale keep it near its level, and
``tests/studies/test_atlas_pooling.py`` measures that by simulation (``coverage_table``).

What the estimate is: the mean Δ over a population of workloads like these. The workloads are not a
random sample of all problems, so read it as "on problems like these", and read τ (the spread of
the true Δ between workloads) beside it: a pooled Δ > 0 with a large τ still leaves workloads where
Demon is more sensitive. With one workload there is no pooling (``status: "single_workload"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .models import PooledEstimate

DEFAULT_LEVEL = 0.95
METHOD = "random effects (Paule-Mandel tau^2), Hartung-Knapp-Sidik-Jonkman interval with scale >= 1, t(k-1)"


def _pooled(
    status: str,
    k: int,
    level: float,
    estimate: float | None = None,
    half: float = 0.0,
    *,
    tau: float | None = None,
    i2: float | None = None,
) -> PooledEstimate:
    """The summary as the atlas serves it (``models.PooledEstimate``): the estimate ± ``half`` at ``level``."""
    low, high = (None, None) if estimate is None else (estimate - half, estimate + half)
    return PooledEstimate(
        status=status, k=k, estimate=estimate, low=low, high=high, level=level, tau=tau, i2=i2, method=METHOD
    )


def se_from_interval(low: float, high: float, level: float, floor: float = 0.0) -> float:
    """The standard error a symmetric normal interval ``[low, high]`` at ``level`` implies (at least
    ``floor``: a degenerate bootstrap interval is not certainty, only the figure's resolution)."""
    from scipy import stats  # imported on use: submitting an atlas needs no scipy.stats (~3 s cold)

    z = float(stats.norm.ppf(0.5 + level / 2))
    return max((high - low) / (2 * z), floor)


def pool(
    estimates: Sequence[float] | np.ndarray[Any, Any],
    ses: Sequence[float] | np.ndarray[Any, Any],
    level: float = DEFAULT_LEVEL,
) -> PooledEstimate:
    """The random-effects summary of ``estimates`` with standard errors ``ses`` (see the module)."""
    effects = np.asarray(estimates, dtype=float)
    errors = np.asarray(ses, dtype=float)
    if effects.shape != errors.shape:
        raise ValueError("estimates and ses must have the same length")
    if np.any(~np.isfinite(effects)) or np.any(~np.isfinite(errors)) or np.any(errors <= 0):
        raise ValueError("estimates must be finite and standard errors finite and > 0")
    k = int(effects.size)
    if k == 0:
        return _pooled("no_estimates", 0, level)
    from scipy import stats

    if k == 1:
        half = float(stats.norm.ppf(0.5 + level / 2)) * float(errors[0])
        value = float(effects[0])
        return _pooled("single_workload", 1, level, value, half)
    from statsmodels.stats.meta_analysis import combine_effects

    result = combine_effects(effects, errors**2, method_re="pm", use_t=True)
    estimate = float(result.mean_effect_re)
    scale = max(1.0, float(result.scale_hksj_re))
    half = float(stats.t.ppf(0.5 + level / 2, k - 1)) * math.sqrt(scale * float(result.var_eff_w_re))
    tau2 = max(0.0, float(result.tau2))
    i2 = max(0.0, float(result.i2)) if math.isfinite(float(result.i2)) else None  # Higgins' I², floored at 0
    return _pooled("ok", k, level, estimate, half, tau=math.sqrt(tau2), i2=i2)


def coverage_table(
    ks: Sequence[int],
    taus: Sequence[float],
    *,
    reps: int = 2000,
    seeds: int = 8,
    mu: float = 0.1,
    se_range: tuple[float, float] = (0.02, 0.08),
    skew: bool = False,
    level: float = DEFAULT_LEVEL,
    rng_seed: int = 0,
) -> list[dict[str, float]]:
    """Coverage of ``pool``'s interval by simulation, per (k workloads, τ).

    Each replicate draws k true Δs ~ N(μ, τ²), standard errors uniform on ``se_range``, observed
    Δ̂ = true + error (normal, or with ``skew`` a centred, scaled χ²₃: the skewed, bounded shapes a
    bootstrap of a share of cells gives) and *estimated* standard errors s·sqrt(χ²_{seeds−1}/(seeds−1))
    (a study's interval is itself estimated from ``seeds`` seeds). It reports the share of intervals
    holding μ, and that share's binomial standard error."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for k in ks:
        for tau in taus:
            hits = 0
            for _ in range(reps):
                truth = mu + tau * rng.standard_normal(k)
                se = rng.uniform(*se_range, size=k)
                noise = (rng.chisquare(3, size=k) - 3) / math.sqrt(6) if skew else rng.standard_normal(k)
                observed = truth + se * noise
                estimated = se * np.sqrt(rng.chisquare(seeds - 1, size=k) / (seeds - 1))
                pooled = pool(observed, estimated, level)
                hits += int(pooled.low is not None and pooled.low <= mu <= (pooled.high or -math.inf))
            share = hits / reps
            rows.append({"k": k, "tau": tau, "coverage": share, "binomial_se": math.sqrt(share * (1 - share) / reps)})
    return rows
