"""The service's domain errors: what went wrong, in the words of studies and trials, not of SQL or HTTP.

The data-access layer and the service modules raise these (the session manager translates database
errors into them) and the HTTP layer maps them to status codes in one place (``service.app``). The
client raises the same tree from the other side of the wire, so a caller of the Python client or of
the service catches at the level it cares about::

    DemonlabError
     ├── NotFound            404  a study, trial or token that does not exist
     ├── Conflict            409  the request clashes with the current state (a running study, a duplicate)
     │    └── SpecUnreadable 409  a stored study spec this version cannot read (names the field and the reason)
     ├── InvalidInput        422  a value the service cannot accept (names the field and the reason)
     │    └── SpecInvalid    422  a study spec that fails validation, with every error
     ├── Unauthorized        401  a mutating request without a valid bearer token
     ├── TooManyRequests     429  a client over a rate limit (``retry_after`` seconds)
     ├── StorageUnavailable  503  the database cannot be reached, is locked, or failed to answer
     └── ApiError                 (client side) the service answered an HTTP error: status, detail, field
          └── ServiceUnreachable  no answer at all: connection refused, timeout (wraps httpx's error)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "ApiError",
    "Conflict",
    "DemonlabError",
    "InvalidInput",
    "NotFound",
    "ServiceUnreachable",
    "SpecInvalid",
    "SpecUnreadable",
    "StorageUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "field_name",
    "reason",
    "spec_errors",
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


class SpecUnreadable(Conflict):
    """A study whose stored spec this version cannot read: stored by another release (an arm renamed
    since, a workload removed, a field added) or edited in the database. ``errors`` lists each invalid
    field as {field, reason}; the message names the study and the first few.

    A conflict (409), not invalid input (422): the request is fine, the stored study is at odds with
    this version, and no change to the request would read it; nor a server error (500): the service works, and
    the study's row, trials and export still read. Only what needs the typed spec (its reports) fails."""

    SHOWN = 3  # the errors the message names; ``errors`` has every one

    def __init__(self, study_id: str, errors: list[dict[str, str]]) -> None:
        listed = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[: self.SHOWN]) or "invalid"
        if len(errors) > self.SHOWN:
            listed += f" (and {len(errors) - self.SHOWN} more)"
        super().__init__(f"study {study_id}'s stored spec cannot be read by this version: {listed}")
        self.study_id = study_id
        self.errors = errors


class InvalidInput(DemonlabError):
    """A value the service cannot accept: ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid {field}: {reason}")
        self.field = field
        self.reason = reason


class SpecInvalid(InvalidInput):
    """A study spec that fails validation: ``errors`` lists every one as {field, reason}; the first
    one is the ``field`` and ``reason``."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        first = errors[0] if errors else {"field": "spec", "reason": "invalid"}
        super().__init__(first["field"], first["reason"])
        self.errors = errors


class Unauthorized(DemonlabError):
    """A mutating request without a valid bearer token while tokens are configured."""


class TooManyRequests(DemonlabError):
    """A client over one of the service's rate limits: try again in ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailable(DemonlabError):
    """The database cannot be reached, is locked for too long, or failed operationally."""


class ApiError(DemonlabError):
    """The service answered with an HTTP error: ``status``, ``detail`` and, where named, ``field``."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.field = field


class ServiceUnreachable(ApiError):
    """No answer from the service (refused, reset, timed out): ``status`` is 0, the cause is chained."""

    def __init__(self, url: str, cause: Exception) -> None:
        super().__init__(0, f"cannot reach the server at {url}: {cause or type(cause).__name__}")
        self.url = url


def field_name(location: object, default: str = "body") -> str:
    """A validation error's location as the user wrote the field: ``("query", "offset")`` →
    "offset", ``("body", "lr", "list[float]", 0)`` → "lr.0" (no source prefix, no union-branch names)."""
    parts = [str(p) for p in location] if isinstance(location, (list, tuple)) else []
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    parts = [p for p in parts if "[" not in p and not (p[:1].isupper() and p.isidentifier()) and not _branch(p)]
    return ".".join(parts) or default


def _branch(part: str) -> bool:
    """A union branch's name in a location (``constrained-str``, ``function-after``), not a field."""
    return part.startswith(("constrained-", "function-", "lax-", "json-or-python", "chain", "nullable"))


def reason(message: str) -> str:
    """Pydantic's message without its "Value error, " prefix."""
    return message.removeprefix("Value error, ")


# What pydantic puts in an error's location for each branch of a union (``seeds: int | list[int]``
# fails as "seeds.int" and "seeds.list[int]"): not a field the user wrote.
_UNION_BRANCHES = frozenset({"int", "float", "str", "bool", "bytes", "none"})


def _spec_error(error: Any) -> dict[str, str]:
    """A spec validation error as {field, reason}; a whole-spec check names its field in the message
    ("metric: unknown metric ..."), so that field is reported."""
    message = reason(str(error["msg"]))
    field = field_name([p for p in error["loc"] if p not in _UNION_BRANCHES], default="")
    if not field:
        named = re.match(r"^([a-z_]+(?:\.[a-z_0-9]+)*): (.+)$", message, re.DOTALL)
        field, message = (named.group(1), named.group(2)) if named else ("spec", message)
    return {"field": field, "reason": message}


def spec_errors(exc: ValidationError) -> list[dict[str, str]]:
    """A spec's validation errors as the API lists them: one {field, reason} per field."""
    return _one_per_field(exc.errors())


def _one_per_field(errors: list[Any]) -> list[dict[str, str]]:
    """A value that fits no branch of a union fails once per branch: where one branch got inside the
    value (``seeds: [1, x]`` fails at seeds.1 as a list) the other branches' errors at the field
    itself are dropped; what remains is one error per field, its reasons joined ("Input should be a
    valid integer or a valid list")."""
    checked = [(_spec_error(e), any(p in _UNION_BRANCHES or "[" in str(p) for p in e["loc"])) for e in errors]
    deeper = {error["field"].rsplit(".", 1)[0] for error, branch in checked if branch and "." in error["field"]}
    merged: dict[str, list[str]] = {}
    for error, branch in checked:
        if branch and error["field"] in deeper:
            continue
        reasons = merged.setdefault(error["field"], [])
        if error["reason"] not in reasons:
            reasons.append(error["reason"])
    prefix = "Input should be "
    return [
        {"field": field, "reason": reasons[0] + "".join(f" or {r.removeprefix(prefix)}" for r in reasons[1:])}
        for field, reasons in merged.items()
    ]
