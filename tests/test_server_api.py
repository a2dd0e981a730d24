"""The REST API and the web UI against the real app (FastAPI's TestClient, real store).

The pipeline here has a phrase detector and a phrase matcher instead of the shipped models, so
each test knows exactly which spans and narratives to expect; the browser test and
``test_the_shipped_models_on_the_canonical_example`` use the real models.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spinlens.model import Article, Finding, NarrativeMatch, Span
from spinlens.pipeline import Pipeline
from spinlens.server import Settings, create_app
from spinlens.store import Store

from .conftest import REPO

ARTICLE = """\
Foreign hands behind the unrest in the capital

The shameful riots in the capital did not start by themselves. The so-called activists were \
financed from abroad by Western foundations, as every honest citizen already knows. Experts \
agree that the crisis was planned long in advance. Only a strong hand can now restore order, \
and the nation must stand together against the traitors who want to destroy it.

Officials said that the situation is now under control and that the streets are calm again, \
while the investigation into who organised the violence continues.
"""

PHRASES = {
    "shameful": "Loaded_Language",
    "financed from abroad": "Causal_Oversimplification",
    "every honest citizen already knows": "Bandwagon,Reductio_ad_hitlerum",
    "Experts agree": "Appeal_to_Authority",
    "traitors": "Name_Calling,Labeling",
}
CLAIMS = {
    "financed from abroad": (
        "ngo-foreign-funding",
        "Protests are organised by NGOs financed from abroad",
        "No evidence was offered that the protests were organised or paid for from abroad.",
    ),
}


class PhraseDetector:
    """Flags every occurrence of known phrases: a detector whose output a test can predict."""

    name = "phrase-test@1"

    def __init__(self, phrases: dict[str, str] | None = None, delay: float = 0.0) -> None:
        self.phrases = PHRASES if phrases is None else phrases
        self.delay = delay
        self.gate: threading.Event | None = None

    def detect(self, article: Article) -> list[Finding]:
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)
        found = []
        for phrase, technique in self.phrases.items():
            start = article.text.find(phrase)
            while start >= 0:
                end = start + len(phrase)
                found.append(
                    Finding(start=start, end=end, technique=technique, score=0.87, text=phrase)
                )
                start = article.text.find(phrase, end)
        return found


class PhraseMatcher:
    """Matches a claim when its phrase occurs; the phrase is the evidence."""

    name = "claims-test@1"
    passage_space = "phrases"  # no detector shares this space: the matcher reads the text

    def __init__(self, claims: dict[str, tuple[str, str, str]] | None = None) -> None:
        self.claims = CLAIMS if claims is None else claims

    def supports(self, language: str | None) -> bool:
        return True

    def name_for(self, language: str | None, passages_by: str | None = None) -> str:
        return self.name

    def match(self, article: Article, span_vectors: object = None) -> list[NarrativeMatch]:
        out = []
        for phrase, (claim_id, title, disproof) in self.claims.items():
            start = article.text.find(phrase)
            if start >= 0:
                out.append(
                    NarrativeMatch(
                        claim_id=claim_id,
                        title=title,
                        catalogue="test-catalogue",
                        score=0.74,
                        evidence=[Span(start=start, end=start + len(phrase))],
                        disproof=disproof,
                        url="https://catalogue.example/claims/1",
                    )
                )
        return out


def phrase_pipeline(delay: float = 0.0) -> Pipeline:
    return Pipeline(PhraseDetector(delay=delay), [PhraseMatcher()])


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator:
    """Start the app with these settings and pipeline; the store is a fresh SQLite file."""
    clients: list[TestClient] = []

    def make(settings: Settings | None = None, pipeline: Pipeline | None = None) -> TestClient:
        store = Store(f"sqlite:///{tmp_path / f'store{len(clients)}.db'}")
        app = create_app(
            settings or Settings(), pipeline=pipeline or phrase_pipeline(), store=store
        )
        client = TestClient(app, base_url="http://127.0.0.1:8000")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def check_analysis(body: dict) -> None:
    """What every analysis must satisfy: the schema name, and spans that quote the text."""
    assert body["schema"] == "spinlens.analysis/v1"
    text = body["article"]["text"]
    for f in body["techniques"]:
        assert text[f["start"] : f["end"]] == f["text"]
    for n in body["narratives"]:
        for e in n["evidence"]:
            assert 0 <= e["start"] < e["end"] <= len(text)


# -- API ----------------------------------------------------------------------------------


def test_a_pasted_article_is_analysed_stored_and_found_again(client: TestClient):
    response = client.post("/api/v1/analyses", json={"text": ARTICLE})
    assert response.status_code == 201, response.text
    body = response.json()
    check_analysis(body)
    assert body["article"]["title"] == "Foreign hands behind the unrest in the capital"
    assert body["source"]["kind"] == "text"
    assert {f["technique"] for f in body["techniques"]} == set(PHRASES.values())
    assert body["narratives"][0]["claim_id"] == "ngo-foreign-funding"
    assert body["models"] == {"techniques": "phrase-test@1", "narratives": "claims-test@1"}
    assert response.headers["location"] == f"/api/v1/analyses/{body['id']}"

    again = client.get(response.headers["location"])
    assert again.status_code == 200
    assert again.json() == body

    history = client.get("/api/v1/analyses").json()
    assert history["total"] == 1
    assert history["items"][0]["id"] == body["id"]
    assert history["items"][0]["technique_counts"]["Loaded_Language"] == 1


def test_a_pasted_html_page(client: TestClient):
    page = (
        "<html><head><title>Unrest in the capital</title></head><body><nav>Home | About</nav>"
        "<article><h1>Unrest in the capital</h1>"
        + "".join(f"<p>{p}</p>" for p in ARTICLE.split("\n\n")[1:])
        + "</article></body></html>"
    )
    response = client.post("/api/v1/analyses", json={"html": page})
    assert response.status_code == 201, response.text
    body = response.json()
    check_analysis(body)
    assert body["source"] == {"kind": "text", "location": "pasted HTML", "fetched_at": None}
    assert "financed from abroad" in body["article"]["text"]
    assert "<p>" not in body["article"]["text"]
    assert len(body["techniques"]) == len(PHRASES)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "give exactly one of url, html or text"),
        ({"text": ARTICLE, "url": "https://example.com/"}, "give exactly one of url, html or text"),
        ({"text": ARTICLE, "colour": "red"}, "colour"),
        ({"text": 42}, "text"),
        ({"text": "   \n  "}, "the pasted text is empty"),
    ],
)
def test_bad_requests_get_the_documented_error_body(client: TestClient, payload, message):
    response = client.post("/api/v1/analyses", json=payload)
    assert response.status_code == 422
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    assert message in error["message"]
    assert "\n" not in error["message"]


def test_malformed_json_and_unknown_ids(client: TestClient):
    response = client.post(
        "/api/v1/analyses", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    missing = client.get("/api/v1/analyses/" + "0" * 64)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "not_found", "message": f"no analysis with id {'0' * 64!r}"}
    }
    assert client.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"


def test_history_search_through_the_api(client: TestClient):
    client.post("/api/v1/analyses", json={"text": ARTICLE})
    other = "A quiet piece about gardening.\n\n" + "Tomatoes like sun and water. " * 8
    client.post("/api/v1/analyses", json={"text": other})

    def ids(**params: str) -> int:
        response = client.get("/api/v1/analyses", params=params)
        assert response.status_code == 200, response.text
        return response.json()["total"]

    assert ids() == 2
    assert ids(q="tomatoes") == 1
    assert ids(technique="Name_Calling,Labeling") == 1
    assert ids(narrative="ngo-foreign-funding") == 1
    assert ids(narrative="financed from abroad") == 1
    assert ids(since="2000-01-01", until="2999-12-31") == 2
    assert ids(until="2000-01-01") == 0
    assert ids(q="") == 2  # a blank filter is no filter
    page = client.get("/api/v1/analyses", params={"limit": 1, "offset": 1}).json()
    assert (page["total"], len(page["items"]), page["offset"]) == (2, 1, 1)
    bad = client.get("/api/v1/analyses", params={"since": "last week"})
    assert bad.status_code == 422
    assert "not a date" in bad.json()["error"]["message"]
    assert client.get("/api/v1/analyses", params={"limit": 1000}).status_code == 422
    typo = client.get("/api/v1/analyses", params={"techniqe": "Doubt"})
    assert typo.status_code == 422  # not a silent, unfiltered list
    assert typo.json()["error"]["message"] == "unknown query parameter 'techniqe'"


def test_healthz_reports_the_model_and_the_store(client: TestClient):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["models"] == {"techniques": "phrase-test@1", "narratives": "claims-test@1"}
    assert body["store"] == "sqlite"
    assert body["schema_version"] >= 1


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        html = (
            "<html><head><title>Unrest</title><meta name='author' content='A. Writer'></head>"
            "<body><article><h1>Unrest in the capital</h1>"
            + "".join(f"<p>{p}</p>" for p in ARTICLE.split("\n\n")[1:])
            + "</article></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(html)))
        self.end_headers()
        self.wfile.write(html)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/news/unrest.html"
    server.shutdown()


def test_a_url_is_fetched_when_private_addresses_are_allowed(make_client, local_site: str):
    client = make_client(Settings(allow_private=True))
    response = client.post("/api/v1/analyses", json={"url": local_site})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source"]["kind"] == "url"
    assert body["source"]["location"] == local_site
    assert body["source"]["fetched_at"]
    assert len(body["techniques"]) == len(PHRASES)


def test_the_event_loop_answers_while_an_analysis_runs(make_client):
    pipeline = phrase_pipeline()
    detector = pipeline.detector
    assert isinstance(detector, PhraseDetector)
    detector.gate = threading.Event()
    client = make_client(pipeline=pipeline)
    results: list[int] = []
    slow = threading.Thread(
        target=lambda: results.append(
            client.post("/api/v1/analyses", json={"text": ARTICLE}).status_code
        )
    )
    slow.start()
    time.sleep(0.2)  # the analysis is now waiting inside the detector
    started = time.monotonic()
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/analyses").json()["total"] == 0
    assert time.monotonic() - started < 2
    assert not results  # the analysis is still running
    detector.gate.set()
    slow.join(10)
    assert results == [201]


def test_too_many_queued_analyses_get_503(make_client):
    pipeline = phrase_pipeline()
    detector = pipeline.detector
    assert isinstance(detector, PhraseDetector)
    detector.gate = threading.Event()
    client = make_client(Settings(max_pending=1, workers=1), pipeline)
    first = threading.Thread(target=lambda: client.post("/api/v1/analyses", json={"text": ARTICLE}))
    first.start()
    time.sleep(0.2)
    busy = client.post("/api/v1/analyses", json={"text": ARTICLE})
    detector.gate.set()
    first.join(10)
    assert busy.status_code == 503
    assert busy.json()["error"]["code"] == "busy"
    assert busy.headers["retry-after"] == "5"


# -- Web UI -------------------------------------------------------------------------------


class _Marks(HTMLParser):
    """Collects highlighted passages (mark elements) and their tooltips."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[dict[str, str | None]] = []
        self.depth = 0
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mark":
            self.marks.append(dict(attrs))
            self.texts.append("")
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.texts[-1] += data


