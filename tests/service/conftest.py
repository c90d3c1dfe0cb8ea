"""Fixtures for the service's storage tests: every test that takes ``db_url`` runs on SQLite and PostgreSQL.

``db_url`` is a database migrated to head with no rows: on SQLite a copy of a file migrated once
per test session, on PostgreSQL one fresh database per test session (and so per xdist worker:
``demonlab_test_<pid>_<random>``, dropped at the end), migrated once, whose tables are emptied after
each test (a test that changed the schema leaves it dropped, and the next one migrates again).
``empty_db_url`` is a database with no schema at all, for the tests of the migrations. The server
is ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` unless ``DEMONLAB_TEST_POSTGRES_URL``
names another. When it is unreachable the PostgreSQL half is skipped,
or fails when ``CI`` is set: CI must never pass without having run it.

The HTTP tests build on the same database fixture: ``settings_factory`` makes ``Settings`` for it with
a short data dir under /tmp (Ray's socket paths must stay short), ``api`` / ``api_factory`` an
in-process ``TestClient`` (the lifespan migrates the database), and ``live_server`` a real uvicorn
server on a free port in a thread.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dashboard_helpers
import pytest
import yaml
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from service.app import create_app
from service.db import Study, dal, make_engine, session_scope, upgrade_to_head
from service.db.migrations import VERSION_TABLE, head_revisions
from service.settings import Settings
from studies.results import TrialKey

if TYPE_CHECKING:
    from fastapi import FastAPI

# Starlette warns (a UserWarning, an error under our filters) when its TestClient is imported with httpx
# rather than httpx2; imported once here, test modules import it from fastapi as usual.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*starlette\.testclient.*", category=UserWarning)
    from fastapi.testclient import TestClient

SMOKE_SPEC_PATH = Path(__file__).resolve().parents[2] / "studies" / "examples" / "synthetic_smoke.yaml"

ADMIN_URL = os.environ.get("DEMONLAB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _unreachable(exc: Exception) -> None:
    message = f"PostgreSQL is unreachable at {ADMIN_URL}: {exc}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}\nCI is set, so the PostgreSQL tests must run: start the server.", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def _packs_checkpoint_every_epoch() -> Iterator[None]:
    """Drivers' packs checkpoint after every epoch (``studies.packed.trainer.checkpoint_cadence``;
    the default is every 30 s): the kill-and-resume tests need a checkpoint within a short study.
    Drivers inherit it from this process's environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMONLAB_CHECKPOINT_SECONDS", "0")
        yield


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the server's maintenance database (skips or fails if unreachable)."""
    engine = create_engine(
        ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        engine.dispose()
        _unreachable(exc)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin: Engine) -> Iterator[URL]:
    """A database of our own for this test session, dropped (connections terminated) at the end."""
    name = f"demonlab_test_{os.getpid()}_{secrets.token_hex(3)}"
    with postgres_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield make_url(ADMIN_URL).set(database=name)
    _terminate_connections(postgres_admin, name)
    with postgres_admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')


def _terminate_connections(admin: Engine, database: str) -> None:
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": database},
        )


def _empty_public_schema(admin: Engine, url: URL) -> None:
    _terminate_connections(admin, str(url.database))  # a failed test may have leaked a connection
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS optuna CASCADE")  # Optuna's storage (service.jobs.driver)
    engine.dispose()


# What the public schema of a database at head holds (tables, indexes, sequences, types, by name).
_SCHEMA_OBJECTS = """
    SELECT 'r' || relkind::text || ':' || relname FROM pg_class
    WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT 't:' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
"""


