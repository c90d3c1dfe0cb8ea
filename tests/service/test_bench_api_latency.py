"""Smoke test of ``bench/api_latency.py``: the quick size on SQLite, a real server, every table printed.

No timing is asserted: on a shared machine the numbers say nothing about correctness. So every part
of the bench runs, but briefly: 1,056 trials in 2 studies, the study page on 500 trials, 3 s of
results landing (not 30), one round of the throughput study with and without readers (not two), at
2 epochs (not 20). At the full quick size it ran past the test's 300 s at load 5-8, and the killed
bench left its server running; at the quick size with 20 epochs it took ~110 s of the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_api_latency_bench_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "api_latency.py"),
            "--quick",
            "--rows",
            "1000",
            "--studies",
            "2",
            "--throughput-epochs",
            "2",
            "--db",
            "sqlite",
            "--study-page-trials",
            "500",
            "--landing-seconds",
            "3",
            "--throughput-rounds",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=540,  # 170 s at load 10, past 300 s at load 10-20; under pytest's 600 s
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "== sqlite: 1,056 trials in 2 studies (4 arms × 11 lr × 6 β × 2 seeds = 528 each)" in out
    number = r"\d+\.\d"
    for endpoint, target in (("grid", "p99 <= 25 ms"), ("sensitivity", "p99 <= 250 ms")):
        cpu = rf"({number}|-)"  # the server's CPU time per request: "-" where /proc is missing
        row = rf"^{endpoint} +40 +{number} +{number} +{number} +\d+ +{cpu} +{re.escape(target)} +(yes|NO)$"
        assert re.search(row, out, re.MULTILINE), f"no {endpoint} row in:\n{out}"
    solo = out.split("one stdlib client, one request in flight")[-1].split("cold calls")[0]
    for endpoint in ("grid", "sensitivity", r"healthz \(ref\)"):  # and alone, with no queue
        assert re.search(rf"^{endpoint} +40 +{number} +{number} ", solo, re.MULTILINE), f"no lone {endpoint} in:\n{out}"
    for endpoint in ("trials", r"study \(ref\)", r"healthz \(ref\)"):
        assert re.search(rf"^{endpoint} +40 +{number} +{number} ", out, re.MULTILINE), f"no {endpoint} row in:\n{out}"
    assert re.search(rf"^grid \(cold\) +8 +{number} +{number} +{number}$", out, re.MULTILINE)
    assert re.search(rf"^sensitivity \(cold\) +2 +{number} +{number} +{number}$", out, re.MULTILINE)
    # the other parts ran too: the study page, results landing under readers, the throughput study
    assert re.search(r"^study page target: cold total < 1000 ms: (yes|NO)$", out, re.MULTILINE), out
    assert re.search(r"^target: p90 ≤ \d+ ms: (yes|NO)$", out, re.MULTILINE), out
    assert len(re.findall(r"^ *\d+ readers: wall min \d+\.\d s", out, re.MULTILINE)) == 2, out
    assert re.search(r"^all targets met: (yes|NO)$", out, re.MULTILINE)
    assert "requests failed" not in out