def test_the_web_form_analyses_pasted_text_and_shows_the_report(client: TestClient):
    home = client.get("/")
    assert home.status_code == 200
    assert 'name="text"' in home.text and 'name="url"' in home.text and 'type="file"' in home.text
    posted = client.post("/analyze", data={"kind": "text", "text": ARTICLE}, follow_redirects=False)
    assert posted.status_code == 303
    report = client.get(posted.headers["location"])
    assert report.status_code == 200
    parser = _Marks()
    parser.feed(report.text)
    highlighted = {
        t for t, m in zip(parser.texts, parser.marks, strict=True) if "hl" in (m["class"] or "")
    }
    assert set(PHRASES) <= highlighted
    tip = next(
        m["data-tip"] for t, m in zip(parser.texts, parser.marks, strict=True) if t == "traitors"
    )
    assert tip is not None and "Name calling" in tip and "0.87" in tip
    assert "Protests are organised by NGOs financed from abroad" in report.text  # narrative panel
    assert "No evidence was offered" in report.text  # its disproof
    assert 'id="technique-chart"' in report.text and "<svg" in report.text
    assert 'href="/history"' in report.text  # the app's navigation is on the report page
    # The new analysis is listed on the home page and in the history.
    assert "Foreign hands behind the unrest" in client.get("/").text
    assert "Foreign hands behind the unrest" in client.get("/history").text


