"""The FastAPI application: settings, the analysis service and ``create_app``.

The pipeline (the models) is loaded once per process and shared; analyses run in a small
thread pool so the event loop keeps answering other requests while one article is analysed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Match, Route

from spinlens import __version__
from spinlens.errors import ExtractionError, IngestError, SpinlensError, UsageError
from spinlens.ingest import DEFAULT_MAX_BYTES, decode_bytes, fetch_url
from spinlens.ingest.decode import check_text, looks_like_html
from spinlens.model import Analysis, Document, NarrativeMatch, Source
from spinlens.pipeline import Pipeline, default_pipeline
from spinlens.server import security
from spinlens.store import Store, StoreError, input_hash

if TYPE_CHECKING:
    from spinlens.narratives.importers import ImportReport

log = logging.getLogger("spinlens.server")
T = TypeVar("T")

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Settings:
    """How one server runs. ``from_env`` fills what the SPINLENS_* variables say."""

    host: str = "127.0.0.1"
    api_token: str | None = None
    database_url: str | None = None  # None: SPINLENS_DATABASE_URL, else SQLite in SPINLENS_HOME
    workers: int = 2  # analyses run at once; more than the CPU cores only adds queueing
    allow_private: bool = False  # let URL analysis reach private and loopback addresses
    # A pasted or uploaded page can be as large as a fetched one, plus the form's overhead.
    max_body_bytes: int = DEFAULT_MAX_BYTES + 64_000
    max_fetch_bytes: int = DEFAULT_MAX_BYTES
    fetch_timeout: float = 15.0
    requests_per_minute: int = 600  # per client, every request but static files and /healthz
    analyses_per_minute: int = 30  # per client, requests that start an analysis
    max_pending: int = 64  # analyses queued or running before new ones get 503
    allowed_hosts: tuple[str, ...] = ()  # Host header values accepted; empty: any
    pipeline_factory: Callable[[], Pipeline] = field(default=default_pipeline, repr=False)
    # The SSRF-guarded fetcher; tests that must stay offline give a stand-in.
    fetch: Callable[..., Document] = field(default=fetch_url, repr=False)
    # Builds the catalogue search behind GET /narratives (loaded on first use, rebuilt after
    # an import); None: spinlens.narratives' EmbeddingMatcher over SPINLENS_HOME's catalogue.
    narratives_factory: Callable[[], NarrativeSearch] | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env: dict[str, object] = {}
        if token := os.environ.get("SPINLENS_API_TOKEN", "").strip():
            env["api_token"] = token
        if url := os.environ.get("SPINLENS_DATABASE_URL", "").strip():
            env["database_url"] = url
        return cls(**{**env, **overrides})  # type: ignore[arg-type]

    def validate(self) -> None:
        if not security.is_loopback(self.host) and not self.api_token:
            raise UsageError(
                f"binding to {self.host} exposes the server to other machines: "
                "set SPINLENS_API_TOKEN to require a token"
            )
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")


InputKind = Literal["url", "html", "text", "file"]


@dataclass(frozen=True)
class Submission:
    """What a user handed in: a URL, pasted text or HTML, or an uploaded file's bytes."""

    kind: InputKind
    content: str | bytes
    name: str | None = None  # an uploaded file's name

    @property
    def digest(self) -> str:
        return input_hash(self.kind, self.content)


class NarrativeSearch(Protocol):
    """What the narratives endpoint needs of a matcher (EmbeddingMatcher is one)."""

    def search(self, queries: Sequence[str], top: int = 10) -> list[list[NarrativeMatch]]: ...


