"""The database schema as SQLAlchemy 2 declarative models: studies, trials, trial epochs, API tokens.

The models are the source of truth; ``service/migrations`` must produce the same schema (a test
compares them). Design choices, shared by SQLite and PostgreSQL:

- A study's id is 12 lowercase hex characters (48 random bits): short in URLs, logs, Ray job names
  and Optuna study names, and not guessable from its neighbours. Other tables use integer ids.
- Enums are stored as short VARCHARs of their values (no native PostgreSQL enum types), so a new
  status is a code change, not a type migration.
- Floats are DOUBLE PRECISION; every float that may be non-finite (metrics, losses, curve points) is
  a value/kind column pair (``service.db.nonfinite``). Trial keys (lr, β_init) are always finite.
- Timestamps are timezone-aware UTC on the Python side (``UTCDateTime``), whatever the engine stores.
- Foreign keys cascade on delete in the database, so deleting a study is one statement and the ORM
  never loads 20,000 trials to delete them; there are no ORM relationships for the same reason.
- Constraint and index names follow one naming convention, which Alembic's batch mode needs on SQLite.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from studies.vocab.statuses import StudyStatus, TrialStatus

from .nonfinite import ValueKind

__all__ = [
    "ApiToken",
    "Base",
    "Study",
    "StudyStatus",
    "Trial",
    "TrialEpoch",
    "UTCDateTime",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC: the only clock the storage layer uses."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is aware UTC in Python on every engine (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the storage layer only takes aware UTC")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _enum(cls: type[enum.Enum], name: str, length: int = 16) -> Enum:
    """An enum stored as a VARCHAR of its values (``'completed'``, ``'-inf'``), 16 long by default."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def _kind() -> Enum:
    return _enum(ValueKind, "value_kind")


class Base(DeclarativeBase):
    """Declarative base; its ``metadata`` is what the migrations must reproduce."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        float: Double(),
        dict[str, Any]: JSON(),
    }


class Study(Base):
    """One submitted study: its spec, where it runs, and its progress.

    Progress counters are recomputed from the trials whenever a result is recorded:
    ``trials_done`` counts results (completed + diverged), ``trials_diverged`` the diverged among them,
    ``trials_failed`` trials that crashed (they are retried on relaunch). ``attempts`` counts launches.
    ``environment`` records the software and hardware it ran on (``studies.environment``), set by its driver.
    """

    __tablename__ = "studies"
    __table_args__ = (Index(None, "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    workload: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]]
    spec_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[StudyStatus] = mapped_column(_enum(StudyStatus, "study_status", 32))
    launcher: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    job_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    trials_total: Mapped[int] = mapped_column(default=0)
    trials_done: Mapped[int] = mapped_column(default=0)
    trials_diverged: Mapped[int] = mapped_column(default=0)
    trials_failed: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    environment: Mapped[dict[str, Any] | None]


class Trial(Base):
    """One (arm, lr, β_init, seed) of a study and, once it ran, its final scores.

    Score columns come in value/kind pairs (see ``service.db.nonfinite``); read them through the DAL,
    which decodes them. The unique key's index (study_id, arm, lr, beta_init, seed) also serves every
    lookup by a prefix of it (a study, an arm, a grid cell), so no separate index repeats that prefix.
    """

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "arm", "lr", "beta_init", "seed"),
        Index(None, "study_id", "status"),
        Index(None, "study_id", "updated_at"),  # a study's event stream: trials recorded since its cursor
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    arm: Mapped[str] = mapped_column(String(64))
    lr: Mapped[float]
    beta_init: Mapped[float]
    seed: Mapped[int]
    status: Mapped[TrialStatus] = mapped_column(_enum(TrialStatus, "trial_status"))
    val_metric: Mapped[float | None]
    val_metric_kind: Mapped[ValueKind | None] = mapped_column(_kind())
    val_loss: Mapped[float | None]
    val_loss_kind: Mapped[ValueKind | None] = mapped_column(_kind())
    test_metric: Mapped[float | None]
    test_metric_kind: Mapped[ValueKind | None] = mapped_column(_kind())
    test_loss: Mapped[float | None]
    test_loss_kind: Mapped[ValueKind | None] = mapped_column(_kind())
    best_val_metric: Mapped[float | None]
    best_val_metric_kind: Mapped[ValueKind | None] = mapped_column(_kind())
    epochs_done: Mapped[int] = mapped_column(default=0)
    wall_seconds: Mapped[float] = mapped_column(default=0.0)
    node: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrialEpoch(Base):
    """One point of a trial's learning curve (value/kind pairs: a blown-up epoch is kept as it was)."""

    __tablename__ = "trial_epochs"

    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(primary_key=True)
    train_loss: Mapped[float | None]
    train_loss_kind: Mapped[ValueKind | None] = mapped_column(_kind())
    val_loss: Mapped[float | None]
    val_loss_kind: Mapped[ValueKind | None] = mapped_column(_kind())
    val_metric: Mapped[float | None]
    val_metric_kind: Mapped[ValueKind | None] = mapped_column(_kind())


class ApiToken(Base):
    """An API token: only the SHA-256 hex digest of the secret is stored, never the secret. It works
    until ``expires_at`` (none: no expiry) and stops at once when ``revoked_at`` is set."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class StudyReport(Base):
    """A finished study's computed report (its sensitivity figures), kept so that no visitor, after
    the first computation or a restart, waits for it again. ``key`` names the report and its
    parameters (metric, split, ε), ``progress`` the study's state it was computed for (a relaunch
    changes it, and the stored report is then recomputed); ``payload`` is its JSON text."""

    __tablename__ = "study_reports"

    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    progress: Mapped[str] = mapped_column(String(400))
    payload: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
