"""``Settings``: defaults, the ``DEMONLAB_`` environment, ``.env``, ``RAY_ADDRESS``, validation, caching."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings, clear_settings_cache, get_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ``DEMONLAB_*`` or ``RAY_ADDRESS`` from the outside, no stray ``.env``, an empty cache."""
    for name in list(os.environ):
        if name.startswith("DEMONLAB_") or name == "RAY_ADDRESS":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    clear_settings_cache()
    yield
    clear_settings_cache()


def test_defaults(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir == (tmp_path / ".work").resolve()
    assert settings.data_dir.is_absolute()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / '.work' / 'demonlab.db'}"
    assert (settings.launcher, settings.ray_address, settings.ray_auth_mode) == ("local", None, "disabled")
    assert (settings.api_tokens_required, settings.max_trials_per_study, settings.max_concurrent_studies) == (
        False,
        20_000,
        2,
    )
    assert (settings.heartbeat_seconds, settings.stale_after_seconds) == (5, 30)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEMONLAB_PORT", "9001")
    monkeypatch.setenv("DEMONLAB_LAUNCHER", "ray")
    monkeypatch.setenv("DEMONLAB_API_TOKENS_REQUIRED", "true")
    monkeypatch.setenv("DEMONLAB_DATA_DIR", "data/here")
    monkeypatch.setenv("PORT", "1")  # unprefixed: not ours
    settings = Settings()
    assert (settings.port, settings.launcher, settings.api_tokens_required) == (9001, "ray", True)
    assert settings.data_dir == (tmp_path / "data" / "here").resolve()
    assert settings.database_url.endswith("/data/here/demonlab.db")  # the default follows the data dir


def test_database_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMONLAB_DATABASE_URL", "postgresql://postgres@db:5432/demonlab")
    assert Settings().database_url == "postgresql://postgres@db:5432/demonlab"


def test_ray_address_plain_or_prefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert Settings().ray_address == "ray://head:10001"
    monkeypatch.setenv("DEMONLAB_RAY_ADDRESS", "ray://other:10001")
    assert Settings().ray_address == "ray://other:10001"  # ours wins
    assert Settings(ray_address="auto").ray_address == "auto"  # and code can pass it by name


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEMONLAB_MAX_CONCURRENT_STUDIES=7\nDEMONLAB_HOST=0.0.0.0\nOTHER=1\n")
    settings = Settings()
    assert (settings.max_concurrent_studies, settings.host) == (7, "0.0.0.0")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEMONLAB_LAUNCHER", "slurm"),
        ("DEMONLAB_PORT", "70000"),
        ("DEMONLAB_MAX_TRIALS_PER_STUDY", "0"),
        ("DEMONLAB_STALE_AFTER_SECONDS", "5"),  # not more than one heartbeat
    ],
)
def test_invalid_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("DEMONLAB_PORT", "9100")
    assert get_settings() is first
    clear_settings_cache()
    assert get_settings().port == 9100


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().port = 1  # type: ignore[misc]


@pytest.mark.parametrize("command", ["serve", "scheduler"])
def test_a_data_dir_that_cannot_be_written_is_one_line_at_start(tmp_path: Path, command: str) -> None:
    """``demonlab serve`` with a data dir it cannot write in (here a file stands at its path; a
    read-only mount or a full disk alike) printed its dashboard line, then a 180-line traceback from
    the app's start-up. Now: one line naming the setting, exit 2, before anything starts."""
    import subprocess
    import sys

    blocker = tmp_path / "data"
    blocker.write_text("a file, not a folder")
    env = {**os.environ, "DEMONLAB_DATA_DIR": str(blocker)}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", command, *(["--port", "0"] if command == "serve" else [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"demonlab: error: the data dir {blocker} (DEMONLAB_DATA_DIR) is not a folder")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
