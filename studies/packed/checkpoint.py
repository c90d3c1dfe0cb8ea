"""A pack's state as one typed object (``PackState``), and where its checkpoints live.

``PackState`` is everything a pack's next step reads: stacked weights and BatchNorm statistics,
optimizer moments, each member's data-order generator, the divergence ceilings and which members
still train, the plateau members' schedulers, the global RNG, and each member's record (epochs,
status, result once finished). The pack trains on it directly (``trainer._Pack.state``), so a
checkpoint is that object written whole (``save``) and a resume is that object read back (``load``):
no field is copied in or out by hand. η and β of the other schedules are functions of the step
(``studies.schedules``) and are not saved.

A pack saves at a cadence (``trainer.CHECKPOINT_SECONDS``, at epoch boundaries) to
``<data_dir>/packs/<study>-<plan>/``, one file per pack named by the hash of its members' keys;
the write is atomic (a temporary file in the same folder, then ``os.replace``), so a kill
mid-write leaves the previous file. The file ends with the SHA-256 of what precedes it: a file
damaged on disk (flipped bytes that ``torch.load`` would read without complaint, training every
member from garbage) is not resumed. A save that fails (a full disk) leaves no temporary file;
the pack trains on without it (``trainer``), as a checkpoint only saves work.

A relaunched executor calls ``claim`` with the trials still pending: each checkpoint holding one of
them is resumed as it was packed (its finished members are not delivered twice), the other pending
trials are packed afresh. The file is deleted when its pack has finished. A file of another format,
plan or pack is ignored (the pack starts afresh).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..results import EpochRecord, TrialKey, TrialResult, TrialStatus
from ..training import TrialLog, TrialPlan

SUFFIX = ".pack.pt"
FORMAT = 3  # 3: a checksum trailer; 2: linear weights stored (K, out, in); 1: stored them (K, in, out)
TRAILER = b"demonpk3"  # the file's last bytes, after the SHA-256 of everything before it
_DIGEST = hashlib.sha256().digest_size
_log = logging.getLogger(__name__)


@dataclass
class PackState:
    """A pack's whole training state (members in the pack's order, see ``trainer``)."""

    plan: str  # ``plan_digest`` of the plan it trains
    keys: list[str]  # the members' key tokens
    params: list[torch.Tensor]  # stacked weights, (K, ...) each
    running: dict[int, list[torch.Tensor]]  # BatchNorm2d layer index → [(K, C) mean, (K, C) var]
    moments: list[list[torch.Tensor]]  # optimizer state: [first moments, second moments], like params
    generators: list[torch.Generator]  # each member's data order
    logs: list[TrialLog]  # each member's epochs and status
    active: torch.Tensor  # (K,) bool: still training
    ceiling: torch.Tensor  # (K,) float64: the divergence ceilings
    epoch: int = 0  # epochs done
    step: int = 0  # optimizer steps done
    elapsed: float = 0.0  # training seconds before this process (a resumed pack's earlier runs)
    resumed_from: int = 0  # the epoch a resumed pack started from (recorded in its results)
    plateaus: dict[int, dict[str, Any]] = field(default_factory=dict)  # ``MemberSchedules.state_dict``
    results: dict[int, TrialResult] = field(default_factory=dict)  # finished members' results
    rng: torch.Tensor = field(default_factory=torch.get_rng_state)
    format: int = FORMAT

    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically: a kill leaves either the old file or the new one."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["generators"] = [g.get_state() for g in self.generators]
        fields["logs"] = [_encode_log(log) for log in self.logs]
        fields["results"] = {member: json.dumps(r.to_dict()) for member, r in self.results.items()}
        buffer = io.BytesIO()
        torch.save(fields, buffer)
        payload = buffer.getbuffer()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(payload)
                handle.write(hashlib.sha256(payload).digest() + TRAILER)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)  # a full disk keeps no partial file
            raise

    @classmethod
    def load(cls, path: Path, device: torch.device | str = "cpu") -> PackState | None:
        """The state saved at ``path``, or None when there is none or it cannot be used (damaged:
        its checksum differs; unreadable; another format): the pack then starts afresh."""
        payload, formats = _verified(path)
        if payload is None:
            return None
        try:
            raw: dict[str, Any] = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
        except Exception:  # unreadable (another torch's pickle): start afresh
            raw = {}
        if not isinstance(raw, dict) or raw.get("format") not in formats:
            _log.warning("pack checkpoint %s is of another format or unreadable: the pack starts afresh", path)
            return None
        raw["format"] = FORMAT  # a format-2 file holds the same fields; saved again, it gets the trailer
        raw["generators"] = [_generator(state) for state in raw["generators"]]
        raw["logs"] = [
            _decode_log(item, TrialKey.from_token(t)) for item, t in zip(raw["logs"], raw["keys"], strict=True)
        ]
        raw["results"] = {int(m): TrialResult.from_dict(json.loads(r)) for m, r in raw["results"].items()}
        raw["plateaus"] = {int(m): p for m, p in raw["plateaus"].items()}
        raw["running"] = {int(i): list(pair) for i, pair in raw["running"].items()}
        raw["rng"] = raw["rng"].cpu()
        return cls(**raw)

    def trial_keys(self) -> list[TrialKey]:
        """The members' keys, in the pack's order."""
        return [TrialKey.from_token(token) for token in self.keys]

    def open_keys(self) -> set[TrialKey]:
        """The members still without a result."""
        return {log.key for log in self.logs if log.status is None}


def _verified(path: Path) -> tuple[bytes | None, tuple[int, ...]]:
    """The checkpoint's payload (what ``torch.save`` wrote) and the formats it may hold: None when
    there is no file or its SHA-256 differs (damaged: said in the log). A file without the trailer is
    the previous release's (format 2, the same fields without a checksum: a study running through an
    upgrade resumes its packs rather than training them again), or a truncated file, which does not
    unpickle."""
    try:
        data = path.read_bytes()
    except OSError:
        return None, ()
    if not data.endswith(TRAILER):
        return data, (2,)
    payload, digest = data[: -_DIGEST - len(TRAILER)], data[-_DIGEST - len(TRAILER) : -len(TRAILER)]
    if hashlib.sha256(payload).digest() != digest:
        _log.warning("pack checkpoint %s is damaged (its checksum differs): the pack starts afresh", path)
        return None, ()
    return payload, (FORMAT,)


def _encode_log(log: TrialLog) -> dict[str, Any]:
    status = log.status.value if log.status is not None else None
    return {"status": status, "epochs": [list(dataclasses.astuple(e)) for e in log.epochs]}


def _decode_log(item: dict[str, Any], key: TrialKey) -> TrialLog:
    epochs = [EpochRecord(int(e[0]), *map(float, e[1:])) for e in item["epochs"]]
    status = TrialStatus(item["status"]) if item["status"] is not None else None
    return TrialLog(key, epochs, status)


def _generator(state: torch.Tensor) -> torch.Generator:
    generator = torch.Generator()
    generator.set_state(state.cpu())
    return generator


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
        state = PackState.load(path)
        if state is None:
            continue
        keys = state.trial_keys()
        if not state.open_keys() & wanted:
            path.unlink(missing_ok=True)
            continue
        if taken & set(keys):  # overlaps a pack already claimed (should not happen): run it afresh
            continue
        resumed.append(keys)
        taken |= set(keys)
    return resumed, [key for key in pending if key not in taken]