def test_an_uploaded_html_file(client: TestClient):
    page = (
        "<!DOCTYPE html><html><head><meta charset='windows-1252'><title>Caf\xe9 riots</title>"
        "</head><body><article><h1>Caf\xe9 riots</h1>"
        + "".join(f"<p>{p}</p>" for p in ARTICLE.split("\n\n")[1:])
        + "</article></body></html>"
    ).encode("cp1252")
    posted = client.post(
        "/analyze",
        data={"kind": "file"},
        files={"file": ("C:\\Users\\me\\saved page.html", page, "text/html")},
        follow_redirects=False,
    )
    assert posted.status_code == 303, posted.text
    analysis_id = posted.headers["location"].rsplit("/", 1)[1]
    body = client.get(f"/api/v1/analyses/{analysis_id}").json()
    assert body["source"] == {"kind": "file", "location": "saved page.html", "fetched_at": None}
    assert body["article"]["title"] == "Café riots"
    assert len(body["techniques"]) == len(PHRASES)


def test_a_form_error_is_shown_and_the_text_kept(client: TestClient):
    response = client.post("/analyze", data={"kind": "url", "url": "ftp://example.com/x"})
    assert response.status_code == 422
    assert "Could not analyse this page" in response.text
    assert 'value="ftp://example.com/x"' in response.text
    nothing = client.post("/analyze", data={"kind": "text", "text": "  "})
    assert nothing.status_code == 422
    assert "the pasted text is empty" in nothing.text


