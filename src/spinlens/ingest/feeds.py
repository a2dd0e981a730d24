"""RSS/Atom feeds and XML sitemaps as sources: a listing expands into the pages it names.

Every request goes through the SSRF-guarded fetcher (``web.fetch_raw``), politely:
- one request at a time per host, and ``delay`` seconds between two requests to the same host
  (longer when the site's robots.txt asks for a Crawl-delay, up to MAX_CRAWL_DELAY);
- robots.txt is read once per site and respected for the pages (RFC 9309: a 4xx means no
  rules, a 5xx or no answer means "fetch nothing");
- the User-Agent names spinlens (``web.USER_AGENT``) and robots.txt rules are looked up for
  the ``spinlens`` product token.

A URL given as a source is fetched once: a feed or sitemap expands, anything else is analysed
as the page it is.
"""

from __future__ import annotations

import gzip
import io
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import feedparser

from spinlens.errors import IngestError
from spinlens.ingest.files import DEFAULT_MAX_BYTES, too_large
from spinlens.ingest.web import (
    DEFAULT_TIMEOUT,
    PAGE_ACCEPT,
    RawResponse,
    fetch_raw,
    page_from_raw,
)
from spinlens.model import Document, Failure, Source, SourceKind

ROBOTS_AGENT = "spinlens"
# One request a second per host is the common courtesy of research crawlers.
DEFAULT_DELAY = 1.0
# A robots.txt Crawl-delay above this is capped: a day-long delay would stall the run.
MAX_CRAWL_DELAY = 30.0
# A sitemap index names sitemaps, which could name indexes again: two levels cover real sites.
MAX_SITEMAP_DEPTH = 2
# The sitemap protocol's own limit per file; feeds are far smaller.
MAX_ITEMS = 50_000
LISTING_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    f"{PAGE_ACCEPT};q=0.8, */*;q=0.5"
)
FEED_ROOTS = frozenset({"rss", "feed", "rdf"})
SITEMAP_ROOTS = frozenset({"urlset", "sitemapindex"})
# The root element's name, after an optional BOM, XML declaration, comments and DOCTYPE.
_DISALLOW_ALL = ["User-agent: *", "Disallow: /"]
_ROOT = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*|<!DOCTYPE[^[>]*(?:\[.*?\])?\s*>\s*)*<([\w:.-]+)",
    re.DOTALL | re.IGNORECASE,
)


@dataclass(frozen=True)
class FeedItem:
    """One page a feed or sitemap names."""

    url: str
    title: str | None = None
    published: str | None = None  # YYYY-MM-DD when the listing says


