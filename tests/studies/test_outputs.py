"""How ``write_outputs`` puts a run's files into ``--out``: into a hidden folder first, then moved in
together with SIGINT and SIGTERM held off, so that an interrupt or a failed write leaves the folder as
it was or complete, never a mix of two runs. Real signals and real write errors, no mocks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from studies.outputs import OUTPUT_NAMES, signals_held
from studies.report import write_outputs
from studies.results import TrialKey, TrialResult, TrialStatus
from studies.spec import StudySpec, load_spec

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "studies" / "examples" / "synthetic_smoke.yaml"
EARLIER = {name: f"an earlier run's {name}\n".encode() for name in OUTPUT_NAMES}

# In a subprocess: writes the results of argv[2] (JSON) to argv[3] with files limited to argv[4]
# bytes (a write past it fails with EFBIG, as on a full disk), and prints the error it got.
LIMITED_WRITE = """
import json, resource, signal, sys
from pathlib import Path
from studies.report import write_outputs
from studies.results import TrialResult
from studies.spec import load_spec

spec = load_spec(sys.argv[1])
results = [TrialResult.from_dict(r) for r in json.loads(Path(sys.argv[2]).read_text())]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the process being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), resource.RLIM_INFINITY))
try:
    write_outputs(spec, results, Path(sys.argv[3]), spec.y_fail())
except OSError as exc:
    print(exc)
    sys.exit(2)
"""


def smoke_results(spec: StudySpec) -> list[TrialResult]:
    """One made-up result per trial of the spec's grid (no training: the writing is under test)."""
    draw = random.Random(0)
    results = []
    for arm in (a.name for a in spec.arms):
        for lr in spec.lr_values:
            for beta in spec.beta_init:
                for seed in spec.seed_values:
                    error = draw.uniform(0.05, 0.6)
                    results.append(
                        TrialResult(
                            key=TrialKey(arm, lr, beta, seed),
                            status=TrialStatus.COMPLETED,
                            val_metric=error,
                            test_metric=error + 0.01,
                            val_loss=2 * error,
                            test_loss=2 * error,
                            best_val_metric=error,
                            epochs_done=spec.epochs,
                        )
                    )
    return results


def earlier_run(out: Path) -> Path:
    """``out`` holding an earlier run's five outputs."""
    out.mkdir()
    for name, content in EARLIER.items():
        (out / name).write_bytes(content)
    return out


def contents(out: Path) -> dict[str, bytes]:
    """Every entry of ``out`` (hidden ones too) by name, with its bytes."""
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt here, as in a foreground ``demonlab run`` (a suite started in
    the background inherits it ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_the_outputs_replace_an_earlier_runs_and_leave_nothing_else(tmp_path: Path) -> None:
    spec = load_spec(SMOKE)
    out = earlier_run(tmp_path / "out")
    report = write_outputs(spec, smoke_results(spec), out, spec.y_fail())
    written = contents(out)
    assert sorted(written) == sorted(OUTPUT_NAMES)  # no staging folder left behind
    assert not set(EARLIER.items()) & set(written.items())
    assert report["files"] == [str(out / name) for name in OUTPUT_NAMES]
    assert len(pd.read_parquet(out / "trials.parquet")) == spec.trial_count
    assert json.loads(written["metrics.json"])["study"]["name"] == spec.name


def signal_self_while_held(seen: list[int], mark: Path) -> None:
    """Send this process SIGINT and SIGTERM while they are held, then go on: neither interrupts."""
    with signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        mark.touch()
        assert seen == []


def test_a_signal_while_the_outputs_move_in_comes_after_they_are_all_there(tmp_path: Path, sigint_raises: None) -> None:
    """SIGINT and SIGTERM that arrive while held reach their handlers only once the block is done,
    both, though the first one's raised."""
    seen: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt):
            signal_self_while_held(seen, tmp_path / "done")
    finally:
        signal.signal(signal.SIGTERM, before)
    assert (tmp_path / "done").exists()
    assert seen == [signal.SIGTERM]


def test_an_interrupt_as_the_outputs_are_published_finds_them_complete(tmp_path: Path, sigint_raises: None) -> None:
    """A real SIGINT sent while the publish step holds signals off (from ``on_published``, its last
    part): the interrupt comes once it is over, with every new file in place and nothing else."""
    spec = load_spec(SMOKE)
    out = earlier_run(tmp_path / "out")
    at_publish: list[dict[str, bytes]] = []

    def published() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        at_publish.append(contents(out))

    with pytest.raises(KeyboardInterrupt):
        write_outputs(spec, smoke_results(spec), out, spec.y_fail(), on_published=published)
    (before_interrupt,) = at_publish
    assert contents(out) == before_interrupt
    assert sorted(before_interrupt) == sorted(OUTPUT_NAMES)
    assert not set(EARLIER.items()) & set(before_interrupt.items())


