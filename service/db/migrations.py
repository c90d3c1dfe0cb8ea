"""Run the schema migrations shipped in ``service/migrations`` from code: no ``alembic.ini`` needed.

The service applies them at start (``upgrade_to_head``) and ``/readyz`` asks ``is_at_head``.
Processes that start together (an API replica, a scheduler, a driver) may all migrate at once, so the
upgrade runs in one transaction that first takes a lock: on PostgreSQL a transaction-level advisory
lock (two processes creating the tables of an empty database at once crashed one of them with a
UniqueViolation), on SQLite the database's write lock (``BEGIN IMMEDIATE``). The second process waits,
then finds the schema at head and does nothing.

The Alembic ``Config`` is built here, pointing inside the installed package, so migrations work the
same from a checkout, a wheel or a container. Developers still use the ``alembic`` CLI to write new
revisions (``alembic -c <ini with script_location = service/migrations> revision --autogenerate``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import URL, Connection

from .engine import make_engine, read_only_engine

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "head_revisions",
    "is_at_head",
    "sqlite_foreign_keys",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Our own version table: Optuna's RDB storage (kept in the same database so `optuna-dashboard <url>`
# shows the search studies) runs Alembic too, with the default ``alembic_version`` table.
VERSION_TABLE = "demonlab_alembic_version"
# Any fixed 64-bit number, other than dal.CLAIM_LOCK_KEY: the advisory lock that serialises migrations.
MIGRATION_LOCK_KEY = 0x64656D6F6E6D6967  # "demonmig"


def alembic_config() -> Config:
    """An Alembic configuration for the packaged migrations (``env.py`` reads the connection from
    ``config.attributes["connection"]``, or else the ``sqlalchemy.url`` main option)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_to_head(engine_or_url: Engine | URL | str) -> None:
    """Migrate the database to the newest schema, one process at a time; a no-op when it is there."""
    owned = not isinstance(engine_or_url, Engine)
    engine = make_engine(engine_or_url) if not isinstance(engine_or_url, Engine) else engine_or_url
    try:
        with engine.connect() as connection:
            _upgrade_locked(connection)
    finally:
        if owned:
            engine.dispose()


def _upgrade_locked(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:  # outside any transaction, where SQLite takes this PRAGMA (see env.py)
        sqlite_foreign_keys(connection, on=False)
    try:
        with connection.begin():  # SQLite: BEGIN IMMEDIATE, the write lock (service.db.engine)
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if sqlite:
            sqlite_foreign_keys(connection, on=True)


def sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """Turn SQLite's foreign keys on or off for this connection (it must not be in a transaction:
    inside one SQLite ignores the PRAGMA, silently, and ON DELETE CASCADE stops firing)."""
    if connection.in_transaction():
        raise RuntimeError("PRAGMA foreign_keys inside a transaction is ignored by SQLite")
    driver_connection: Any = connection.connection.driver_connection
    driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


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
