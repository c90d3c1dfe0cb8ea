"""A study's files and mirrors outside its database rows, found and deleted with the study.

What a study leaves besides its rows (``DELETE /studies/{id}`` removes all of it, best effort: the
rows are gone already, and a file that cannot be removed is logged, never an error for the client):

- ``<data_dir>/packs/<id>-<plan>/``: its packs' checkpoints (``studies.packed.checkpoint``). A pack
  deletes its file when it finishes; the driver removes the emptied folders when the study ends.
- ``<data_dir>/tune/<id>/``: Ray Tune's trial folders of its per-trial runs on a local Ray.
- ``<data_dir>/logs/<id>-<launch>.log``: its drivers' logs.
- Its Optuna studies in the service's Optuna storage (``service.jobs.optuna_record``): the mirror's,
  and a search's sampler's.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from .settings import Settings

__all__ = ["delete_study_artefacts", "remove_empty_pack_dirs", "study_files"]

log = logging.getLogger("demonlab.artefacts")


def study_files(data_dir: Path, study_id: str) -> list[Path]:
    """Every file or folder of ``study_id`` under ``data_dir`` (see the module docstring)."""
    found = [*(data_dir / "packs").glob(f"{study_id}-*"), *(data_dir / "logs").glob(f"{study_id}-*.log")]
    tune = data_dir / "tune" / study_id
    return sorted([*found, *([tune] if tune.exists() else [])])


def remove_empty_pack_dirs(data_dir: Path, study_id: str) -> None:
    """Remove the study's pack-checkpoint folders that hold nothing (every pack finished)."""
    for folder in (data_dir / "packs").glob(f"{study_id}-*"):
        with contextlib.suppress(OSError):  # only if empty: a killed pack's checkpoint stays for the relaunch
            folder.rmdir()


def delete_study_artefacts(settings: Settings, study_id: str) -> None:
    """Delete the files and Optuna studies of ``study_id`` (whose rows are already deleted)."""
    for path in study_files(settings.data_dir, study_id):
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError:
            log.warning("study %s: could not delete %s", study_id, path, exc_info=True)
    _delete_optuna_studies(settings, study_id)


def _delete_optuna_studies(settings: Settings, study_id: str) -> None:
    from sqlalchemy.engine import make_url

    from .jobs.optuna_record import OPTUNA_SCHEMA, delete_mirror, optuna_url

    sqlite = make_url(settings.database_url).get_backend_name() == "sqlite"
    if sqlite and not (settings.data_dir / "optuna.db").exists():  # nothing ever mirrored: don't create it
        return
    try:
        deleted = delete_mirror(optuna_url(settings), study_id)
    except Exception:
        log.warning("study %s: could not delete its studies in Optuna's storage (%s)", study_id, OPTUNA_SCHEMA)
        return
    if deleted:
        log.info("study %s: deleted %d study(ies) from Optuna's storage", study_id, deleted)
