"""``spinlens watch``: keep a corpus of feeds and sitemaps up to date.

Every round reads the listings, fetches and analyses only the items the folder has not seen,
and commits them as one shard of the batch layout, so ``corpus report``, DuckDB and a later
``spinlens batch`` read the same folder. What has been seen is what the manifest commits: the
source keys of the articles and failures (an item's key is its URL) and the duplicates it
lists; a watch stopped at any moment goes on from its last committed round. An item that
failed (robots.txt, a 404) is a failures row and is not fetched again.

``--alert`` names narrative families or claims; a new article whose matches name one is
appended to ``DIR/alerts.jsonl`` (after its shard is committed) and printed on stderr.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from spinlens.batch.shards import ShardWriter
from spinlens.batch.tables import Rows, analysis_rows, failure_rows
from spinlens.errors import IngestError, SpinlensError, UsageError
from spinlens.ingest.feeds import DEFAULT_DELAY, FeedItem, PoliteFetcher, expand
from spinlens.ingest.files import DEFAULT_MAX_BYTES
from spinlens.model import Analysis, Failure, NarrativeMatch
from spinlens.pipeline import Pipeline

ALERTS = "alerts.jsonl"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

stderr = Console(stderr=True, highlight=False)


@dataclass(frozen=True)
class Alert:
    """A new article repeating a narrative someone asked to be told about."""

    term: str
    analysis: Analysis
    match: NarrativeMatch

    def record(self) -> dict:
        article = self.analysis.article
        return {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "alert": self.term,
            "article_id": self.analysis.id,
            "url": article.url or self.analysis.source.location,
            "title": article.title,
            "site": article.site,
            "published": article.date,
            "claim_id": self.match.claim_id,
            "claim": self.match.title,
            "family": self.match.family,
            "score": round(self.match.score, 4),
        }


@dataclass
class Round:
    """What one round did."""

    new_items: int = 0
    analysed: int = 0
    failed: int = 0
    duplicates: int = 0
    alerts: list[Alert] = field(default_factory=list)
    feed_errors: list[tuple[str, str]] = field(default_factory=list)


def matching_alerts(analysis: Analysis, terms: Sequence[str]) -> list[Alert]:
    """An alert per term that names one of the article's matches: its family or claim id
    (exactly, case ignored) or words of its title."""
    alerts = []
    for term in terms:
        wanted = term.strip().lower()
        for match in analysis.narratives:
            names = {match.claim_id.lower(), (match.family or "").lower()}
            if wanted in names or wanted in match.title.lower():
                alerts.append(Alert(term=term, analysis=analysis, match=match))
                break
    return alerts


def watch_round(
    feeds: Sequence[str],
    out: Path,
    pipeline: Pipeline,
    fetcher: PoliteFetcher,
    alerts: Sequence[str] = (),
) -> Round:
    """Read the feeds once, analyse their new items into one shard, and raise the alerts."""
    result = Round()
    with ShardWriter(out, info={"watch": list(feeds)}) as writer:
        committed = writer.committed()
        seen = set(committed.source_keys)
        article_ids = set(committed.article_ids)
        items: list[FeedItem] = []
        for feed in feeds:
            try:
                listed = expand(feed, fetcher)
            except IngestError as error:
                result.feed_errors.append((feed, str(error)))
                continue
            for item in listed:
                if item.url not in seen:
                    seen.add(item.url)
                    items.append(item)
        result.new_items = len(items)
        rows, duplicates, found = Rows(), list[str](), list[Alert]()
        for item in items:
            analysis = _analyse(pipeline, fetcher, item)
            if isinstance(analysis, Failure):
                result.failed += 1
                rows.extend(failure_rows(analysis, item.url))
            elif analysis.id in article_ids:
                result.duplicates += 1
                duplicates.append(item.url)
            else:
                article_ids.add(analysis.id)
                result.analysed += 1
                rows.extend(analysis_rows(analysis, item.url))
                found.extend(matching_alerts(analysis, alerts))
        if rows.documents or duplicates:
            writer.write(rows, duplicates)
    if found:
        with (out / ALERTS).open("a", encoding="utf-8") as f:
            for alert in found:
                f.write(json.dumps(alert.record(), ensure_ascii=False) + "\n")
    result.alerts = found
    return result


def run_watch(
    feeds: Sequence[str],
    out: Path,
    pipeline: Pipeline,
    fetcher: PoliteFetcher,
    *,
    every: float,
    alerts: Sequence[str] = (),
    rounds: int | None = None,
    on_round: Callable[[Round], None] = lambda r: None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run rounds ``every`` seconds apart (start to start), ``rounds`` times or forever."""
    done = 0
    while rounds is None or done < rounds:
        started = time.monotonic()
        on_round(watch_round(feeds, out, pipeline, fetcher, alerts))
        done += 1
        if rounds is None or done < rounds:
            sleep(max(0.0, every - (time.monotonic() - started)))


