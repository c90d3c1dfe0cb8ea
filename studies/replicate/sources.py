"""Where a replication's trials come from, and where its outputs go.

- ``from_export``: the service's Parquet export of a study (``GET /studies/{id}/export.parquet``),
  whose schema metadata (key ``demonlab``) carries the study's id, status and spec.
- ``from_files``: a ``demonlab run`` output (its directory, or its trials.csv / trials.parquet)
  with the spec it ran.
- ``write_report``: replication.json, replication.png and replication.svg into a directory.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .render import write_figure
from .report import ReplicationReport, StudyInfo

__all__ = ["EXPORT_METADATA_KEY", "from_export", "from_files", "write_report"]

EXPORT_METADATA_KEY = b"demonlab"  # as service.analysis writes it
COLUMNS = ("arm", "lr", "beta_init", "seed", "status", "test_metric")


def from_export(parquet: bytes) -> tuple[pd.DataFrame, StudyInfo]:
    """The trials and the study of a service export (Parquet bytes)."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(parquet))
    raw = (table.schema.metadata or {}).get(EXPORT_METADATA_KEY)
    if raw is None:
        raise ValueError("the export carries no study metadata (not a demonlab Parquet export)")
    about = json.loads(raw)
    study = StudyInfo.from_spec(str(about["study_id"]), str(about["status"]), dict(about["spec"]))
    return _checked(table.to_pandas(), "the export"), study


def from_files(path: Path, spec_path: Path | None) -> tuple[pd.DataFrame, StudyInfo]:
    """The trials of a ``demonlab run`` output (a directory or its trials file) and the spec it ran."""
    from ..spec import load_spec

    if spec_path is None:
        raise ValueError(f"--spec: give the spec {path} ran (a local run's files do not carry it)")
    trials_file = path
    if path.is_dir():
        trials_file = next((path / n for n in ("trials.parquet", "trials.csv") if (path / n).exists()), path)
    if trials_file.suffix == ".parquet":
        frame = pd.read_parquet(trials_file)
    elif trials_file.suffix == ".csv":
        frame = pd.read_csv(trials_file)
    else:
        raise ValueError(f"{path}: expected a demonlab run directory, trials.csv or trials.parquet")
    loaded = load_spec(spec_path)
    ran = path / "metrics.json" if path.is_dir() else path.parent / "metrics.json"
    if ran.exists():  # the run says which study it was: the spec given must be that one
        about = json.loads(ran.read_text()).get("study", {})
        for field, theirs in (("workload", about.get("workload")), ("name", about.get("name"))):
            if theirs is not None and theirs != getattr(loaded, field):
                raise ValueError(
                    f"--spec: {spec_path} has {field} {getattr(loaded, field)!r}, but {ran} says the run's "
                    f"was {theirs!r}: give the spec that run ran"
                )
    frame = _checked(frame, str(trials_file))
    unknown = sorted(set(frame["arm"].astype(str)) - {arm.name for arm in loaded.arms})
    if unknown:
        raise ValueError(f"--spec: {spec_path} has no arm {unknown}, which {trials_file} holds: give the spec it ran")
    _check_budget(frame, loaded, spec_path, trials_file)
    return frame, StudyInfo.from_spec(str(path), "completed", loaded.model_dump(mode="json"))


def _check_budget(frame: pd.DataFrame, spec: Any, spec_path: Path, trials_file: Path) -> None:
    """Refuse a spec whose budget is not the run's: its completed trials trained the spec's epochs, on
    seeds the spec has (the report states the spec's budget as the run's)."""
    if "epochs_done" in frame.columns:
        done = pd.to_numeric(frame.loc[frame["status"] == "completed", "epochs_done"], errors="coerce").dropna()
        other = sorted({int(e) for e in done} - {int(spec.epochs)})
        if other:
            raise ValueError(
                f"--spec: {spec_path} trains {spec.epochs} epochs, but completed trials of {trials_file} trained "
                f"{other[0]}: give the spec that run ran"
            )
    seeds = sorted({int(s) for s in pd.to_numeric(frame["seed"], errors="coerce").dropna()} - set(spec.seed_values))
    if seeds:
        raise ValueError(
            f"--spec: {spec_path} has no seed {seeds[0]}, which {trials_file} holds: give the spec that run ran"
        )


def _checked(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The trials, refused with the file and column named when they cannot be a study's."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: the trials lack the columns {missing}")
    for column in ("lr", "beta_init", "seed", "test_metric"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][numbers.isna() & frame[column].notna()]
        if len(bad):
            raise ValueError(f"{where}: column {column!r} holds {bad.iloc[0]!r}, not a number")
    repeated = frame.duplicated(["arm", "lr", "beta_init", "seed"])
    if repeated.any():
        first = frame.loc[repeated, ["arm", "lr", "beta_init", "seed"]].iloc[0].tolist()
        raise ValueError(f"{where}: the trial (arm, lr, beta_init, seed) = {tuple(first)} appears more than once")
    return frame


def write_report(report: ReplicationReport, out_dir: Path) -> list[Path]:
    """replication.json, .png and .svg under ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "replication.json"]
    written[0].write_text(report.model_dump_json(indent=2))
    written += [write_figure(report, out_dir / f"replication.{fmt}") for fmt in ("png", "svg")]
    return written
