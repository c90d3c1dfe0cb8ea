"""The files ``demonlab run`` writes into its ``--out`` folder, the check that the folder can take
them, and how they get there: into a hidden folder inside it first, then moved in at once
(``staged_outputs``), so that an interrupt or a full disk leaves ``--out`` as it was or complete. Kept
apart from ``studies.report`` (pandas, the metrics) so the check runs before the study trains without
importing what the outputs need."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

OUTPUT_NAMES = ("trials.csv", "trials.parquet", "metrics.json", "heatmap.png", "heatmap.svg")
STAGING_PREFIX = ".demonlab-writing-"  # hidden, inside --out: the same filesystem, so a move is one rename
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


def _writer_prefix() -> str:
    """This process's staging-folder prefix: ``.demonlab-writing-<host>-<pid>-`` (then mkdtemp's
    random part), so a later run can tell whose a folder is."""
    return f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def _writer_gone(name: str) -> bool:
    """Whether the staging folder ``name`` is a process's of this host that no longer runs (killed
    mid-write: SIGKILL, the machine's OOM killer). Another host's folder, or one named before folders
    said whose they were, is never judged gone: its writer may still be at work."""
    parts = name.removeprefix(STAGING_PREFIX).rsplit("-", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's: not ours to judge
        return False
    return False  # alive (or its pid reused: left for a later run)


def remove_abandoned_staging(out_dir: Path) -> None:
    """Remove the staging folders in ``out_dir`` whose writer was killed before it could: a run killed
    mid-write left its hidden folder there for good. Runs writing into the same folder at the same
    time keep theirs."""
    with contextlib.suppress(OSError):
        for entry in out_dir.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and _writer_gone(entry.name):
                shutil.rmtree(entry, ignore_errors=True)


class Staging:
    """A hidden folder inside ``out_dir`` that a run's outputs are written into, each by its name (an
    earlier run's that was killed mid-write is removed first: ``remove_abandoned_staging``)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        remove_abandoned_staging(out_dir)
        try:
            self.folder = Path(tempfile.mkdtemp(prefix=_writer_prefix(), dir=out_dir))
        except OSError as exc:
            raise OSError(f"--out: cannot make a folder to write into in {out_dir}: {exc.strerror or exc}") from exc
        self.names: list[str] = []

    def write(self, name: str, content: bytes | Callable[[Path], object]) -> None:
        """Write the output ``name``: ``content``, or what ``content(path)`` writes. Its error names the
        file: a full disk's did not (ENOSPC comes from write(), after open() named the file)."""
        path = self.folder / name
        try:
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                content(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OSError(f"--out: cannot write {self.out_dir / name}: {reason} ({self.out_dir} is as it was)") from exc
        self.names.append(name)

    def publish(self) -> None:
        """Move every output written into ``out_dir`` and remove an earlier run's others (never beside
        these as if one run), then the empty staging folder."""
        for moved, name in enumerate(self.names):
            try:
                os.replace(self.folder / name, self.out_dir / name)
            except OSError as exc:  # within one folder hardly ever; if it does, say what --out holds
                there = ", ".join(self.names[:moved]) or "none"
                raise OSError(
                    f"--out: cannot move {name} into {self.out_dir}: {exc.strerror or exc}; "
                    f"{there} of this run's outputs are there, the rest are as they were"
                ) from exc
        for stale in (name for name in OUTPUT_NAMES if name not in self.names):
            (self.out_dir / stale).unlink(missing_ok=True)
        self.folder.rmdir()


@contextlib.contextmanager
def staged_outputs(out_dir: Path, on_published: Callable[[], object] | None = None) -> Iterator[Staging]:
    """Write a run's outputs into a ``Staging`` folder; once the block ends, move them into ``out_dir``
    with SIGINT and SIGTERM held off, then call ``on_published`` (before a held signal is delivered).
    An error or an interrupt before that removes the staging folder: ``out_dir`` stays as it was. The
    old way (earlier outputs deleted, each file written in place) left a mix of two runs, or none."""
    staging = Staging(out_dir)
    try:
        yield staging
        with signals_held():
            staging.publish()
            if on_published is not None:
                on_published()
    finally:
        shutil.rmtree(staging.folder, ignore_errors=True)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM off while the block runs, then deliver each one that came, to the
    handler that was there. A handler runs on the main thread, which alone can set one: elsewhere
    nothing is held. An ignored signal stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    before: dict[signal.Signals, Any] = {}
    for signum in HELD_SIGNALS:
        if signal.getsignal(signum) not in (signal.SIG_IGN, None):  # None: set outside Python, left alone
            before[signum] = signal.signal(signum, lambda received, _frame: came.append(received))
    try:
        yield
    finally:
        for held, handler in before.items():
            signal.signal(held, handler)
        with contextlib.ExitStack() as deliver:  # every one, even after an earlier one's handler raised
            for received in reversed(dict.fromkeys(came)):  # last in, first out: in the order they came
                deliver.callback(signal.raise_signal, received)