def interrupting_git(folder: Path, whom: str) -> str:
    """A PATH whose ``git`` sends SIGINT to ``whom`` ("$PPID": the process that ran it; "0":
    its process group, as a terminal's Ctrl-C) and waits to be stopped. ``write_outputs`` runs git
    for metrics.json's environment, after the trials files are written: a known point halfway."""
    folder.mkdir()
    git = folder / "git"
    git.write_text(f"#!/bin/sh\nkill -INT {whom}\nexec sleep 60\n")
    git.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="no git checkout: the environment runs no git")
def test_an_interrupt_while_writing_leaves_the_out_folder_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigint_raises: None
) -> None:
    """A real SIGINT halfway through writing (the trials files written, metrics.json not yet): --out
    holds the earlier run's files and nothing else. It used to hold this run's trials files beside
    no report and no heatmaps: the earlier ones were deleted first."""
    from studies.environment import software

    spec = load_spec(SMOKE)
    out = earlier_run(tmp_path / "out")
    monkeypatch.setenv("PATH", interrupting_git(tmp_path / "bin", "$PPID"))
    software.cache_clear()  # cached per process: an earlier test's run of git would be reused
    try:
        with pytest.raises(KeyboardInterrupt):
            write_outputs(spec, smoke_results(spec), out, spec.y_fail())
    finally:
        software.cache_clear()
    assert contents(out) == EARLIER


def test_a_write_that_fails_leaves_the_out_folder_as_it_was_and_names_the_file(tmp_path: Path) -> None:
    """A write error (here EFBIG from a file size limit, as ENOSPC on a full disk) halfway through: the
    error names the output it could not write and --out keeps the earlier run's files, nothing else.
    It used to say only "[Errno 28] No space left on device", with a truncated heatmap in --out."""
    spec = load_spec(SMOKE)
    results = smoke_results(spec)
    files = write_outputs(spec, results, tmp_path / "sizes", spec.y_fail())["files"]
    sizes = {Path(f).name: Path(f).stat().st_size for f in files}
    largest, *others = sorted(sizes, key=sizes.__getitem__, reverse=True)
    limit = (sizes[largest] + sizes[others[0]]) // 2  # every other file fits
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps([r.to_dict() for r in results]))
    out = earlier_run(tmp_path / "out")
    done = subprocess.run(
        [sys.executable, "-c", LIMITED_WRITE, str(SMOKE), str(saved), str(out), str(limit)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith(f"--out: cannot write {out / largest}: File too large"), done.stdout
    assert contents(out) == EARLIER


def test_a_move_that_fails_says_what_the_out_folder_holds(tmp_path: Path) -> None:
    """The outputs move in one rename each; should one fail (here a folder put at its name while the
    run trained), the error names it and says which of this run's files are already in --out, rather
    than a bare rename error between two paths."""
    from studies.outputs import Staging

    out = tmp_path / "out"
    out.mkdir()
    staging = Staging(out)
    staging.write("trials.csv", b"new trials\n")
    staging.write("metrics.json", b"{}")
    (out / "metrics.json").mkdir()  # a real failure of os.replace: a folder stands at the name
    with pytest.raises(
        OSError, match=r"cannot move metrics\.json into .*; trials\.csv of this run's outputs are there"
    ):
        staging.publish()
    assert (out / "trials.csv").read_bytes() == b"new trials\n"


# In a subprocess: stages outputs into argv[1] as ``write_outputs`` does, writes one of them, prints its
# staging folder's name, then waits: to be killed mid-write, or to stand for a run still writing.
STAGING_WRITER = """
import sys, time
from pathlib import Path
from studies.outputs import staged_outputs

with staged_outputs(Path(sys.argv[1])) as staging:
    staging.write("trials.csv", b"half of a run's trials")
    print(staging.folder.name, flush=True)
    time.sleep(600)
"""


def _writing(out: Path) -> tuple[subprocess.Popen[str], str]:
    """A process in the middle of writing its outputs into ``out``, and its staging folder's name."""
    process = subprocess.Popen(
        [sys.executable, "-c", STAGING_WRITER, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def test_a_run_killed_mid_write_leaves_a_folder_the_next_run_removes(tmp_path: Path) -> None:
    """SIGKILL while writing (nothing can clean up then) left a hidden folder in ``--out`` for good.
    The next run into that folder removes it; a run still writing there keeps its own, and so does a
    writer on another machine (a shared disk), which no pid here can speak for."""
    spec = load_spec(SMOKE)
    out = earlier_run(tmp_path / "out")
    killed, killed_folder = _writing(out)
    running, running_folder = _writing(out)
    try:
        killed.kill()
        killed.wait()
        assert (out / killed_folder / "trials.csv").exists()  # what the kill left
        elsewhere = out / ".demonlab-writing-another-host-4242-abcdefgh"
        elsewhere.mkdir()

        write_outputs(spec, smoke_results(spec), out, spec.y_fail())

        assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == sorted(
            [running_folder, elsewhere.name]
        )
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(OUTPUT_NAMES)
    finally:
        running.kill()
        running.wait()
