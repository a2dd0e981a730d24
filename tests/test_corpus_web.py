"""The corpus dashboard over the web app's stored history: ``/corpus``.

A store is filled with hand-made analyses (known dates, sites, spans and narratives), so each
filter's result can be named; then the page is asked for through FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spinlens.core import Spinlens
from spinlens.corpus import history
from spinlens.corpus.history import history_section, read_history
from spinlens.corpus.queries import Filters
from spinlens.errors import UsageError
from spinlens.model import Analysis, Article, Finding, NarrativeMatch, Source, Span, Summary
from spinlens.server import Settings, create_app
from spinlens.server.security import APP_CSP
from spinlens.store import Store

from .test_server_api import phrase_pipeline

XSS_TITLE = '<script>alert("title")</script> & co'
XSS_SITE = "<script>alert(1)</script>.example"
BIOLABS = ("biolabs", "Secret biolabs <b>everywhere</b>")
ELECTION = ("rigged-election", "The election was rigged")
# Analysed one a day from 1 March 2026: article n at ANALYSED + n days.
ANALYSED = datetime(2026, 3, 1, 9, tzinfo=UTC)


def stored(
    n: int,
    site: str | None,
    published: str | None,
    techniques: list[str],
    narratives: list[tuple[str, str]] = [],  # noqa: B006 (never mutated)
    *,
    flagged: float,
    fetched: datetime | None = None,
    title: str | None = None,
) -> Analysis:
    counts: dict[str, int] = {}
    for t in techniques:
        counts[t] = counts.get(t, 0) + 1
    return Analysis(
        id=f"{n:064x}",
        source=Source(kind="url", location=f"https://x.example/{n}", fetched_at=fetched),
        article=Article(
            title=title or f"Stored {n}", site=site, date=published, text="word " * 200
        ),
        techniques=[
            Finding(start=10 * k, end=10 * k + 4, technique=t, score=0.9, text="word")
            for k, t in enumerate(techniques)
        ],
        narratives=[
            NarrativeMatch(
                claim_id=claim,
                title=claim_title,
                catalogue="test",
                score=0.8,
                evidence=[Span(start=0, end=20)],
            )
            for claim, claim_title in narratives
        ],
        summary=Summary(technique_counts=counts, flagged_share=flagged),
    )


ANALYSES = [
    # Article 1's site is stored lower-cased, as the store keeps every site.
    stored(1, "A.Example", "2026-01-05", ["Loaded_Language", "Loaded_Language", "Doubt"],
           [BIOLABS], flagged=0.40),
    stored(2, "a.example", "2026-01-20", ["Loaded_Language"], flagged=0.05),
    # No published date: the day it was fetched.
    stored(3, "b.example", None, ["Flag-Waving"], [BIOLABS, ELECTION], flagged=0.25,
           fetched=datetime(2026, 2, 3, 12, tzinfo=UTC)),
    stored(4, XSS_SITE, "2026-02-14", ["Doubt"], [ELECTION], flagged=0.30, title=XSS_TITLE),
    # Neither a published nor a fetch date (a pasted text): the day it was analysed, 6 March.
    stored(5, None, None, ["Name_Calling,Labeling"], flagged=0.60),
    stored(6, "b.example", "2026-02-28", [], flagged=0.0),
]  # fmt: skip


def fill(store: Store) -> Store:
    for analysis in ANALYSES:
        n = int(analysis.id, 16)
        store.save(analysis, f"{n:064x}", now=ANALYSED + timedelta(days=n))
    return store


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Spinlens]:
    store = fill(Store(f"sqlite:///{tmp_path / 'store.db'}"))
    yield Spinlens(Settings(), store=store)
    store.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = fill(Store(f"sqlite:///{tmp_path / 'store.db'}"))
    app = create_app(Settings(), pipeline=phrase_pipeline(), store=store)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c
    store.close()


def ids(filters: Filters, core: Spinlens, **caps: int) -> list[int]:
    stored = read_history(core, filters, **caps)
    return sorted(int(i, 16) for i in stored.corpus.articles.column("article_id").to_pylist())


# -- the filters, on the stored history ------------------------------------------------------


def test_filters_use_the_published_date_then_the_fetch_date_then_the_analysis_date(
    core: Spinlens,
) -> None:
    assert ids(Filters(), core) == [1, 2, 3, 4, 5, 6]
    # Analysed in March, published in January: the published date decides.
    assert ids(Filters(end=date(2026, 1, 31)), core) == [1, 2]
    # Article 3 counts on the day it was fetched; 6 on its last day (the range is inclusive).
    assert ids(Filters(start=date(2026, 2, 1), end=date(2026, 2, 28)), core) == [3, 4, 6]
    # Article 5 has neither date: the day it was analysed.
    assert ids(Filters(start=date(2026, 3, 6)), core) == [5]
    assert ids(Filters(start=date(2026, 3, 7)), core) == []


def test_filter_by_site_in_the_stores_lower_case(core: Spinlens) -> None:
    assert ids(Filters(sites=("a.example",)), core) == [1, 2]
    assert ids(Filters(sites=("b.example",), start=date(2026, 2, 10)), core) == [6]
    articles = read_history(core, Filters(sites=("a.example",))).corpus.articles
    assert set(articles.column("site").to_pylist()) == {"a.example"}


def test_the_newest_matching_analyses_up_to_the_cap(
    core: Spinlens, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "MAX_PAGE", 2)  # several pages of history
    capped = read_history(core, Filters(), limit=3)
    assert capped.full and not capped.cut
    assert ids(Filters(), core, limit=3) == [4, 5, 6]  # the newest three analyses
    # The cap counts matches, not analyses read: the two January articles are the oldest.
    assert ids(Filters(end=date(2026, 1, 31)), core, limit=2) == [1, 2]
    whole = read_history(core, Filters(), limit=6)
    assert not whole.full and not whole.cut and whole.read == 6
    # Reading stops after ``read_limit`` analyses, and says so: older ones might match.
    cut = read_history(core, Filters(end=date(2026, 1, 31)), read_limit=3)
    assert cut.cut and not cut.full and cut.read == 3 and cut.corpus.articles.num_rows == 0


def test_the_page_says_when_the_cap_is_hit(core: Spinlens, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "newest" not in history_section(core, "", "", "").html
    monkeypatch.setattr(history, "MAX_ANALYSES", 2)
    html = history_section(core, "", "", "").html
    assert "This dashboard counts the newest 2 analyses that match" in html
    monkeypatch.setattr(history, "MAX_READ", 3)
    html = history_section(core, "", "", "2026-01-31").html
    assert "Only the newest 3 stored analyses were read" in html


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2026-13-01", "", "From takes a date as YYYY-MM-DD, not '2026-13-01'"),
        ("", "yesterday", "To takes a date as YYYY-MM-DD, not 'yesterday'"),
        ("2026-02-30", "", "not '2026-02-30'"),
        ("20260101", "", "not '20260101'"),
        ("2026-03-01", "2026-02-01", "To (2026-02-01) is before From (2026-03-01)"),
    ],
)
def test_bad_dates_are_refused_with_the_field_named(since: str, until: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Filters.parse([], since, until, names=("From", "To"))


def test_blank_fields_are_no_filter() -> None:
    assert Filters.parse(["", ""], "", None) == Filters()
    assert Filters.parse(["a.example"], "2026-01-01", "2026-01-01") == Filters(
        sites=("a.example",), start=date(2026, 1, 1), end=date(2026, 1, 1)
    )


# -- through HTTP ----------------------------------------------------------------------------


def test_corpus_page_over_the_stored_history(client: TestClient) -> None:
    response = client.get("/corpus")
    assert response.status_code == 200
    html = response.text
    assert html.count('<svg class="chart"') == 4
    assert '<a href="/corpus">Corpus</a>' in html  # in the navigation
    assert "sources that failed" not in html  # the store keeps no failures
    assert "else the day it was analysed" in html  # what dates the undated articles
    # Each of the most manipulative articles links to its report page in this app.
    top = html.split('id="most-manipulative"')[1]
    assert top.index(f'href="/analyses/{5:064x}"') < top.index(f'href="/analyses/{1:064x}"')
    assert client.get(f"/analyses/{5:064x}").status_code == 200
    # The app's policy holds (no inline style or script): the styles are a linked sheet.
    assert response.headers["content-security-policy"] == APP_CSP
    assert '<link rel="stylesheet" href="/corpus.css">' in html
    assert "<style" not in html and "<script" not in html and " style=" not in html
    css = client.get("/corpus.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".corpus .numbers" in css.text


def test_corpus_filters_are_a_get_form(client: TestClient) -> None:
    html = client.get("/corpus", params={"site": "a.example"}).text
    assert '<form class="filters" method="get" action="/corpus">' in html
    assert 'name="site"' in html and 'name="since"' in html and 'name="until"' in html
    assert "<b>2</b>articles" in html and "<b>4</b>technique spans" in html
    # Every stored site stays in the list, the chosen one selected.
    assert '<option value="a.example" selected>' in html
    assert '<option value="b.example">' in html
    html = client.get("/corpus", params={"since": "2026-02-01", "until": "2026-02-28"}).text
    assert "<b>3</b>articles" in html
    assert 'value="2026-02-01"' in html and 'value="2026-02-28"' in html
    # A blank form is no filter.
    html = client.get("/corpus", params={"site": "", "since": "", "until": ""}).text
    assert "<b>6</b>articles" in html


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-02-31"},
        {"until": "<script>x</script>"},
        {"since": "2026-03-01", "until": "2026-01-01"},
    ],
)
def test_bad_dates_give_422_with_the_reason_on_the_page(
    client: TestClient, params: dict[str, str]
) -> None:
    response = client.get("/corpus", params=params)
    assert response.status_code == 422
    assert 'class="refused" role="alert"' in response.text
    assert "YYYY-MM-DD" in response.text or "is before" in response.text
    assert '<form class="filters"' in response.text  # the form, to correct it
    assert '<svg class="chart"' not in response.text
    assert "<script>x" not in response.text


def test_attacker_text_is_escaped_everywhere(client: TestClient) -> None:
    html = client.get("/corpus").text
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; &amp; co" in html  # the title
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.example" in html  # the site
    assert "Secret biolabs &lt;b&gt;everywhere&lt;/b&gt;" in html  # a narrative's title
    # The hostile site as a filter value comes back escaped, in the form and the charts.
    html = client.get("/corpus", params={"site": XSS_SITE}).text
    assert "<script" not in html.lower() and "<b>1</b>articles" in html


def test_the_dashboard_asks_for_sign_in_like_every_page(tmp_path: Path) -> None:
    store = fill(Store(f"sqlite:///{tmp_path / 'store.db'}"))
    app = create_app(Settings(api_token="s3cret"), pipeline=phrase_pipeline(), store=store)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        response = c.get("/corpus?site=a.example", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fcorpus%3Fsite%3Da.example"
        c.cookies.set("spinlens_token", "s3cret")
        assert c.get("/corpus").status_code == 200
    store.close()
