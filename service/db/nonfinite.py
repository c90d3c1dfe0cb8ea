"""Non-finite floats in SQL: a finite value column plus a kind column, never a raw NaN in the database.

A diverged trial is data: its loss may be ``inf`` or ``nan``, and that must survive a round trip.
SQL engines disagree on non-finite doubles (SQLite turns NaN into NULL, PostgreSQL sorts NaN above
every number and lets it poison ``avg``), so, as Optuna's RDB storage does, each float that may be
non-finite is stored as two columns:

    <name>       DOUBLE PRECISION   the value when it is finite, else NULL
    <name>_kind  VARCHAR            'finite' | 'nan' | 'inf' | '-inf', NULL when the value is missing

SQL aggregates over ``<name>`` therefore see finite values only, which is what a grid wants.
"""

from __future__ import annotations

import enum
import math

__all__ = ["ValueKind", "decode_float", "encode_float"]


class ValueKind(enum.StrEnum):
    """What a stored float is; only ``FINITE`` has a value in the value column."""

    FINITE = "finite"
    NAN = "nan"
    INF_POS = "inf"
    INF_NEG = "-inf"


_NON_FINITE_VALUES = {ValueKind.NAN: math.nan, ValueKind.INF_POS: math.inf, ValueKind.INF_NEG: -math.inf}


def encode_float(value: float | None) -> tuple[float | None, ValueKind | None]:
    """``value`` as (finite value or None, kind or None); ``None`` (missing) is ``(None, None)``."""
    if value is None:
        return None, None
    value = float(value)
    if math.isnan(value):
        return None, ValueKind.NAN
    if math.isinf(value):
        return None, ValueKind.INF_POS if value > 0 else ValueKind.INF_NEG
    return value, ValueKind.FINITE


def decode_float(value: float | None, kind: ValueKind | str | None) -> float | None:
    """Inverse of ``encode_float``."""
    if kind is None:
        return None
    kind = ValueKind(kind)
    if kind is ValueKind.FINITE:
        return value
    return _NON_FINITE_VALUES[kind]
