"""The service's domain errors: what went wrong, in the words of studies and trials, not of SQL or HTTP.

The data-access layer raises these (the session manager translates database errors into them) and
the HTTP layer maps them to status codes in one place. Callers catch at the level they care about::

    DemonlabError
     ├── NotFound            a study, trial or token that does not exist
     ├── Conflict            the request clashes with the current state (a running study, a duplicate)
     ├── InvalidInput        a value the service cannot accept (names the field and the reason)
     └── StorageUnavailable  the database cannot be reached, is locked, or failed to answer
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "DemonlabError",
    "InvalidInput",
    "NotFound",
    "StorageUnavailable",
    "field_name",
    "reason",
]


class DemonlabError(Exception):
    """Base of every error the service raises on purpose."""


class NotFound(DemonlabError):
    """The named thing does not exist (``kind`` is "study", "trial", "token"...)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class Conflict(DemonlabError):
    """The operation is not possible in the current state, or would duplicate existing data."""


class InvalidInput(DemonlabError):
    """A value the service cannot accept: ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid {field}: {reason}")
        self.field = field
        self.reason = reason


class StorageUnavailable(DemonlabError):
    """The database cannot be reached, is locked for too long, or failed operationally."""


def field_name(location: object, default: str = "body") -> str:
    """A validation error's location as the user wrote the field: ``("query", "offset")`` →
    "offset", ``("body", "lr", "list[float]", 0)`` → "lr.0" (no source prefix, no union-branch names)."""
    parts = [str(p) for p in location] if isinstance(location, (list, tuple)) else []
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    parts = [p for p in parts if "[" not in p and not (p[:1].isupper() and p.isidentifier())]
    return ".".join(parts) or default


def reason(message: str) -> str:
    """Pydantic's message without its "Value error, " prefix."""
    return message.removeprefix("Value error, ")
