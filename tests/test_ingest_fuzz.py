"""Any bytes in, a Document or a one-line Failure out: never a traceback."""

from __future__ import annotations

import gzip
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from spinlens.errors import IngestError
from spinlens.ingest import iter_documents
from spinlens.ingest.decode import decode_bytes
from spinlens.model import Document, Failure

SUFFIXES = [".html", ".txt", ".jsonl", ".warc", ".warc.gz", ".dat"]

# Random bytes, and bytes that start like the formats the sources parse, so the fuzzer gets
# past the first check (a WARC header, gzip magic, a JSON object, markup, a BOM).
PREFIXES = [
    b"",
    b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 40\r\n\r\n",
    b"\x1f\x8b\x08\x00",
    b'{"url": "https://e.org", "html": "',
    b"<html><meta charset=",
    b"\xff\xfe",
]
data = st.builds(
    lambda prefix, rest: prefix + rest, st.sampled_from(PREFIXES), st.binary(max_size=2000)
)


@settings(max_examples=200, deadline=None)
@given(
    data=data,
    declared=st.none()
    | st.sampled_from(["utf-8", "cp1251", "utf-16", "nonsense", "base64", "idna"]),
    is_html=st.booleans(),
)
def test_decode_bytes_returns_text_or_one_line_error(
    data: bytes, declared: str | None, is_html: bool
) -> None:
    try:
        text = decode_bytes(data, declared, is_html=is_html)
    except IngestError as error:
        assert "\n" not in str(error) and str(error)
    else:
        assert text.strip() and "\x00" not in text and "\r" not in text


@settings(max_examples=200, deadline=None)
@given(data=data, suffix=st.sampled_from(SUFFIXES), gzipped=st.booleans())
def test_iter_documents_yields_documents_or_failures(
    data: bytes, suffix: str, gzipped: bool
) -> None:
    if gzipped:
        data = gzip.compress(data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        items = list(iter_documents([str(path), "-"], stdin=io.BytesIO(data), max_bytes=1500))
    assert items, "a source must never yield nothing"
    for item in items:
        assert isinstance(item, Document | Failure)
        if isinstance(item, Failure):
            assert item.reason and "\n" not in item.reason


@settings(max_examples=200, deadline=None)
@given(
    body=data,
    content_type=st.sampled_from(
        ["text/html", "text/html; charset=utf-16", "text/html; charset=x"]
    ),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "chunked"]),
    gzip_records=st.booleans(),
)
def test_warc_records_with_damaged_bodies_yield_documents_or_failures(
    body: bytes, content_type: str, encoding: str | None, gzip_records: bool
) -> None:
    headers = [("Content-Type", content_type)]
    if encoding == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
    elif encoding:
        headers.append(("Content-Encoding", encoding))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "crawl.warc"
        with path.open("wb") as f:
            writer = WARCWriter(f, gzip=gzip_records)
            record = writer.create_warc_record(
                "https://example.org/",
                "response",
                payload=io.BytesIO(body),
                http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1"),
            )
            writer.write_record(record)
        items = list(iter_documents([str(path)], max_bytes=1500))
    assert len(items) == 1 and isinstance(items[0], Document | Failure)