def test_the_history_page_filters(client: TestClient):
    client.post("/api/v1/analyses", json={"text": ARTICLE})
    client.post(
        "/api/v1/analyses",
        json={
            "text": "Notes from a quiet vegetable garden\n\n" + "Tomatoes like sun and water. " * 8
        },
    )
    everything = client.get("/history")
    assert (
        "Foreign hands" in everything.text
        and "Notes from a quiet vegetable garden" in everything.text
    )
    only = client.get("/history", params={"technique": "Name_Calling,Labeling"})
    assert "Foreign hands" in only.text and "Notes from a quiet vegetable garden" not in only.text
    assert '<option value="Name_Calling,Labeling" selected>' in only.text
    none = client.get("/history", params={"q": "no such words anywhere"})
    assert "No analysis matches these filters." in none.text
    bad = client.get("/history", params={"since": "soon"})
    assert bad.status_code == 422 and "not a date" in bad.text


def test_an_unknown_report_is_a_404_page(client: TestClient):
    response = client.get("/analyses/unknown")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "There is no analysis with this id." in response.text


def test_api_docs_are_served_without_a_cdn(client: TestClient):
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/static-docs/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text
    assert client.get("/static-docs/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/api/v1/analyses" in schema["paths"]
    assert "ErrorBody" in schema["components"]["schemas"]


# -- Narratives ---------------------------------------------------------------------------

TEAM_CSV = """\
id,text,verdict,url,date
grain-1,The grain deal feeds only rich Western countries,Most shipments went to low-income countries.,https://checks.example/grain,2023-07-20
bad-url,Sanctions caused the famine,No famine was recorded.,ftp://nowhere,2023-01-01
"""


def test_narrative_search_and_import(make_client):
    from spinlens.narratives import EmbeddingMatcher

    client = make_client(pipeline=Pipeline(PhraseDetector(), [EmbeddingMatcher()]))
    found = client.get(
        "/api/v1/narratives", params={"q": "the protesters are paid agents of foreign NGOs"}
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["query"] == "the protesters are paid agents of foreign NGOs"
    assert body["matches"][0]["family"] == "foreign-funded-agents"  # the shipped families
    assert len(body["matches"]) == 10
    assert client.get("/api/v1/narratives", params={"q": " "}).status_code == 422
    assert client.get("/api/v1/narratives").status_code == 422

    imported = client.post(
        "/api/v1/narratives/import",
        files={"file": ("fact checks.csv", TEAM_CSV.encode(), "text/csv")},
        data={"catalogue": "team"},
    )
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert (report["catalogue"], report["format"]) == ("team", "csv")
    assert (report["added"], report["bad_rows"]) == (1, 1)
    assert "ftp://nowhere" in report["problems"][0]
    again = client.post(
        "/api/v1/narratives/import",
        files={"file": ("fact checks.csv", TEAM_CSV.encode(), "text/csv")},
        data={"catalogue": "team"},
    )
    assert again.json()["unchanged"] == 1

    grain = client.get(
        "/api/v1/narratives",
        params={"q": "the grain agreement only helps wealthy nations", "top": 1},
    ).json()["matches"]
    assert grain[0]["claim_id"] == "team:grain-1"
    assert grain[0]["disproof"] == "Most shipments went to low-income countries."

    # Analyses from now on match the imported claims too.
    article = (
        "The grain deal is a fraud\n\nThe so-called grain deal feeds only the rich Western "
        "countries, while the poor get nothing. Every shipment goes to wealthy nations."
    )
    analysed = client.post("/api/v1/analyses", json={"text": article}).json()
    assert "team:grain-1" in [n["claim_id"] for n in analysed["narratives"]]

    unreadable = client.post(
        "/api/v1/narratives/import", files={"file": ("notes.csv", b"a,b\n1,2\n", "text/csv")}
    )
    assert unreadable.status_code == 422
    message = unreadable.json()["error"]["message"]
    assert message.startswith("notes.csv: ") and "/tmp" not in message


@pytest.mark.slow
def test_the_load_benchmark_runs_clean():
    """A 1-second run of benchmarks/server_load.py: the real server, models and clients."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "server_load.py"),
            "--clients",
            "4",
            "--duration",
            "1",
            "--no-write",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| analyse", "| read"))]
    assert len(rows) == 2
    for row in rows:
        assert row.split("|")[5].strip() == "0"  # no errors


GRAIN_PARAPHRASE = (
    "The grain deal is a fraud\n\nThe so-called grain deal feeds only the rich Western "
    "countries, while the poor get nothing. Every shipment goes to wealthy nations."
)
GRAIN_VERBATIM = (
    "What they say about grain\n\nThe grain deal feeds only rich Western countries. "
    "That is what the minister said on television yesterday evening."
)


def test_an_import_through_the_server_keeps_the_matchers_settings(make_client, tmp_path):
    """Issue 16: an import rebuilt the matchers from three settings, silently dropping the claim
    threshold, the choice of catalogues and the store path."""
    from spinlens.narratives import EmbeddingMatcher

    settings = Settings(home=tmp_path / "own-home")  # not SPINLENS_HOME's catalogue store
    matcher = EmbeddingMatcher(
        store_path=settings.catalogue_path, claim_threshold=0.97, catalogues=["team"]
    )
    client = make_client(settings, pipeline=Pipeline(PhraseDetector(), [matcher]))
    imported = client.post(
        "/api/v1/narratives/import",
        files={"file": ("fact checks.csv", TEAM_CSV.encode(), "text/csv")},
        data={"catalogue": "team"},
    )
    assert imported.json()["added"] == 1, imported.text

    def claims_found(text: str) -> list[str]:
        body = client.post("/api/v1/analyses", json={"text": text}).json()
        return [n["claim_id"] for n in body["narratives"]]

    # The claim went into the matcher's own store, and matching reads it there.
    assert claims_found(GRAIN_VERBATIM) == ["team:grain-1"]
    # The claim threshold (0.97) still holds: a paraphrase that clears the default 0.7 does not.
    assert claims_found(GRAIN_PARAPHRASE) == []
    # Only the chosen catalogue is matched: the starter families stay out.
    assert claims_found(ARTICLE) == []
