"""Read claim catalogues from the files fact-checkers publish, into ``Claim`` objects.

Formats:
- ``euvsdisinfo``: either layout of the EUvsDisinfo database exports — the semicolon file with
  summaries and disproofs (issue;date;outlet;language;origin;reported by;keywords;source;title;
  summary;disproof, dates DD.MM.YYYY) or the comma file with case pages
  (date,id,title,countries,keywords,languages,outlets, multi-values joined by ``+``). Cases in
  both files become one claim (same title and date).
- ``claimreview``: schema.org ClaimReview JSON-LD as fact-checkers embed it in their pages: one
  object, a list, an ``@graph``, a DataFeed, or JSON Lines with one of those per line.
- ``csv``: a team's own list with a header naming at least ``text``; ``verdict``, ``url``,
  ``date`` and ``id`` are read when present.

A bad row is reported with its line number and skipped; the rest of the file is imported.
A team's CSV holds one claim per line: a quote left open on a line (``"The vote was rigged,
False``) is reported as that line's ``unterminated quote``, never merged with the lines after
it (a quoted field cannot span lines there; EUvsDisinfo's summaries can, and do).

Imports stream: files are read row by row (ClaimReview documents with ijson, one ClaimReview
at a time) and claims are merged into the store a chunk at a time, so memory stays bounded
whatever the file's size; ``progress`` is told how far through the file reading is. A catalogue
holds at most ``MAX_CLAIMS`` claims (``max_claims``); the claims beyond are counted, not added.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import ijson

from spinlens.narratives.catalogue import (
    CatalogueError,
    CatalogueStore,
    Claim,
    normalize_title,
    slugify,
)

FORMATS = ("euvsdisinfo", "claimreview", "csv")
EUVSDISINFO = "euvsdisinfo"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DMY_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_SEMICOLON_HEADER = ("date", "outlet", "language", "title", "summary", "disproof")
_COMMA_HEADER = ("date", "id", "title", "countries", "keywords", "languages", "outlets")
# The most claims one catalogue holds. Every claim's vectors are in memory while articles are
# matched (1.5 KB per vector, one or two per claim) and every passage is compared with all of
# them: at 100,000 claims that is about 230 MB and 0.3 s per article on a laptop, on top of the
# 13,000 EUvsDisinfo cases; a 1.5 M-review ClaimReview dump would need 4.6 GB. A team that needs
# more raises it with ``--max-claims`` and pays that cost.
MAX_CLAIMS = 100_000
# Bad rows kept, with their line and reason, in a report (the others are only counted).
MAX_BAD_ROWS_KEPT = 1000
# How much of a ClaimReview file's first line is read to tell JSON Lines (a whole document on
# the first line) from one document (a feed served on one line can be hundreds of MB).
_FIRST_LINE_LIMIT = 1 << 20
# Keys under which JSON-LD nests ClaimReviews (lists, @graph, DataFeed items).
_CONTAINERS = ("@graph", "dataFeedElement", "item", "mainEntity")

# Told (bytes read, file size) as an import reads its file.
ImportProgress = Callable[[int, int], None]


@dataclass
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    path: Path
    format: str
    catalogue: str
    read: int = 0  # claims read from the file (before merging duplicates)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    over_limit: int = 0  # new claims left out: the catalogue held ``max_claims``
    skipped: int = 0  # bad rows; the first MAX_BAD_ROWS_KEPT are in ``bad_rows``
    bad_rows: list[BadRow] = field(default_factory=list)

    def add_bad_row(self, bad: BadRow) -> None:
        self.skipped += 1
        if len(self.bad_rows) < MAX_BAD_ROWS_KEPT:
            self.bad_rows.append(bad)


class _RowError(ValueError):
    """A row that cannot become a claim; its message says why."""


def import_file(
    store: CatalogueStore,
    path: Path,
    format: str | None = None,
    catalogue: str | None = None,
    *,
    max_claims: int | None = MAX_CLAIMS,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Read ``path`` and merge its claims into ``store`` (one transaction), reading and writing
    a chunk at a time; ``max_claims``: the most claims the catalogue may hold (None: no limit).
    """
    fmt = format or detect_format(path)
    name = catalogue or default_catalogue(path, fmt)
    report = ImportReport(path=path, format=fmt, catalogue=name)

    def claims() -> Iterator[Claim]:
        for line, item in iter_rows(path, fmt, name, progress):
            if isinstance(item, Claim):
                report.read += 1
                yield item
            else:
                report.add_bad_row(BadRow(line, item))
        if not report.read and report.bad_rows:
            # Nothing was written; the transaction ends with this error.
            raise CatalogueError(f"{path}: no claim could be read ({report.bad_rows[0]})")

    result = store.upsert(claims(), limit=max_claims)
    report.added, report.updated = result.added, result.updated
    report.unchanged, report.over_limit = result.unchanged, result.over_limit
    return report


