"""Smoke test of ``bench/study_overhead.py``: six digits trials in process and through Ray Tune, once each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_study_overhead_bench_runs(tmp_path: Path) -> None:
    # Its own process and its own local Ray: the benchmark starts and stops Ray itself.
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "study_overhead.py"),
            *("--limit", "6", "--trials-per-task", "2"),
            *("--repeats", "1"),  # the bench's default 3 repeats measure; one runs every part of it
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "6 trials of 10 epochs on digits_mlp" in out
    assert re.search(r"^in-process: .* trials/min$", out, re.MULTILINE)
    assert re.search(r"^Ray start-up \(ray.init\): \d+\.\d+ s", out, re.MULTILINE)
    assert re.search(r"^Ray Tune: .* trials/min .*trials_per_task=2", out, re.MULTILINE)
    assert re.search(
        r"^Ray overhead with worker start-up: -?\d+\.\d ms per trial, -?\d+\.\d% of Ray's wall time$",
        out,
        re.MULTILINE,
    )
    assert re.search(
        r"^Ray overhead after warm-up \(from the first result\): -?(\d+\.\d|nan) ms per trial, "
        r"-?(\d+\.\d|nan)% of Ray's time per trial$",
        out,
        re.MULTILINE,
    )
    assert re.search(r"^target <= 50 ms per trial: (met|NOT met)$", out, re.MULTILINE)
    assert re.search(r"^target <= 20% of wall time: (met|NOT met)$", out, re.MULTILINE)
    assert "identical results: 6/6\n" in out
