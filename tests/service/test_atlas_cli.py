"""``demonlab atlas`` from the shell, as a user runs it: the service started in the process, the smoke
suite's studies run by real local drivers, the answer printed, the report and every figure written;
run again, it submits nothing, runs nothing and writes the same answer (resume)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_atlas import assert_self_contained

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("demonlab")


def atlas(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMONLAB_")}
    env["DEMONLAB_DATA_DIR"] = str(data_dir)
    command = [
        str(CLI),
        "atlas",
        "--suite",
        "smoke",
        "--seeds",
        "8",
        "--port",
        "0",
    ]  # the service binds a free port itself
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)


def test_atlas_command_writes_the_report_and_resumes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = atlas(data_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert re.search(r"^demonlab: starting the service at http://127\.0\.0\.1:[1-9]\d* ", out, re.MULTILINE), out
    assert "atlas smoke-s8: 4 studies, 480 trials (0 already done)" in out
    assert re.search(r"demon_sgdm vs sgdm_step\s+[-+]\d\.\d{3}\s+\[[-+]\d\.\d{3}, [-+]\d\.\d{3}\]\s+2 ", out), out
    assert "less sensitive in" in out
    assert "of 2 workloads" in out
    assert re.search(r"atlas smoke-s8 done: \d+ s from submission to report", out)
    assert "reproduce: demonlab atlas --suite smoke --seeds 8" in out

    folder = data_dir / "atlas" / "smoke-s8"
    assert_self_contained((folder / "report.html").read_text())
    result = json.loads((folder / "atlas.json").read_text())
    assert result["status"] == "done"
    figures = sorted(p.name for p in (folder / "figures").iterdir())
    assert len(figures) == 2 * (1 + 3 + 4)  # overview, 3 forest plots, 4 heatmaps; PNG and SVG each
    assert all((folder / "figures" / name).stat().st_size > 1000 for name in figures)

    second = atlas(data_dir)  # resume: everything exists and is finished
    assert second.returncode == 0, second.stdout + second.stderr
    assert "atlas smoke-s8: 4 studies, 480 trials (480 already done)" in second.stdout
    again = json.loads((folder / "atlas.json").read_text())
    assert [c["pooled"] for c in again["comparisons"]] == [c["pooled"] for c in result["comparisons"]]
    assert {s["id"] for c in again["cells"] for s in c["studies"]} == {
        s["id"] for c in result["cells"] for s in c["studies"]
    }
