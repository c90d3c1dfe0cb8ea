"""Request dependencies as ``Annotated`` aliases: settings, engine, and the bearer-token guard.

The app keeps its ``Settings`` and ``Engine`` on ``app.state`` (set by ``create_app``), so tests
build an app per database without any import-time global.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from ..db import dal
from ..db.engine import session_scope
from ..errors import Unauthorized
from ..settings import Settings
from .ratelimit import client_address, rate_limits

# Declares the ``bearer`` security scheme in the OpenAPI schema; the check itself is ``require_token``
# (a missing header is not an error while no token is configured).
bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="an API token (`demonlab token create`)")


# The two below only read ``app.state``: ``async`` so FastAPI calls them on the event loop. A plain
# ``def`` dependency is run in the thread pool, one thread hop per request for nothing (py-spy on a
# server answering cached /grid requests: ~9% of its busy samples were that hop).


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
# A page's offset: bounded in the schema as in the database (a BIGINT), and far past any real table.
OffsetQuery = Annotated[int, Query(ge=0, le=10**12, description="rows to skip")]
EngineDep = Annotated[Engine, Depends(get_engine)]


def require_token(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Guard for mutating endpoints: when tokens are configured, demand ``Authorization: Bearer``.

    Tokens are "configured" when any exists in the database (expired and revoked ones too) or
    ``api_tokens_required`` is set; an expired or revoked token is refused (401) and says which.
    Wrong tokens are rate-limited per client address (``service.api.ratelimit``): 429 past the limit.
    """
    with session_scope(engine) as session:
        if not settings.api_tokens_required and not dal.any_tokens(session):
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "this endpoint requires 'Authorization: Bearer <token>' (create one with `demonlab token create`)"
            )
        limits, client = rate_limits(request), client_address(request)
        limits.check_token_guesses(client)  # 429 while this address is over its wrong-token allowance
        state = dal.check_token(session, token.strip())
        if state != "active":
            limits.count_wrong_token(client)
            what = {"expired": "has expired", "revoked": "was revoked"}.get(state, "is not valid")
            raise Unauthorized(f"the bearer token {what} (create one with `demonlab token create`)")


__all__ = ["AuthDep", "EngineDep", "OffsetQuery", "SettingsDep", "Unauthorized", "bearer", "require_token"]

AuthDep = Depends(require_token)
