"""The files ``demonlab run`` writes into its ``--out`` folder, and the check that the folder can take
them. Kept apart from ``studies.report`` (pandas, the metrics) so the check runs before the study
trains without importing what the outputs need."""

from __future__ import annotations

import os
from pathlib import Path

OUTPUT_NAMES = ("trials.csv", "trials.parquet", "metrics.json", "heatmap.png", "heatmap.svg")


def prepare_out_dir(out_dir: Path) -> None:
    """Make the output folder, or say why it cannot be one (before any trial runs: ``run_local``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out: {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out: cannot make the folder {out_dir}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"--out: the folder {out_dir} is not writable")
    for name in OUTPUT_NAMES:
        if (out_dir / name).is_dir():
            raise ValueError(f"--out: {out_dir / name} is a folder; the run writes a file there")
