"""Smoke test of ``bench/optimizer_step.py --quick``: it runs, exits 0 and prints its ratio table.

Timings on a shared test machine mean nothing, so nothing here asserts on them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = [
    "DemonSGD foreach vs SGD foreach",
    "DemonAdam foreach vs Adam foreach",
    "SGD fused + DemonMomentum vs SGD fused",
    "Adam fused + DemonMomentum vs Adam fused",
    "DemonSGD loop vs SGD loop (info)",
    "DemonAdam loop vs Adam loop (info)",
]
ROW = re.compile(
    r"^(?P<case>.+?)\s+(?P<model>large|many-small)\s+"
    r"(?:[\d.]+\s+[\d.]+\s+(?P<ratio>[\d.]+)\s+(?:ok|MISS|info)|fused is not supported on this device)$"
)


@pytest.mark.slow
def test_quick_benchmark_prints_a_ratio_table() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "optimizer_step.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:5] == ["case", "model", "ours", "ms", "torch"] for line in lines if line.strip())
    rows = [m for m in map(ROW.match, lines) if m]
    assert {(m["case"], m["model"]) for m in rows} == {(c, model) for c in CASES for model in ("large", "many-small")}
    assert all(float(m["ratio"]) > 0 for m in rows if m["ratio"] is not None)
    assert any(m["ratio"] is not None for m in rows if "foreach" in m["case"])
