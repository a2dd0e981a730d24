"""Local sources: one file, a directory of pages, standard input."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from spinlens.config import DEFAULT_MAX_BYTES
from spinlens.errors import IngestError
from spinlens.ingest.documents import document_from_bytes
from spinlens.model import Document, Failure, Source

HTML_SUFFIXES = frozenset({".html", ".htm"})
TEXT_SUFFIXES = frozenset({".txt"})
# What a directory contributes: pages and plain text; anything else there is left alone.
DIRECTORY_SUFFIXES = HTML_SUFFIXES | TEXT_SUFFIXES

# How standard input is named in reports and failures.
STDIN_LOCATION = "<stdin>"

_CHUNK = 1 << 16


def format_size(n: int) -> str:
    """Decimal units, as users read file sizes: 10_000_000 -> "10 MB"."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def too_large(what: str, max_bytes: int) -> IngestError:
    return IngestError(f"{what} is larger than the {format_size(max_bytes)} limit")


def read_capped(stream: BinaryIO, max_bytes: int, *, what: str) -> bytes:
    """Read ``stream`` to its end, refusing (without reading further) past ``max_bytes``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(_CHUNK, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise too_large(what, max_bytes)
    return b"".join(chunks)


def read_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """One local file, read as every face of spinlens reads it (``document_from_bytes``)."""
    with path.open("rb") as f:
        info = os.fstat(f.fileno())
        # Regular files are refused by their size before any byte is read; pipes and devices
        # report no size, so the capped read guards them.
        if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
            raise too_large("the file", max_bytes)
        data = read_capped(f, max_bytes, what="the file")
    return document_from_bytes(
        data, source=Source(kind="file", location=str(path)), name=path.name, what="the file"
    )


def iter_directory(
    root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[Document | Failure]:
    """Every .html/.htm/.txt file under ``root``, in sorted path order; hidden entries skipped.
    A folder that cannot be listed and a special file (FIFO, device, socket: never opened, as
    reading one can block forever) are each one Failure."""
    entries = sorted(_walk(root), key=lambda entry: entry[0])
    if not entries:
        raise IngestError("the directory holds no .html, .htm or .txt files")
    for path, problem in entries:
        if problem is not None:
            yield Failure(location=str(path), reason=problem)
            continue
        try:
            yield read_file(path, max_bytes=max_bytes)
        except IngestError as error:
            yield Failure(location=str(path), reason=str(error))
        except OSError as error:
            yield Failure(location=str(path), reason=os_error_reason(error))


def read_stdin(stream: BinaryIO, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """Pasted text or HTML on standard input (HTML when it looks like markup)."""
    data = read_capped(stream, max_bytes, what="standard input")
    return document_from_bytes(
        data, source=Source(kind="text", location=STDIN_LOCATION), what="standard input"
    )


def os_error_reason(error: OSError) -> str:
    """``[Errno 13] Permission denied: 'x'`` -> ``cannot read it: permission denied``."""
    reason = (error.strerror or str(error)).lower()
    return f"cannot read it: {reason}"


def iter_directory_paths(root: Path) -> Iterator[Path]:
    """The files ``iter_directory`` reads (without the ones it reports), in no set order."""
    return (path for path, problem in _walk(root) if problem is None)


def _walk(root: Path) -> Iterator[tuple[Path, str | None]]:
    """(path, None) for each file to read; (path, reason) for what cannot be read."""
    unreadable: list[tuple[Path, str | None]] = []

    def note_unreadable(error: OSError) -> None:
        reason = (error.strerror or str(error)).lower()
        unreadable.append((Path(error.filename or root), f"cannot read the folder: {reason}"))

    # followlinks=False: a symlink loop or a link to / must not make a run endless.
    for dirpath, dirnames, filenames in os.walk(root, onerror=note_unreadable):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in DIRECTORY_SUFFIXES:
                path = Path(dirpath, name)
                yield path, _not_a_regular_file(path)
    yield from unreadable


def _not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` is skipped without opening it, or None for a regular file (or a link to one)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return os_error_reason(error)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        kind = "a named pipe (FIFO)"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "a special file"
    return f"skipped: {kind}, not a regular file"
