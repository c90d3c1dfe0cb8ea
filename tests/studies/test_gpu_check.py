"""``scripts/gpu-check.sh --dry-run`` runs its reduced Fig. 2 panel end to end on the CPU.

No GPU is needed: the dry run shrinks the panel (a tiny MLP, 128 samples, one epoch) and runs every
stage the GPU check runs (per trial, packed, the sample compared, the replication report), so a GPU
session finds a script that starts and finishes. It measures no speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_dry_run_runs_the_panel_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    done = run("--dry-run", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "gpu-check-fig2-vgg: 198 trials (3 arms x 11 lr x 6 beta_init x 1 seed)" in out
    assert "device cpu (dry run)" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("per trial, in process", "packed, in"))]
    assert [row[-5] for row in rows] == ["18", "198"]  # trials timed per trial, then the whole panel packed
    assert all(row[-2:] == ["n/a", "(cpu)"] for row in rows)  # no GPU memory on the CPU
    assert "sample: status 18/18 same" in out
    assert out.count("  verdict: ") == 2  # the report ran: one claim per SGDM baseline
    assert "-- fig2_panel_dry_run: exit 0" in out
    assert (tmp_path / "fig2_panel_dry_run.txt").exists()


def test_unknown_option_is_refused() -> None:
    done = run("--fast")
    assert done.returncode == 2
    assert "unknown option --fast" in done.stderr
