"""Web archives (.warc, .warc.gz): every successful HTML response record is a document.

Requests, metadata, revisits, non-HTML responses and non-2xx answers (redirects, error pages:
no article there) are skipped. A damaged record ends the file with one Failure; the documents
read before it stand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord

from spinlens.errors import IngestError
from spinlens.ingest.decode import decode_bytes, parse_content_type
from spinlens.ingest.files import DEFAULT_MAX_BYTES, read_capped
from spinlens.model import Document, Failure, Source

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def iter_warc(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document | Failure]:
    """Documents from ``path``, located as ``path#<record offset>`` (for ``warcio extract``)."""
    seen = found = 0
    with path.open("rb") as f:
        records = ArchiveIterator(f)
        while (record := _next_record(records, seen)) is not None:
            # warcio also reads the older ARC format, and takes many a text file for one.
            if record.format != "warc":
                raise _damaged(seen, records.offset)
            seen += 1
            if not _is_html_response(record):
                _check_whole(record, records)
                continue
            found += 1
            location = f"{path}#{records.offset}"
            try:
                document = _document(record, location, max_bytes)
            except IngestError as error:
                _check_whole(record, records)
                yield Failure(location=location, reason=str(error))
                continue
            # Checked before the document goes out: a record cut short is no article.
            _check_whole(record, records)
            yield document
        # warcio stops quietly at a record cut short; bytes left over mean the file was.
        if records.offset < os.fstat(f.fileno()).st_size:
            raise _damaged(seen, records.offset)
    if not found:
        raise IngestError("the WARC file holds no HTML response records")


def _next_record(records: ArchiveIterator, seen: int) -> ArcWarcRecord | None:
    try:
        return next(records, None)
    except Exception:
        # warcio meets damaged input with many exception types (ArchiveLoadFailed, zlib.error,
        # AttributeError on a missing header...); all of them mean the same thing here.
        raise _damaged(seen, records.offset) from None


def _check_whole(record: ArcWarcRecord, records: ArchiveIterator) -> None:
    """Raise when the file ends before the record's declared Content-Length: warcio then hands
    over what there is, and the article would be silently shortened."""
    while record.raw_stream.read(1 << 16):
        pass  # what the content stream left (a capped or refused record)
    if getattr(record.raw_stream, "limit", 0) > 0:
        raise IngestError(f"the WARC file is cut short inside the record at byte {records.offset}")


def _damaged(records_read: int, offset: int) -> IngestError:
    if not records_read:
        return IngestError("not a WARC file (it does not start with a WARC record)")
    return IngestError(f"the WARC file is damaged near byte {offset}")


def _is_html_response(record: ArcWarcRecord) -> bool:
    if record.rec_type != "response" or record.http_headers is None:
        return False
    status = record.http_headers.get_statuscode() or ""
    media_type, _ = parse_content_type(record.http_headers.get_header("Content-Type"))
    return status.startswith("2") and media_type in HTML_TYPES


def _document(record: ArcWarcRecord, location: str, max_bytes: int) -> Document:
    _, charset = parse_content_type(record.http_headers.get_header("Content-Type"))
    # content_stream() undoes chunked transfer and gzip/deflate/brotli content encodings
    # (and hands the raw bytes over when they are damaged).
    data = read_capped(record.content_stream(), max_bytes, what="the record")
    return Document(
        source=Source(kind="warc", location=location, fetched_at=_date(record)),
        body=decode_bytes(data, charset, is_html=True, what="the record"),
        media_type="text/html",
        url=record.rec_headers.get_header("WARC-Target-URI"),
    )


def _date(record: ArcWarcRecord) -> datetime | None:
    value = record.rec_headers.get_header("WARC-Date")
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