class Service:
    """Runs analyses off the event loop and keeps each one in the store."""

    def __init__(self, settings: Settings, pipeline: Pipeline, store: Store) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = store
        self.executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="spinlens")
        self.pending = 0
        self._narratives: NarrativeSearch | None = None
        self._narratives_lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker pool: model work never runs on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn, *args)

    def narratives(self) -> NarrativeSearch:
        """The catalogue search, built once (the encoder is loaded once per process)."""
        with self._narratives_lock:
            if self._narratives is None:
                self._narratives = self._build_narratives()
            return self._narratives

    def _build_narratives(self) -> NarrativeSearch:
        if self.settings.narratives_factory is not None:
            return self.settings.narratives_factory()
        from spinlens.narratives import EmbeddingMatcher

        return EmbeddingMatcher()

    def import_catalogue(
        self, name: str, data: bytes, format: str | None, catalogue: str | None
    ) -> ImportReport:
        """Merge an uploaded catalogue file into the catalogue store, then rebuild matching."""
        from spinlens.narratives import CatalogueStore, EmbeddingMatcher
        from spinlens.narratives.importers import import_file

        with tempfile.TemporaryDirectory(prefix="spinlens-import-") as folder:
            # The file keeps its name: a CSV's catalogue is named after it by default.
            path = Path(folder) / name
            path.write_bytes(data)
            try:
                with CatalogueStore() as catalogues:
                    report = import_file(catalogues, path, format, catalogue)
            except SpinlensError as error:
                # Name the file as the user did, not our temporary copy.
                raise type(error)(str(error).replace(str(path), name)) from None
        if report.added or report.updated:
            with self._narratives_lock:
                self._narratives = None
            # Analyses from now on match the new claims too; the encoder is reused.
            self.pipeline.matchers = [
                EmbeddingMatcher(encoder=m.encoder, threshold=m.threshold, top=m.top)
                if isinstance(m, EmbeddingMatcher)
                else m
                for m in self.pipeline.matchers
            ]
        return report

    async def analyze(self, submission: Submission) -> Analysis:
        if self.pending >= self.settings.max_pending:
            raise ServerBusy
        self.pending += 1
        try:
            return await self.run(self._analyze, submission)
        finally:
            self.pending -= 1

    def _analyze(self, submission: Submission) -> Analysis:
        analysis = self.pipeline.analyze(self.document(submission))
        self.store.save(analysis, submission.digest)
        return analysis

    def document(self, submission: Submission) -> Document:
        """The Document for a submission; URLs only through the SSRF-guarded fetcher."""
        content = submission.content
        if submission.kind == "url":
            assert isinstance(content, str)
            return self.settings.fetch(
                content.strip(),
                allow_private=self.settings.allow_private,
                max_bytes=self.settings.max_fetch_bytes,
                timeout=self.settings.fetch_timeout,
            )
        if submission.kind == "file":
            assert isinstance(content, bytes)
            name = submission.name or "uploaded file"
            if len(content) > self.settings.max_fetch_bytes:
                raise IngestError(
                    f"the file is larger than {self.settings.max_fetch_bytes:,} bytes"
                )
            is_html = name.lower().endswith((".html", ".htm", ".xhtml")) or content.lstrip(
                b"\xef\xbb\xbf \t\r\n"
            ).startswith(b"<")
            text = decode_bytes(content, is_html=is_html, what="the file")
            return Document(
                source=Source(kind="file", location=name),
                body=text,
                media_type="text/html" if looks_like_html(text) else "text/plain",
            )
        assert isinstance(content, str)
        what = "the pasted HTML" if submission.kind == "html" else "the pasted text"
        return Document(
            source=Source(kind="text", location=what.removeprefix("the ")),
            body=check_text(content, what=what),
            media_type="text/html" if submission.kind == "html" else "text/plain",
        )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class ServerBusy(Exception):
    """Too many analyses are queued: the client should retry later."""


class ApiError(Exception):
    """An error answer with its status, stable code and one-line message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


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
    pipeline: Pipeline | None = None,
    store: Store | None = None,
) -> FastAPI:
    """The web app and API. ``pipeline`` and ``store``, when given, are used as they are
    (``spinlens serve`` loads them first so a broken model or database fails before binding);
    otherwise they are loaded at start-up."""
    from spinlens.server import api, web

    settings = settings or Settings.from_env()
    settings.validate()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = (
            store if store is not None else await asyncio.to_thread(Store, settings.database_url)
        )
        own_pipeline = (
            pipeline if pipeline is not None else await asyncio.to_thread(settings.pipeline_factory)
        )
        service = Service(settings, own_pipeline, own_store)
        app.state.service = service
        try:
            yield
        finally:
            service.close()
            if store is None:
                own_store.close()

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
    app.add_middleware(security.BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(security.SecurityHeaders, csp_for=csp_for)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    from spinlens.server import web

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
