"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import text

from ...db.engine import session_scope
from ...db.migrations import is_at_head
from ...schemas import Health, Readiness
from ..deps import EngineDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process answers (on the event loop: a plain ``def`` would hop to the thread pool)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready"}})
def readyz(engine: EngineDep, response: Response) -> Readiness:
    """The database answers and its schema is at the migrations' head (503 otherwise)."""
    checks: dict[str, Any] = {}
    try:
        with session_scope(engine, read_only=True) as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "head" if is_at_head(engine) else "behind"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    ready = checks.get("database") == "ok" and checks.get("migrations") == "head"
    response.status_code = 200 if ready else 503
    return Readiness(status="ready" if ready else "not ready", **checks)
