"""A local news site on 127.0.0.1 for the feed, sitemap and watch tests.

It serves articles, an RSS feed, an Atom feed, a sitemap index with a plain and a gzipped
sitemap, and a robots.txt, and records every request (path, User-Agent, time, how many were
in flight) so tests can check the fetcher's manners. Tests change ``site.items`` and
``site.robots`` to publish new articles or rules.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from typing import Any

ARTICLE_TEXT = (
    "The council voted on Tuesday to rebuild the old bridge over the river. "
    "Critics called the plan a disgraceful waste of money, while supporters said the town "
    "had waited far too long. The work should start next spring and last two years."
)


@dataclass
class Request:
    path: str
    user_agent: str
    at: float
    in_flight: int


@dataclass
class Site:
    """What the server publishes; tests edit it while the server runs."""

    items: list[tuple[str, str]] = field(default_factory=list)  # (path, title)
    robots: str | None = "User-agent: *\nDisallow: /private/\n"
    requests: list[Request] = field(default_factory=list)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def article_html(title: str, n: int) -> str:
    body = f"{ARTICLE_TEXT} This is report number {n} about {escape(title)}."
    return (
        f"<html><head><title>{escape(title)}</title></head><body><article>"
        f"<h1>{escape(title)}</h1><p>{body}</p><p>{body[::-1]}</p></article></body></html>"
    )


def rss(site: Site) -> str:
    entries = "".join(
        f"<item><title>{escape(title)}</title><link>{site.base}{path}</link>"
        "<pubDate>Tue, 03 Nov 2026 10:00:00 GMT</pubDate></item>"
        for path, title in site.items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Local news</title>{entries}</channel></rss>"
    )


def atom(site: Site) -> str:
    entries = "".join(
        f'<entry><title>{escape(title)}</title><link href="{path}"/><id>{path}</id>'
        "<updated>2026-11-04T10:00:00Z</updated></entry>"
        for path, title in site.items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Local news</title>{entries}</feed>"
    )


def urlset(site: Site, paths: list[str]) -> str:
    urls = "".join(f"<url><loc>{site.base}{p}</loc></url>" for p in paths)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    )


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    site: Site

    def do_GET(self) -> None:
        site = self.site
        with site.lock:
            site.in_flight += 1
            site.requests.append(
                Request(self.path, self.headers.get("User-Agent", ""), time.monotonic(), 0)
            )
            site.requests[-1].in_flight = site.in_flight
        try:
            self._route(site)
        finally:
            with site.lock:
                site.in_flight -= 1

    def _route(self, site: Site) -> None:
        path = self.path
        time.sleep(0.05)  # long enough for overlapping requests to show in in_flight
        pages = dict(site.items)
        if path == "/robots.txt":
            if site.robots is None:
                self._send(404, "text/plain", b"not found")
            elif site.robots == "503":
                self._send(503, "text/plain", b"busy")
            else:
                self._send(200, "text/plain", site.robots.encode())
        elif path == "/feed.xml":
            self._send(200, "application/rss+xml", rss(site).encode())
        elif path == "/atom.xml":
            self._send(200, "application/atom+xml", atom(site).encode())
        elif path == "/sitemap_index.xml":
            index = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<sitemap><loc>{site.base}/sitemap1.xml</loc></sitemap>"
                "<sitemap><loc>/sitemap2.xml.gz</loc></sitemap></sitemapindex>"
            )
            self._send(200, "application/xml", index.encode())
        elif path == "/sitemap1.xml":
            paths = [p for p, _ in site.items[:1]]
            self._send(200, "text/xml", urlset(site, paths).encode())
        elif path == "/sitemap2.xml.gz":
            paths = [p for p, _ in site.items[1:]]
            self._send(200, "application/gzip", gzip.compress(urlset(site, paths).encode()))
        elif path == "/bomb.xml":
            bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><urlset/>'
            self._send(200, "application/xml", bomb.encode())
        elif path in pages or path.startswith("/private/"):
            title = pages.get(path, "Private")
            n = len(path)
            self._send(200, "text/html; charset=utf-8", article_html(title, n).encode())
        else:
            self._send(404, "text/html", b"<p>Not found</p>")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve(site: Site) -> Iterator[Site]:
    """Run the site on a free port of 127.0.0.1 until the generator is closed."""
    handler = type("SiteHandler", (Handler,), {"site": site})
    server = QuietServer(("127.0.0.1", 0), handler)
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
