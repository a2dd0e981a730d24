"""``spinlens watch`` against a local feed on 127.0.0.1: a new item, and only it, is analysed;
alerts for the narratives asked about."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinlens.batch.shards import committed_parts
from spinlens.batch.watch import parse_duration, run_watch, watch_round
from spinlens.errors import UsageError
from spinlens.ingest.feeds import PoliteFetcher
from spinlens.model import Article, NarrativeMatch, Span
from spinlens.pipeline import Pipeline

from .feed_fixtures import Site, serve

pq = pytest.importorskip("pyarrow.parquet")


class BridgeMatcher:
    """Matches articles about a bridge to one claim of the 'infrastructure-waste' family."""

    name = "bridge-matcher@test"
    passage_space = "none"

    def supports(self, language: str | None) -> bool:
        return True

    def name_for(self, language: str | None, passages_by: str | None = None) -> str:
        return self.name

    def match(self, article: Article, span_vectors: object = None) -> list[NarrativeMatch]:
        at = article.text.find("Bridge")
        if at < 0:
            return []
        return [
            NarrativeMatch(
                claim_id="bridge-scam",
                title="The bridge money was stolen",
                catalogue="test",
                score=0.9,
                family="infrastructure-waste",
                evidence=[Span(start=at, end=at + 6)],
            )
        ]


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve(Site(items=[("/news/1", "Bridge vote"), ("/news/2", "Budget row")]))


def fetcher() -> PoliteFetcher:
    return PoliteFetcher(allow_private=True, delay=0.0)


def article_rows(out: Path) -> list[list[dict]]:
    """The articles of each committed shard."""
    return [pq.read_table(p).to_pylist() for p in committed_parts(out, "articles")]


def article_paths(site: Site) -> list[str]:
    return [p for p in site.paths() if p.startswith("/news/")]


def test_watch_analyses_a_new_item_and_only_it(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "watch"
    pipeline = Pipeline(matchers=[BridgeMatcher()])
    feed = f"{site.base}/feed.xml"
    first = watch_round([feed], out, pipeline, fetcher())
    assert (first.new_items, first.analysed) == (2, 2)
    assert article_paths(site) == ["/news/1", "/news/2"]

    site.items.append(("/news/3", "Council budget approved"))
    site.requests.clear()
    second = watch_round([feed], out, pipeline, fetcher())
    assert (second.new_items, second.analysed) == (1, 1)
    assert article_paths(site) == ["/news/3"]  # the old items were not fetched again
    shards = article_rows(out)
    assert [len(s) for s in shards] == [2, 1]
    assert shards[1][0]["source_key"] == f"{site.base}/news/3"

    site.requests.clear()
    third = watch_round([feed], out, pipeline, fetcher())
    assert third.new_items == 0 and article_paths(site) == []
    assert len(article_rows(out)) == 2  # no empty shard


def test_the_same_text_under_a_new_url_is_a_duplicate_once(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "watch"
    pipeline = Pipeline()
    feed = f"{site.base}/feed.xml"
    watch_round([feed], out, pipeline, fetcher())
    # The same page again under a new address (the fixture's body depends on the path length).
    site.items.append(("/news/9", "Bridge vote"))
    second = watch_round([feed], out, pipeline, fetcher())
    assert second.duplicates == 1 and second.analysed == 0
    site.requests.clear()
    third = watch_round([feed], out, pipeline, fetcher())
    assert third.new_items == 0 and article_paths(site) == []


def test_alerts_go_to_alerts_jsonl(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "watch"
    pipeline = Pipeline(matchers=[BridgeMatcher()])
    result = watch_round(
        [f"{site.base}/atom.xml"], out, pipeline, fetcher(), alerts=["Infrastructure-Waste"]
    )
    assert [a.analysis.article.title for a in result.alerts] == ["Bridge vote"]
    (line,) = (out / "alerts.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["alert"] == "Infrastructure-Waste"
    assert record["claim_id"] == "bridge-scam" and record["family"] == "infrastructure-waste"
    assert record["url"] == f"{site.base}/news/1"
    # Words of the claim's title work too; nothing else matches.
    site.items.append(("/news/3", "Bridge repairs"))
    again = watch_round(
        [f"{site.base}/atom.xml"], out, pipeline, fetcher(), alerts=["money was stolen", "x"]
    )
    assert [(a.term, a.analysis.article.title) for a in again.alerts] == [
        ("money was stolen", "Bridge repairs")
    ]
    assert len((out / "alerts.jsonl").read_text().splitlines()) == 2


def test_run_watch_repeats_rounds_every_interval(site: Site, tmp_path: Path) -> None:
    sleeps: list[float] = []
    rounds: list[int] = []
    run_watch(
        [f"{site.base}/feed.xml"],
        tmp_path / "watch",
        Pipeline(),
        fetcher(),
        every=900,
        rounds=3,
        on_round=lambda r: rounds.append(r.new_items),
        sleep=sleeps.append,
    )
    assert rounds == [2, 0, 0]
    assert len(sleeps) == 2 and all(800 < s <= 900 for s in sleeps)


def test_a_feed_that_fails_is_reported_and_the_others_go_on(site: Site, tmp_path: Path) -> None:
    result = watch_round(
        [f"{site.base}/missing.xml", f"{site.base}/feed.xml"], tmp_path / "w", Pipeline(), fetcher()
    )
    assert result.analysed == 2
    assert [feed for feed, _ in result.feed_errors] == [f"{site.base}/missing.xml"]


def test_parse_duration() -> None:
    assert parse_duration("15m") == 900
    assert parse_duration("30s") == parse_duration("30") == 30
    assert parse_duration("2h") == 7200
    for bad in ("", "0m", "soon", "-5m"):
        with pytest.raises(UsageError):
            parse_duration(bad)


def test_watch_command_once(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "watch"
    command = [sys.executable, "-m", "spinlens", "watch", f"{site.base}/feed.xml", "--out",
               str(out), "--once", "--allow-private", "--delay", "0",
               "--techniques-model", "baseline", "--no-narratives"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "2 new item(s): 2 analysed" in run.stderr
    assert sum(len(s) for s in article_rows(out)) == 2
