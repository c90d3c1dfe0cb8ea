"""Smoke test of ``bench/end_to_end.py``: a 3-trial digits spec, one round of a few paths."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROW = r"^\| {name} +\| +\d+\.\d\d / \d+\.\d\d \| +({first}) \| +({ratio}) \|$"


@pytest.mark.slow
def test_end_to_end_bench_prints_every_path_it_ran_and_the_goals(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "studies" / "examples" / "digits.yaml").read_text())
    spec.update(lr=[0.1], beta_init=[0.9], seeds=1, epochs=1)  # 3 arms: 3 trials of one epoch
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    command = [sys.executable, str(ROOT / "bench" / "end_to_end.py"), "--spec", "tiny.yaml", "--rounds", "1"]
    done = subprocess.run(
        [*command, "--paths", "floor,optuna,packed,per-trial"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "tiny.yaml (its seeds): 1 interleaved rounds, whole processes; load " in out
    number, pair = r"\d+\.\d\d", r"\d+\.\d\d / \d+\.\d\d"
    for name, first in (("floor \\(bare torch loop\\)", pair), ("Optuna GridSampler loop", pair)):
        assert re.search(ROW.format(name=name, first=first, ratio=number), out, re.MULTILINE), out
    for name in ("demonlab run, packed", "demonlab run, per trial"):
        assert re.search(ROW.format(name=name, first="–", ratio=number), out, re.MULTILINE), out
    assert re.search(r"^goal: demonlab run <= 6 s and >= 4x the floor: (met|NOT met) \(\d+\.\d\d s, ", out, re.M)
    assert "Ray" not in out.split("goal:")[0].split("\n", 2)[-1], "a path that was not asked for ran"
