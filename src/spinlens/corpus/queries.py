"""What a corpus dashboard shows, computed from the batch tables with pyarrow.

An article's date is its published date, falling back to the day it was crawled; articles
with neither are counted but left out of the charts over time. Time is bucketed by day, month
or year, whichever gives a readable number of bars for the corpus's span.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from spinlens.corpus.data import Corpus
from spinlens.errors import UsageError

UNKNOWN_SITE = "(unknown site)"
# Up to two months of days or three years of months fit a chart's width.
MAX_DAYS = 62
MAX_MONTHS = 36
MAX_SITES = 12
MAX_NARRATIVES = 8
TOP_ARTICLES = 25


@dataclass(frozen=True)
class Filters:
    sites: tuple[str, ...] = ()  # empty: every site
    start: date | None = None
    end: date | None = None  # inclusive

    @classmethod
    def parse(
        cls,
        sites: Iterable[str],
        start: str | None,
        end: str | None,
        *,
        names: tuple[str, str] = ("--from", "--to"),
    ) -> Filters:
        """Filters from what a user typed (blank means no filter); a date that is not
        YYYY-MM-DD, or a range that ends before it starts, is a UsageError naming the field."""
        first, last = _day(start, names[0]), _day(end, names[1])
        if first and last and last < first:
            raise UsageError(f"{names[1]} ({last}) is before {names[0]} ({first})")
        return cls(sites=tuple(s for s in sites if s), start=first, end=last)

    def selected(self, articles: pa.Table) -> list[str]:
        """The ids of the rows of an ``articles`` table that these filters keep, in order."""
        return _filtered(_articles(articles), self).column("article_id").to_pylist()


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise UsageError(f"{name} takes a date as YYYY-MM-DD, not {value!r}") from None


@dataclass(frozen=True)
class Matrix:
    """Rows × columns of values, with a tooltip per cell."""

    rows: list[str]
    columns: list[str]
    values: list[list[float]]
    notes: list[list[str]]


@dataclass(frozen=True)
class Series:
    """Counts per period, one series per label (biggest first)."""

    periods: list[str]
    series: list[tuple[str, list[int]]]


@dataclass(frozen=True)
class TopArticle:
    article_id: str
    title: str
    site: str
    day: date | None
    flagged_share: float
    n_findings: int
    techniques: list[tuple[str, int]]
    narratives: list[str]
    link: str | None


@dataclass(frozen=True)
class Dashboard:
    articles: int
    findings: int
    narrative_matches: int
    failures: int | None  # None: the corpus has no failures table (the web app's history)
    undated: int
    first_day: date | None
    last_day: date | None
    unit: str  # "day", "month" or "year"
    sites: list[str]  # every site in the corpus, for the filter
    filters: Filters
    techniques_by_site: Matrix
    techniques_over_time: Series
    narratives_over_time: Series
    narratives_by_site: Matrix
    top_articles: list[TopArticle] = field(default_factory=list)


def build(
    corpus: Corpus,
    filters: Filters = Filters(),
    *,
    link: Callable[[dict], str | None] | None = None,
) -> Dashboard:
    """The dashboard of ``corpus`` restricted to ``filters``; ``link(article row)`` gives the
    address of an article's report (default: the article's own URL)."""
    all_articles = _articles(corpus.articles)
    sites = sorted(set(all_articles.column("site").to_pylist()))
    articles = _filtered(all_articles, filters)
    days = [d for d in articles.column("day").to_pylist() if d is not None]
    first, last = (min(days), max(days)) if days else (None, None)
    unit = _unit(first, last)
    periods = _periods(first, last, unit)
    articles = articles.append_column("period", _period_column(articles.column("day"), unit))

    ids = articles.select(["article_id", "site", "period"])
    # Inner joins: the spans and matches of the articles the filters keep.
    findings = corpus.findings.select(["article_id", "technique"]).join(
        ids, "article_id", join_type="inner"
    )
    narratives = corpus.narratives.select(["article_id", "claim_id", "title"]).join(
        ids, "article_id", join_type="inner"
    )
    return Dashboard(
        articles=articles.num_rows,
        findings=findings.num_rows,
        narrative_matches=narratives.num_rows,
        failures=None if corpus.failures is None else corpus.failures.num_rows,
        undated=articles.num_rows - len(days),
        first_day=first,
        last_day=last,
        unit=unit,
        sites=sites,
        filters=filters,
        techniques_by_site=_techniques_by_site(articles, findings),
        techniques_over_time=_over_time(findings, "technique", periods, None, distinct=False),
        narratives_over_time=_over_time(
            narratives, "claim_id", periods, MAX_NARRATIVES, distinct=True
        ),
        narratives_by_site=_narratives_by_site(articles, narratives),
        top_articles=_top_articles(articles, link or _own_url),
    )


def _articles(table: pa.Table) -> pa.Table:
    crawled_day = pc.cast(table.column("crawled"), pa.date32())
    return pa.table(
        {
            "article_id": table.column("article_id"),
            "site": pc.fill_null(table.column("site"), UNKNOWN_SITE),
            "day": pc.coalesce(table.column("published"), crawled_day),
            "title": table.column("title"),
            "url": table.column("url"),
            "source_location": table.column("source_location"),
            "flagged_share": table.column("flagged_share"),
            "n_findings": table.column("n_findings"),
            "technique_counts": table.column("technique_counts"),
            "top_narratives": table.column("top_narratives"),
        }
    )


def _filtered(articles: pa.Table, filters: Filters) -> pa.Table:
    mask = pa.array([True] * articles.num_rows, pa.bool_())
    if filters.sites:
        mask = pc.and_(mask, pc.is_in(articles.column("site"), pa.array(filters.sites)))
    day = articles.column("day")
    # An article without a date cannot be placed in a date range: a range leaves it out.
    if filters.start is not None:
        mask = pc.and_kleene(mask, pc.greater_equal(day, pa.scalar(filters.start)))
    if filters.end is not None:
        mask = pc.and_kleene(mask, pc.less_equal(day, pa.scalar(filters.end)))
    return articles.filter(pc.fill_null(mask, False))


def _unit(first: date | None, last: date | None) -> str:
    if first is None or last is None or (last - first).days < MAX_DAYS:
        return "day"
    months = (last.year - first.year) * 12 + last.month - first.month
    return "month" if months < MAX_MONTHS else "year"


_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


def _period_column(days: pa.ChunkedArray, unit: str) -> pa.ChunkedArray:
    return pc.strftime(pc.cast(days, pa.timestamp("s")), format=_FORMATS[unit])


def _periods(first: date | None, last: date | None, unit: str) -> list[str]:
    """Every period from the first to the last date, empty ones included (a true time axis)."""
    if first is None or last is None:
        return []
    if unit == "day":
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    if unit == "year":
        return [str(year) for year in range(first.year, last.year + 1)]
    periods = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return periods


def _counts(table: pa.Table, keys: list[str], distinct: bool) -> list[dict]:
    """One dict per group of ``keys``: the keys and ``n``, its (distinct) articles or rows."""
    how = "count_distinct" if distinct else "count"
    grouped = table.group_by(keys).aggregate([("article_id", how)])
    names = ["n" if name == f"article_id_{how}" else name for name in grouped.column_names]
    return grouped.rename_columns(names).to_pylist()


def _techniques_by_site(articles: pa.Table, findings: pa.Table) -> Matrix:
    """Share of each site's articles that use each technique at least once."""
    site_totals = {r["site"]: r["n"] for r in _counts(articles, ["site"], distinct=True)}
    sites = sorted(site_totals, key=lambda s: (-site_totals[s], s))[:MAX_SITES]
    cells = {
        (r["site"], r["technique"]): r["n"] for r in _counts(findings, ["site", "technique"], True)
    }
    totals: dict[str, int] = {}
    for (_, technique), n in cells.items():
        totals[technique] = totals.get(technique, 0) + n
    techniques = sorted(totals, key=lambda t: (-totals[t], t))
    values, notes = [], []
    for site in sites:
        row, row_notes = [], []
        for technique in techniques:
            n, total = cells.get((site, technique), 0), site_totals[site]
            row.append(n / total)
            row_notes.append(f"{site} · {technique}: {n} of {total} articles ({n / total:.0%})")
        values.append(row)
        notes.append(row_notes)
    return Matrix(rows=sites, columns=techniques, values=values, notes=notes)


