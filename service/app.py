"""The FastAPI application: routes under ``/api/v1``, errors mapped to HTTP in one place.

``create_app(settings)`` builds an app bound to one database (migrated to head on start) and, when
asked, runs the scheduler loop in a background thread of the same process (``demonlab serve``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from studies.errors import MetricsError
from studies.spec import StudySpec

from .api.head import HeadAsGet
from .api.limits import BodySizeLimit
from .api.ratelimit import RateLimits
from .api.routes import atlases, events, health, results, robustness, studies
from .db.engine import make_engine
from .db.migrations import upgrade_to_head
from .errors import (
    Conflict,
    DemonlabError,
    InvalidInput,
    NotFound,
    SpecInvalid,
    StorageUnavailable,
    TooManyRequests,
    Unauthorized,
    field_name,
    reason,
)
from .settings import Settings, get_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, *, run_scheduler: bool = False) -> FastAPI:
    """Build the app for ``settings`` (default: the environment's)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.database_url)
        upgrade_to_head(engine)
        app.state.engine = engine
        scheduler = None
        if run_scheduler:
            from .jobs.scheduler import Scheduler

            scheduler = Scheduler(settings, engine, poll_seconds=settings.scheduler_poll_seconds)
            scheduler.start_background()
        app.state.scheduler = scheduler  # woken by a submission (routes.studies), None without one
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            engine.dispose()

    app = FastAPI(
        title="demonlab",
        version="0.1.0",
        description=(
            "Hyperparameter-sensitivity studies of the Demon optimizer against LR-decay baselines. "
            "Raw scores are lower-is-better workload values; sensitivity figures are oriented "
            "higher-is-better (y = -value)."
        ),
        lifespan=lifespan,
        docs_url=None,  # /docs is the dashboard's (service.dashboard.apidocs): offline, under its CSP
        redoc_url=None,  # ReDoc needs inline styles and its CDN: not offered
    )
    app.state.settings = settings
    app.state.rate_limits = RateLimits(
        parse_limit=settings.parse_rate_limit, failed_token_limit=settings.failed_token_limit
    )
    for router in (studies.router, results.router, events.router, robustness.router, atlases.router, health.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    from .dashboard import install as install_dashboard

    install_dashboard(app, API_PREFIX)
    app.add_middleware(BodySizeLimit, limit=settings.max_request_bytes, body_timeout=settings.http_body_timeout_s)
    app.add_middleware(HeadAsGet)  # outside the others: a HEAD is a GET for all of them
    _register_errors(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the study spec's models, which the submit route's body refers to (the
    route validates the body itself, with the deployment's trial limit, so FastAPI never sees them),
    with the security the server applies now (``_security_mode``)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        spec_schema = StudySpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(spec_schema.pop("$defs", {}))
        components["StudySpec"] = spec_schema
        app.openapi_schema = schema
        app.state.openapi_by_mode = {open_: _security_mode(schema, open_=open_) for open_ in (True, False)}
    schemas: dict[bool, dict[str, Any]] = app.state.openapi_by_mode
    return schemas[_open_mode(app)]


def _open_mode(app: FastAPI) -> bool:
    """Whether the server accepts mutations without a token now: no token exists and none is required
    (``service.api.deps.require_token``). Unknown (no database yet, or it is down): tokens required."""
    settings: Settings = app.state.settings
    engine = getattr(app.state, "engine", None)
    if settings.api_tokens_required or engine is None:
        return False
    from .db import dal
    from .db.engine import session_scope

    try:
        with session_scope(engine, read_only=True) as session:
            return not dal.any_tokens(session)
    except DemonlabError:
        return False


def _security_mode(schema: dict[str, Any], *, open_: bool) -> dict[str, Any]:
    """The schema with each guarded operation's security as the server applies it: the bearer token
    required, or (open mode: no token created yet) optional, ``[{}, {"bearer": []}]``."""
    import copy

    result = copy.deepcopy(schema)
    mode = "open: no token exists yet, so the token is optional" if open_ else "a valid token is required"
    for operations in result["paths"].values():
        for operation in operations.values():
            if operation.get("security") == [{"bearer": []}]:
                operation["security"] = [{}, {"bearer": []}] if open_ else [{"bearer": []}]
                operation["description"] = f"{operation.get('description', '')}\n\nAuthentication: {mode}.".strip()
    return result


def _error(
    status: int, detail: str, field: str | None = None, errors: list[dict[str, Any]] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = errors
    return JSONResponse(status_code=status, content=body)


def _register_errors(app: FastAPI) -> None:
    """Domain errors → HTTP status codes, in one place."""

    @app.exception_handler(SpecInvalid)
    async def _spec_invalid(request: Request, exc: SpecInvalid) -> JSONResponse:
        return _error(422, f"invalid spec: {exc.field}: {exc.reason}", exc.field, exc.errors)

    @app.exception_handler(InvalidInput)
    async def _invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        return _error(422, str(exc), exc.field)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        response = _error(401, str(exc))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(TooManyRequests)
    async def _too_many(request: Request, exc: TooManyRequests) -> JSONResponse:
        response = _error(429, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(StorageUnavailable)
    async def _storage(request: Request, exc: StorageUnavailable) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(MetricsError)
    async def _metrics(request: Request, exc: MetricsError) -> JSONResponse:
        return _error(422, f"cannot compute this from the study's trials: {exc}")

    @app.exception_handler(DemonlabError)
    async def _other(request: Request, exc: DemonlabError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Routing errors (unknown path, method not allowed, a body that cannot be parsed) in the
        ``ErrorBody`` shape; a 405 lists every method of every route on the path in ``Allow``."""
        if isinstance(exc.__cause__, RecursionError):  # JSON nested deeper than Python's parser goes
            return _error(422, "invalid body: the JSON is nested too deeply", "body")
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8, say): the body is at fault
            return _error(422, f"invalid body: cannot be parsed ({exc.__cause__ or exc.detail})", "body")
        response = _error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_validation_error(e) for e in exc.errors()]
        # One error per field: a value that fits no branch of a union (an arm is a registered name
        # or a label) failed each branch, and the later ones restate it as a regex.
        by_field: dict[str, dict[str, str]] = {}
        for error in errors:
            by_field.setdefault(error["field"], error)
        errors = list(by_field.values())
        first = errors[0] if errors else {"field": "body", "reason": "invalid request"}
        return _error(422, f"invalid {first['field']}: {first['reason']}", first["field"], errors)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of every route on this request's path, the pages' included, and HEAD wherever
    GET is (``HeadAsGet``). Starlette answers the first route that matches the path, so its own
    ``Allow`` lists only that route's."""
    methods = {
        method
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.routes)
    }
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _validation_error(error: Any) -> dict[str, str]:
    """One of FastAPI's validation errors as {field, reason}; malformed JSON is about the body."""
    if error.get("type") == "json_invalid":
        position = error.get("loc", ("body", "?"))[-1]
        detail = error.get("ctx", {}).get("error", "malformed JSON")
        return {"field": "body", "reason": f"malformed JSON at position {position}: {detail}"}
    if error.get("type") in ("enum", "literal_error"):  # say what was given, then the choices
        expected = ", ".join(re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", ""))))
        given = str(error.get("input"))[:100]
        return {
            "field": field_name(error.get("loc", ())),
            "reason": f"unknown value {given!r}; valid choices: {expected}",
        }
    return {"field": field_name(error.get("loc", ())), "reason": reason(str(error.get("msg", "")))}
