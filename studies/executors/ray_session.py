"""Connect to Ray: an existing cluster (``address``) or a local one started with our own temp dir.

Ray 2.60 turns token auth on by default and writes a token under the home directory, so the auth
mode is always set explicitly (``RAY_AUTH_MODE``), and a local Ray keeps its temp dir under the
project's data dir. Unix socket paths are limited to ~107 bytes, so a temp dir that would make them
too long is replaced by a short one under /tmp.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

MAX_TEMP_DIR_CHARS = 48


def ray_temp_dir(data_dir: str | Path) -> str:
    """``<data_dir>/ray`` when it is short enough for Ray's socket paths, else a short /tmp path."""
    wanted = Path(data_dir).resolve() / "ray"
    if len(str(wanted)) <= MAX_TEMP_DIR_CHARS:
        return str(wanted)
    digest = hashlib.sha1(str(wanted).encode()).hexdigest()[:10]
    return str(Path(tempfile.gettempdir()) / f"demonlab-ray-{digest}")


def ensure_ray(
    *,
    address: str | None = None,
    data_dir: str | Path = ".work",
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    auth_mode: str | None = None,
) -> dict[str, Any]:
    """Initialise Ray once per process and return its cluster resources.

    ``address`` None joins the cluster at ``RAY_ADDRESS`` when that is set (a Ray kept running
    across studies: no start-up per study), else starts a local Ray (no dashboard) under
    ``data_dir``; otherwise connects to ``address`` (``auto`` or ``host:port``). ``auth_mode``
    defaults to ``RAY_AUTH_MODE`` or ``disabled``.
    """
    import ray

    os.environ["RAY_AUTH_MODE"] = auth_mode or os.environ.get("RAY_AUTH_MODE") or "disabled"
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the new output engine prints even at verbose=0
    # Ctrl-C stops the run as it stops an in-process one (KeyboardInterrupt: exit 130, --out left
    # alone); Tune's own handler ended the run early and returned what it had as if complete.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # With Tune's file loggers off (we record results ourselves) its analysis warns on every trial.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            temp_dir = ray_temp_dir(data_dir)
            Path(temp_dir).mkdir(parents=True, exist_ok=True)
            ray.init(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                _temp_dir=temp_dir,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
    resources: dict[str, Any] = ray.cluster_resources()
    return resources


class InfeasibleResources(ValueError):
    """No node of the Ray cluster can ever give one trial what the spec asks for."""


RESOURCE_NAMES = {"cpu": "CPU", "gpu": "GPU"}


def workers_for(resources: dict[str, float], node_id: str | None = None) -> int:
    """How many trials (or packs) of ``resources`` the cluster's alive nodes (or the node
    ``node_id``) run at once: on each node, the fewest of what it has over what one asks, for every
    resource asked (CPUs, GPUs, custom); summed over the nodes (a custom resource only one node has
    bounds it to that node)."""
    import ray

    wanted = {RESOURCE_NAMES.get(k, k): v for k, v in resources.items() if v > 0}
    slots = 0
    for node in ray.nodes():
        if not node.get("Alive") or (node_id is not None and node.get("NodeID") != node_id):
            continue
        have = node.get("Resources", {})
        slots += int(min((have.get(name, 0.0) / amount for name, amount in wanted.items()), default=1.0) + 1e-9)
    return max(1, slots)


def check_feasible(request: dict[str, float]) -> None:
    """Raise ``InfeasibleResources`` unless some alive node has every resource one trial asks for.

    Tune would otherwise wait for such a trial forever: a spec asking for GPUs from a cluster without
    any must fail at once, with the cluster's nodes in the message.
    """
    import ray

    wanted = {RESOURCE_NAMES.get(k, k): v for k, v in request.items() if v > 0}
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for node in nodes:
        have = node.get("Resources", {})
        if all(have.get(name, 0.0) >= amount for name, amount in wanted.items()):
            return
    described = "; ".join(
        f"{n.get('NodeManagerAddress', '?')}: "
        + ", ".join(f"{k}={v:g}" for k, v in sorted(n.get("Resources", {}).items()) if not k.startswith("node:"))
        for n in nodes
    )
    asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
    raise InfeasibleResources(
        f"each trial asks for {asked}, but no node of the Ray cluster has that ({described or 'no nodes'}); "
        "add such workers or lower the spec's resources"
    )


def shutdown_ray() -> None:
    """Shut Ray down if this process started or joined it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
