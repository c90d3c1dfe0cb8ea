"""The service's configuration: one ``Settings`` read from ``DEMONLAB_*`` environment variables and ``.env``.

Nothing is read at import time: ``get_settings()`` builds the settings on first use and caches them,
so the app, the scheduler and the CLI share one object while tests override the environment and call
``clear_settings_cache()`` (or pass a ``Settings`` of their own wherever one is accepted).

Defaults suit one machine: a SQLite database under the data dir (``.work`` in the current
directory), the local launcher, no API tokens. A shared deployment sets ``DEMONLAB_DATABASE_URL`` to
PostgreSQL and ``DEMONLAB_LAUNCHER=ray`` with ``RAY_ADDRESS`` (or ``DEMONLAB_RAY_ADDRESS``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "clear_settings_cache", "get_settings"]

DATABASE_FILENAME = "demonlab.db"


class Settings(BaseSettings):
    """Everything the service reads from its environment (field ``x`` ← ``DEMONLAB_X``)."""

    model_config = SettingsConfigDict(
        env_prefix="DEMONLAB_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        validate_by_name=True,
    )

    # data_dir comes before database_url: the default database lives inside it.
    data_dir: Path = Field(default=Path(".work"), validate_default=True)
    database_url: str = Field(default="", validate_default=True)
    launcher: Literal["local", "ray"] = "local"
    # local launcher: fork drivers from a warm process (service.jobs.forkserver) instead of starting
    # a fresh Python for each (seconds sooner to the first result); DEMONLAB_WARM_DRIVERS=0 turns it off.
    warm_drivers: bool = True
    # A local driver runs a CPU grid study of at most this many pending trials × epochs in its own
    # process, one trial after another, rather than start a local Ray for it (0: always Ray).
    small_study_epochs: int = Field(default=200, ge=0)
    # Mirror every grid study's results into Optuna's storage (optuna-dashboard). Off for the atlas's
    # own service: a 2,640-trial packed study's results arrive together and mirroring them took minutes.
    optuna_mirror: bool = True
    ray_address: str | None = Field(default=None, validation_alias=AliasChoices("DEMONLAB_RAY_ADDRESS", "RAY_ADDRESS"))
    ray_auth_mode: str = Field(
        default="disabled", validation_alias=AliasChoices("DEMONLAB_RAY_AUTH_MODE", "RAY_AUTH_MODE")
    )
    dataset_dir: Path | None = Field(
        default=None, description="where workloads read their datasets (default: <data_dir>/datasets)"
    )
    api_tokens_required: bool = False
    max_trials_per_study: int = Field(default=20_000, gt=0)
    max_request_bytes: int = Field(default=1 << 20, gt=0, description="request bodies above this get 413")
    parse_rate_limit: str = Field(
        default="10/second", description="POST /specs/parse per client address ('limits' notation: N/second|minute)"
    )
    failed_token_limit: str = Field(
        default="10/minute", description="wrong bearer tokens per client address before it gets 429"
    )
    http_header_timeout_s: float = Field(default=10.0, gt=0, description="a request's headers must arrive within this")
    http_body_timeout_s: float = Field(default=30.0, gt=0, description="a request's whole body must arrive within this")
    http_keep_alive_s: int = Field(default=5, gt=0, description="an idle keep-alive connection closes after this")
    http_max_connections: int = Field(default=1000, gt=0, description="connections and tasks at once (then 503)")
    max_concurrent_studies: int = Field(default=2, gt=0)
    scheduler_poll_seconds: float = Field(
        default=1.0, gt=0, description="how often the scheduler looks for queued studies (a submission wakes it)"
    )
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    stale_after_seconds: float = Field(default=30.0, gt=0)
    driver_retry_seconds: float = Field(
        default=300.0, gt=0, description="a driver pauses its study after the database is away this long"
    )
    driver_paused_retry_seconds: float = Field(
        default=15.0, gt=0, description="how often a driver whose study is paused tries the database again"
    )
    events_poll_seconds: float = Field(default=0.5, gt=0, description="how often an event stream looks for news")
    events_heartbeat_seconds: float = Field(default=15.0, gt=0, description="idle event streams send a comment")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Resolve once, so a later ``chdir`` cannot move the data."""
        return value.expanduser().resolve()

    @field_validator("database_url")
    @classmethod
    def _default_database_url(cls, value: str, info: ValidationInfo) -> str:
        """An empty URL means the SQLite file inside the data dir."""
        data_dir = info.data.get("data_dir")
        if value or data_dir is None:  # no data_dir: its own error is being reported
            return value
        return f"sqlite:///{data_dir / DATABASE_FILENAME}"

    @property
    def datasets(self) -> Path:
        """Where the workloads read their datasets: ``dataset_dir``, else ``<data_dir>/datasets``."""
        return self.dataset_dir or self.data_dir / "datasets"

    @field_validator("parse_rate_limit", "failed_token_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        """A limit in the ``limits`` library's notation ("10/second", "100 per minute")."""
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '10/second': {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _stale_outlives_heartbeat(self) -> Self:
        """A study must miss more than one heartbeat before it is declared dead."""
        if self.stale_after_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"stale_after_seconds ({self.stale_after_seconds}) must exceed "
                f"heartbeat_seconds ({self.heartbeat_seconds})"
            )
        return self


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built on first call (a FastAPI dependency, overridable in tests)."""
    return Settings()


def clear_settings_cache() -> None:
    """Forget the cached settings, so the next ``get_settings()`` reads the environment again."""
    get_settings.cache_clear()
