"""The server's guards: API token, per-client rate limit, request body cap, security headers.

They are plain ASGI middleware (and one FastAPI dependency for the token) so they wrap every
route, the error pages included, whatever a route handler does.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "spinlens_token"

# Pages of the app: no script at all, styles and images only from spinlens itself.
APP_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The report page is spinlens.report's self-contained page: its styles are inline, like the
# page written to disk; it still runs no script and loads nothing.
REPORT_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI (/docs): its script and stylesheet are served from /static-docs; it sets inline
# styles on its own elements and fetches the OpenAPI document and the API itself.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
# JSON answers: nothing in them may ever run or load, even if a browser renders one.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def error_json(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = error_json(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Adds the security headers, with the Content-Security-Policy that fits each page."""

    def __init__(self, app: ASGIApp, csp_for: Callable[[str], str]) -> None:
        self.app = app
        self.csp_for = csp_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.csp_for(scope["path"]).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != b"content-security-policy"
                ]
                headers += [*BASE_HEADERS, (b"content-security-policy", csp)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the cap; the app's error handler
    turns it into the documented 413 answer, whichever route was reading."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, body_too_large_message(max_bytes))


def body_too_large_message(max_bytes: int) -> str:
    return f"the request body is larger than the limit of {max_bytes:,} bytes"


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, 400, "bad_request", "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    message = body_too_large_message(self.max_bytes)
                    await send_error(send, 413, "body_too_large", message)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return msg

        await self.app(scope, counting_receive, send)


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBucketLimiter:
    """``per_minute`` requests per client, refilled continuously, bursts up to ``burst``."""

    per_minute: int
    burst: int
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 10_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, client: str) -> float:
        """0 when the request may go on, else the seconds to wait before retrying."""
        now = self.clock()
        rate = self.per_minute / 60.0
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= self.max_clients:
                    self._forget_idle(now, rate)
                bucket = self._buckets[client] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate

    def _forget_idle(self, now: float, rate: float) -> None:
        # A client whose bucket has refilled is indistinguishable from a new one.
        full = [
            k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * rate >= self.burst
        ]
        for key in full or list(self._buckets)[: self.max_clients // 10]:
            del self._buckets[key]


class RateLimit:
    """Per-client limits: one for every request, a tighter one for requests that analyse."""

    def __init__(
        self,
        app: ASGIApp,
        requests: TokenBucketLimiter,
        analyses: TokenBucketLimiter,
        is_analysis: Callable[[str, str], bool],
        exempt: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.requests = requests
        self.analyses = analyses
        self.is_analysis = is_analysis
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        wait = self.requests.take(client)
        if not wait and self.is_analysis(scope["method"], scope["path"]):
            wait = self.analyses.take(client)
        if wait:
            seconds = max(1, int(wait + 0.999))
            await send_error(
                send,
                429,
                "rate_limited",
                f"too many requests from this client; retry in {seconds} s",
                [(b"retry-after", str(seconds).encode())],
            )
            return
        await self.app(scope, receive, send)


class SameOrigin:
    """Refuses state-changing requests sent by another site's page (cross-site request forgery).

    Browsers say where a request comes from in ``Sec-Fetch-Site``, a header pages cannot set;
    older ones only in ``Origin`` (which is "null" for pages with a no-referrer policy, such
    as the report). API clients (curl, scripts) send neither and are let through: they must
    present the token anyway when one is set.
    """

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in self.SAFE or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await send_error(send, 403, "cross_origin", "cross-site requests are not allowed")

    @staticmethod
    def _allowed(scope: Scope) -> bool:
        headers = dict(scope.get("headers", []))
        site = headers.get(b"sec-fetch-site")
        if site is not None:
            # "none": the user's own action (a bookmark, the address bar).
            return site in (b"same-origin", b"none")
        origin = headers.get(b"origin", b"").decode("latin-1")
        host = headers.get(b"host", b"").decode("latin-1")
        return not origin or (origin != "null" and urlsplit(origin).netloc == host)
