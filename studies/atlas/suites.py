"""The atlas's suites: which workloads, which comparisons, which grid, and the study spec of each cell.

An atlas cell is one (workload, optimizer family) study. A *family* is a Demon arm with every
baseline it is compared against, run as one study on one grid and one set of seeds:

- ``sgdm``: ``demon_sgdm`` against SGDM with no schedule, step, cosine and linear lr decay;
- ``adam``: ``demon_adam`` against Adam with no schedule, step and cosine lr decay.

So the issue's seven *comparisons* (Demon SGDM vs SGDM {none, step, cosine, linear}, Demon Adam vs
Adam {none, step, cosine}) are the seven (Demon, baseline) pairs of these two studies per workload.
Running the Demon arm once per family instead of once per comparison saves 3 of 14 arm-grids per
workload, and pairs every comparison on the very same Demon trials and seeds (the paired bootstrap's
premise). The grid is the paper's shape: 11 log-spaced lrs (per workload and family, chosen by
``studies.atlas.ranges``) × the paper's 6 β_init (0.7 … 0.95).

Suites:

- ``cpu``: everything this 2-core machine trains (``CPU_WORKLOADS``), packed. Each workload states
  its epochs and batch size and, where the budget forced one, what was cut (``cut``).
- ``paper``: the three Fig. 2 studies (``studies/examples/paper_fig2_*.yaml``): their own arms, grid
  and epochs, on a GPU, with the datasets under the data dir.
- ``smoke``: two tiny ``synthetic_family`` problems, three arms per family and a 3 × 2 grid, one
  epoch: the whole machinery in seconds, for the tests and a first try.

A cell's study spec (``cell_spec``) is a pure function of the cell and its seeds; ``cell_key`` hashes
everything but the seeds, so an atlas with more seeds, or another subset of workloads, finds and
reuses the studies that already exist (``service.atlas``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studies.vocab.arms import arm

SUITES = ("cpu", "paper", "smoke")
DEFAULT_SEEDS = 8
MIN_SEEDS = 8
BETAS = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
LR_POINTS = 11
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sgdm": ("demon_sgdm", ("sgdm_none", "sgdm_step", "sgdm_cosine", "sgdm_linear")),
    "adam": ("demon_adam", ("adam_none", "adam_step", "adam_cosine")),
}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PAPER_SPECS = (
    "paper_fig2_wrn_stl10.yaml",
    "paper_fig2_vgg16_cifar100.yaml",
    "paper_fig2_resnet20_cifar10_adam.yaml",
)


@dataclass(frozen=True)
class AtlasWorkload:
    """One workload of a suite: its parameters, budget, and lr range per family (min, max)."""

    label: str
    workload: str
    params: dict[str, Any]
    epochs: int
    batch_size: int
    lr: dict[str, tuple[float, float]]
    cut: str = ""
    group: str = ""


@dataclass(frozen=True)
class AtlasCell:
    """One study of an atlas: a workload and a family (its arms), or a paper spec taken as it is."""

    suite: str
    label: str
    family: str
    base_spec: dict[str, Any] = field(default_factory=dict)

    @property
    def demon_arm(self) -> str:
        return next(a for a in self.arms if arm(a).demon)

    @property
    def arms(self) -> list[str]:
        return [a if isinstance(a, str) else a["name"] for a in self.base_spec["arms"]]

    @property
    def baselines(self) -> list[str]:
        return [a for a in self.arms if not arm(a).demon]

    def key(self) -> str:
        """A hash of everything but the seeds: equal keys, interchangeable trials."""
        canonical = json.dumps({k: v for k, v in self.base_spec.items() if k not in ("seeds", "name")}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _family(label: str, family: str) -> str:
    return f"{label} · {family}"


def _synthetic(condition: float, noise: float, lr: dict[str, tuple[float, float]]) -> AtlasWorkload:
    return AtlasWorkload(
        label=f"synthetic κ={condition:g} noise={noise:g}",
        workload="synthetic_family",
        params={"condition": condition, "label_noise": noise},
        epochs=10,
        batch_size=32,
        lr=lr,
        group="synthetic_family",
    )


# lr ranges: bench/atlas_ranges.py's output (the rule of studies.atlas.ranges), see docs/atlas.md.
CPU_WORKLOADS: tuple[AtlasWorkload, ...] = (
    AtlasWorkload(
        label="digits_mlp",
        workload="digits_mlp",
        params={},
        epochs=10,
        batch_size=32,
        lr={"sgdm": (0.001, 1.77828), "adam": (1.77828e-05, 0.177828)},
    ),
    AtlasWorkload(
        label="digits_cnn",
        workload="digits_cnn",
        params={"channels": 4},
        epochs=2,
        batch_size=64,
        lr={"sgdm": (0.01, 1.77828), "adam": (0.0001, 0.316228)},
        cut="4 channels (not 16), 2 epochs (not 10), batch 64 (not 32): "
        "packed grouped convolutions cost ~40 ms per trial-epoch here",
    ),
    AtlasWorkload(
        label="wine_mlp",
        workload="wine_mlp",
        params={},
        epochs=10,
        batch_size=16,
        lr={"sgdm": (0.000316228, 3.16228), "adam": (0.000316228, 3.16228)},
    ),
    AtlasWorkload(
        label="breast_cancer_mlp",
        workload="breast_cancer_mlp",
        params={},
        epochs=10,
        batch_size=32,
        lr={"sgdm": (0.000316228, 3.16228), "adam": (0.0001, 1.0)},
    ),
    _synthetic(1.0, 0.0, {"sgdm": (0.000177828, 1.77828), "adam": (3.16228e-05, 0.316228)}),
    _synthetic(1000.0, 0.0, {"sgdm": (0.00316228, 31.6228), "adam": (3.16228e-05, 0.316228)}),
    _synthetic(1.0, 0.2, {"sgdm": (3.16228e-05, 0.316228), "adam": (1.77828e-06, 0.0177828)}),
    _synthetic(1000.0, 0.2, {"sgdm": (0.00316228, 31.6228), "adam": (3.16228e-05, 0.316228)}),
)


SMOKE_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sgdm": ("demon_sgdm", ("sgdm_none", "sgdm_step")),
    "adam": ("demon_adam", ("adam_none",)),
}
SMOKE_WORKLOADS: tuple[AtlasWorkload, ...] = tuple(
    AtlasWorkload(
        label=f"tiny κ={condition:g}",
        workload="synthetic_family",
        params={"condition": condition, "n_train": 64, "features": 4, "classes": 3, "hidden": 8},
        epochs=1,
        batch_size=16,
        lr={"sgdm": (0.01, 1.0), "adam": (0.001, 0.1)},
        group="synthetic_family",
    )
    for condition in (1.0, 100.0)
)


def cpu_cell(workload: AtlasWorkload, family: str, suite: str = "cpu") -> AtlasCell:
    """The cell of ``workload`` and ``family`` in the cpu (or smoke) suite."""
    demon, baselines = (SMOKE_FAMILIES if suite == "smoke" else FAMILIES)[family]
    low, high = workload.lr[family]
    smoke = suite == "smoke"
    spec = {
        "workload": workload.workload,
        "workload_params": dict(workload.params),
        "arms": [demon, *baselines],
        "lr": {"min": low, "max": high, "num": 3 if smoke else LR_POINTS},
        "beta_init": [0.8, 0.9] if smoke else list(BETAS),
        "epochs": workload.epochs,
        "batch_size": workload.batch_size,
        "metric": "error",
        "split": "test",
        "execution": {"mode": "packed"},
    }
    return AtlasCell(suite=suite, label=workload.label, family=family, base_spec=spec)


def paper_cells() -> list[AtlasCell]:
    """The three Fig. 2 studies, as their example specs say (seeds set by the atlas)."""
    from ..spec import read_spec_data

    cells = []
    for name in PAPER_SPECS:
        spec = dict(read_spec_data((EXAMPLES / name).read_text()))
        spec.pop("name", None)
        names = [a if isinstance(a, str) else a["name"] for a in spec["arms"]]
        family = "adam" if any(arm(a).demon and arm(a).kind == "adam" for a in names) else "sgdm"
        cells.append(AtlasCell(suite="paper", label=str(spec["workload"]), family=family, base_spec=spec))
    return cells


def suite_cells(suite: str, labels: list[str] | None = None) -> list[AtlasCell]:
    """Every cell of ``suite`` (``labels``: only these workloads), in a fixed order."""
    if suite not in SUITES:
        raise ValueError(f"suite: unknown suite {suite!r}; valid choices: {', '.join(SUITES)}")
    if suite == "paper":
        cells = paper_cells()
    elif suite == "smoke":
        cells = [cpu_cell(w, family, "smoke") for w in SMOKE_WORKLOADS for family in SMOKE_FAMILIES]
    else:
        cells = [cpu_cell(w, family) for w in CPU_WORKLOADS for family in FAMILIES]
    known = list(dict.fromkeys(c.label for c in cells))
    if labels is not None:
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise ValueError(f"workloads: unknown in suite {suite!r}: {unknown}; valid choices: {', '.join(known)}")
        cells = [c for c in cells if c.label in labels]
    return cells


def suite_labels(suite: str) -> list[str]:
    """The workload labels of ``suite``, in order."""
    return list(dict.fromkeys(c.label for c in suite_cells(suite)))


def cell_spec(cell: AtlasCell, seeds: list[int]) -> dict[str, Any]:
    """The study spec of ``cell`` on ``seeds``: named after the atlas cell and its seeds."""
    return {
        "name": f"atlas {cell.suite} · {_family(cell.label, cell.family)} · seeds {seed_label(seeds)}",
        **cell.base_spec,
        "seeds": list(seeds),
    }


def seed_label(seeds: list[int]) -> str:
    """``0-7`` for a run of seeds, else the list."""
    ordered = sorted(seeds)
    if ordered and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}" if len(ordered) > 1 else str(ordered[0])
    return ",".join(str(s) for s in ordered)
