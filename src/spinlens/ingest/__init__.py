"""Where documents come from: URLs, files, directories, JSON Lines, WARC archives, stdin.

``iter_documents`` turns what the user typed into Documents, one Failure per source (or per
record) that cannot be read, and never stops at a bad one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from spinlens.errors import IngestError
from spinlens.ingest.decode import decode_bytes
from spinlens.ingest.files import (
    DEFAULT_MAX_BYTES,
    STDIN_LOCATION,
    iter_directory,
    os_error_reason,
    read_file,
    read_stdin,
)
from spinlens.ingest.jsonl import iter_jsonl
from spinlens.ingest.submission import document_of
from spinlens.ingest.warc import iter_warc
from spinlens.ingest.web import check_url, fetch_url
from spinlens.model import Document, Failure

__all__ = [
    "DEFAULT_MAX_BYTES",
    "check_url",
    "decode_bytes",
    "document_of",
    "fetch_url",
    "iter_documents",
]

STDIN = "-"
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# "example.com/news/1": a web address typed without its scheme.
_BARE_DOMAIN = re.compile(r"^[\w-]+(\.[\w-]+)*\.[a-z]{2,}/", re.IGNORECASE)


def iter_documents(
    sources: Sequence[str],
    *,
    allow_private: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stdin: BinaryIO | None = None,
) -> Iterator[Document | Failure]:
    """One Document or Failure per document, in the order of ``sources``."""
    for source in sources:
        location = STDIN_LOCATION if source == STDIN else source
        try:
            yield from _iter_source(source, allow_private, max_bytes, stdin)
        except IngestError as error:
            yield Failure(location=location, reason=str(error))
        except OSError as error:
            yield Failure(location=location, reason=os_error_reason(error))


def _iter_source(
    source: str, allow_private: bool, max_bytes: int, stdin: BinaryIO | None
) -> Iterator[Document | Failure]:
    if source == STDIN:
        yield read_stdin(stdin or sys.stdin.buffer, max_bytes=max_bytes)
        return
    scheme = _SCHEME.match(source)
    if scheme and scheme.group().lower() in ("http:", "https:"):
        yield fetch_url(source, allow_private=allow_private, max_bytes=max_bytes)
        return
    path = Path(source)
    if not path.exists():
        if scheme and len(scheme.group()) > 2:  # "C:" is a drive, not a scheme
            raise IngestError(
                f"unsupported URL scheme '{scheme.group()[:-1].lower()}' "
                "(only http and https are fetched)"
            )
        hint = (
            " (for a web page, give the full URL: https://...)"
            if _BARE_DOMAIN.match(source)
            else ""
        )
        raise IngestError(f"no such file or directory{hint}")
    name = path.name.lower()
    if path.is_dir():
        yield from iter_directory(path, max_bytes=max_bytes)
    elif name.endswith(".jsonl"):
        yield from iter_jsonl(path, max_bytes=max_bytes)
    elif name.endswith((".warc", ".warc.gz")):
        yield from iter_warc(path, max_bytes=max_bytes)
    else:
        yield read_file(path, max_bytes=max_bytes)
