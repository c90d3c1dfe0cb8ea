"""Alembic's environment for the service's schema: the target is ``service.db.models.Base.metadata``.

Runs from ``service.db.migrations.upgrade_to_head`` (which hands over a connection in
``config.attributes["connection"]``) or from the ``alembic`` CLI (which gives ``sqlalchemy.url``).
``render_as_batch`` makes ALTERs work on SQLite by copying tables; SQLite's foreign keys are off while
migrating, or a table copy's DROP would cascade into its children and delete their rows.

``upgrade_to_head`` hands over a connection already inside its own (locked) transaction, having turned
the foreign keys off itself; Alembic then runs inside that transaction and the caller commits. A
connection not in a transaction (the ``alembic`` CLI, a test's downgrade) is handled here: foreign
keys off, the migrations, a commit, then foreign keys back on. The commit matters: SQLAlchemy begins
a transaction on the first query (Alembic's look at the version table), Alembic does not end it on
SQLite when there is nothing to migrate, and a ``PRAGMA foreign_keys=ON`` inside it is ignored: every
restart left the pooled connection without ON DELETE CASCADE.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from service.db.engine import make_engine
from service.db.migrations import VERSION_TABLE, sqlite_foreign_keys
from service.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Write the migrations' SQL instead of running it (``alembic upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the connection we were given, or one to ``sqlalchemy.url``."""
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as own_connection:
            _migrate(own_connection)
    finally:
        engine.dispose()


def _migrate(connection: Connection) -> None:
    external = connection.in_transaction()  # upgrade_to_head's: it owns the transaction and the PRAGMAs
    sqlite = connection.dialect.name == "sqlite" and not external
    if sqlite:
        sqlite_foreign_keys(connection, on=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
            version_table=VERSION_TABLE,
        )
        with context.begin_transaction():
            context.run_migrations()
        if not external and connection.in_transaction():
            connection.commit()
    finally:
        if sqlite:
            if connection.in_transaction():  # a migration failed half-way
                connection.rollback()
            sqlite_foreign_keys(connection, on=True)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