class _MigratedPostgres:
    """The session's PostgreSQL database, kept at head between tests: after a test its rows are
    truncated (milliseconds) rather than its schema dropped and migrated again (~0.4 s a test). When
    the test left anything else than rows (a migration moved, a table added, an empty database
    asked for) the schema is dropped, and the next test migrates it again."""

    def __init__(self, admin: Engine, url: URL) -> None:
        self.admin = admin
        self.url = url
        self.at_head: frozenset[str] | None = None  # the schema's objects when migrated, else None

    def migrated(self) -> str:
        if self.at_head is None:
            _empty_public_schema(self.admin, self.url)
            engine = make_engine(self.url)
            try:
                upgrade_to_head(engine)
                with engine.connect() as connection:
                    self.at_head = frozenset(connection.exec_driver_sql(_SCHEMA_OBJECTS).scalars())
            finally:
                engine.dispose()
        return self.url.render_as_string(hide_password=False)

    def empty(self) -> str:
        _empty_public_schema(self.admin, self.url)
        self.at_head = None
        return self.url.render_as_string(hide_password=False)

    def clean_up(self) -> None:
        """Back to head with no rows (truncate), or to nothing (drop) when the schema moved."""
        _terminate_connections(self.admin, str(self.url.database))  # a failed test may have leaked one
        if self.at_head is None:
            return
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as connection:
                objects = frozenset(connection.exec_driver_sql(_SCHEMA_OBJECTS).scalars())
                revisions = frozenset(MigrationContext.configure(connection, opts=_VERSION).get_current_heads())
                if objects == self.at_head and revisions == head_revisions():
                    tables = [name for kind, name in (o.split(":", 1) for o in objects) if kind == "rr"]
                    data = ", ".join(f'public."{t}"' for t in sorted(tables) if t != VERSION_TABLE)
                    connection.exec_driver_sql(f"TRUNCATE {data} RESTART IDENTITY CASCADE")
                    connection.exec_driver_sql("DROP SCHEMA IF EXISTS optuna CASCADE")  # the driver's Optuna storage
                    return
        except OperationalError:  # a process of the test still writing (a driver on a cluster): deadlock
            pass
        finally:
            engine.dispose()
        self.at_head = None
        for attempt in range(3):  # drop it all, ending whatever connects meanwhile
            try:
                _empty_public_schema(self.admin, self.url)
                return
            except OperationalError:
                if attempt == 2:
                    raise


_VERSION = {"version_table": VERSION_TABLE}


@pytest.fixture(scope="session")
def migrated_postgres(postgres_admin: Engine, postgres_url: URL) -> _MigratedPostgres:
    return _MigratedPostgres(postgres_admin, postgres_url)


@pytest.fixture(scope="session")
def sqlite_at_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-at-head") / "demonlab.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.hookimpl(tryfirst=True)  # before the fixture's own params (both backends) are applied
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module whose tests do not depend on the database's kind says ``ONE_BACKEND = "sqlite"`` (with
    why): its tests then run on that backend only, where the others run on both. A test that
    parametrizes ``db_url`` itself keeps its own choice."""
    only = getattr(metafunc.module, "ONE_BACKEND", None)
    if only is None or "db_url" not in metafunc.fixturenames:
        return
    if any("db_url" in str(marker.args[0]) for marker in metafunc.definition.iter_markers("parametrize")):
        return
    # as a mark, as if written on the test: pytest then gives it precedence over the fixture's params
    metafunc.definition.add_marker(pytest.mark.parametrize("db_url", [only], indirect=True))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a database at head with no rows: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "demonlab.db"
        shutil.copyfile(request.getfixturevalue("sqlite_at_head"), path)
        yield f"sqlite:///{path}"
        return
    postgres: _MigratedPostgres = request.getfixturevalue("migrated_postgres")
    yield postgres.migrated()
    postgres.clean_up()


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an empty database (no schema): a new SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'demonlab.db'}"
        return
    postgres: _MigratedPostgres = request.getfixturevalue("migrated_postgres")
    yield postgres.empty()
    postgres.clean_up()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the test's database (migrated to head; ``upgrade_to_head`` finds nothing to do
    unless the module's ``db_url`` is an empty database)."""
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def _grid_keys(
    arms: Sequence[str], lrs: Sequence[float], betas: Sequence[float], seeds: Sequence[int]
) -> list[TrialKey]:
    return [
        TrialKey(arm=arm, lr=lr, beta_init=beta, seed=seed)
        for arm in arms
        for lr in lrs
        for beta in betas
        for seed in seeds
    ]


