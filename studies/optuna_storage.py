"""Open Optuna's RDB storage where another process may be creating its tables at the same moment.

``optuna.storages.RDBStorage`` creates its tables on first use (SQLAlchemy ``create_all``: look,
then create). Two processes doing that at once on a new database collide: on PostgreSQL one of them
fails with ``UniqueViolation`` on ``pg_type`` (its ``CREATE TYPE`` lost the race) or "relation
already exists"; on SQLite "table … already exists". Seen in CI: a study's driver writing its
Optuna mirror while a reader opened the same storage. The tables are there once the other process
is done, so the loser opens the storage again.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["open_rdb_storage"]

ATTEMPTS = 5


def open_rdb_storage(url: str, *, engine_kwargs: dict[str, Any] | None = None) -> Any:
    """``optuna.storages.RDBStorage(url)``, tried again (up to ``ATTEMPTS`` times, 0.2 s apart and
    growing) when its table creation lost a race with another process's."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(1, ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(url=url, engine_kwargs=engine_kwargs)
        except (IntegrityError, ProgrammingError, OperationalError) as error:
            raced = isinstance(error, IntegrityError) or "already exists" in str(error)
            if not raced or attempt == ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises
