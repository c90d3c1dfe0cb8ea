"""The Optuna samplers a search study may name (``search.sampler``), declared once.

The spec validates the name against this registry and the executors build the sampler with
``make_sampler``; Optuna is imported only then.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "Sampler", "make_sampler", "sampler_names"]


@dataclass(frozen=True)
class Sampler:
    """An Optuna sampler: its class in ``optuna.samplers`` and the keyword arguments we always pass."""

    name: str
    optuna_class: str
    doc: str
    options: dict[str, Any] = field(default_factory=dict)


SAMPLERS: dict[str, Sampler] = {
    s.name: s
    for s in (
        Sampler("tpe", "TPESampler", "tree-structured Parzen estimator (Optuna's default)"),
        Sampler("gp", "GPSampler", "Gaussian-process Bayesian optimisation"),
        Sampler("cmaes", "CmaEsSampler", "CMA evolution strategy", {"warn_independent_sampling": False}),
        Sampler("random", "RandomSampler", "independent uniform draws"),
        Sampler("qmc", "QMCSampler", "quasi-Monte Carlo (Sobol) points", {"warn_independent_sampling": False}),
    )
}
DEFAULT_SAMPLER = "tpe"


def sampler_names() -> list[str]:
    """Every valid sampler name."""
    return list(SAMPLERS)


def make_sampler(name: str, seed: int) -> Any:
    """Optuna's sampler called ``name``, seeded; ``ValueError`` listing the valid names otherwise."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid choices: {', '.join(SAMPLERS)}")
    import optuna

    entry = SAMPLERS[name]
    with warnings.catch_warnings():  # QMCSampler is "experimental": chosen on purpose, not worth a warning
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return getattr(optuna.samplers, entry.optuna_class)(seed=seed, **entry.options)
