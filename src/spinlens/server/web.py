"""The web UI: paste, fetch or upload an article; read its report; search the history; see
it as a corpus dashboard (/corpus).

Server-rendered with Jinja2 (autoescaping on) and no script: forms post to the server and every
page works in any browser. The report view is spinlens.report's own HTML page with the app's
navigation and a techniques chart added, so the CLI and the server highlight alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.datastructures import UploadFile

from spinlens.config import Sensitivity
from spinlens.core import Submission
from spinlens.corpus.history import history_section
from spinlens.corpus.report import stylesheet
from spinlens.errors import SpinlensError
from spinlens.model import Analysis
from spinlens.narratives.catalogue import ShippedCatalogue, UnknownCatalogue
from spinlens.report import render
from spinlens.report.spans import technique, technique_counts
from spinlens.server import security
from spinlens.server.api import catalogue_list, history_query, upload_name
from spinlens.server.service import ApiError, Service, service_of
from spinlens.store import HistoryItem, HistoryPage
from spinlens.techniques.detectors import TIERS
from spinlens.techniques.taxonomy import TECHNIQUES

_ENV = Environment(
    loader=PackageLoader("spinlens.server", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"
RECENT = 5
# The choices the analysis forms offer (the API takes the same names).
TECHNIQUE_MODELS: tuple[str, ...] = tuple(TIERS)
SENSITIVITIES: tuple[str, ...] = get_args(Sensitivity)
HISTORY_PAGE = 25
_HEADINGS = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Not found",
    413: "Too large",
    422: "Cannot analyse this",
    429: "Slow down",
    503: "Busy",
}


class LoginRequired(Exception):
    """The server has a token and this browser has not signed in."""


def page(
    request: Request,
    template: str,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _ENV.get_template(template).render(
        analysis_id=None, logged_in=_logged_in(request), **context
    )
    return HTMLResponse(html, status_code, headers=dict(headers or {}))


def error_page(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    heading = _HEADINGS.get(status, "Something went wrong")
    return page(
        request, "error.html.j2", status, headers, status=status, heading=heading, message=message
    )


def _token(request: Request) -> str | None:
    token: str | None = request.app.state.settings.api_token
    return token


def _logged_in(request: Request) -> bool:
    token = _token(request)
    return token is not None and security.token_matches(
        request.cookies.get(security.TOKEN_COOKIE), token
    )


def _require_login(request: Request) -> None:
    if _token(request) is not None and not _logged_in(request):
        raise LoginRequired


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    _require_login(request)
    return await _home(request)


async def _home(
    request: Request,
    status: int = 200,
    *,
    error: str | None = None,
    error_kind: str = "",
    text: str = "",
    url: str = "",
) -> HTMLResponse:
    service = service_of(request)
    recent = await asyncio.to_thread(
        service.spinlens.history, history_query(None, None, None, None, None, None, RECENT, 0)
    )
    return page(
        request,
        "home.html.j2",
        status,
        error=error,
        error_kind=error_kind,
        text=text,
        url=url,
        allow_private=service.settings.allow_private,
        technique_models=TECHNIQUE_MODELS,
        sensitivities=SENSITIVITIES,
        recent=[_row(item) for item in recent.items],
    )


@router.post("/analyze")
async def analyze(request: Request) -> Response:
    _require_login(request)
    service = service_of(request)
    limit = service.settings.body_limit
    form = await request.form(max_files=1, max_fields=6, max_part_size=limit)
    kind = form.get("kind")
    # The options' "default" is the empty string: the server's own setting.
    techniques_model = _choice(form.get("techniques_model"), TECHNIQUE_MODELS)
    sensitivity = _choice(form.get("sensitivity"), SENSITIVITIES)
    text = form.get("text")
    url = form.get("url")
    upload = form.get("file")
    if kind == "url" and isinstance(url, str) and url.strip():
        submission = Submission("url", url.strip())
    elif kind == "file" and isinstance(upload, UploadFile) and upload.filename:
        submission = Submission(
            "file", await upload.read(), upload_name(upload.filename, "uploaded file")
        )
    elif kind == "text" and isinstance(text, str):
        submission = Submission("text", text)
    else:
        return await _home(request, 422, error="nothing to analyse: fill in one of the forms")
    try:
        analysis = await service.analyze(submission, techniques_model, sensitivity)
    except SpinlensError as error:  # shown on the form, with what the user gave kept
        return await _home(
            request,
            422,
            error=str(error),
            error_kind={"url": "page", "file": "file"}.get(submission.kind, "text"),
            text=text if isinstance(text, str) else "",
            url=url if isinstance(url, str) else "",
        )
    return RedirectResponse(f"/analyses/{analysis.id}", status_code=303)


def _choice(value: object, allowed: tuple[str, ...]) -> str | None:
    return value if isinstance(value, str) and value in allowed else None


@router.get("/analyses/{analysis_id}", response_class=HTMLResponse)
async def report_view(analysis_id: str, request: Request) -> Response:
    _require_login(request)
    service = service_of(request)
    analysis = await asyncio.to_thread(service.spinlens.get, analysis_id)
    if analysis is None:
        return error_page(request, 404, "There is no analysis with this id.")
    return HTMLResponse(report_page(analysis, logged_in=_logged_in(request)))


def report_page(analysis: Analysis, *, logged_in: bool = False) -> str:
    """spinlens.report's HTML page with the app's navigation and a techniques chart.

    Insertion points are found on the page's own markup: everything from the article is
    escaped there, so the first ``</head>``, ``<body>`` and ``</header>`` are the page's own.
    """
    html = render(analysis, "html")
    extra = _ENV.get_template("report_extra.html.j2").render()
    nav = _ENV.get_template("nav.html.j2").render(analysis_id=analysis.id, logged_in=logged_in)
    chart = techniques_chart(analysis)
    html = html.replace("</head>", extra + "</head>", 1)
    html = html.replace("<body>", "<body>\n" + nav, 1)
    return html.replace("</header>", "</header>\n" + chart, 1)


@dataclass(frozen=True)
class _Bar:
    name: str
    label: str
    colour: str
    count: int
    y: int
    bar: int


def techniques_chart(analysis: Analysis) -> str:
    """A horizontal bar chart of flagged passages per technique, as inline SVG."""
    counts = technique_counts(analysis)
    label_width, bar_space, row = 300, 520, 26
    top = max((n for _, n in counts), default=1)
    rows = [
        _Bar(t.name, t.label, t.colour, n, 4 + i * row, max(2, round(bar_space * n / top)))
        for i, (t, n) in enumerate(counts)
    ]
    return _ENV.get_template("chart.html.j2").render(
        rows=rows,
        label_width=label_width,
        width=label_width + bar_space + 40,
        height=8 + row * len(rows),
    )


@router.get("/history", response_class=HTMLResponse)
async def history(
    request: Request,
    q: str = "",
    technique: str = "",
    narrative: str = "",
    site: str = "",
    since: str = "",
    until: str = "",
    offset: int = 0,
) -> Response:
    _require_login(request)
    service = service_of(request)
    filters = {
        "q": q,
        "technique": technique,
        "narrative": narrative,
        "site": site,
        "since": since,
        "until": until,
    }
    try:
        query = history_query(
            q,
            technique,
            narrative,
            site,
            since or None,
            until or None,
            HISTORY_PAGE,
            max(0, offset),
        )
    except ApiError as error:  # a bad date: shown above the filters
        return await _history_page(request, service, filters, None, error.message)
    result = await asyncio.to_thread(service.spinlens.history, query)
    return await _history_page(request, service, filters, result, None)


async def _history_page(
    request: Request,
    service: Service,
    filters: dict[str, str],
    result: HistoryPage | None,
    error: str | None,
) -> HTMLResponse:
    sites = await asyncio.to_thread(service.spinlens.sites)
    items = result.items if result else []
    offset = result.offset if result else 0
    total = result.total if result else 0

    def href(at: int) -> str:
        params = {k: v for k, v in filters.items() if v}
        if at:
            params["offset"] = str(at)
        return "/history" + ("?" + urlencode(params) if params else "")

    return page(
        request,
        "history.html.j2",
        422 if error else 200,
        error=error,
        f=filters,
        techniques=TECHNIQUES,
        sites=sites,
        items=[_row(i) for i in items],
        total=total,
        first=offset + 1,
        last=offset + len(items),
        prev_href=href(max(0, offset - HISTORY_PAGE)) if offset > 0 else None,
        next_href=href(offset + HISTORY_PAGE) if offset + len(items) < total else None,
        filtered=any(filters.values()),
    )


@router.get("/corpus", response_class=HTMLResponse)
async def corpus(request: Request, site: str = "", since: str = "", until: str = "") -> Response:
    """The corpus dashboard over the stored history (spinlens.corpus.history); a bad date is
    a 422 with the form and the reason."""
    _require_login(request)
    spinlens = service_of(request).spinlens
    section = await asyncio.to_thread(history_section, spinlens, site, since, until)
    return page(request, "corpus.html.j2", 422 if section.error else 200, dashboard=section.html)


@router.get("/corpus.css")
async def corpus_css() -> Response:
    """The dashboard's styles: the app's pages allow no inline style."""
    return Response(stylesheet(), media_type="text/css", headers={"cache-control": "max-age=3600"})


@dataclass(frozen=True)
class _Tag:
    label: str
    colour: str
    definition: str
    count: int


@dataclass(frozen=True)
class _Row:
    id: str
    when: str
    title: str | None
    site: str | None
    location: str
    techniques: tuple[_Tag, ...]
    narratives: int
    flagged: float


def _row(item: HistoryItem) -> _Row:
    tags = []
    for name, count in item.technique_counts.items():
        t = technique(name)
        tags.append(_Tag(t.label, t.colour, t.definition, count))
    return _Row(
        id=item.id,
        when=_when(item.created_at),
        title=item.title,
        site=item.site,
        location=item.source.location,
        techniques=tuple(tags),
        narratives=item.narratives,
        flagged=round(item.flagged_share * 100, 1),
    )


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


@router.get("/catalogues", response_class=HTMLResponse)
async def catalogues(request: Request, removed: str = "", claims: int = 0) -> Response:
    _require_login(request)
    notice = f"Removed catalogue {removed} ({claims} claims)." if removed else None
    return await _catalogues_page(request, notice=notice)


@router.post("/catalogues/remove")
async def remove_catalogue(request: Request) -> Response:
    """The page's remove button (a form: same-origin only, like every POST; no script)."""
    _require_login(request)
    service = service_of(request)
    form = await request.form(max_files=0, max_fields=1)
    name = form.get("name")
    if not isinstance(name, str) or not name:
        return await _catalogues_page(request, 422, error="no catalogue named in the form")
    try:
        removed = await service.run(service.spinlens.remove_catalogue, name)
    except SpinlensError as error:
        status = 404 if isinstance(error, UnknownCatalogue) else 422
        status = 409 if isinstance(error, ShippedCatalogue) else status
        return await _catalogues_page(request, status, error=str(error))
    query = urlencode({"removed": name, "claims": removed})
    return RedirectResponse(f"/catalogues?{query}", status_code=303)


