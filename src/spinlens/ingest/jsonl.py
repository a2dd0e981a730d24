"""JSON Lines crawls: one object a line, ``{"url": ..., "html": ...}`` or ``{"text": ...}``.

``url`` is optional (pasted text has none); when a line has both ``html`` and ``text``, the HTML
wins because it carries the title, author and date. Blank lines are skipped. Each bad line is
a Failure with its line number and the other lines go on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from spinlens.errors import IngestError
from spinlens.ingest.documents import document_from_text
from spinlens.ingest.files import DEFAULT_MAX_BYTES, too_large
from spinlens.model import Document, Failure, MediaType, Source

_CHUNK = 1 << 16


def iter_jsonl(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document | Failure]:
    """One Document (or Failure) per non-blank line; the file is streamed, never read whole."""
    with path.open("rb") as f:
        for number, line in enumerate(_lines(f, max_bytes), start=1):
            location = f"{path}#L{number}"
            try:
                if line is None:
                    raise too_large("the line", max_bytes)
                if not line.strip():
                    continue
                yield _document(line, location, first=number == 1)
            except IngestError as error:
                yield Failure(location=location, reason=str(error))


def _document(line: bytes, location: str, *, first: bool) -> Document:
    try:
        # JSON text is UTF-8 (RFC 8259); a BOM is tolerated at the start of the file only.
        record = json.loads(line.decode("utf-8-sig" if first else "utf-8"))
    except UnicodeDecodeError:
        raise IngestError("the line is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise IngestError(f"the line is not valid JSON ({error.msg})") from None
    except RecursionError:
        raise IngestError("the line is not valid JSON (nested too deeply)") from None
    if not isinstance(record, dict):
        raise IngestError("the line is not a JSON object")
    url = record.get("url")
    if url is not None and not isinstance(url, str):
        raise IngestError('"url" must be a string')
    declared: MediaType
    for key, declared in (("html", "text/html"), ("text", "text/plain")):
        body = record.get(key)
        if body is None:
            continue
        if not isinstance(body, str):
            raise IngestError(f'"{key}" must be a string')
        return document_from_text(
            body,
            source=Source(kind="jsonl", location=location),
            declared=declared,
            url=url,
            what=f'"{key}"',
        )
    raise IngestError('the object has neither "html" nor "text"')


def _lines(f: BinaryIO, max_bytes: int) -> Iterator[bytes | None]:
    """Lines of at most ``max_bytes``; None stands for an overlong line, which is skipped."""
    while line := f.readline(max_bytes + 1):
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while (rest := f.readline(_CHUNK)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield line
