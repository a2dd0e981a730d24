"""fetch_url against a local HTTP(S) server, and the SSRF guard.

There is no outside network here: public-address behaviour is tested on the check function
with a stubbed resolver, and everything that needs a live server uses 127.0.0.1 with
allow_private=True.
"""

from __future__ import annotations

import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from spinlens.errors import IngestError
from spinlens.ingest import iter_documents
from spinlens.ingest.web import MAX_REDIRECTS, check_url, fetch_url, non_public_kind
from spinlens.model import Failure

PAGE = "<html><head><title>Vote</title></head><body><p>The council voted.</p></body></html>"
RUSSIAN = "<html><body><p>Вчера вечером в центре города прошёл митинг.</p></body></html>"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str] = []

    def do_GET(self) -> None:
        Handler.hits.append(self.path)
        route, _, arg = self.path.strip("/").partition("/")
        if route == "page":
            self._send(200, "text/html; charset=utf-8", PAGE.encode())
        elif route == "host":
            self._send(200, "text/html", f"<p>Host: {self.headers['Host']}</p>".encode())
        elif route == "ru":
            self._send(200, "text/html; charset=windows-1251", RUSSIAN.encode("cp1251"))
        elif route == "plain":
            self._send(200, "text/plain", b"Plain text article.")
        elif route == "untyped":
            self._send(200, None, PAGE.encode())
        elif route == "pdf":
            self._send(200, "application/pdf", b"%PDF-1.4 ...")
        elif route == "missing":
            self._send(404, "text/html", b"<p>Not found</p>")
        elif route == "hop":  # /hop/N redirects N times, then to the page
            left = int(arg)
            self._redirect(f"/hop/{left - 1}" if left > 1 else "/page")
        elif route == "to":  # /to/<absolute URL>
            self._redirect(self.path[len("/to/") :])
        elif route == "big":  # no Content-Length: only streaming can stop it
            self._stream([b"<p>" + b"x" * 10_000 + b"</p>"] * 100)
        elif route == "big-declared":
            self._send(200, "text/html", b"<p>" + b"x" * 20_000 + b"</p>")
        elif route == "slow":
            time.sleep(1.5)
            self._send(200, "text/html", PAGE.encode())
        elif route == "drip":  # a byte every 0.1 s, each read well within any timeout
            self._stream([b"x"] * 30, pause=0.1)

    def _send(self, status: int, content_type: str | None, body: bytes) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stream(self, chunks: list[bytes], pause: float = 0.0) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early (size cap, timeout) are expected here


