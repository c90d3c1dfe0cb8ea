"""Pack checkpoints: a pack's whole training state at an epoch boundary, so a killed pack resumes.

A pack saves after every epoch (``trainer._Pack.save``) to ``<data_dir>/packs/<study>-<plan>/``,
one file per pack named by the hash of its members' keys; the write is atomic (a temporary file in
the same folder, then ``os.replace``), so a kill mid-write leaves the previous epoch's file. The
file holds everything the next epoch reads: stacked weights and BatchNorm statistics, optimizer
state, the η/β tables and plateau schedulers, each member's data-order generator, the divergence
ceilings, and each member's epochs and status (a finished member's result too). Resuming from it
gives the uninterrupted pack's results exactly (``tests/studies/test_packed_checkpoint.py``).

A relaunched executor calls ``claim`` with the trials still pending: each checkpoint holding one of
them is resumed as it was packed (its finished members are not delivered twice), the other pending
trials are packed afresh. The file is deleted when its pack has finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..results import TrialKey
from ..runner import TrialPlan

SUFFIX = ".pack.pt"


def plan_digest(plan: TrialPlan) -> str:
    """A short hash of what a pack's training depends on besides its keys (not where data lives)."""
    fields = dataclasses.asdict(plan)
    fields.pop("data_dir", None)
    fields.pop("threads", None)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


def checkpoint_dir(data_dir: str | Path, study_id: str, plan: TrialPlan) -> Path:
    """Where a study's pack checkpoints live: one folder per study and plan."""
    return Path(data_dir).resolve() / "packs" / f"{study_id}-{plan_digest(plan)}"


def checkpoint_path(directory: str | Path, keys: Sequence[TrialKey]) -> Path:
    """The checkpoint file of the pack of ``keys`` (order-independent)."""
    digest = hashlib.sha256("\n".join(sorted(k.token() for k in keys)).encode()).hexdigest()[:20]
    return Path(directory) / f"pack-{digest}{SUFFIX}"


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a kill leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none or it cannot be read (then ignored)."""
    try:
        state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # unreadable (another version, a damaged disk): start the pack afresh
        return None
    return state


def claim(directory: str | Path, pending: Sequence[TrialKey]) -> tuple[list[list[TrialKey]], list[TrialKey]]:
    """Split ``pending`` into packs to resume (each as checkpointed, in its order) and the rest.

    A checkpoint is resumed when one of its unfinished members is pending; one with none is stale
    (its pack finished, or its results all reached the sink) and is deleted.
    """
    folder = Path(directory)
    wanted = set(pending)
    resumed: list[list[TrialKey]] = []
    taken: set[TrialKey] = set()
    for leftover in folder.glob(f".*{SUFFIX}.*.tmp") if folder.is_dir() else []:
        leftover.unlink(missing_ok=True)  # a write cut short by a kill (claim runs before any pack)
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        state = load(path)
        if state is None:
            continue
        keys = [TrialKey.from_token(token) for token in state["keys"]]
        open_keys = {key for key, member in zip(keys, state["members"], strict=True) if member["status"] is None}
        if not open_keys & wanted:
            path.unlink(missing_ok=True)
            continue
        if taken & set(keys):  # overlaps a pack already claimed (should not happen): run it afresh
            continue
        resumed.append(keys)
        taken |= set(keys)
    return resumed, [key for key in pending if key not in taken]
