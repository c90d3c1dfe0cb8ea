"""Smoke test of ``bench/packed.py``: six digits trials per trial and packed, in process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_packed_bench_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "packed.py"), "--limit", "6", "--skip-ray"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "6 trials of 10 epochs on digits_mlp" in out
    for path in ("per trial, in process", r"packed, in process \(1 pack\)", "packed, 2 forked processes"):
        assert re.search(rf"^{path} +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d$", out, re.MULTILINE), out
    assert "status 6/6 same" in out
    assert re.search(r"^goal: packed >= 10x per trial in process: (met|NOT met)", out, re.MULTILINE)
