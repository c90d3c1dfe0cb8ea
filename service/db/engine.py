"""Engines and the one session scope: how the service talks to SQLite or PostgreSQL.

``make_engine(url)`` knows the two engines the service supports:

- SQLite (the single-machine default): WAL journal so readers never block the writer, a 30 s busy
  timeout, foreign keys on (SQLite's default is off, and the schema relies on ON DELETE CASCADE),
  and transactions begun by SQLAlchemy rather than by the ``sqlite3`` module, which otherwise starts
  them late and breaks SAVEPOINTs. A write transaction starts with ``BEGIN IMMEDIATE``: it takes the
  write lock up front (waiting up to the busy timeout), so a read-then-write transaction can never
  fail half-way because another writer committed in between. Read-only scopes use plain ``BEGIN``.
- PostgreSQL (shared by drivers on other machines): psycopg 3 whatever the URL's spelling, and
  ``pool_pre_ping`` so a restarted server costs one reconnect, not one failed request.

``session_scope(engine)`` is the only place that commits: it commits on success, rolls back on any
error, and turns SQLAlchemy's operational, integrity and data errors into the service's domain errors.
An unreachable database is logged with the driver's message (which names the server's host and port)
and raised as a ``StorageUnavailable`` that does not: its text is what anonymous clients see in a 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from service.errors import Conflict, InvalidInput, StorageUnavailable

__all__ = ["UNAVAILABLE", "make_engine", "normalize_url", "read_only_engine", "session_scope"]

log = logging.getLogger("demonlab.db")
UNAVAILABLE = "the database is unavailable; try again shortly"

SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "demonlab_read_only"  # execution option that makes SQLite begin a deferred transaction
# Connections an engine keeps open, and how many more it opens under a burst (closed again on return).
# SQLAlchemy's 5 + 10 is below what one API process serves at once (FastAPI runs sync routes on up to
# 40 threads): 20 concurrent requests then closed and reopened connections all the time, and each
# PostgreSQL connect forks a server process (bench/api_latency.py: p99 spikes of hundreds of ms).
POOL_SIZE = 20
POOL_MAX_OVERFLOW = 20


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; ``postgres://`` and ``postgresql://`` become ``postgresql+psycopg://``."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for SQLite or PostgreSQL, configured as the module docstring says."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, **_pool_defaults(kwargs))
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL")


def _pool_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the pool's size unless the caller chose it (or another pool class)."""
    if "poolclass" in kwargs:
        return kwargs
    return {"pool_size": POOL_SIZE, "max_overflow": POOL_MAX_OVERFLOW} | kwargs


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:  # one connection, or each checkout would see a different empty database
        kwargs.setdefault("poolclass", StaticPool)
    else:
        Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs = _pool_defaults(kwargs)
    engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from the sqlite3 module: PRAGMAs run outside any transaction
    # here, and _sqlite_on_begin issues every BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode (it stays so: later connections find it there and change nothing).

    A new database's switch needs it to itself, and SQLite answers "database is locked" at once,
    without its busy timeout, while another connection writes: four processes migrating a new
    database at once failed so (CI). So wait for the writer here, up to the busy timeout."""
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_on_begin(connection: Connection) -> None:
    read_only = connection.get_execution_options().get(_READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def read_only_engine(engine: Engine) -> Engine:
    """The same engine for work that only reads: on SQLite its transactions do not take the write lock."""
    return engine.execution_options(**{_READ_ONLY: True})


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """A session in one transaction: commit on success, roll back on error, domain errors out.

    ``read_only`` scopes must not write; on SQLite they do not take the write lock. ORM objects stay
    readable after the scope ends (``expire_on_commit=False``), detached from any session.
    """
    session = Session(bind=read_only_engine(engine) if read_only else engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"the change conflicts with stored data: {exc.orig}") from exc
    except OperationalError as exc:
        session.rollback()
        log.warning("database unavailable: %s", exc.orig)
        raise StorageUnavailable(UNAVAILABLE) from exc
    except DataError as exc:  # e.g. a NUL character in PostgreSQL text, an integer out of its column's range
        session.rollback()
        raise InvalidInput("value", f"the database cannot take it: {str(exc.orig).splitlines()[0]}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