def parse_duration(text: str) -> float:
    """``15m``, ``30s``, ``2h``, ``1d`` or plain seconds."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(f"--every takes a duration such as 15m, 30s or 2h, not {text!r}")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


def _analyse(pipeline: Pipeline, fetcher: PoliteFetcher, item: FeedItem) -> Analysis | Failure:
    try:
        document = fetcher.fetch_page(item.url, kind="feed")
        return pipeline.analyze(document)
    except SpinlensError as error:
        return Failure(location=item.url, reason=str(error))
    except Exception as error:  # noqa: BLE001 - one bad page must not stop the watch
        return Failure(
            location=item.url,
            reason=f"internal error ({type(error).__name__}: {error}); please report it",
        )


def watch_command(
    feeds: Annotated[
        list[str],
        typer.Argument(help="RSS/Atom feeds or XML sitemaps (URLs).", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder of the Parquet tables.", show_default=False),
    ],
    every: Annotated[str, typer.Option(help="Time between rounds: 15m, 30s, 2h...")] = "15m",
    alert: Annotated[
        list[str] | None,
        typer.Option(
            help="Narrative family or claim (id, or words of its title) to be alerted about; "
            "repeat for several. Alerts go to DIR/alerts.jsonl and stderr.",
        ),
    ] = None,
    once: Annotated[bool, typer.Option(help="Run one round and exit (for cron).")] = False,
    rounds: Annotated[int | None, typer.Option(min=1, help="Stop after this many rounds.")] = None,
    techniques_model: Annotated[
        str | None,
        typer.Option(help="Technique model by tier: accurate, fast or baseline (default: fast)."),
    ] = None,
    narratives: Annotated[
        bool, typer.Option(help="Match known disinformation narratives (alerts need it).")
    ] = True,
    allow_private: Annotated[
        bool,
        typer.Option(help="Allow fetching URLs on private, loopback and link-local addresses."),
    ] = False,
    delay: Annotated[
        float, typer.Option(min=0, help="Seconds between two requests to the same host.")
    ] = DEFAULT_DELAY,
    max_bytes: Annotated[
        int, typer.Option(help="Largest page read, in bytes.", min=1)
    ] = DEFAULT_MAX_BYTES,
) -> None:
    """Keep a corpus of feeds up to date: analyse only the new items, every so often."""
    from spinlens.pipeline import default_pipeline
    from spinlens.techniques.detectors import CORPUS_DEFAULT

    interval = parse_duration(every)
    terms = list(alert or [])
    if terms and not narratives:
        raise UsageError("--alert needs narrative matching (drop --no-narratives)")
    pipeline = default_pipeline(techniques_model or CORPUS_DEFAULT, narratives=narratives)
    fetcher = PoliteFetcher(allow_private=allow_private, max_bytes=max_bytes, delay=delay)

    def report(result: Round) -> None:
        for feed, reason in result.feed_errors:
            stderr.print(f"[red]error:[/red] {escape(feed)}: {escape(reason)}", markup=True)
        for found in result.alerts:
            a = found.analysis.article
            where = a.url or found.analysis.source.location
            stderr.print(
                f"[bold yellow]alert:[/bold yellow] {escape(found.term)}: "
                f"{escape(a.title or where)} ({escape(where)}) repeats "
                f"'{escape(found.match.title)}'",
                markup=True,
                soft_wrap=True,
            )
        stamp = datetime.now().strftime("%H:%M:%S")
        stderr.print(
            f"{stamp} {result.new_items} new item(s): {result.analysed} analysed, "
            f"{result.failed} failed, {result.duplicates} duplicate(s); tables in {out}"
        )

    try:
        run_watch(
            feeds,
            out,
            pipeline,
            fetcher,
            every=interval,
            alerts=terms,
            rounds=1 if once else rounds,
            on_round=report,
        )
    except KeyboardInterrupt:
        stderr.print("stopped")
