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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    bad_rows: list[BadRow] = field(default_factory=list)


class _RowError(ValueError):
    """A row that cannot become a claim; its message says why."""


def import_file(
    store: CatalogueStore, path: Path, format: str | None = None, catalogue: str | None = None
) -> ImportReport:
    """Read ``path`` and merge its claims into ``store`` (one transaction)."""
    fmt = format or detect_format(path)
    name = catalogue or default_catalogue(path, fmt)
    claims, bad_rows = read_claims(path, fmt, name)
    result = store.upsert(claims)
    return ImportReport(
        path=path,
        format=fmt,
        catalogue=name,
        read=len(claims),
        added=result.added,
        updated=result.updated,
        unchanged=result.unchanged,
        bad_rows=bad_rows,
    )


def default_catalogue(path: Path, format: str) -> str:
    """EUvsDisinfo and ClaimReview files go to their own catalogues; a team's CSV is named after
    its file."""
    return format if format != "csv" else slugify(path.stem) or "csv"


def detect_format(path: Path) -> str:
    text = _read_text(path)
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
    """Every good row of ``path`` as a claim, and the bad rows."""
    readers = {EUVSDISINFO: _read_euvsdisinfo, "claimreview": _read_claimreview, "csv": _read_csv}
    if format not in readers:
        raise CatalogueError(f"unknown catalogue format {format!r}: use {'|'.join(FORMATS)}")
    claims: list[Claim] = []
    bad: list[BadRow] = []
    for line, item in readers[format](path, catalogue):
        if isinstance(item, Claim):
            claims.append(item)
        else:
            bad.append(BadRow(line, item))
    if not claims and bad:
        raise CatalogueError(f"{path}: no claim could be read ({bad[0]})")
    return claims, bad


_Rows = Iterator[tuple[int, Claim | str]]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise CatalogueError(f"no such file: {path}") from exc
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise CatalogueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the line each starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CatalogueError(f"{path}: line {start}: {exc}") from exc


def _header(path: Path, delimiter: str) -> list[str]:
    first = _read_text(path).split("\n", 1)[0]
    return [h.strip().strip('"').casefold() for h in first.split(delimiter)]


def _read_euvsdisinfo(path: Path, catalogue: str) -> _Rows:
    semicolon = _header(path, ";")
    comma = _header(path, ",")
    if all(h in semicolon for h in _SEMICOLON_HEADER):
        yield from _rows(path, ";", catalogue, _semicolon_claim)
    elif all(h in comma for h in _COMMA_HEADER):
        yield from _rows(path, ",", catalogue, _comma_claim)
    else:
        raise CatalogueError(
            f"{path}: not an EUvsDisinfo export (expected the header "
            f"{';'.join(_SEMICOLON_HEADER)}... or {','.join(_COMMA_HEADER)})"
        )


def _rows(path: Path, delimiter: str, catalogue: str, make: Any) -> _Rows:
    records = _records(path, delimiter)
    _, header = next(records, (1, []))
    names = [h.strip().casefold() for h in header]
    for line, row in records:
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


def _read_csv(path: Path, catalogue: str) -> _Rows:
    first = _read_text(path).split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    if "text" not in _header(path, delimiter):
        raise CatalogueError(
            f"{path}: the header must name a 'text' column (and may name verdict, url, date, id)"
        )
    yield from _rows(path, delimiter, catalogue, _team_claim)


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


def _read_claimreview(path: Path, catalogue: str) -> _Rows:
    text = _read_text(path)
    try:
        documents = [(1, json.loads(text))]
    except json.JSONDecodeError:
        # JSON Lines: one document per line, so a bad line can be skipped on its own.
        documents = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                documents.append((number, json.loads(raw)))
            except json.JSONDecodeError as exc:
                yield number, f"not JSON: {exc.msg}"
    found = 0
    for line, document in documents:
        for review in _claim_reviews(document):
            found += 1
            try:
                yield line, _review_claim(review, catalogue)
            except _RowError as exc:
                # Line numbers say little inside one JSON document: count the reviews too.
                yield line, f"ClaimReview #{found}: {exc}"
    if documents and not found:
        raise CatalogueError(f"{path}: no schema.org ClaimReview object found")


def _claim_reviews(node: Any) -> Iterator[dict[str, Any]]:
    """ClaimReview objects anywhere in a JSON-LD document (lists, @graph, DataFeed items)."""
    if isinstance(node, list):
        for item in node:
            yield from _claim_reviews(item)
    elif isinstance(node, dict):
        kind = node.get("@type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "ClaimReview" in kinds:
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