def _narratives_by_site(articles: pa.Table, narratives: pa.Table) -> Matrix:
    """How many of each site's articles repeat each of the most frequent narratives."""
    titles = _titles(narratives)
    ranked = _ranked(_counts(narratives, ["claim_id"], distinct=True), "claim_id")
    claims = ranked[:MAX_NARRATIVES]
    site_totals = {r["site"]: r["n"] for r in _counts(articles, ["site"], distinct=True)}
    cells = {
        (r["site"], r["claim_id"]): r["n"]
        for r in _counts(narratives, ["site", "claim_id"], distinct=True)
    }
    sites = sorted(
        {site for site, claim in cells if claim in claims},
        key=lambda s: (-sum(cells.get((s, c), 0) for c in claims), s),
    )[:MAX_SITES]
    values = [[float(cells.get((s, c), 0)) for c in claims] for s in sites]
    notes = [
        [f"{s} · {titles[c]}: {cells.get((s, c), 0)} of {site_totals[s]} articles" for c in claims]
        for s in sites
    ]
    return Matrix(rows=sites, columns=[titles[c] for c in claims], values=values, notes=notes)


def _over_time(
    table: pa.Table, key: str, periods: list[str], limit: int | None, distinct: bool
) -> Series:
    dated = table.filter(pc.is_valid(table.column("period")))
    rows = _counts(dated, [key, "period"], distinct)
    labels = _ranked(_counts(dated, [key], distinct), key)[:limit]
    names = _titles(table) if key == "claim_id" else {label: label for label in labels}
    index = {p: i for i, p in enumerate(periods)}
    series = {label: [0] * len(periods) for label in labels}
    for row in rows:
        if row[key] in series and row["period"] in index:
            series[row[key]][index[row["period"]]] = row["n"]
    return Series(periods=periods, series=[(names[label], series[label]) for label in labels])