def _serve(server: QuietServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """host:port of the local test server."""
    yield from _serve(QuietServer(("127.0.0.1", 0), Handler))


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], list[str]]:
    """Stub DNS for test host names; returns the list of names looked up (other names pass)."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def install(table: dict[str, list[str]]) -> list[str]:
        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in table:
                return real(host, port, *args, **kwargs)
            looked_up.append(host)
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (ip, port),
                )
                for ip in table[host]
            ]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return looked_up

    return install


def fail_on_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    def send(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a refused URL must not be requested")

    monkeypatch.setattr(httpx.Client, "send", send)


# --- fetching ----------------------------------------------------------------------------


def test_fetch_an_html_page(server: str) -> None:
    before = datetime.now(UTC)
    doc = fetch_url(f"http://{server}/page#comments", allow_private=True)
    assert (doc.body, doc.media_type) == (PAGE, "text/html")
    assert doc.source.kind == "url"
    assert doc.source.location == f"http://{server}/page#comments"
    assert doc.url == f"http://{server}/page"
    assert doc.source.fetched_at is not None and before <= doc.source.fetched_at
    assert doc.source.fetched_at <= datetime.now(UTC)


def test_the_http_charset_is_used(server: str) -> None:
    assert fetch_url(f"http://{server}/ru", allow_private=True).body == RUSSIAN


def test_plain_text_is_accepted_and_untyped_bodies_are_sniffed(server: str) -> None:
    plain = fetch_url(f"http://{server}/plain", allow_private=True)
    assert (plain.media_type, plain.body) == ("text/plain", "Plain text article.")
    assert fetch_url(f"http://{server}/untyped", allow_private=True).media_type == "text/html"


def test_non_html_content_types_are_refused(server: str) -> None:
    with pytest.raises(IngestError, match=r"^not a web page: the server sent application/pdf$"):
        fetch_url(f"http://{server}/pdf", allow_private=True)


def test_http_errors_are_reported(server: str) -> None:
    with pytest.raises(IngestError, match=r"^the server answered 404 Not Found$"):
        fetch_url(f"http://{server}/missing", allow_private=True)


def test_redirects_are_followed_up_to_the_limit(server: str) -> None:
    doc = fetch_url(f"http://{server}/hop/{MAX_REDIRECTS}", allow_private=True)
    assert doc.url == f"http://{server}/page"
    assert doc.source.location == f"http://{server}/hop/{MAX_REDIRECTS}"
    with pytest.raises(IngestError, match=r"^too many redirects \(more than 5\)$"):
        fetch_url(f"http://{server}/hop/{MAX_REDIRECTS + 1}", allow_private=True)


def test_every_redirect_hop_is_checked(server: str) -> None:
    with pytest.raises(IngestError, match=r"^unsupported URL scheme 'file'"):
        fetch_url(f"http://{server}/to/file:///etc/passwd", allow_private=True)
    with pytest.raises(IngestError, match=r"^URLs with a user name or password are not fetched$"):
        fetch_url(f"http://{server}/to/http://user:pw@{server}/page", allow_private=True)
    with pytest.raises(IngestError, match=r"^could not resolve host 'no-such-host\.invalid'$"):
        fetch_url(f"http://{server}/to/http://no-such-host.invalid/", allow_private=True)
    with pytest.raises(IngestError, match=r"^fetching failed: invalid URL in location header"):
        fetch_url(f"http://{server}/to/http://[::1", allow_private=True)


def test_a_public_host_redirecting_to_a_private_one_is_refused(resolver: Any) -> None:
    # What fetch_url runs on every hop: the first hop passes, the redirect target does not.
    resolver({"news.example": ["93.184.216.34"], "intranet.example": ["10.1.2.3"]})
    assert check_url("https://news.example/a").addresses == (ipaddress.ip_address("93.184.216.34"),)
    with pytest.raises(IngestError, match=r"^refusing to fetch intranet\.example: it resolves"):
        check_url("https://intranet.example/admin")


def test_a_body_over_the_limit_is_refused_while_streaming(server: str) -> None:
    with pytest.raises(IngestError, match=r"^the page is larger than the 100 kB limit$"):
        fetch_url(f"http://{server}/big", allow_private=True, max_bytes=100_000)
    with pytest.raises(IngestError, match=r"^the page is larger than the 10 kB limit$"):
        fetch_url(f"http://{server}/big-declared", allow_private=True, max_bytes=10_000)


def test_a_slow_server_times_out(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(IngestError, match=r"^timed out after 0\.3 seconds$"):
        fetch_url(f"http://{server}/slow", allow_private=True, timeout=0.3)
    assert time.monotonic() - started < 1.0


def test_the_timeout_bounds_the_whole_fetch_not_each_read(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(IngestError, match=r"^timed out after 0\.5 seconds$"):
        fetch_url(f"http://{server}/drip", allow_private=True, timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_one_clear_line() -> None:
    with socket.socket() as s:  # a port nobody listens on: bind, note, close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        IngestError, match=r"^could not connect to 127\.0\.0\.1: connection refused$"
    ):
        fetch_url(f"http://127.0.0.1:{port}/", allow_private=True, timeout=5)


def test_an_unknown_host_is_one_clear_line() -> None:
    items = list(iter_documents(["https://no-such-host.invalid/news"]))
    assert items == [
        Failure(
            location="https://no-such-host.invalid/news",
            reason="could not resolve host 'no-such-host.invalid'",
        )
    ]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://", "malformed URL: no host name"),
        ("http:example.com", "malformed URL: no host name"),
        ("http://exa mple.com/", "malformed URL: bad host name 'exa%20mple.com'"),
        ("http://example.com:99999/", "malformed URL: bad port 99999"),
        ("http://[::1/", "malformed URL: invalid port: ':1'"),
        (
            "gopher://example.com/",
            "unsupported URL scheme 'gopher' (only http and https are fetched)",
        ),
        ("https://me:secret@example.com/", "URLs with a user name or password are not fetched"),
    ],
)
def test_invalid_urls_are_one_clear_line(url: str, reason: str) -> None:
    assert list(iter_documents([url])) == [Failure(location=url, reason=reason)]


# --- SSRF guard --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "special-purpose"),
        ("224.0.0.1", "multicast"),
        ("[fd00::1]", "private"),
        ("[::ffff:127.0.0.1]", "loopback (IPv4-in-IPv6)"),
        ("[64:ff9b::a00:1]", "private (IPv4-in-IPv6)"),
        ("[2002:a00:1::]", "private (IPv4-in-IPv6)"),
    ],
)
def test_private_addresses_are_refused_before_any_connection(
    host: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_on_connect(monkeypatch)
    with pytest.raises(IngestError) as error:
        fetch_url(f"http://{host}/latest/meta-data/")
    article = "an" if kind == "unspecified" else "a"
    assert str(error.value) == (
        f"refusing to fetch {host.strip('[]')}: it is {article} {kind} address "
        "(only public addresses are fetched)"
    )


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f.1"])
def test_names_resolving_to_loopback_are_refused(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_on_connect(monkeypatch)
    with pytest.raises(
        IngestError, match=rf"^refusing to fetch {host}: it resolves to 127\.0\.0\.1"
    ):
        fetch_url(f"http://{host}/")


def test_the_live_server_is_not_reached_without_allow_private(server: str) -> None:
    before = len(Handler.hits)
    items = list(iter_documents([f"http://{server}/page"]))
    assert isinstance(items[0], Failure) and "loopback" in items[0].reason
    assert len(Handler.hits) == before


def test_a_host_is_refused_if_any_of_its_addresses_is_private(resolver: Any) -> None:
    resolver({"mixed.example": ["93.184.216.34", "192.168.1.1"]})
    with pytest.raises(IngestError, match=r"it resolves to 192\.168\.1\.1, a private address"):
        check_url("http://mixed.example/")


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:5db8:d822::"]
)
def test_public_addresses_pass(address: str) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) is None


def test_the_checked_address_is_the_one_connected_to(server: str, resolver: Any) -> None:
    # A rebinding resolver would answer differently the second time: it must not be asked.
    port = server.rsplit(":", 1)[1]
    looked_up = resolver({"rebind.example": ["127.0.0.1"]})
    doc = fetch_url(f"http://rebind.example:{port}/host", allow_private=True)
    assert doc.body == f"<p>Host: rebind.example:{port}</p>"
    assert doc.url == f"http://rebind.example:{port}/host"
    assert looked_up == ["rebind.example"]


# --- TLS with a pinned address -----------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """host:port of an HTTPS server whose certificate names only spinlens.example."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=spinlens.example",
         "-addext", "subjectAltName=DNS:spinlens.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = QuietServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for address in _serve(server):
        yield address, cert


def test_https_to_a_pinned_address_verifies_the_host_name(
    tls_server: tuple[str, Path], resolver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    address, cert = tls_server
    port = address.rsplit(":", 1)[1]
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    resolver({"spinlens.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    doc = fetch_url(f"https://spinlens.example:{port}/page", allow_private=True, timeout=5)
    assert doc.body == PAGE
    # Same address, another name: the certificate does not match, so nothing is fetched.
    with pytest.raises(IngestError, match=r"^could not connect to other\.example: .*certificate"):
        fetch_url(f"https://other.example:{port}/page", allow_private=True, timeout=5)
