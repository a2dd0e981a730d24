"""The REST API (``/api/v1``): analyses in the ``spinlens.analysis/v1`` schema, the history,
and the health check. Every failure answers with the documented error body."""

from __future__ import annotations

import asyncio
import re
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from spinlens.config import Sensitivity
from spinlens.core import Submission
from spinlens.model import Analysis, NarrativeMatch
from spinlens.narratives.catalogue import STARTER_CATALOGUE, ShippedCatalogue, UnknownCatalogue
from spinlens.server import security
from spinlens.server.service import API_PREFIX, ApiError, service_of
from spinlens.store import HistoryPage, HistoryQuery, StoreError, parse_when

DESCRIPTION = """\
Analyse news and blog articles for persuasion techniques (span by span) and known
disinformation narratives. Every analysis is returned in the `spinlens.analysis/v1` JSON schema
and kept in the store, so it can be fetched again by its `id` and found in the history.

**Authentication.** When the server has a token (`SPINLENS_API_TOKEN`, required when it
listens on a non-loopback address), send it as `Authorization: Bearer <token>`.

**Errors** always have the body `{"error": {"code": "...", "message": "..."}}`; `message` is one
line meant for people, `code` is stable and meant for programs.
"""


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: e.g. not_found, rate_limited.")
    message: str = Field(description="One line saying what went wrong, for people.")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def _errors(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The documented error answers; ``described`` replaces a status' description by name
    (``not_found="No such catalogue."``)."""
    descriptions = {
        400: "Malformed request.",
        401: "Missing or wrong API token.",
        403: "Cross-site request refused.",
        404: "No such analysis.",
        409: "The request conflicts with what the server holds.",
        413: "Request body over the size limit.",
        422: "Invalid request, or input that holds no readable article.",
        429: "Rate limit reached; see Retry-After.",
        503: "The server is busy or its store is unavailable; see Retry-After.",
    }
    names = {404: "not_found", 409: "conflict"}
    return {
        s: {"model": ErrorBody, "description": described.get(names.get(s, ""), descriptions[s])}
        for s in statuses
    }


_bearer = HTTPBearer(auto_error=False, description="The server's SPINLENS_API_TOKEN.")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """When the server has a token, every API call must carry it (or the web UI's cookie)."""
    expected = request.app.state.settings.api_token
    if expected is None:
        return
    given = credentials.credentials if credentials else request.cookies.get(security.TOKEN_COOKIE)
    if not security.token_matches(given, expected):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


def strict_query(request: Request) -> None:
    """Refuse unknown and repeated query parameters: a mistyped filter (``?techniqe=Doubt``)
    must not silently list everything."""
    route = request.scope.get("route")
    known = (
        {p.alias for p in route.dependant.query_params} if isinstance(route, APIRoute) else set()
    )
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key not in known:
            raise ApiError(422, "invalid_request", f"unknown query parameter {key!r}")
        if key in seen:
            raise ApiError(422, "invalid_request", f"query parameter {key!r} given more than once")
        seen.add(key)


router = APIRouter(
    prefix=API_PREFIX,
    dependencies=[Depends(require_token), Depends(strict_query)],
    responses=_errors(401, 429),
    tags=["analyses"],
)
health_router = APIRouter(tags=["health"])


class AnalysisRequest(BaseModel):
    """Exactly one of ``url``, ``html`` or ``text``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [{"required": ["url"]}, {"required": ["html"]}, {"required": ["text"]}],
            "examples": [{"url": "https://example.com/news/article.html"}],
        },
    )

    url: Annotated[str, StringConstraints(max_length=8192)] | SkipJsonSchema[None] = Field(
        default=None,
        description="An http(s) page to fetch (public addresses only, unless the server "
        "allows private ones).",
    )
    html: str | SkipJsonSchema[None] = Field(default=None, description="A whole HTML page.")
    text: str | SkipJsonSchema[None] = Field(
        default=None, description="Article text, e.g. a page's visible text copied and pasted."
    )
    # null is documented and means "the server's default", as leaving the field out does.
    techniques_model: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None,
        description="Technique model by tier: accurate, fast or baseline (default: the server's).",
    )
    sensitivity: Sensitivity | None = Field(
        default=None,
        description="How readily passages are flagged: precise, balanced or thorough "
        "(default: the server's).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> AnalysisRequest:
        given = self.model_fields_set & {"url", "html", "text"}
        if len(given) != 1:
            raise ValueError("give exactly one of url, html or text")
        (name,) = given
        if getattr(self, name) is None:
            raise ValueError(f"{name} must be a string")
        return self

    def submission(self) -> Submission:
        if self.url is not None:
            return Submission("url", self.url)
        if self.html is not None:
            return Submission("html", self.html)
        assert self.text is not None
        return Submission("text", self.text)


@router.post(
    "/analyses",
    status_code=201,
    response_model=Analysis,
    responses=_errors(400, 403, 413, 422, 503),
    summary="Analyse a page, HTML or text, and keep the analysis",
)
async def create_analysis(body: AnalysisRequest, request: Request, response: Response) -> Any:
    analysis = await service_of(request).analyze(
        body.submission(), body.techniques_model, body.sensitivity
    )
    response.headers["Location"] = f"{API_PREFIX}/analyses/{analysis.id}"
    return analysis


@router.get(
    "/analyses/{analysis_id}",
    response_model=Analysis,
    responses=_errors(404, 503),
    summary="One stored analysis",
)
async def get_analysis(analysis_id: str, request: Request) -> Any:
    # Store reads are blocking I/O: off the event loop, but not queued behind analyses.
    service = service_of(request)
    analysis = await asyncio.to_thread(service.spinlens.get, analysis_id)
    if analysis is None:
        raise ApiError(404, "not_found", f"no analysis with id {analysis_id!r}")
    return analysis


_DATE_OR_TIME: dict[str, Any] = {"anyOf": [{"format": "date"}, {"format": "date-time"}]}


@router.get(
    "/analyses",
    response_model=HistoryPage,
    responses=_errors(422, 503),
    summary="Search the stored analyses, newest first",
)
async def list_analyses(
    request: Request,
    q: Annotated[str | None, Query(description="Words in the title or text.")] = None,
    technique: Annotated[str | None, Query(description="A technique name.")] = None,
    narrative: Annotated[str | None, Query(description="A claim id or title words.")] = None,
    site: Annotated[str | None, Query(description="The article's site.")] = None,
    since: Annotated[
        str | SkipJsonSchema[None],
        Query(
            description="Analysed on or after: YYYY-MM-DD or ISO-8601.",
            json_schema_extra=_DATE_OR_TIME,
        ),
    ] = None,
    until: Annotated[
        str | SkipJsonSchema[None],
        Query(
            description="Analysed before: ISO-8601, or through a YYYY-MM-DD day.",
            json_schema_extra=_DATE_OR_TIME,
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Any:
    service = service_of(request)
    query = history_query(q, technique, narrative, site, since, until, limit, offset)
    return await asyncio.to_thread(service.spinlens.history, query)


def history_query(
    q: str | None,
    technique: str | None,
    narrative: str | None,
    site: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
) -> HistoryQuery:
    """Filters from query parameters; an empty word filter is no filter (a blank form field)."""
    try:
        return HistoryQuery(
            q=q or None,
            technique=technique or None,
            narrative=narrative or None,
            site=site or None,
            since=parse_when(since) if since is not None else None,
            until=parse_when(until, end_of_day=True) if until is not None else None,
            limit=limit,
            offset=offset,
        )
    except StoreError as error:
        raise ApiError(422, "invalid_request", str(error)) from None


narratives_router = APIRouter(
    prefix=API_PREFIX,
    dependencies=[Depends(require_token), Depends(strict_query)],
    responses=_errors(401, 429),
    tags=["narratives"],
)


class NarrativeSearchResult(BaseModel):
    """The documented claims and narrative families closest in meaning to ``query``."""

    query: str
    matches: list[NarrativeMatch] = Field(
        description="Best first; ``evidence`` is empty (a query is not an article)."
    )


@narratives_router.get(
    "/narratives",
    response_model=NarrativeSearchResult,
    responses=_errors(422, 503),
    summary="Search the narrative catalogue by meaning",
)
async def search_narratives(
    request: Request,
    q: Annotated[
        str, Query(min_length=1, max_length=2000, description="What a claim says, in any words.")
    ],
    top: Annotated[int, Query(ge=1, le=50, description="Matches returned.")] = 10,
) -> Any:
    service = service_of(request)
    if not q.strip():
        raise ApiError(422, "invalid_request", "q: give some words to search for")
    matches = await service.run(service.spinlens.search, q, top)
    return NarrativeSearchResult(query=q, matches=matches)


class ImportResult(BaseModel):
    """What an import did to the catalogue store."""

    catalogue: str
    format: str
    read: int = Field(description="Claims read from the file.")
    added: int
    updated: int
    unchanged: int
    bad_rows: int = Field(description="Rows skipped because they hold no usable claim.")
    problems: list[str] = Field(description="Why rows were skipped (the first 20).")


@narratives_router.post(
    "/narratives/import",
    response_model=ImportResult,
    responses=_errors(400, 403, 413, 422, 503),
    summary="Import a catalogue: EUvsDisinfo CSV, ClaimReview JSON-LD, or a CSV of claims",
)
async def import_narratives(
    request: Request,
    file: Annotated[UploadFile, File(description="The catalogue file.")],
    format: Annotated[
        Literal["euvsdisinfo", "claimreview", "csv"] | SkipJsonSchema[None],
        Form(description="The file's format (default: guessed from its content)."),
    ] = None,
    catalogue: Annotated[
        str | SkipJsonSchema[None],
        Form(
            min_length=1,
            max_length=64,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            description="Catalogue name (default: from the format, or the CSV file's name).",
        ),
    ] = None,
) -> Any:
    service = service_of(request)
    name = upload_name(file.filename, default="catalogue.csv")
    data = await file.read()
    report = await service.run(
        partial(service.spinlens.import_catalogue, name=name, format=format, catalogue=catalogue),
        data,
    )
    return ImportResult(
        catalogue=report.catalogue,
        format=report.format,
        read=report.read,
        added=report.added,
        updated=report.updated,
        unchanged=report.unchanged,
        bad_rows=len(report.bad_rows),
        problems=[str(bad) for bad in report.bad_rows[:20]],
    )


class CatalogueInfo(BaseModel):
    """One catalogue of documented claims that analyses are matched against."""

    name: str
    entries: int = Field(
        description="Claims it holds (for the shipped catalogue: its narrative families)."
    )
    shipped: bool = Field(
        description="Shipped with spinlens (the starter catalogue): it cannot be removed."
    )


class CatalogueList(BaseModel):
    catalogues: list[CatalogueInfo] = Field(description="The shipped catalogue first.")


class CatalogueRemoved(BaseModel):
    """What removing a catalogue did."""

    catalogue: str
    removed: int = Field(description="Claims removed with it.")


def catalogue_list(counts: dict[str, int]) -> list[CatalogueInfo]:
    return [
        CatalogueInfo(name=n, entries=c, shipped=n == STARTER_CATALOGUE) for n, c in counts.items()
    ]


@narratives_router.get(
    "/catalogues",
    response_model=CatalogueList,
    responses=_errors(503),
    summary="The catalogues of claims that analyses are matched against",
)
async def list_catalogues(request: Request) -> Any:
    service = service_of(request)
    counts = await asyncio.to_thread(service.spinlens.catalogues)
    return CatalogueList(catalogues=catalogue_list(counts))


@narratives_router.delete(
    "/catalogues/{name}",
    response_model=CatalogueRemoved,
    responses=_errors(
        403,
        404,
        409,
        422,
        503,
        not_found="No such catalogue.",
        conflict="The shipped starter catalogue cannot be removed.",
    ),
    summary="Remove an imported catalogue: its claims no longer match",
)
async def remove_catalogue(
    request: Request,
    name: Annotated[str, Path(min_length=1, max_length=200, description="The catalogue's name.")],
) -> Any:
    service = service_of(request)
    try:
        removed = await service.run(service.spinlens.remove_catalogue, name)
    except UnknownCatalogue as error:
        raise ApiError(404, "not_found", str(error)) from None
    except ShippedCatalogue as error:
        raise ApiError(409, "shipped_catalogue", str(error)) from None
    return CatalogueRemoved(catalogue=name, removed=removed)


def upload_name(name: str | None, default: str) -> str:
    """The last part of a client-given file name, safe to create in a folder of ours."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = re.sub(r"[^\w.\- ]", "_", base)[:200].lstrip(".")
    return base or default


class Health(BaseModel):
    status: str = Field(description="ok")
    version: str
    models: dict[str, str] = Field(description="Loaded models, by role.")
    store: str = Field(description="The store's backend: sqlite or postgresql.")
    schema_version: int


@health_router.get(
    "/healthz",
    response_model=Health,
    responses=_errors(503),
    summary="Whether the model and the store are loaded",
)
async def healthz(request: Request) -> Any:
    from spinlens.version import __version__

    service = service_of(request)
    store = service.spinlens.store
    if not await asyncio.to_thread(store.ping):
        raise ApiError(503, "store_unavailable", "the store does not answer")
    return Health(
        status="ok",
        version=__version__,
        # Named as every analysis names them (Spinlens.models).
        models=await asyncio.to_thread(service.spinlens.models),
        store=store.backend,
        schema_version=await asyncio.to_thread(store.version),
    )
