"""What a batch run reads: the sources ``analyze`` accepts, streamed, and a cheap count of them
for the progress bar's ETA."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from spinlens.ingest import iter_documents
from spinlens.ingest.feeds import PoliteFetcher, iter_web_source
from spinlens.ingest.files import DEFAULT_MAX_BYTES, iter_directory_paths
from spinlens.model import Document, Failure


def iter_sources(
    sources: Sequence[str], *, allow_private: bool = False, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[Document | Failure]:
    """Documents and failures one at a time, in the order of ``sources`` (never all at once).
    A URL that is a feed or a sitemap expands into its pages, fetched politely."""
    fetcher = PoliteFetcher(allow_private=allow_private, max_bytes=max_bytes)
    for source in sources:
        if source.lower().startswith(("http://", "https://")):
            yield from iter_web_source(source, fetcher)
        else:
            yield from iter_documents([source], allow_private=allow_private, max_bytes=max_bytes)


def count_documents(sources: Sequence[str]) -> int | None:
    """About how many documents ``sources`` hold, without reading a page or fetching a URL
    (for the ETA); None when that cannot be known cheaply (a WARC, a feed, stdin)."""
    total = 0
    for source in sources:
        path = Path(source)
        name = path.name.lower()
        if source == "-" or "://" in source or name.endswith((".warc", ".warc.gz")):
            return None
        try:
            if path.is_dir():
                total += sum(1 for _ in iter_directory_paths(path))
            elif name.endswith(".jsonl"):
                with path.open("rb") as f:
                    total += sum(1 for line in f if line.strip())
            else:
                total += 1
        except OSError:
            total += 1  # it will be one failure
    return total