async def _catalogues_page(
    request: Request, status: int = 200, *, notice: str | None = None, error: str | None = None
) -> HTMLResponse:
    counts = await asyncio.to_thread(service_of(request).spinlens.catalogues)
    return page(
        request,
        "catalogues.html.j2",
        status,
        catalogues=catalogue_list(counts),
        notice=notice,
        error=error,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> Response:
    if _token(request) is None:
        return RedirectResponse("/", status_code=303)
    return page(request, "login.html.j2", next=_local(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    token = _token(request)
    if token is None:
        return RedirectResponse("/", status_code=303)
    form = await request.form(max_files=0, max_fields=2)
    given = form.get("token")
    target = _local(str(form.get("next") or "/"))
    if not security.token_matches(given if isinstance(given, str) else None, token):
        return page(request, "login.html.j2", 401, next=target, error="That token is not right.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        security.TOKEN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=30 * 24 * 3600,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/login" if _token(request) else "/", status_code=303)
    response.delete_cookie(security.TOKEN_COOKIE)
    return response


def _local(target: str) -> str:
    """Only a path on this server: never redirect a signed-in user to another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def install(app: FastAPI) -> None:
    """The UI's routes, static files, the offline API docs and the sign-in redirect."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    import fastapi_offline

    docs_assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/static-docs", StaticFiles(directory=docs_assets), name="static-docs")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        html = _ENV.get_template("docs.html.j2").render(openapi_url=app.openapi_url)
        return HTMLResponse(html)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/"
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
