"""The server's defences: escaping of every article field, the SSRF guard on URL analysis, the
body cap, the API token, the rate limit, cross-site requests and the security headers."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from spinlens.errors import UsageError
from spinlens.model import Analysis, Article, Finding, NarrativeMatch, Source, Span
from spinlens.server import Settings, create_app
from spinlens.server.security import TokenBucketLimiter
from spinlens.store import Store, input_hash

from .test_server_api import ARTICLE, phrase_pipeline

PAYLOADS = (
    '<script>alert("x1")</script>',
    '"><img src=x onerror=alert("x2")>',
    "' autofocus onfocus='alert(3)' x='",
    '" onmouseover="alert(4)" data-x="',
    "</textarea></title></style><script>alert(5)</script>",
    "<svg onload=alert(6)>",
    "javascript:alert(7)",
)
EVIL = " ".join(PAYLOADS)


class _Audit(HTMLParser):
    """Everything an injected payload could use to run: scripts, handlers, script URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "img", "iframe", "object", "embed", "base"):
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name in ("autofocus", "srcdoc", "formaction"):
                self.problems.append(f"{tag}[{name}]")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith(
                ("javascript:", "data:")
            ):
                self.problems.append(f"{tag}[{name}={value}]")

    def handle_data(self, data: str) -> None:
        self.text += data


def audit(html: str) -> _Audit:
    parser = _Audit()
    parser.feed(html)
    assert parser.problems == [], parser.problems
    return parser


def evil_analysis() -> Analysis:
    """An analysis with a payload in every field a page shows."""
    body = f"{EVIL}\n\nThe shameful {EVIL} regime."
    start = body.index("shameful")
    evil_start = body.index(EVIL, start)
    return Analysis(
        id=input_hash("text", body),
        source=Source(kind="file", location=f"{EVIL}.html"),
        article=Article(
            title=f"Title {EVIL}",
            author=f"Author {EVIL}",
            date="2024-01-01",
            site=f"site{EVIL}",
            url="javascript:alert(8)",
            language="en",
            text=body,
        ),
        techniques=[
            Finding(
                start=start, end=start + 8, technique="Loaded_Language", score=0.9, text="shameful"
            ),
            Finding(
                start=evil_start,
                end=evil_start + len(EVIL),
                technique=f"Bogus {EVIL}",
                score=0.5,
                text=EVIL,
            ),
        ],
        narratives=[
            NarrativeMatch(
                claim_id=f"claim {EVIL}",
                title=f"Claim {EVIL}",
                catalogue=f"catalogue {EVIL}",
                family=f"family {EVIL}",
                score=0.8,
                evidence=[Span(start=evil_start, end=evil_start + len(EVIL))],
                url="javascript:alert(9)",
                disproof=f"Disproof {EVIL}",
                date="2024-01-02",
            )
        ],
        models={"techniques": f"model {EVIL}"},
        warnings=[f"warning {EVIL}"],
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def start(settings: Settings, store: Store) -> TestClient:
    app = create_app(settings, pipeline=phrase_pipeline(), store=store)
    return TestClient(app, base_url="http://127.0.0.1:8000")


# -- Escaping -----------------------------------------------------------------------------


def test_every_field_of_a_stored_analysis_is_escaped_on_every_page(store: Store):
    analysis = evil_analysis()
    store.save(analysis, "h")
    with start(Settings(), store) as client:
        report = audit(client.get(f"/analyses/{analysis.id}").text)
        for field in ("Title", "Author", "Claim", "Disproof", "warning", "catalogue", "family"):
            assert f"{field} {EVIL}" in report.text, field  # shown, as text
        assert report.text.count(PAYLOADS[0]) >= 3
        history = audit(client.get("/history").text)
        assert f"Title {EVIL}" in history.text
        home = audit(client.get("/").text)
        assert f"{EVIL}.html" in home.text
        api = client.get(f"/api/v1/analyses/{analysis.id}")
        assert api.headers["content-type"] == "application/json"
        assert api.json()["article"]["title"] == f"Title {EVIL}"


def test_payloads_in_a_real_page_are_escaped_end_to_end(store: Store):
    page = (
        f"<html><head><title>{EVIL}</title><meta name='author' content='{EVIL}'></head>"
        f"<body><article><h1>{EVIL}</h1><p>{ARTICLE}</p><p>{EVIL}</p></article></body></html>"
    )
    with start(Settings(), store) as client:
        for data, files in (
            ({"kind": "text", "text": f"{EVIL}\n\n{ARTICLE}\n{EVIL}"}, None),
            ({"kind": "file"}, {"file": (f"{EVIL}.html", page.encode(), "text/html")}),
        ):
            posted = client.post("/analyze", data=data, files=files, follow_redirects=False)
            assert posted.status_code == 303, posted.text
            report = audit(client.get(posted.headers["location"]).text)
            assert "shameful" in report.text
        audit(client.get("/history").text)
        audit(client.get("/").text)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_refused_form_is_redisplayed_escaped(store: Store, payload: str):
    with start(Settings(), store) as client:
        refused = client.post("/analyze", data={"kind": "url", "url": payload})
        assert refused.status_code == 422
        audit(refused.text)
        assert f'value="{escape(payload)}"' in refused.text  # given back, as an attribute value
        # As text it is a (short) article: analysed, and its report shows it as text too.
        audit(client.post("/analyze", data={"kind": "text", "text": payload}).text)
        audit(client.get("/history", params={"q": payload, "site": payload}).text)


# -- SSRF ---------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(f"<html><body><p>{ARTICLE}</p></body></html>".encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def internal_port() -> Iterator[int]:
    """A service on loopback that URL analysis must never reach."""
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/admin",
        "http://localhost:{port}/admin",
        "http://127.1:{port}/admin",
        "http://2130706433:{port}/admin",
        "http://0.0.0.0:{port}/admin",
        "http://[::1]:{port}/admin",
        "http://[::ffff:127.0.0.1]:{port}/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:{port}/",
    ],
)
def test_url_analysis_never_reaches_private_addresses(store: Store, internal_port: int, url: str):
    target = url.format(port=internal_port)
    with start(Settings(), store) as client:
        response = client.post("/api/v1/analyses", json={"url": target})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "unreadable_input"
        form = client.post("/analyze", data={"kind": "url", "url": target})
        assert form.status_code == 422
    assert _Recorder.hits == []


