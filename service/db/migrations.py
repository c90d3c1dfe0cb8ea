"""Run the schema migrations shipped in ``service/migrations`` from code: no ``alembic.ini`` needed.

The service applies them at start (``upgrade_to_head``) and ``/readyz`` asks ``is_at_head``. The
Alembic ``Config`` is built here, pointing inside the installed package, so migrations work the same
from a checkout, a wheel or a container. Developers still use the ``alembic`` CLI to write new
revisions (``alembic -c <ini with script_location = service/migrations> revision --autogenerate``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from .engine import make_engine, read_only_engine

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "head_revisions",
    "is_at_head",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Our own version table: Optuna's RDB storage (kept in the same database so `optuna-dashboard <url>`
# shows the search studies) runs Alembic too, with the default ``alembic_version`` table.
VERSION_TABLE = "demonlab_alembic_version"


def alembic_config() -> Config:
    """An Alembic configuration for the packaged migrations (``env.py`` reads the connection from
    ``config.attributes["connection"]``, or else the ``sqlalchemy.url`` main option)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_to_head(engine_or_url: Engine | URL | str) -> None:
    """Migrate the database to the newest schema; a no-op when it is already there."""
    owned = not isinstance(engine_or_url, Engine)
    engine = make_engine(engine_or_url) if not isinstance(engine_or_url, Engine) else engine_or_url
    try:
        with engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if owned:
            engine.dispose()


@functools.lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The revisions the shipped migrations end at (read once per process)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def is_at_head(engine: Engine) -> bool:
    """Whether the database has every shipped migration applied (``False`` for an empty database)."""
    with read_only_engine(engine).connect() as connection:
        current = frozenset(
            MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_heads()
        )
    return current == head_revisions()
