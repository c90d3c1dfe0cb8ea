"""The error responses each route documents in the OpenAPI schema, all with the ``ErrorBody`` shape.

FastAPI documents a 422 as its own ``HTTPValidationError`` unless a route names the 422 itself; the
app answers every error as ``ErrorBody`` (``service.app``), so every route names its errors here,
and the schema says what the app really returns.
"""

from __future__ import annotations

from typing import Any

from ..schemas import ErrorBody

__all__ = ["errors"]

DESCRIPTIONS = {
    401: "a mutating request without a valid bearer token while tokens are configured",
    404: "no such study",
    409: (
        "the request clashes with the study's state (running, already finished, a reused idempotency key), "
        "or the study's stored spec cannot be read by this version"
    ),
    413: "the request body is larger than the limit (DEMONLAB_MAX_REQUEST_BYTES)",
    422: "a parameter or the body is not valid: the field at fault and why",
    429: "too many requests from this address (a spec parse, or wrong tokens): see Retry-After",
    503: "the database cannot be reached",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that answers these error statuses (422 and 503 always)."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in sorted({*codes, 422, 503})}
