"""Fetching one web page, safely enough to serve a public web API.

- Only http and https; URLs with a user name or password are refused (they would be sent to
  whatever host the page redirects to, and end up in reports and logs).
- SSRF guard: the host is resolved once and refused when any of its addresses is not public
  (private, loopback, link-local, CGNAT, multicast, reserved, IPv4 hidden in IPv6...), unless
  ``allow_private``. The connection then goes to the checked address itself, with the Host
  header and the TLS server name (SNI, certificate check) set to the host name, so a DNS answer
  that changes between check and connect cannot send the request elsewhere.
- Redirects are followed here, at most MAX_REDIRECTS, and every hop is checked the same way.
- Bodies are capped while streaming (Content-Length is only a hint); ``timeout`` bounds the
  whole fetch, redirects included (name resolution excepted: the system resolver has no
  timeout).
- Accepted types: text/html, application/xhtml+xml and text/plain (some articles are published
  as plain text), and a response without a Content-Type; the body is then read as every other
  input is (``ingest.documents``: the type is a hint, a page is HTML whatever it says). Every
  other type is refused.
- Environment proxies and .netrc are not used (a proxy would connect to hosts unchecked);
  SSL_CERT_FILE, when set, replaces the certifi CA bundle (for corporate CAs).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TypeVar

import certifi
import httpx

from spinlens.errors import IngestError
from spinlens.ingest.decode import parse_content_type
from spinlens.ingest.documents import HTML_TYPES, TEXT_TYPES, document_from_bytes
from spinlens.ingest.files import DEFAULT_MAX_BYTES, too_large
from spinlens.model import Document, Source
from spinlens.version import __version__

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")

ALLOWED_SCHEMES = frozenset({"http", "https"})
# Browsers allow ~20; news sites need 1-3 (http -> https -> canonical -> consent page).
MAX_REDIRECTS = 5
# Long enough for a slow news site on a poor connection, short enough for a web request.
DEFAULT_TIMEOUT = 15.0
USER_AGENT = f"spinlens/{__version__} (article analysis)"
PAGE_ACCEPT = "text/html,application/xhtml+xml,text/plain"

# Special-purpose ranges (RFC 6890) checked on top of ipaddress's flags: Python before
# 3.11.10/3.12.4 missed some of them (CVE-2024-4032), and none of them is a web server.
_SPECIAL_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, ORCHIDs...)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated, still routed on some networks)
    )
)
# Well-known NAT64 prefix (RFC 6052): the last 32 bits are an IPv4 address reached through it.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Letters, digits, "-" and "_" in dot-separated labels (after IDNA): no spaces, "%" or backslashes.
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
# Noise in OS and OpenSSL messages: "[Errno 111] ", "[SSL: CERTIFICATE_VERIFY_FAILED] ",
# " (_ssl.c:1006)".
_MESSAGE_NOISE = re.compile(r"^\[(Errno -?\d+|SSL: \w+)\]\s*|\s*\(_ssl\.c:\d+\)")


@dataclass(frozen=True)
class Target:
    """One checked hop: the URL as written (its host name goes in Host and SNI) and the
    resolved addresses, all allowed, to connect to in resolver order."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    addresses: tuple[IPAddress, ...]