@pytest.fixture
def grid() -> list[TrialKey]:
    """The 16 trial keys of a small grid: 2 arms x 2 lr x 2 beta_init x 2 seeds, in key order."""
    return sorted(_grid_keys(("demon_sgdm", "sgdm_step"), (0.01, 0.1), (0.9, 0.99), (0, 1)))


NewStudy = Callable[..., Study]


@pytest.fixture
def new_study(engine: Engine, grid: list[TrialKey]) -> NewStudy:
    """Create a study in its own transaction: ``new_study(name=..., trial_keys=..., **create_kwargs)``."""

    def create(**overrides: Any) -> Study:
        kwargs: dict[str, Any] = {
            "name": "study",
            "workload": "synthetic",
            "spec": {"workload": "synthetic", "epochs": 3},
            "spec_hash": "hash-1",
            "trial_keys": grid,
            "launcher": "local",
        }
        with session_scope(engine) as session:
            return dal.create_study(session, **(kwargs | overrides))

    return create


# ------------------------------------------------------------------------------------------ HTTP API


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh, short data dir (``/tmp/dl-…``: Ray's socket paths live under it), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="dl-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def settings_factory(db_url: str, data_dir: Path) -> SettingsFactory:
    """``Settings`` on the test's database and data dir; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        fields: dict[str, Any] = {"data_dir": data_dir, "database_url": db_url} | overrides
        return Settings(**fields)

    return make


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    """The default ``Settings`` of the test's database."""
    return settings_factory()


ApiFactory = Callable[..., TestClient]


@pytest.fixture
def api_factory(settings_factory: SettingsFactory) -> Iterator[ApiFactory]:
    """``api_factory(**settings_overrides)``: an in-process client of an app without scheduler, its
    lifespan entered (database migrated) and left at the end of the test."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            app = create_app(settings_factory(**overrides), run_scheduler=False)
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def api(api_factory: ApiFactory) -> TestClient:
    """An in-process client of the app on the test's database (no scheduler)."""
    return api_factory()


@pytest.fixture
def smoke_spec() -> dict[str, Any]:
    """``studies/examples/synthetic_smoke.yaml``: 2 arms × 3 lr × 2 β_init × 2 seeds = 24 trials."""
    spec: dict[str, Any] = yaml.safe_load(SMOKE_SPEC_PATH.read_text())
    return spec


@contextmanager
def serve(app: FastAPI, *, startup_timeout: float = 60.0) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free port of 127.0.0.1 in a thread; yields its base URL.

    The server (and with it the app's lifespan: scheduler stopped, engine disposed) is shut down on
    the way out, whatever happened inside.
    """
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped during start-up (see the captured log)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {startup_timeout}s")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=10)


LiveServer = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def live_server(settings_factory: SettingsFactory) -> LiveServer:
    """``with live_server(run_scheduler=False, **settings_overrides) as url``: the app over real HTTP."""

    def start(*, run_scheduler: bool = False, **overrides: Any) -> AbstractContextManager[str]:
        return serve(create_app(settings_factory(**overrides), run_scheduler=run_scheduler))

    return start


# --------------------------------------------------------------- the dashboard in a real browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dashboard_helpers.Server]:
    """A running ``demonlab serve`` (SQLite, no scheduler) for one browser test."""
    with dashboard_helpers.serve(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with dashboard_helpers.chromium() as running:
        yield running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh 1400 × 900 page: the first screen the study page must answer on."""
    with dashboard_helpers.new_page(browser) as fresh:
        yield fresh
