"""What a user hands a face of spinlens (the web app, the API, the Python API) -> a Document.

``document_of`` is the one function every face calls, and it reads files exactly as the
command line does (``ingest.documents``), so one input gives one article wherever it came in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from spinlens.config import DEFAULT_MAX_BYTES
from spinlens.errors import IngestError
from spinlens.ingest.documents import document_from_bytes, document_from_text
from spinlens.ingest.files import too_large
from spinlens.ingest.web import DEFAULT_TIMEOUT, fetch_url
from spinlens.model import Document, Source

SubmissionKind = Literal["url", "html", "text", "file"]

# How a file handed over without a name is named in reports and errors.
UNNAMED_FILE = "uploaded file"


def document_of(
    kind: SubmissionKind,
    content: str | bytes,
    *,
    name: str | None = None,
    content_type: str | None = None,
    allow_private: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
    fetch: Callable[..., Document] = fetch_url,
) -> Document:
    """The Document of one submission, or IngestError with one line saying why not.

    - ``url``: the page, fetched only through ``fetch`` (the SSRF-guarded fetcher);
    - ``file``: bytes with their file ``name`` and, when known, ``content_type``;
    - ``text`` and ``html``: pasted text or markup, read as a ``.txt`` or a ``.html`` file
      with the same content would be (``ingest.documents``).
    """
    if kind == "url":
        if not isinstance(content, str):
            raise IngestError("a URL must be text")
        return fetch(
            content.strip(), allow_private=allow_private, max_bytes=max_bytes, timeout=timeout
        )
    if kind == "file":
        data = content.encode("utf-8") if isinstance(content, str) else content
        if len(data) > max_bytes:
            raise too_large("the file", max_bytes)
        location = name or UNNAMED_FILE
        return document_from_bytes(
            data,
            source=Source(kind="file", location=location),
            name=name,
            content_type=content_type,
            what="the file",
        )
    text = content if isinstance(content, str) else content.decode("utf-8", errors="replace")
    if len(text) > max_bytes:
        raise too_large(f"the pasted {kind}", max_bytes)
    what = "the pasted HTML" if kind == "html" else "the pasted text"
    return document_from_text(
        text,
        source=Source(kind="text", location=what.removeprefix("the ")),
        declared="text/html" if kind == "html" else "text/plain",
        what=what,
    )