def fetch_url(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> Document:
    """Fetch one page as a Document, or raise IngestError with one line saying why not."""
    fetched_at = datetime.now(UTC)

    def to_document(response: httpx.Response, target: Target, deadline: float) -> Document:
        return _document(response, url, target, fetched_at, max_bytes, deadline)

    return _fetch(url, to_document, PAGE_ACCEPT, allow_private, timeout)


@dataclass(frozen=True)
class RawResponse:
    """A response of any type and status (feeds, sitemaps, robots.txt read it)."""

    url: str  # after redirects
    status: int
    content_type: str | None
    charset: str | None
    data: bytes


def fetch_raw(
    url: str,
    *,
    accept: str = "*/*",
    allow_private: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> RawResponse:
    """Fetch ``url`` through the same guard, redirects and caps as ``fetch_url``, whatever its
    type or status; raise IngestError only when no response came back."""

    def to_raw(response: httpx.Response, target: Target, deadline: float) -> RawResponse:
        content_type, charset = parse_content_type(response.headers.get("Content-Type"))
        declared_length = response.headers.get("Content-Length", "")
        if declared_length.isdigit() and int(declared_length) > max_bytes:
            raise too_large("the response", max_bytes)
        return RawResponse(
            url=str(target.url.copy_with(fragment=None)),
            status=response.status_code,
            content_type=content_type,
            charset=charset,
            data=_read_body(response, max_bytes, deadline, "the response"),
        )

    return _fetch(url, to_raw, accept, allow_private, timeout)


def _fetch(
    url: str,
    read: Callable[[httpx.Response, Target, float], T],
    accept: str,
    allow_private: bool,
    timeout: float,
) -> T:
    """GET ``url``, following checked redirects, and hand the final response to ``read``."""
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": USER_AGENT, "Accept": accept}
    with httpx.Client(
        headers=headers, verify=_ssl_context(), trust_env=False, follow_redirects=False
    ) as client:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            target = check_url(current, allow_private=allow_private)
            try:
                response = _send(client, target, deadline)
                try:
                    if response.is_redirect:
                        # Resolved against the URL as written, never against the address
                        # (httpx has already refused a malformed Location).
                        current = str(target.url.join(response.headers["Location"]))
                        continue
                    return read(response, target, deadline)
                finally:
                    response.close()
            except httpx.TimeoutException:
                raise IngestError(f"timed out after {timeout:g} seconds") from None
            except httpx.ConnectError as error:
                raise IngestError(f"could not connect to {target.host}: {_reason(error)}") from None
            except httpx.HTTPError as error:
                raise IngestError(f"fetching failed: {_reason(error)}") from None
    raise IngestError(f"too many redirects (more than {MAX_REDIRECTS})")


def check_url(url: str | httpx.URL, *, allow_private: bool = False) -> Target:
    """Parse, resolve and check one URL (the first one or a redirect hop); raise IngestError."""
    parsed = _parse(url)
    host = parsed.raw_host.decode("ascii")
    addresses = _resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    if not allow_private:
        for address in addresses:
            kind = non_public_kind(address)
            if kind is not None:
                where = "it is" if _is_ip_literal(host) else f"it resolves to {address},"
                article = "an" if kind[0] in "aeiou" else "a"
                raise IngestError(
                    f"refusing to fetch {host}: {where} {article} {kind} address "
                    "(only public addresses are fetched)"
                )
    return Target(url=parsed, host=host, addresses=addresses)


def non_public_kind(address: IPAddress) -> str | None:
    """Why ``address`` is off limits ("loopback", "private"...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            kind = non_public_kind(embedded)
            if kind is not None:
                return f"{kind} (IPv4-in-IPv6)"
    for flag in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{flag}"):
            return flag.replace("_", "-")
    if any(address in net for net in _SPECIAL_NETWORKS):
        return "special-purpose"
    return None if address.is_global else "non-public"


def _parse(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, UnicodeError, ValueError) as error:
        raise IngestError(f"malformed URL: {_reason(error)}") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        scheme = f"'{parsed.scheme}'" if parsed.scheme else "none"
        raise IngestError(f"unsupported URL scheme {scheme} (only http and https are fetched)")
    if parsed.userinfo:
        raise IngestError("URLs with a user name or password are not fetched")
    host = parsed.raw_host.decode("ascii", errors="replace")
    if not host:
        raise IngestError("malformed URL: no host name")
    if not (_HOST_NAME.match(host) or _is_ip_literal(host)):
        raise IngestError(f"malformed URL: bad host name {host!r}")
    if port is not None and not 0 < port < 65536:
        raise IngestError(f"malformed URL: bad port {port}")
    return parsed


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass  # a name, not an address literal
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise IngestError(f"could not resolve host {host!r}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # Drop an IPv6 zone ("fe80::1%eth0"): the address alone decides the verdict.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise IngestError(f"could not resolve host {host!r}")
    return tuple(addresses)


def _send(client: httpx.Client, target: Target, deadline: float) -> httpx.Response:
    """GET the target from its checked addresses in turn; the first that connects answers."""
    host_header = target.url.netloc.decode("ascii")
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    error: httpx.TransportError | None = None
    for address in target.addresses:
        request = client.build_request(
            "GET",
            target.url.copy_with(host=str(address), fragment=None),
            headers={"Host": host_header},
            extensions=extensions,
            timeout=_remaining(deadline),
        )
        try:
            return client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as failed:
            error = failed
    assert error is not None  # _resolve never returns an empty tuple
    raise error


def _document(
    response: httpx.Response,
    url: str,
    target: Target,
    fetched_at: datetime,
    max_bytes: int,
    deadline: float,
) -> Document:
    content_type, charset = parse_content_type(response.headers.get("Content-Type"))
    _check_page(response.status_code, response.reason_phrase, content_type)
    declared_length = response.headers.get("Content-Length", "")
    if declared_length.isdigit() and int(declared_length) > max_bytes:
        raise too_large("the page", max_bytes)
    data = _read_body(response, max_bytes, deadline)
    final_url = str(target.url.copy_with(fragment=None))
    return _page(
        data,
        content_type,
        charset,
        Source(kind="url", location=url, fetched_at=fetched_at),
        final_url,
    )


def page_from_raw(raw: RawResponse, source: Source) -> Document:
    """The page in a response fetched with ``fetch_raw`` (refused as ``fetch_url`` would)."""
    _check_page(raw.status, "", raw.content_type)
    return _page(raw.data, raw.content_type, raw.charset, source, raw.url)


def _check_page(status: int, reason_phrase: str, content_type: str | None) -> None:
    if not 200 <= status < 300:
        phrase = f" {reason_phrase}" if reason_phrase else ""
        raise IngestError(f"the server answered {status}{phrase}")
    if content_type is not None and content_type not in HTML_TYPES | TEXT_TYPES:
        raise IngestError(f"not a web page: the server sent {content_type}")


def _page(
    data: bytes, content_type: str | None, charset: str | None, source: Source, url: str
) -> Document:
    # Read as every other input is: the type is a hint, a page is HTML whatever it says.
    return document_from_bytes(
        data, source=source, content_type=content_type, charset=charset, url=url, what="the page"
    )


def _read_body(
    response: httpx.Response, max_bytes: int, deadline: float, what: str = "the page"
) -> bytes:
    """The decoded (gunzipped) body, refused as soon as it passes ``max_bytes`` or the deadline."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(what, max_bytes)
        chunks.append(chunk)
        _remaining(deadline)
    return b"".join(chunks)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        # Caught with the other timeouts in fetch_url, which knows the total to report.
        raise httpx.ReadTimeout("deadline passed")
    return left


@lru_cache(maxsize=4)
def _ssl_context_for(cafile: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise IngestError(
            f"cannot load the CA certificates in {cafile}: {_reason(error)}"
        ) from None


def _ssl_context() -> ssl.SSLContext:
    return _ssl_context_for(os.environ.get("SSL_CERT_FILE") or certifi.where())


def _reason(error: BaseException) -> str:
    """One line from an exception: "[Errno 111] Connection refused" -> "connection refused"."""
    text = " ".join(str(error).split()) or type(error).__name__
    text = _MESSAGE_NOISE.sub("", text)
    return text[:1].lower() + text[1:]