def default_catalogue(path: Path, format: str) -> str:
    """EUvsDisinfo and ClaimReview files go to their own catalogues; a team's CSV is named after
    its file."""
    return format if format != "csv" else slugify(path.stem) or "csv"


def detect_format(path: Path) -> str:
    text = _read_head(path)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "claimreview"
    first = text.split("\n", 1)[0]
    header = {h.strip().strip('"').casefold() for h in re.split(r"[;,\t]", first)}
    if {"title", "date"} <= header and ("disproof" in header or "outlets" in header):
        return EUVSDISINFO
    if "text" in header:
        return "csv"
    raise CatalogueError(
        f"{path}: cannot tell the catalogue format; name it with --format ({'|'.join(FORMATS)})"
    )


def read_claims(path: Path, format: str, catalogue: str) -> tuple[list[Claim], list[BadRow]]:
    """Every good row of ``path`` as a claim, and the bad rows (all in memory: for small files;
    ``import_file`` streams)."""
    claims: list[Claim] = []
    bad: list[BadRow] = []
    for line, item in iter_rows(path, format, catalogue):
        if isinstance(item, Claim):
            claims.append(item)
        else:
            bad.append(BadRow(line, item))
    if not claims and bad:
        raise CatalogueError(f"{path}: no claim could be read ({bad[0]})")
    return claims, bad


_Rows = Iterator[tuple[int, Claim | str]]


def iter_rows(
    path: Path, format: str, catalogue: str, progress: ImportProgress | None = None
) -> _Rows:
    """(line, claim or why the row is bad) for each row of ``path``, read as it goes."""
    readers = {EUVSDISINFO: _read_euvsdisinfo, "claimreview": _read_claimreview, "csv": _read_csv}
    if format not in readers:
        raise CatalogueError(f"unknown catalogue format {format!r}: use {'|'.join(FORMATS)}")
    with _open(path) as binary:
        reading = _Reading(binary, path.stat().st_size, progress)
        for row in readers[format](path, binary, catalogue, reading):
            yield row
            reading.update()
        reading.finish()


class _Reading:
    """Tells ``progress`` how far through ``binary`` reading is, about every 1% of the file."""

    def __init__(self, binary: IO[bytes], size: int, progress: ImportProgress | None) -> None:
        self.binary = binary
        self.size = size
        self.progress = progress
        self.step = max(size // 100, 1)
        self.told = 0
        if progress is not None:
            progress(0, size)

    def update(self) -> None:
        if self.progress is None:
            return
        position = min(self.binary.tell(), self.size)
        if position - self.told >= self.step:
            self.told = position
            self.progress(position, self.size)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.size, self.size)


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise CatalogueError(f"no such file: {path}") from exc
    except OSError as exc:
        raise CatalogueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_head(path: Path, size: int = 1 << 16) -> str:
    """The start of ``path`` as text (to tell its format and read its header)."""
    with _open(path) as f:
        head = f.read(size)
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path} is not UTF-8 text (byte {exc.start})") from exc


