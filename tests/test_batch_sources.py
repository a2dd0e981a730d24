"""Sources that fail loudly (issue 17): each defect is one Failure with a clear reason, and the
rest of the corpus goes on."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from spinlens.extract import extract
from spinlens.ingest import iter_documents
from spinlens.model import Document, Failure, Source

PARAGRAPH = (
    "The minister said on Tuesday that the new rules on water prices would take effect in "
    "spring, after months of talks with the regional councils and the farmers' unions."
)


def _page(n: int) -> bytes:
    paragraphs = "".join(f"<p>{PARAGRAPH} (part {n}.{i})</p>" for i in range(20))
    return f"<html><head><title>Page {n}</title></head><body>{paragraphs}</body></html>".encode()


def _warc(path: Path, *, gzip_records: bool, pages: int = 2) -> bytes:
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=gzip_records)
        for n in range(pages):
            headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1"
            )
            record = writer.create_warc_record(
                f"https://example.org/{n}",
                "response",
                payload=io.BytesIO(_page(n)),
                http_headers=headers,
            )
            writer.write_record(record)
    return path.read_bytes()


# How far from the end to cut so that the cut falls inside the last record's page (the
# compressed page of the .gz is short: its text repeats).
@pytest.mark.parametrize(("name", "cut"), [("crawl.warc", 300), ("crawl.warc.gz", 60)])
def test_a_warc_cut_inside_its_last_record_is_a_failure_not_a_shortened_article(
    tmp_path: Path, name: str, cut: int
) -> None:
    path = tmp_path / name
    whole = _warc(path, gzip_records=name.endswith(".gz"))
    path.write_bytes(whole[: len(whole) - cut])
    items = list(iter_documents([str(path)]))
    documents = [i for i in items if isinstance(i, Document)]
    failures = [i for i in items if isinstance(i, Failure)]
    # The first page is whole and stands; the cut one is never passed on shortened.
    assert [d.url for d in documents] == ["https://example.org/0"]
    assert documents[0].body == _page(0).decode()
    assert len(failures) == 1
    assert failures[0].location == str(path)
    assert failures[0].reason.startswith("the WARC file is cut short inside the record at byte")


def test_a_whole_warc_still_reads_every_page(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    _warc(path, gzip_records=True, pages=3)
    items = list(iter_documents([str(path)]))
    assert all(isinstance(i, Document) for i in items) and len(items) == 3


def test_a_fifo_in_a_folder_is_skipped_with_a_reason_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_bytes(_page(1))
    fifo = tmp_path / "b.html"
    os.mkfifo(fifo)
    (tmp_path / "c.txt").write_text(PARAGRAPH, encoding="utf-8")
    items: list[Document | Failure] = []
    reader = threading.Thread(target=lambda: items.extend(iter_documents([str(tmp_path)])))
    reader.daemon = True
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():
        # Unblock the reader stuck in open() before failing, so the test run can end.
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("reading a folder that holds a FIFO blocked")
    assert [type(i).__name__ for i in items] == ["Document", "Failure", "Document"]
    failure = items[1]
    assert isinstance(failure, Failure) and failure.location == str(fifo)
    assert failure.reason == "skipped: a named pipe (FIFO), not a regular file"


def test_an_unreadable_subfolder_is_a_failure_and_the_rest_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores permission bits, so "cannot be listed" is simulated where os.walk lists.
    (tmp_path / "a.html").write_bytes(_page(1))
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "hidden.html").write_bytes(_page(2))
    (tmp_path / "z.txt").write_text(PARAGRAPH, encoding="utf-8")
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(iter_documents([str(tmp_path)]))
    assert [type(i).__name__ for i in items] == ["Document", "Failure", "Document"]
    assert items[1] == Failure(
        location=str(locked), reason="cannot read the folder: permission denied"
    )


@pytest.mark.parametrize("depth", [200, 300, 3000])
def test_a_paragraph_deep_in_nested_divs_is_found(depth: int) -> None:
    html = (
        "<html><head><title>Deep</title></head><body>"
        + "<div class='wrap'>" * depth
        + f"<p>{PARAGRAPH}</p><p>{PARAGRAPH} Again.</p>"
        + "</div>" * depth
        + "</body></html>"
    )
    document = Document(
        source=Source(kind="file", location="deep.html"), body=html, media_type="text/html"
    )
    article = extract(document)
    assert article.text == f"{PARAGRAPH}\n\n{PARAGRAPH} Again."
