"""What a study ran on, so that it can be reproduced: software versions, the project's git commit,
the CPU and GPU models of the machines used, and the seeds.

- ``software()``: demonlab's version and git commit (when it runs from a git checkout), Python, torch,
  Ray, Optuna, NumPy and the OS. Versions come from the installed packages' metadata, so nothing
  heavy is imported.
- ``hardware(device)``: this machine's CPU model and core count, and the GPU model behind ``device``
  (each trial records it, so the study knows every node it used, not only the driver's).
- ``study_environment(...)``: the record kept with a study (``GET /studies/{id}``, the Parquet export's
  metadata, ``metrics.json`` of ``demonlab run``).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("demonlab", "torch", "ray", "optuna", "numpy")
ROOT = Path(__file__).resolve().parent.parent


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit(root: Path = ROOT) -> str | None:
    """The commit of the checkout the code runs from (with ``+dirty`` when it has local changes);
    ``None`` for an installed wheel or where git is missing."""
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit or None


@functools.cache
def software() -> dict[str, Any]:
    """Versions of the project and of what it trains and schedules with (cached per process)."""
    versions = {name: _version(name) for name in PACKAGES}
    return {
        "demonlab": versions.pop("demonlab"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        **versions,
        "os": platform.platform(),
    }


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_name(device: str) -> str | None:
    """The model of the GPU behind a torch ``device`` string ("cuda", "cuda:1"); ``None`` for the CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    try:
        return str(torch.cuda.get_device_name(torch.device(device)))
    except (RuntimeError, AssertionError, ValueError):
        return None


def gpu_names() -> list[str]:
    """Every GPU this process can see (none without CUDA; torch is imported only if already loaded)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    return [str(torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]


def hardware(device: str = "cpu") -> dict[str, Any]:
    """This machine: host name, CPU model and logical cores, and the GPU model of ``device``."""
    return {"host": platform.node(), "cpu": cpu_model(), "cpus": os.cpu_count(), "gpu": gpu_name(device)}


def nodes_used(trials: Iterable[tuple[str | None, str | None, Mapping[str, Any] | None]]) -> list[dict[str, Any]]:
    """The machines trials ran on, from each trial's (node, device, extra): one entry per node with its
    CPU model, the GPU models it used and its trial count, in node order."""
    nodes: dict[str, dict[str, Any]] = {}
    for node, device, extra in trials:
        hw = (extra or {}).get("hardware") or {}
        entry = nodes.setdefault(
            node or "unknown", {"node": node or "unknown", "cpu": hw.get("cpu"), "gpus": [], "devices": [], "trials": 0}
        )
        entry["trials"] += 1
        entry["cpu"] = entry["cpu"] or hw.get("cpu")
        if hw.get("gpu") and hw["gpu"] not in entry["gpus"]:
            entry["gpus"].append(hw["gpu"])
        if device and device not in entry["devices"]:
            entry["devices"].append(device)
    return [nodes[name] for name in sorted(nodes)]


def study_environment(spec: Any, nodes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The record kept with a study: software, the driver's machine, the nodes trials ran on (when
    known) and every seed (the trials' and, for search studies, the sampler's)."""
    search_seed = getattr(spec.search, "seed", None)
    return {
        "software": software(),
        "driver": hardware() | {"gpus": gpu_names()},
        "nodes": nodes or [],
        "seeds": {"trials": list(spec.seed_values), "search": search_seed},
    }
