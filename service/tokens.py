"""API token lifetimes: ``--expires-in 30d`` as a moment, and a token's state (active, expired, revoked).

A token is refused (401) once expired or revoked. Revoking keeps the row (``revoked_at``), so revoking
every token never turns the API back into one that asks for none.
"""

from __future__ import annotations

import datetime as dt
import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
MAX_LIFETIME = dt.timedelta(days=3650)


def parse_duration(text: str) -> dt.timedelta:
    """``"90m"``, ``"12h"``, ``"30d"``, ``"2w"`` (or ``"45s"``) as a positive ``timedelta``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if not match:
        raise ValueError(f"--expires-in: {text!r} is not a duration like 90m, 12h, 30d or 2w")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"--expires-in: {text!r} must be longer than zero")
    if seconds > MAX_LIFETIME.total_seconds():  # before timedelta, which overflows past 999,999,999 days
        raise ValueError(f"--expires-in: {text!r} is longer than the 10-year maximum (omit it for no expiry)")
    return dt.timedelta(seconds=seconds)


def expiry_from(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """When a token created ``now`` (default: this moment, UTC) with lifetime ``text`` expires."""
    return (now or dt.datetime.now(dt.UTC)) + parse_duration(text)


def token_state(*, expires_at: dt.datetime | None, revoked_at: dt.datetime | None, now: dt.datetime) -> str:
    """ "revoked", "expired" or "active"."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"