class PoliteFetcher:
    """The guarded fetcher with robots.txt, one request at a time per host and a delay.

    Thread-safe: callers on several threads still send one request at a time to each host.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        delay: float = DEFAULT_DELAY,
        timeout: float = DEFAULT_TIMEOUT,
        respect_robots: bool = True,
    ) -> None:
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.delay = delay
        self.timeout = timeout
        self.respect_robots = respect_robots
        self._guard = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._last_request: dict[str, float] = {}
        self._robots: dict[str, RobotFileParser] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._robots_errors: dict[str, str] = {}

    def fetch(self, url: str, accept: str = PAGE_ACCEPT) -> RawResponse:
        """Fetch ``url`` (any type or status) once robots.txt allows it; raise IngestError."""
        origin = _origin(url)
        if self.respect_robots and not self._robots_for(origin).can_fetch(ROBOTS_AGENT, url):
            unreachable = self._robots_errors.get(origin)
            if unreachable is not None:
                raise IngestError(f"could not read robots.txt: {unreachable}")
            raise IngestError("robots.txt disallows fetching this page")
        return self._polite(origin, url, accept)

    def fetch_page(self, url: str, kind: SourceKind = "url") -> Document:
        """Fetch one article page as a Document (``kind`` names the source: url or feed)."""
        fetched_at = datetime.now(UTC)
        raw = self.fetch(url)
        return page_from_raw(raw, Source(kind=kind, location=url, fetched_at=fetched_at))

    def _polite(self, origin: str, url: str, accept: str) -> RawResponse:
        with self._guard:
            lock = self._host_locks.setdefault(origin, threading.Lock())
        with lock:
            wait = self._last_request.get(origin, 0.0) + self._delay_for(origin) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                return fetch_raw(
                    url,
                    accept=accept,
                    allow_private=self.allow_private,
                    max_bytes=self.max_bytes,
                    timeout=self.timeout,
                )
            finally:
                self._last_request[origin] = time.monotonic()

    def _delay_for(self, origin: str) -> float:
        robots = self._robots.get(origin)
        crawl_delay = robots.crawl_delay(ROBOTS_AGENT) if robots is not None else None
        if crawl_delay is None:
            return self.delay
        return max(self.delay, min(float(crawl_delay), MAX_CRAWL_DELAY))

    def _robots_for(self, origin: str) -> RobotFileParser:
        with self._guard:
            lock = self._robots_locks.setdefault(origin, threading.Lock())
        with lock:  # one read of robots.txt per site, however many threads ask
            known = self._robots.get(origin)
            if known is None:
                known = self._robots[origin] = self._read_robots(origin)
            return known

    def _read_robots(self, origin: str) -> RobotFileParser:
        robots = RobotFileParser(origin + "/robots.txt")
        try:
            raw = self._polite(origin, origin + "/robots.txt", "text/plain")
        except IngestError as error:
            # Unreachable: assume the site wants nothing fetched, and say why.
            self._robots_errors[origin] = str(error)
            robots.parse(_DISALLOW_ALL)
        else:
            if 200 <= raw.status < 300:
                robots.parse(raw.data.decode("utf-8", errors="replace").splitlines())
            elif raw.status >= 500:
                robots.parse(_DISALLOW_ALL)
            else:
                robots.parse([])  # 4xx: the site publishes no rules
        return robots


def iter_web_source(url: str, fetcher: PoliteFetcher) -> Iterator[Document | Failure]:
    """A URL given as a source: the pages of a feed or sitemap, or the page itself."""
    fetched_at = datetime.now(UTC)
    try:
        raw = fetcher.fetch(url, LISTING_ACCEPT)
        items = read_listing(raw, fetcher)
        if items is None:
            yield page_from_raw(raw, Source(kind="url", location=url, fetched_at=fetched_at))
            return
    except IngestError as error:
        yield Failure(location=url, reason=str(error))
        return
    yield from iter_items(items, fetcher)


def iter_items(items: list[FeedItem], fetcher: PoliteFetcher) -> Iterator[Document | Failure]:
    """Fetch the pages a listing names, one Document or Failure each."""
    for item in items:
        try:
            yield fetcher.fetch_page(item.url, kind="feed")
        except IngestError as error:
            yield Failure(location=item.url, reason=str(error))


def expand(url: str, fetcher: PoliteFetcher) -> list[FeedItem]:
    """The items of the feed or sitemap at ``url``; IngestError when it is neither."""
    raw = fetcher.fetch(url, LISTING_ACCEPT)
    if not 200 <= raw.status < 300:
        raise IngestError(f"the server answered {raw.status}")
    items = read_listing(raw, fetcher)
    if items is None:
        raise IngestError("not an RSS/Atom feed or an XML sitemap")
    return items


def read_listing(raw: RawResponse, fetcher: PoliteFetcher, depth: int = 0) -> list[FeedItem] | None:
    """The items of a feed or sitemap response, or None when it is neither (e.g. a page)."""
    if not 200 <= raw.status < 300:
        return None  # page_from_raw reports the status
    data = _gunzip(raw.data, fetcher.max_bytes) if raw.data[:2] == b"\x1f\x8b" else raw.data
    root = _ROOT.match(data[:8192])
    if root is None:
        return None
    name = root.group(1).decode("ascii", errors="replace").rpartition(":")[2].lower()
    if name in FEED_ROOTS:
        return _unique(_feed_items(data, raw.url))
    if name in SITEMAP_ROOTS:
        return _unique(_sitemap_items(data, raw.url, fetcher, depth))
    return None


def _feed_items(data: bytes, base_url: str) -> list[FeedItem]:
    # A stream, never a string: feedparser would fetch a string that looks like a URL.
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    if parsed.bozo and not parsed.entries:
        raise IngestError(f"unreadable feed: {parsed.get('bozo_exception', 'malformed XML')}")
    items = []
    for entry in parsed.entries[:MAX_ITEMS]:
        link = entry.get("link") or _http_id(entry.get("id"))
        if link:
            items.append(
                FeedItem(
                    url=urljoin(base_url, link.strip()),
                    title=entry.get("title"),
                    published=_entry_date(entry),
                )
            )
    return items


def _sitemap_items(
    data: bytes, base_url: str, fetcher: PoliteFetcher, depth: int
) -> list[FeedItem]:
    if b"<!DOCTYPE" in data[:8192].upper():
        # Sitemaps never declare one; entity tricks (billion laughs) need one.
        raise IngestError("unreadable sitemap: a DOCTYPE is not allowed")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise IngestError(f"unreadable sitemap: {error}") from None
    locs = [
        (el.text or "").strip()
        for el in root.iter()
        if _local(el.tag) == "loc" and (el.text or "").strip()
    ][:MAX_ITEMS]
    if _local(root.tag) == "urlset":
        return [FeedItem(url=urljoin(base_url, loc)) for loc in locs]
    if depth >= MAX_SITEMAP_DEPTH:
        raise IngestError(f"sitemap indexes nested deeper than {MAX_SITEMAP_DEPTH} levels")
    items: list[FeedItem] = []
    for loc in locs:
        child = fetcher.fetch(urljoin(base_url, loc), LISTING_ACCEPT)
        items.extend(read_listing(child, fetcher, depth + 1) or [])
        if len(items) >= MAX_ITEMS:
            break
    return items[:MAX_ITEMS]


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    """A gzipped sitemap (sitemap.xml.gz), inflated no further than ``max_bytes``."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
            inflated = unzipped.read(max_bytes + 1)
    except (OSError, EOFError) as error:
        raise IngestError(f"unreadable gzip data: {error}") from None
    if len(inflated) > max_bytes:
        raise too_large("the sitemap", max_bytes)
    return inflated


def _entry_date(entry: Any) -> str | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    return date(parsed.tm_year, parsed.tm_mon, parsed.tm_mday).isoformat()


def _http_id(entry_id: str | None) -> str | None:
    return entry_id if entry_id and entry_id.startswith(("http://", "https://")) else None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2].lower()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _unique(items: list[FeedItem]) -> list[FeedItem]:
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.url not in seen:
            seen.add(item.url)
            unique.append(item)
    return unique