def _ranked(rows: list[dict], key: str) -> list[str]:
    return [r[key] for r in sorted(rows, key=lambda r: (-r["n"], r[key]))]


def _titles(narratives: pa.Table) -> dict[str, str]:
    ids = narratives.column("claim_id").to_pylist()
    return dict(zip(ids, narratives.column("title").to_pylist(), strict=True))


def _top_articles(articles: pa.Table, link: Callable[[dict], str | None]) -> list[TopArticle]:
    if not articles.num_rows:
        return []
    order = pc.sort_indices(
        articles,
        sort_keys=[
            ("flagged_share", "descending"),
            ("n_findings", "descending"),
            ("article_id", "ascending"),
        ],
    )
    top = articles.take(order[:TOP_ARTICLES]).to_pylist()
    result = []
    for row in top:
        counts = json.loads(row["technique_counts"] or "{}")
        result.append(
            TopArticle(
                article_id=row["article_id"],
                title=row["title"] or row["url"] or row["source_location"],
                site=row["site"],
                day=row["day"],
                flagged_share=row["flagged_share"],
                n_findings=row["n_findings"],
                techniques=sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
                narratives=list(row["top_narratives"] or []),
                link=_safe_link(link(row)),
            )
        )
    return result


def _own_url(row: dict) -> str | None:
    return row.get("url")


def _safe_link(href: str | None) -> str | None:
    """Only web addresses and paths on the same site: never ``javascript:`` or ``data:``."""
    if href and (href.startswith(("http://", "https://")) or href.startswith("/")):
        return href if not href.startswith("//") else None
    return None
