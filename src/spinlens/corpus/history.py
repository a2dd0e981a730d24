"""The web app's stored history as a corpus: the dashboard at ``/corpus``.

The stored analyses become the rows a batch run writes (``analysis_rows``), and the dashboard
is built and rendered by the same code as ``spinlens corpus report``. Two things differ from a
batch folder:

- an article's date is its published date, else the day it was fetched, else the day it was
  analysed (a pasted text has no fetch date);
- sites are lower-cased, as the store keeps them (its site filter and site list are).

The work is bounded: the newest analyses are read first and reading stops once
``MAX_ANALYSES`` of them pass the filters, or after ``MAX_READ`` analyses (a date range far
in the past can pass over many newer ones); the page says when either happened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from markupsafe import Markup

from spinlens.batch.tables import Rows, analysis_rows
from spinlens.corpus.data import Corpus, from_rows
from spinlens.corpus.queries import UNKNOWN_SITE, Dashboard, Filters, build
from spinlens.corpus.report import render_section
from spinlens.errors import UsageError
from spinlens.store import MAX_PAGE, HistoryQuery

if TYPE_CHECKING:
    from spinlens.core import Spinlens

# Measured with SQLite on the 2-core development machine, 5,000 stored analyses of 20 spans:
# about 3.5 s to read them into rows when the machine is idle, 10 s while a training run
# shares it; most of it is one store query per analysis (``Spinlens.get``).
MAX_ANALYSES = 5_000
MAX_READ = 2 * MAX_ANALYSES
# An article dated a little after it was analysed (its site's time zone ahead of UTC) still
# passes a "since" filter; the store is asked for analyses made from this long before.
_CLOCK_SLACK = timedelta(days=1)
TITLE = "Corpus"


@dataclass(frozen=True)
class StoredCorpus:
    corpus: Corpus
    read: int  # stored analyses read
    full: bool  # ``limit`` analyses passed the filters, and older ones were left out
    cut: bool  # reading stopped at ``read_limit`` analyses, before the store's end


def read_history(
    spinlens: Spinlens,
    filters: Filters,
    *,
    limit: int = MAX_ANALYSES,
    read_limit: int = MAX_READ,
) -> StoredCorpus:
    """The newest stored analyses that pass ``filters`` (at most ``limit``), as batch tables.

    The store narrows by site and by the start of the range; the filters are then applied
    exactly to each page of rows, with the dashboard's own ``Filters.selected``.
    """
    site = filters.sites[0] if len(filters.sites) == 1 else None
    since = None
    if filters.start is not None:
        day = filters.start
        since = datetime(day.year, day.month, day.day, tzinfo=UTC) - _CLOCK_SLACK
    query = HistoryQuery(site=site if site != UNKNOWN_SITE else None, since=since, limit=MAX_PAGE)
    kept = Rows()
    seen: set[str] = set()
    read = offset = 0
    while True:
        page = spinlens.history(query.model_copy(update={"offset": offset}))
        offset += len(page.items)
        # Paging by offset while analyses are added can show one twice.
        items = [item for item in page.items if item.id not in seen]
        seen.update(item.id for item in items)
        room = read_limit - read
        rows = Rows()
        for item in items[:room]:
            analysis = spinlens.get(item.id)
            if analysis is None:  # removed since the page was listed
                continue
            read += 1
            one = analysis_rows(analysis, analysis.source.location)
            row = one.articles[0]
            row["site"] = row["site"].lower() if row["site"] else None
            row["crawled"] = row["crawled"] or item.created_at
            rows.extend(one)
        selected = filters.selected(rows.table("articles"))
        quota = limit - len(kept.articles)
        kept.extend(_only(rows, set(selected[:quota])))
        unread = len(items) > room or (bool(page.items) and offset < page.total)
        if len(selected) >= quota or read >= read_limit or not unread:
            full = len(selected) >= quota
            return StoredCorpus(
                corpus=from_rows(kept, failures=False),
                read=read,
                full=full and (len(selected) > quota or unread),
                cut=not full and unread,
            )


def _only(rows: Rows, ids: set[str]) -> Rows:
    return Rows(
        articles=[r for r in rows.articles if r["article_id"] in ids],
        findings=[r for r in rows.findings if r["article_id"] in ids],
        narratives=[r for r in rows.narratives if r["article_id"] in ids],
    )


@dataclass(frozen=True)
class Section:
    html: Markup  # the dashboard with its filter form, for the app's page
    error: str | None  # the filters were refused (the section says why)


def history_section(spinlens: Spinlens, site: str, since: str, until: str) -> Section:
    """The ``/corpus`` dashboard for the GET form's fields (``site``, ``since``, ``until``)."""
    try:
        filters = Filters.parse([site.strip().lower()], since, until, names=("From", "To"))
    except UsageError as error:
        # The form again, with what was wrong, and no charts of a range nobody asked for.
        kept = Filters(sites=(site.strip().lower(),) if site.strip() else ())
        empty = build(from_rows(Rows(), failures=False), kept)
        return Section(_render(spinlens, empty, error=str(error)), str(error))
    stored = read_history(spinlens, filters, limit=MAX_ANALYSES, read_limit=MAX_READ)
    dashboard = build(stored.corpus, filters, link=_report_link)
    return Section(_render(spinlens, dashboard, notice=_notice(stored)), None)


def _render(
    spinlens: Spinlens, dashboard: Dashboard, *, notice: str | None = None, error: str | None = None
) -> Markup:
    # The form lists every stored site, not only those the filters kept.
    with_sites = replace(dashboard, sites=spinlens.sites())
    return render_section(
        with_sites,
        title=TITLE,
        form_action="/corpus",
        notice=notice,
        error=error,
        date_fallback="the day it was fetched, else the day it was analysed",
    )


def _report_link(row: dict) -> str:
    return f"/analyses/{quote(row['article_id'], safe='')}"


def _notice(stored: StoredCorpus) -> str | None:
    if stored.full:
        return (
            f"This dashboard counts the newest {stored.corpus.articles.num_rows:,} analyses that "
            "match; older ones are left out. Narrow the site or the dates to see them."
        )
    if stored.cut:
        return (
            f"Only the newest {stored.read:,} stored analyses were read, and older ones may "
            "match too; set a From date to reach them."
        )
    return None
