"""The corpus dashboard over a small batch folder: its numbers, its escaping, the command, and
the README's DuckDB queries."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from spinlens.corpus.data import from_analyses, read_folder
from spinlens.corpus.queries import UNKNOWN_SITE, Filters, build
from spinlens.corpus.report import render

from .conftest import REPO
from .corpus_fixtures import BIOLABS, ELECTION, HOSTILE_SITE, HOSTILE_TITLE, write_corpus


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "run")


def test_only_committed_shards_are_read(folder: Path) -> None:
    corpus = read_folder(str(folder))
    assert corpus.articles.num_rows == 6
    assert "ghost.example" not in corpus.articles.column("site").to_pylist()
    assert corpus.failures.num_rows == 1


def test_techniques_by_site_are_shares_of_each_sites_articles(folder: Path) -> None:
    d = build(read_folder(str(folder)))
    m = d.techniques_by_site
    # Techniques used by the most articles first (two each here, then by name).
    assert m.columns[:2] == ["Doubt", "Loaded_Language"]
    cell = dict(zip(m.columns, m.values[m.rows.index("a.example")], strict=True))
    assert cell["Loaded_Language"] == 1.0  # both a.example articles use it
    assert cell["Doubt"] == 0.5
    assert set(m.rows) == {"a.example", "b.example", HOSTILE_SITE, UNKNOWN_SITE}


def test_time_uses_the_published_date_then_the_crawl_date(folder: Path) -> None:
    d = build(read_folder(str(folder)))
    assert d.unit == "day"  # 5 January to 28 February: under two months of days
    assert (d.first_day, d.last_day) == (date(2026, 1, 5), date(2026, 2, 28))
    assert d.undated == 1  # article 5 has neither date
    series = dict(d.techniques_over_time.series)
    periods = d.techniques_over_time.periods
    assert len(periods) == 55  # every day, the empty ones too
    # Article 3 has no published date: its Flag-Waving counts on its crawl day.
    assert series["Flag-Waving"][periods.index("2026-02-03")] == 1
    assert series["Loaded_Language"][periods.index("2026-01-05")] == 2
    narratives = dict(d.narratives_over_time.series)
    assert sum(narratives[BIOLABS[1]]) == 2 and sum(narratives[ELECTION[1]]) == 2


def test_narratives_by_site(folder: Path) -> None:
    m = build(read_folder(str(folder))).narratives_by_site
    cell = dict(zip(m.columns, m.values[m.rows.index("b.example")], strict=True))
    assert cell == {BIOLABS[1]: 1.0, ELECTION[1]: 1.0}


def test_filters_by_site_and_date_range(folder: Path) -> None:
    corpus = read_folder(str(folder))
    d = build(corpus, Filters(sites=("a.example",)))
    assert d.articles == 2 and d.findings == 4
    d = build(corpus, Filters(start=date(2026, 2, 1), end=date(2026, 2, 14)))
    assert sorted(a.title for a in d.top_articles) == ["Article 3", "Article 4"]


def test_most_manipulative_articles_link_to_their_reports(folder: Path) -> None:
    d = build(read_folder(str(folder)), link=lambda row: f"/analyses/{row['article_id']}")
    assert [a.flagged_share for a in d.top_articles][:3] == [0.60, 0.40, 0.30]
    assert d.top_articles[0].link == f"/analyses/{5:064x}"
    own = build(read_folder(str(folder)))
    links = {a.title: a.link for a in own.top_articles}
    assert links["Article 2"] == "https://a.example/news/2"
    assert links["Article 4"] is None  # a javascript: URL is never a link


def test_the_page_escapes_untrusted_text_and_loads_nothing(folder: Path) -> None:
    html = render(build(read_folder(str(folder))), title="Corpus <run>")
    assert HOSTILE_TITLE not in html and "<script" not in html.lower()
    assert "<img" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(" in html
    assert "Corpus &lt;run&gt;" in html
    assert html.count('<svg class="chart"') == 4
    # Self-contained: no stylesheet, script, image or font fetched from anywhere.
    assert not re.search(r"<(link|script|img|iframe)\b", html)
    assert not re.search(r"<[^>]*\bsrc=", html)


def test_an_empty_corpus_renders(tmp_path: Path) -> None:
    from spinlens.batch.shards import ShardWriter

    with ShardWriter(tmp_path / "empty"):
        pass
    (tmp_path / "empty" / "manifest.json").write_text('{"format": "spinlens.batch/1"}')
    html = render(build(read_folder(str(tmp_path / "empty"))), title="empty")
    assert "No articles." in html and html.count("nothing to show") == 4


def test_from_analyses_gives_the_same_tables() -> None:
    from spinlens.model import Analysis, Article, Finding, Source

    analysis = Analysis(
        id="f" * 64,
        source=Source(kind="text", location="pasted"),
        article=Article(text="They are traitors.", site="c.example", date="2026-03-01"),
        techniques=[Finding(start=9, end=17, technique="Name_Calling,Labeling", score=1, text="x")],
    )
    d = build(from_analyses([analysis]))
    assert d.techniques_by_site.rows == ["c.example"]
    assert d.first_day == date(2026, 3, 1)


def test_corpus_report_command(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    run = subprocess.run(
        [sys.executable, "-m", "spinlens", "corpus", "report", str(folder), "-o", str(out),
         "--report-url", "http://localhost:8000/analyses/{article_id}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stderr
    html = out.read_text()
    assert f'href="http://localhost:8000/analyses/{5:064x}"' in html
    bad = subprocess.run(
        [sys.executable, "-m", "spinlens", "corpus", "report", str(tmp_path / "nothing")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "not a spinlens batch folder" in bad.stderr and "Traceback" not in bad.stderr


def readme_queries() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- duckdb-queries -->")[1].split("<!-- /duckdb-queries -->")[0]
    return re.findall(r"```sql\n(.*?)```", section, re.DOTALL)


def test_the_readme_duckdb_queries_run(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed (the duckdb extra)")
    queries = readme_queries()
    assert len(queries) == 3
    monkeypatch.chdir(folder.parent)  # the README's queries read run/...
    results = [duckdb.sql(q).fetchall() for q in queries]
    assert all(results), "each query returns rows on this corpus"
    # The first query: techniques per site; a.example used Loaded_Language twice in one article.
    assert ("a.example", "Loaded_Language", 3) in [tuple(r[:3]) for r in results[0]]