def test_private_addresses_only_when_the_operator_allows_them(store: Store, internal_port: int):
    with start(Settings(allow_private=True), store) as client:
        url = f"http://127.0.0.1:{internal_port}/page"
        assert client.post("/api/v1/analyses", json={"url": url}).status_code == 201
    assert _Recorder.hits == ["/page"]


# -- Body cap, token, rate limit, cross-site requests, hosts, headers -----------------------


def test_request_bodies_over_the_cap_are_refused(store: Store):
    with start(Settings(max_body_bytes=2_000), store) as client:
        big = {"text": "x" * 3_000}
        declared = client.post("/api/v1/analyses", json=big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "body_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"text": "'
            for _ in range(30):
                yield b"y" * 100
            yield b'"}'

        streamed = client.post(
            "/api/v1/analyses", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        upload = client.post(
            "/analyze", data={"kind": "file"}, files={"file": ("a.html", b"<p>" * 1000)}
        )
        assert upload.status_code == 413
        assert client.post("/api/v1/analyses", json={"text": ARTICLE[:1500]}).status_code == 201


def test_a_public_address_needs_a_token():
    with pytest.raises(UsageError, match="SPINLENS_API_TOKEN"):
        create_app(Settings(host="0.0.0.0"), pipeline=phrase_pipeline())
    create_app(Settings(host="0.0.0.0", api_token="t"), pipeline=phrase_pipeline())
    create_app(Settings(host="::1"), pipeline=phrase_pipeline())


def test_the_token_guards_the_api_and_the_ui(store: Store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SPINLENS_API_TOKEN", "s3cret-token")
    with start(Settings.from_env(), store) as client:
        anonymous = client.post("/api/v1/analyses", json={"text": ARTICLE})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["error"]["code"] == "unauthorized"
        wrong = {"Authorization": "Bearer s3cret-tokeN"}
        assert client.get("/api/v1/analyses", headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret-token"}
        created = client.post("/api/v1/analyses", json={"text": ARTICLE}, headers=right)
        assert created.status_code == 201
        assert client.get("/healthz").status_code == 200  # for load balancers, no token

        # The UI sends browsers to sign in, and only to a path on this server afterwards.
        page = client.get(f"/analyses/{created.json()['id']}", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login?next=%2Fanalyses%2F")
        assert client.post("/login", data={"token": "nope", "next": "/"}).status_code == 401
        signed_in = client.post(
            "/login",
            data={"token": "s3cret-token", "next": "//evil.example/"},
            follow_redirects=False,
        )
        assert signed_in.headers["location"] == "/"
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/history").status_code == 200
        assert client.get(f"/api/v1/analyses/{created.json()['id']}").status_code == 200
        client.post("/logout")
        assert client.get("/history", follow_redirects=False).status_code == 303


def test_each_client_is_rate_limited(store: Store):
    with start(Settings(analyses_per_minute=6, requests_per_minute=40), store) as client:
        codes = [
            client.post("/api/v1/analyses", json={"text": ARTICLE}).status_code for _ in range(3)
        ]
        assert codes == [201, 201, 429]  # a burst of a third of the per-minute budget
        limited = client.post("/api/v1/analyses", json={"text": ARTICLE})
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        # Every request counts against the larger budget (a burst of 10): 4 spent above.
        reads = [client.get("/api/v1/analyses").status_code for _ in range(8)]
        assert reads == [200] * 6 + [429] * 2
        assert client.get("/healthz").status_code == 200


def test_the_token_bucket_refills_over_time():
    now = [0.0]
    bucket = TokenBucketLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [bucket.take("a"), bucket.take("a")] == [0.0, 0.0]
    assert bucket.take("a") == pytest.approx(1.0)
    assert bucket.take("b") == 0.0  # clients do not share a budget
    now[0] = 1.0
    assert bucket.take("a") == 0.0


def test_cross_site_posts_are_refused(store: Store):
    form = {"kind": "text", "text": ARTICLE}
    with start(Settings(), store) as client:
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "same-site"},  # another port or subdomain is another app
        ):
            refused = client.post("/analyze", data=form, headers=headers)
            assert refused.status_code == 403, headers
            assert refused.json()["error"]["code"] == "cross_origin"
        for headers in (
            {"Origin": "http://127.0.0.1:8000"},
            # The report page's no-referrer policy makes browsers send "Origin: null".
            {"Sec-Fetch-Site": "same-origin", "Origin": "null"},
            {},  # not a browser: curl or a script
        ):
            sent = client.post("/analyze", data=form, headers=headers, follow_redirects=False)
            assert sent.status_code == 303, headers


def test_only_the_expected_host_names_are_answered(store: Store):
    settings = Settings(allowed_hosts=("127.0.0.1", "localhost"))
    with start(settings, store) as client:
        assert client.get("/healthz").status_code == 200
        rebound = client.get("/healthz", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400


@pytest.mark.parametrize(
    ("path", "policy"),
    [
        ("/", "script-src 'none'"),
        ("/history", "script-src 'none'"),
        ("/api/v1/analyses", "default-src 'none'"),
        ("/healthz", "default-src 'none'"),
        ("/analyses/missing", "script-src 'none'"),
        ("/api/v1/analyses/missing", "default-src 'none'"),
        ("/docs", "script-src 'self'"),
    ],
)
def test_security_headers_on_every_answer(store: Store, path: str, policy: str):
    with start(Settings(), store) as client:
        response = client.get(path)
    csp = response.headers["content-security-policy"]
    assert policy in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_error_answers_carry_the_headers_too(store: Store):
    with start(Settings(max_body_bytes=10), store) as client:
        response = client.post("/api/v1/analyses", json={"text": ARTICLE})
    assert response.status_code == 413
    assert "default-src 'none'" in response.headers["content-security-policy"]