def _lines(path: Path, binary: IO[bytes]) -> Iterator[tuple[int, str]]:
    """The lines of ``binary`` as text, each with its number (from 1) and its line end (any of
    \\n, \\r\\n, \\r, as the csv module wants them)."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    number = 0
    try:
        for number, line in enumerate(text, start=1):
            yield number, line
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path} is not UTF-8 text (line {number + 1})") from exc
    finally:
        text.detach()  # the caller closes the file


# A CSV record: its fields, or why its line cannot be read.
_Records = Iterator[tuple[int, list[str] | str]]


def _records(path: Path, binary: IO[bytes], delimiter: str) -> _Records:
    """CSV records with the line each starts on (a quoted field may span lines)."""
    reader = csv.reader((line for _, line in _lines(path, binary)), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CatalogueError(f"{path}: line {start}: {exc}") from exc


def _header(path: Path, delimiter: str) -> list[str]:
    first = _read_head(path).split("\n", 1)[0]
    return [h.strip().strip('"').casefold() for h in first.split(delimiter)]


def _read_euvsdisinfo(path: Path, binary: IO[bytes], catalogue: str, _: _Reading) -> _Rows:
    semicolon = _header(path, ";")
    comma = _header(path, ",")
    if all(h in semicolon for h in _SEMICOLON_HEADER):
        yield from _rows(_records(path, binary, ";"), catalogue, _semicolon_claim)
    elif all(h in comma for h in _COMMA_HEADER):
        yield from _rows(_records(path, binary, ","), catalogue, _comma_claim)
    else:
        raise CatalogueError(
            f"{path}: not an EUvsDisinfo export (expected the header "
            f"{';'.join(_SEMICOLON_HEADER)}... or {','.join(_COMMA_HEADER)})"
        )


def _rows(records: _Records, catalogue: str, make: Any) -> _Rows:
    _, header = next(records, (1, []))
    names = [h.strip().casefold() for h in header] if isinstance(header, list) else []
    for line, row in records:
        if isinstance(row, str):
            yield line, row
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield line, f"expected {len(names)} fields, found {len(row)}"
            continue
        try:
            yield line, make(dict(zip(names, row, strict=True)), catalogue)
        except _RowError as exc:
            yield line, str(exc)


def _semicolon_claim(row: dict[str, str], catalogue: str) -> Claim:
    title = _required(row, "title")
    date = _dmy(row["date"])
    return Claim(
        # No case page in this layout: an id from the case's date and title.
        id=f"{catalogue}:{date}-{slugify(title, 60)}",
        catalogue=catalogue,
        title=title,
        summary=_text(row.get("summary")),
        disproof=_text(row.get("disproof")),
        date=date,
        countries=_split(row.get("origin"), ","),
        keywords=_split(row.get("keywords"), ","),
        languages=_split(row.get("language"), ","),
        outlets=_split(row.get("outlet"), "\n"),
        source=_text(row.get("source")),
    )


def _comma_claim(row: dict[str, str], catalogue: str) -> Claim:
    title = _required(row, "title")
    url = _required(row, "id")
    if not url.startswith(("http://", "https://")):
        raise _RowError(f"id {url[:60]!r} is not a case page address")
    slug = url.rstrip("/").rsplit("/", 1)[-1]
    return Claim(
        id=f"{catalogue}:{slug}",
        catalogue=catalogue,
        title=title,
        date=_iso(row["date"]),
        countries=_split(row.get("countries"), "+"),
        keywords=_split(row.get("keywords"), "+"),
        languages=_split(row.get("languages"), "+"),
        outlets=_split(row.get("outlets"), "+"),
        url=url,
    )


def _read_csv(path: Path, binary: IO[bytes], catalogue: str, _: _Reading) -> _Rows:
    first = _read_head(path).split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    if "text" not in _header(path, delimiter):
        raise CatalogueError(
            f"{path}: the header must name a 'text' column (and may name verdict, url, date, id)"
        )
    yield from _rows(_team_records(path, binary, delimiter), catalogue, _team_claim)


def _team_records(path: Path, binary: IO[bytes], delimiter: str) -> _Records:
    """One record per line: a quote a line leaves open is that line's error, and the next line
    is a record of its own (a csv.reader would read on until some later quote closes it)."""
    for number, line in _lines(path, binary):
        try:
            rows = list(csv.reader([line], delimiter=delimiter, strict=True))
        except csv.Error as exc:
            unterminated = "unexpected end of data" in str(exc)
            yield number, "unterminated quote" if unterminated else f"bad quoting: {exc}"
            continue
        yield number, rows[0] if rows else []


def _team_claim(row: dict[str, str], catalogue: str) -> Claim:
    text = _required(row, "text")
    local_id = _text(row.get("id")) or _digest(normalize_title(text))
    url = _text(row.get("url"))
    if url is not None and not url.startswith(("http://", "https://")):
        raise _RowError(f"url {url[:60]!r} is not a web address")
    date = _text(row.get("date"))
    return Claim(
        id=f"{catalogue}:{local_id}",
        catalogue=catalogue,
        title=text,
        disproof=_text(row.get("verdict")),
        date=_iso(date) if date else None,
        url=url,
    )


def _read_claimreview(path: Path, binary: IO[bytes], catalogue: str, _: _Reading) -> _Rows:
    if _starts_json_lines(binary):
        documents = _json_lines(path, binary)
    else:
        documents = _json_document(path, binary)
    found = 0
    read_any = False
    for line, document in documents:
        if isinstance(document, _NotJson):
            yield line, f"not JSON: {document.reason}"
            continue
        read_any = True
        for review in _claim_reviews(document):
            found += 1
            try:
                yield line, _review_claim(review, catalogue)
            except _RowError as exc:
                # Line numbers say little inside one JSON document: count the reviews too.
                yield line, f"ClaimReview #{found}: {exc}"
    if read_any and not found:
        raise CatalogueError(f"{path}: no schema.org ClaimReview object found")


@dataclass
class _NotJson:
    reason: str


def _starts_json_lines(binary: IO[bytes]) -> bool:
    """Whether the file's first line is a JSON value of its own (JSON Lines), reading at most
    _FIRST_LINE_LIMIT of it; the file is read again from its start either way."""
    first = b""
    while not first.strip():
        first = binary.readline(_FIRST_LINE_LIMIT)
        if not first or not first.endswith(b"\n"):
            break
    binary.seek(0)
    if not first.endswith(b"\n"):  # longer than the limit, or the whole file: one document
        return False
    try:
        json.loads(first.decode("utf-8-sig"))
    except ValueError:
        return False
    return True


def _json_lines(path: Path, binary: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """One document per line, so a bad line can be skipped on its own."""
    for number, raw in _lines(path, binary):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, _NotJson(exc.msg)


def _json_document(path: Path, binary: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """The file as one JSON document, in pieces small enough to hold: each element of a
    top-level list, or each element of a top-level object's @graph, dataFeedElement, item or
    mainEntity lists, then the rest of that object. A first pass reads the document's shape
    (and that it is valid JSON: a broken document imports nothing); then ijson builds the
    pieces (in C). A file that is not one JSON document is read as JSON Lines instead: the
    first line of JSON Lines may be the broken one."""
    start = len(codecs.BOM_UTF8) if binary.read(3) == codecs.BOM_UTF8 else 0
    binary.seek(start)
    try:
        shape = _shape(iter(ijson.basic_parse(binary, use_float=True)))
    except ijson.JSONError:
        binary.seek(0)
        yield from _json_lines(path, binary)
        return
    for prefix in shape.lists:
        binary.seek(start)
        for piece in ijson.items(binary, prefix, use_float=True):
            yield 1, piece
    if shape.rest is not None:
        yield 1, shape.rest


@dataclass
class _Shape:
    lists: list[str]  # ijson prefixes of the elements to read one at a time
    rest: Any  # the top-level value less those lists


def _shape(events: Iterator[tuple[str, Any]]) -> _Shape:
    """Where a document keeps its long lists, and everything else it holds."""
    event, value = next(events)
    shape = _Shape([], None)
    if event == "start_array":
        shape.lists.append("item")
        _skip(events)
    elif event == "start_map":
        rest: dict[str, Any] = {}
        for key, (event, value) in _members(events):
            if key in _CONTAINERS and event == "start_array" and not _is_review(rest):
                shape.lists.append(f"{key}.item")
                _skip(events)
            else:
                rest[key] = _build(events, event, value)
        shape.rest = rest
    else:
        shape.rest = value
    for _ in events:  # content after the document is an error
        pass
    return shape


def _skip(events: Iterator[tuple[str, Any]]) -> None:
    """Read past the list or object just started."""
    depth = 1
    for event, _ in events:
        if event == "start_map" or event == "start_array":
            depth += 1
        elif event == "end_map" or event == "end_array":
            depth -= 1
            if not depth:
                return


def _members(events: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, tuple[str, Any]]]:
    """(key, first event of its value) for each member of the object just started; the caller
    reads the rest of each value before asking for the next key."""
    for event, value in events:
        if event == "end_map":
            return
        yield value, next(events)


def _build(events: Iterator[tuple[str, Any]], event: str, value: Any) -> Any:
    """The value whose first event is (``event``, ``value``), read to its end."""
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1 if event in ("start_map", "start_array") else 0
    while depth:
        event, value = next(events)
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
    return builder.value


def _is_review(node: dict[str, Any]) -> bool:
    kind = node.get("@type")
    return "ClaimReview" in (kind if isinstance(kind, list) else [kind])


def _claim_reviews(node: Any) -> Iterator[dict[str, Any]]:
    """ClaimReview objects anywhere in a JSON-LD document (lists, @graph, DataFeed items)."""
    if isinstance(node, list):
        for item in node:
            yield from _claim_reviews(item)
    elif isinstance(node, dict):
        if _is_review(node):
            yield node
            return
        for key in ("@graph", "dataFeedElement", "item", "mainEntity"):
            if key in node:
                yield from _claim_reviews(node[key])


def _review_claim(review: dict[str, Any], catalogue: str) -> Claim:
    title = _text(_str(review.get("claimReviewed")))
    if title is None:
        raise _RowError("ClaimReview without claimReviewed")
    rating = review.get("reviewRating")
    verdict = None
    if isinstance(rating, dict):
        verdict = _text(_str(rating.get("alternateName"))) or _rating_value(rating)
    checker = _name(review.get("author"))
    item = review.get("itemReviewed")
    item = item if isinstance(item, dict) else {}
    url = _text(_str(review.get("url")))
    date = _text(_str(item.get("datePublished"))) or _text(_str(review.get("datePublished")))
    disproof = None
    if verdict:
        disproof = f"{verdict} ({checker})" if checker else verdict
    language = review.get("inLanguage")
    return Claim(
        id=f"{catalogue}:{_digest(url or normalize_title(title))}",
        catalogue=catalogue,
        title=title,
        disproof=disproof,
        date=_iso(date) if date else None,
        languages=[language] if isinstance(language, str) and language else [],
        outlets=[n for n in [_name(item.get("author"))] if n],
        url=url,
        source=_appearance(item),
    )


def _rating_value(rating: dict[str, Any]) -> str | None:
    value = rating.get("ratingValue")
    if value is None or value == "":
        return None
    best = rating.get("bestRating")
    return f"rated {value}/{best}" if best not in (None, "") else f"rated {value}"


def _name(node: Any) -> str | None:
    if isinstance(node, list):
        names = [n for n in (_name(x) for x in node) if n]
        return ", ".join(names) or None
    if isinstance(node, dict):
        return _text(_str(node.get("name")))
    return _text(_str(node))


def _appearance(item: dict[str, Any]) -> str | None:
    for key in ("firstAppearance", "appearance"):
        node = item.get(key)
        for entry in node if isinstance(node, list) else [node]:
            url = entry.get("url") if isinstance(entry, dict) else entry
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                return url
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _required(row: dict[str, str], name: str) -> str:
    value = _text(row.get(name))
    if value is None:
        raise _RowError(f"no {name}")
    return value


def _split(value: str | None, separator: str) -> list[str]:
    if not value:
        return []
    return list(dict.fromkeys(p.strip() for p in value.split(separator) if p.strip()))


def _dmy(value: str) -> str:
    match = _DMY_DATE.match(value.strip())
    if not match:
        raise _RowError(f"date {value.strip()[:30]!r} is not DD.MM.YYYY")
    day, month, year = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise _RowError(f"date {value.strip()!r} does not exist")
    return f"{year:04d}-{month:02d}-{day:02d}"


def _iso(value: str) -> str:
    value = value.strip()
    if not _ISO_DATE.match(value):
        raise _RowError(f"date {value[:30]!r} is not YYYY-MM-DD")
    month, day = int(value[5:7]), int(value[8:10])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise _RowError(f"date {value[:10]!r} does not exist")
    return value[:10]


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
