"""The shipped migrations, on SQLite and on PostgreSQL: an empty database migrated to head has exactly
the schema of the models, ``is_at_head`` tells the two states apart, and the way back works too.
Processes that migrate at once are serialised; a restart (a migration with nothing to do) leaves
SQLite's foreign keys on; the orphans the old restarts left are repaired."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from service.db import Base, is_at_head, make_engine, upgrade_to_head
from service.db.migrations import VERSION_TABLE, alembic_config, head_revisions


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """Here every database starts empty, with no schema (elsewhere tests get one at head): these tests
    migrate it themselves, and so do the fixtures built on it (``engine``, ``api_factory``)."""
    return empty_db_url


TABLES = {"demonlab_alembic_version", "api_tokens", "studies", "study_reports", "trial_epochs", "trials"}


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


@pytest.mark.parametrize("restart", [False, True], ids=["empty", "restart-at-head"])
def test_sqlite_foreign_keys_stay_on_after_migrating(tmp_path: Any, restart: bool) -> None:
    """Migrating an empty database, or (a restart) one already at head: the pooled connection must
    still cascade (a restart used to leave it with ``PRAGMA foreign_keys=0``)."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    if restart:
        upgrade_to_head(url)  # the first start
    engine = make_engine(url, pool_size=1)  # one connection, reused by what follows
    try:
        upgrade_to_head(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_one_head() -> None:
    assert head_revisions() == frozenset({"0004_issue18"})


def test_a_study_deleted_after_a_restart_takes_its_trials_with_it(api_factory: Any, smoke_spec: dict[str, Any]) -> None:
    """The issue's repro: serve, restart, submit and DELETE a study, count its trials."""
    api_factory()  # the first start migrates the empty database
    restarted = api_factory()  # the restart: the schema is at head already
    response = restarted.post("/api/v1/studies", json=smoke_spec)
    assert response.status_code == 202, response.text
    study_id = response.json()["id"]
    engine = restarted.app.state.engine  # type: ignore[attr-defined]
    assert _count(engine, "trials") == 24

    assert restarted.delete(f"/api/v1/studies/{study_id}").status_code == 204

    assert _count(engine, "trials") == 0


def _migrate_in_a_process(url: str, barrier: Any, errors: Any) -> None:
    barrier.wait(timeout=60)  # every process starts migrating at the same moment
    try:
        upgrade_to_head(url)
    except Exception as exc:  # reported to the test, which shows it
        errors.put(f"{type(exc).__name__}: {exc}")


def _fresh_processes() -> Any:
    """Processes that share nothing with this one, as real service processes do: forked from a fork
    server (a fresh interpreter that has imported this module once), not from pytest. Spawning a
    fresh interpreter for each of the 12 processes cost ~2 s of imports apiece."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # read when the fork server starts (once per session)
    return context


@pytest.mark.parametrize("attempt", range(3))
def test_processes_that_migrate_an_empty_database_at_once_are_serialised(db_url: str, attempt: int) -> None:
    """Before the lock, two processes on an empty PostgreSQL database both created the tables and one
    crashed (UniqueViolation) in 2 of 4 tries."""
    context = _fresh_processes()
    barrier = context.Barrier(4)
    errors = context.Queue()
    processes = [context.Process(target=_migrate_in_a_process, args=(db_url, barrier, errors)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    engine = make_engine(db_url)
    try:
        assert is_at_head(engine)
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_the_orphans_old_restarts_left_are_deleted(db_url: str) -> None:
    """Trials (and their curves) whose study was deleted without the cascade go; others stay."""
    engine = make_engine(db_url)
    try:
        config = alembic_config()
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002_issue9")
            connection.commit()
        _insert_study_with_a_trial(engine, "kept", trial_id=1)
        _insert_study_with_a_trial(engine, "gone", trial_id=2)
        _delete_without_cascade(engine, "gone")
        assert _count(engine, "trials") == 2
        assert _count(engine, "trial_epochs") == 2

        upgrade_to_head(engine)

        with engine.connect() as connection:
            assert connection.execute(text("SELECT study_id FROM trials")).scalars().all() == ["kept"]
            assert connection.execute(text("SELECT trial_id FROM trial_epochs")).scalars().all() == [1]
    finally:
        engine.dispose()


def _insert_study_with_a_trial(engine: Engine, study_id: str, *, trial_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO studies (id, name, workload, spec, spec_hash, status, launcher, created_at,"
                " trials_total, trials_done, trials_diverged, trials_failed, attempts)"
                " VALUES (:id, 'x', 'synthetic', '{}', 'h', 'completed', 'local', CURRENT_TIMESTAMP, 1, 1, 0, 0, 0)"
            ),
            {"id": study_id},
        )
        connection.execute(
            text(
                "INSERT INTO trials (id, study_id, arm, lr, beta_init, seed, status, epochs_done, wall_seconds,"
                " attempts, extra, updated_at)"
                " VALUES (:tid, :sid, 'demon_sgdm', 0.1, 0.9, 0, 'completed', 1, 1.0, 1, '{}', CURRENT_TIMESTAMP)"
            ),
            {"tid": trial_id, "sid": study_id},
        )
        connection.execute(text("INSERT INTO trial_epochs (trial_id, epoch) VALUES (:tid, 1)"), {"tid": trial_id})


def _delete_without_cascade(engine: Engine, study_id: str) -> None:
    """What a restarted SQLite service did (foreign keys off); on PostgreSQL the same rows, with the
    constraint's triggers skipped for this session."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        else:
            connection.exec_driver_sql("SET session_replication_role = replica")
        connection.execute(text("DELETE FROM studies WHERE id = :id"), {"id": study_id})
        connection.commit()
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
        else:
            connection.exec_driver_sql("SET session_replication_role = origin")
            connection.commit()


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
