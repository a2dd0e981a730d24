"""Decoded bytes or text -> a Document: the one place that decides HTML or plain text.

Every way in calls these: a file on the command line, standard input, an upload or a paste in
the web app or the API, a fetched page, a JSON Lines record. So one input is read one way,
whoever received it.

HTML or plain text: what the name or Content-Type declares is a hint, the content decides.

- Declared plain text (a ``.txt`` name, ``text/plain``) is plain text, markup quoted in it
  included, unless it starts like a whole web page (a doctype, ``<html>``, ``<head>``,
  ``<body>``): a page saved as ``notes.txt`` is still a page.
- Declared HTML (a ``.html`` name, ``text/html``, the API's ``html`` field) is HTML when it
  holds any markup, a fragment such as ``<em>Breaking:</em> ...`` included; without a single
  tag it is plain text (read as HTML, its line breaks would be lost).
- Undeclared (standard input, a paste, a file without a known suffix) is HTML when it starts
  like markup (a doctype or a common element: ``<html>``, ``<p>``, ``<div>``...).
"""

from __future__ import annotations

import re

from spinlens.ingest.decode import (
    check_text,
    decode_bytes,
    looks_like_html,
    parse_content_type,
)
from spinlens.model import Document, MediaType, Source

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
TEXT_SUFFIXES = (".txt",)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain"})

# How a whole web page starts: what makes text declared plain HTML after all.
_PAGE_START = re.compile(r"<(!doctype\s+html|html|head|body)\b", re.IGNORECASE)
# A tag, end tag or comment anywhere: markup, in a text declared to be HTML.
_MARKUP = re.compile(r"<(?:/?[a-z][a-z0-9-]*(?:\s[^<>]*)?/?>|!--)", re.IGNORECASE)
# How far the bytes are looked at, before decoding, for a page's start (tags are ASCII).
_SNIFF_BYTES = 4096


def declared_media_type(
    name: str | None = None, content_type: str | None = None
) -> MediaType | None:
    """What the Content-Type, else the name's suffix, says the content is; None: nothing."""
    media_type, _ = parse_content_type(content_type)
    if media_type in HTML_TYPES:
        return "text/html"
    if media_type in TEXT_TYPES:
        return "text/plain"
    lowered = (name or "").lower()
    if lowered.endswith(HTML_SUFFIXES):
        return "text/html"
    if lowered.endswith(TEXT_SUFFIXES):
        return "text/plain"
    return None


def media_type_of(body: str, declared: MediaType | None = None) -> MediaType:
    """HTML or plain text for decoded ``body`` (see the module's docstring)."""
    if declared == "text/plain":
        head = body[:_SNIFF_BYTES].lstrip("\ufeff \t\r\n")
        return "text/html" if _PAGE_START.match(head) else "text/plain"
    if declared == "text/html":
        return "text/html" if _MARKUP.search(body) else "text/plain"
    return "text/html" if looks_like_html(body) else "text/plain"


def document_from_bytes(
    data: bytes,
    *,
    source: Source,
    name: str | None = None,
    content_type: str | None = None,
    charset: str | None = None,
    url: str | None = None,
    what: str = "the file",
) -> Document:
    """The Document of ``data`` named ``name`` (a file name, for its suffix) and sent with
    ``content_type`` (a Content-Type header's value) or ``charset``, which wins over the
    header's; raise IngestError (naming ``what``) for empty, binary or undecodable data. The
    caller bounds the size."""
    declared = declared_media_type(name, content_type)
    charset = charset or parse_content_type(content_type)[1]
    # A <meta charset> is looked for in what may be HTML: declared so, or starting like it.
    maybe_html = declared == "text/html" or looks_like_html(
        data[:_SNIFF_BYTES].decode("latin-1")  # latin-1 never fails; tags are ASCII
    )
    body = decode_bytes(data, charset, is_html=maybe_html, what=what)
    return Document(source=source, body=body, media_type=media_type_of(body, declared), url=url)


def document_from_text(
    text: str,
    *,
    source: Source,
    declared: MediaType | None = None,
    url: str | None = None,
    what: str = "the pasted text",
) -> Document:
    """The Document of already decoded ``text`` (pasted, or a JSON string); raise IngestError
    (naming ``what``) when it is empty or binary junk."""
    body = check_text(text, what=what)
    return Document(source=source, body=body, media_type=media_type_of(body, declared), url=url)
