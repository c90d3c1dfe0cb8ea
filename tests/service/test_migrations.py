"""The shipped migrations, on SQLite and on PostgreSQL: an empty database migrated to head has exactly
the schema of the models, ``is_at_head`` tells the two states apart, and the way back works too."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from service.db import Base, is_at_head, make_engine, upgrade_to_head
from service.db.migrations import VERSION_TABLE, alembic_config, head_revisions

TABLES = {"demonlab_alembic_version", "api_tokens", "studies", "trial_epochs", "trials"}


def schema_diff(engine: Engine) -> list[Any]:
    """What autogenerate would still write to bring the database to the models (nothing, we hope)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "version_table": VERSION_TABLE})
        return list(compare_metadata(context, Base.metadata))


def test_empty_database_migrates_to_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert not is_at_head(engine)
        upgrade_to_head(engine)
        assert is_at_head(engine)
        assert set(inspect(engine).get_table_names()) == TABLES
        assert schema_diff(engine) == []
        upgrade_to_head(engine)  # at head already: nothing to do
        assert is_at_head(engine)
    finally:
        engine.dispose()


def test_upgrade_from_a_url(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    try:
        assert is_at_head(engine)
    finally:
        engine.dispose()


def test_schema_comparison_sees_drift(engine: Engine) -> None:
    """A control: the comparison above is not vacuous."""
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_trials_study_id_status")
    assert [diff[0] for diff in schema_diff(engine)] == ["add_index"]


def test_downgrade_to_base_and_back(engine: Engine) -> None:
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {VERSION_TABLE}
    assert not is_at_head(engine)
    upgrade_to_head(engine)
    assert schema_diff(engine) == []


def test_sqlite_foreign_keys_back_on_after_migrating(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", pool_size=1)  # one connection, reused
    try:
        upgrade_to_head(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_one_head() -> None:
    assert head_revisions() == frozenset({"0002_issue9"})
