"""The FastAPI application: ``create_app``, its middleware and its error handlers.

Everything else lives elsewhere: the core (``spinlens.core.Spinlens``) does the work, the
service (service.py) queues it off the event loop, api.py and web.py are the routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Match, Route

from spinlens.config import Settings
from spinlens.core import Spinlens
from spinlens.errors import ExtractionError, IngestError, SpinlensError, UsageError
from spinlens.pipeline import Pipeline
from spinlens.server import api, security, web
from spinlens.server.service import API_PREFIX, ApiError, ServerBusy, Service
from spinlens.store import Store, StoreError
from spinlens.version import __version__

log = logging.getLogger("spinlens.server")


def check_settings(settings: Settings) -> None:
    """Refuse settings that would expose the server or cannot run it."""
    if not security.is_loopback(settings.host) and not settings.api_token:
        raise UsageError(
            f"binding to {settings.host} exposes the server to other machines: "
            "set SPINLENS_API_TOKEN to require a token"
        )
    if settings.workers < 1:
        raise UsageError("--workers must be at least 1")


def error_status(error: SpinlensError) -> tuple[int, str]:
    """The HTTP status and error code for a user-caused failure."""
    if isinstance(error, StoreError):
        return 503, "store_unavailable"
    if isinstance(error, UsageError):
        return 400, "bad_request"
    if isinstance(error, IngestError):
        return 422, "unreadable_input"
    if isinstance(error, ExtractionError):
        return 422, "no_article"
    return 422, "invalid_input"


def csp_for(path: str) -> str:
    if path.startswith(("/api/", "/healthz", "/openapi.json")):
        return security.API_CSP
    if path.startswith("/analyses/"):
        return security.REPORT_CSP
    if path == "/docs" or path.startswith("/static-docs/"):
        return security.DOCS_CSP
    return security.APP_CSP


def _is_analysis(method: str, path: str) -> bool:
    return method == "POST" and path in (
        f"{API_PREFIX}/analyses",
        f"{API_PREFIX}/narratives/import",
        "/analyze",
    )


def _rate_exempt(path: str) -> bool:
    return path == "/healthz" or path.startswith(("/static/", "/static-docs/"))


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/healthz", "/openapi.json"))


def create_app(
    settings: Settings | None = None,
    *,
    spinlens: Spinlens | None = None,
    pipeline: Pipeline | None = None,
    store: Store | None = None,
) -> FastAPI:
    """The web app and API over one core. ``spinlens``, when given, is used as it is
    (``spinlens serve`` loads its models first so a broken model or database fails before
    binding); otherwise one is built from ``settings`` (default: the environment's), with
    ``pipeline`` and ``store`` when given, and loaded at start-up."""
    own_core = spinlens is None
    core = spinlens or Spinlens(settings or Settings.from_env(), pipeline=pipeline, store=store)
    settings = core.settings
    check_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(core.load)
        service = Service(core)
        app.state.service = service
        try:
            yield
        finally:
            service.close()
            if own_core:
                core.close()

    app = FastAPI(
        title="spinlens",
        version=__version__,
        summary="Persuasion techniques and known disinformation narratives in news articles.",
        description=api.DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.include_router(api.router)
    app.include_router(api.narratives_router)
    app.include_router(api.health_router)
    web.install(app)
    _install_error_handlers(app)

    # Added innermost first: headers wrap everything, so even a 413 or 429 carries them.
    app.add_middleware(
        security.RateLimit,
        requests=security.TokenBucketLimiter(
            settings.requests_per_minute, max(1, settings.requests_per_minute // 4)
        ),
        analyses=security.TokenBucketLimiter(
            settings.analyses_per_minute, max(1, settings.analyses_per_minute // 3)
        ),
        is_analysis=_is_analysis,
        exempt=_rate_exempt,
    )
    app.add_middleware(security.SameOrigin)
    app.add_middleware(security.BodyLimit, max_bytes=settings.body_limit)
    if settings.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(security.SecurityHeaders, csp_for=csp_for)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    def respond(
        request: Request, status: int, code: str, message: str, headers: dict[str, str] | None
    ) -> Response:
        if wants_json(request):
            return JSONResponse(
                {"error": {"code": code, "message": message}}, status, headers=headers
            )
        return web.error_page(request, status, message, headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return respond(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; list them all.
            headers["Allow"] = ", ".join(allowed_methods(app, request))
        return respond(request, exc.status_code, code, str(exc.detail), headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return respond(request, 422, "invalid_request", validation_message(exc), None)

    @app.exception_handler(SpinlensError)
    async def user_error(request: Request, exc: SpinlensError) -> Response:
        status, code = error_status(exc)
        return respond(request, status, code, str(exc), None)

    @app.exception_handler(ServerBusy)
    async def busy(request: Request, exc: ServerBusy) -> Response:
        message = "the server is busy with other analyses; retry in a few seconds"
        return respond(request, 503, "busy", message, {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        message = f"internal error ({type(exc).__name__}); please report it"
        return respond(request, 500, "internal_error", message, None)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, APIRoute | Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": "GET"})
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


def validation_message(exc: RequestValidationError) -> str:
    """One line from pydantic's list of errors: where, then what."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        what = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {what}" if where else what)
    return "; ".join(parts) or "invalid request"
