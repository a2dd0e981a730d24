"""Feeds and sitemaps as sources, fetched politely, against a local site on 127.0.0.1.

The SSRF guard refuses loopback addresses unless ``allow_private``; these tests pass it, as
the web-fetch tests do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinlens.errors import IngestError
from spinlens.ingest.feeds import PoliteFetcher, expand, iter_web_source
from spinlens.model import Document, Failure

from .feed_fixtures import Site, serve

DELAY = 0.2


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve(Site(items=[("/news/1", "Bridge vote"), ("/news/2", "Budget row")]))


def fetcher(**options: object) -> PoliteFetcher:
    return PoliteFetcher(allow_private=True, delay=DELAY, **options)  # type: ignore[arg-type]


def test_rss_feed_expands_into_its_articles(site: Site) -> None:
    results = list(iter_web_source(f"{site.base}/feed.xml", fetcher()))
    assert all(isinstance(r, Document) for r in results)
    documents = [r for r in results if isinstance(r, Document)]
    assert [d.source.location for d in documents] == [
        f"{site.base}/news/1",
        f"{site.base}/news/2",
    ]
    assert {d.source.kind for d in documents} == {"feed"}
    assert "Bridge vote" in documents[0].body


def test_atom_feed_with_relative_links(site: Site) -> None:
    items = expand(f"{site.base}/atom.xml", fetcher())
    assert [i.url for i in items] == [f"{site.base}/news/1", f"{site.base}/news/2"]
    assert items[0].title == "Bridge vote"
    assert items[0].published == "2026-11-04"


def test_sitemap_index_with_a_gzipped_sitemap(site: Site) -> None:
    items = expand(f"{site.base}/sitemap_index.xml", fetcher())
    assert [i.url for i in items] == [f"{site.base}/news/1", f"{site.base}/news/2"]


def test_a_page_url_is_analysed_as_the_page(site: Site) -> None:
    (result,) = iter_web_source(f"{site.base}/news/2", fetcher())
    assert isinstance(result, Document)
    assert result.source.kind == "url"
    assert "Budget row" in result.body


def test_robots_txt_is_respected(site: Site) -> None:
    site.items.append(("/private/3", "Members only"))
    results = list(iter_web_source(f"{site.base}/feed.xml", fetcher()))
    refused = [r for r in results if isinstance(r, Failure)]
    assert [(r.location, r.reason) for r in refused] == [
        (f"{site.base}/private/3", "robots.txt disallows fetching this page")
    ]
    assert "/private/3" not in site.paths()
    assert site.paths().count("/robots.txt") == 1  # read once per site


def test_robots_txt_answering_5xx_means_nothing_is_fetched(site: Site) -> None:
    site.robots = "503"
    (failure,) = iter_web_source(f"{site.base}/feed.xml", fetcher())
    assert isinstance(failure, Failure)
    assert "robots.txt disallows" in failure.reason
    assert site.paths() == ["/robots.txt"]


def test_no_robots_txt_means_no_rules(site: Site) -> None:
    site.robots = None
    results = list(iter_web_source(f"{site.base}/feed.xml", fetcher()))
    assert len(results) == 2 and all(isinstance(r, Document) for r in results)


def test_crawl_delay_and_user_agent(site: Site) -> None:
    list(iter_web_source(f"{site.base}/feed.xml", fetcher()))
    assert all(r.user_agent.startswith("spinlens/") for r in site.requests)
    starts = [r.at for r in site.requests]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 3  # robots.txt, the feed, two articles
    assert min(gaps) >= DELAY


def test_robots_crawl_delay_lengthens_the_delay(site: Site) -> None:
    site.robots = "User-agent: spinlens\nCrawl-delay: 1\n"
    list(iter_web_source(f"{site.base}/feed.xml", fetcher()))
    starts = [r.at for r in site.requests][1:]  # after robots.txt is known
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 1.0


def test_one_request_at_a_time_per_host_across_threads(site: Site) -> None:
    polite = fetcher()
    urls = [f"{site.base}/news/1", f"{site.base}/news/2"] * 2
    threads = [threading.Thread(target=polite.fetch_page, args=(u,)) for u in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(site.requests) == 5
    assert max(r.in_flight for r in site.requests) == 1


def test_sitemap_with_a_doctype_is_refused(site: Site) -> None:
    with pytest.raises(IngestError, match="DOCTYPE"):
        expand(f"{site.base}/bomb.xml", fetcher())


def test_loopback_is_refused_without_allow_private(site: Site) -> None:
    (failure,) = iter_web_source(f"{site.base}/feed.xml", PoliteFetcher(delay=0))
    assert isinstance(failure, Failure)
    assert "loopback" in failure.reason
    assert site.requests == []


def test_batch_sources_expand_feeds_between_files(site: Site, tmp_path: Path) -> None:
    from spinlens.batch.sources import iter_sources

    page = tmp_path / "local.txt"
    page.write_text("A local article about the harbour.", encoding="utf-8")
    sources = [str(page), f"{site.base}/feed.xml"]
    locations = [
        item.source.location if isinstance(item, Document) else item.location
        for item in iter_sources(sources, allow_private=True)
    ]
    assert locations == [str(page), f"{site.base}/news/1", f"{site.base}/news/2"]
