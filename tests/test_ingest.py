"""Local sources: files, directories, stdin, JSON Lines, WARC archives, and decoding."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from spinlens.errors import IngestError
from spinlens.ingest import iter_documents
from spinlens.ingest.decode import decode_bytes, looks_like_html, parse_content_type
from spinlens.model import Document, Failure

# Written for these tests: a local news paragraph in Russian and in Japanese.
RUSSIAN = (
    "Вчера вечером в центре города прошёл митинг, на который собрались несколько сотен "
    "человек. Участники требовали от властей объяснить, почему ремонт моста через реку "
    "затянулся на три года, а смета выросла почти вдвое. Представитель мэрии заявил "
    "журналистам, что работы завершатся к концу осени, однако жители уже не верят обещаниям. "
    "«Нам говорят одно и то же каждый год», — сказала пенсионерка Анна Петровна, которая "
    "каждый день ездит через город в объезд."
)
JAPANESE = (
    "昨日の夕方、市の中心部で数百人が集まる集会が開かれた。参加者たちは、川に架かる橋の改修工事が"
    "なぜ三年も遅れ、費用がほぼ二倍に膨らんだのかを説明するよう市当局に求めた。市役所の担当者は"
    "記者団に対し、工事は秋の終わりまでに完了すると述べたが、住民たちはもはやその約束を信じていない。"
    "「毎年同じことを言われている」と、毎日遠回りして町を横切る年金生活者の女性は語った。"
)
ENGLISH = (
    "The council voted on Tuesday to close the old library, a decision residents called "
    "short-sighted. Opponents said the building had served the town for ninety years."
)
PAGE = f"<!DOCTYPE html><html><head><title>Vote</title></head><body><p>{ENGLISH}</p></body></html>"


def ingest(*sources: str, **kwargs: Any) -> list[Document | Failure]:
    return list(iter_documents(list(sources), **kwargs))


def only_document(items: list[Document | Failure]) -> Document:
    assert len(items) == 1 and isinstance(items[0], Document), items
    return items[0]


def only_failure(items: list[Document | Failure]) -> Failure:
    assert len(items) == 1 and isinstance(items[0], Failure), items
    return items[0]


# --- files -------------------------------------------------------------------------------


def test_html_file_is_html_with_its_path_as_location(tmp_path: Path) -> None:
    path = tmp_path / "vote.html"
    path.write_text(PAGE, encoding="utf-8")
    doc = only_document(ingest(str(path)))
    assert doc.media_type == "text/html"
    assert doc.body == PAGE
    assert doc.source.kind == "file"
    assert doc.source.location == str(path)


def test_txt_file_is_plain_text_even_when_it_holds_markup(tmp_path: Path) -> None:
    path = tmp_path / "notes.TXT"
    path.write_text("<p>Quoted markup</p> in a text file.\n", encoding="utf-8")
    doc = only_document(ingest(str(path)))
    assert doc.media_type == "text/plain"
    assert doc.body == "<p>Quoted markup</p> in a text file.\n"


def test_other_extensions_are_sniffed(tmp_path: Path) -> None:
    page = tmp_path / "saved.page"
    page.write_text(PAGE, encoding="utf-8")
    note = tmp_path / "README"
    note.write_text(ENGLISH, encoding="utf-8")
    png = tmp_path / "photo.jpg.bak"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    page_doc, note_doc, failure = ingest(str(page), str(note), str(png))
    assert isinstance(page_doc, Document) and page_doc.media_type == "text/html"
    assert isinstance(note_doc, Document) and note_doc.media_type == "text/plain"
    assert failure == Failure(location=str(png), reason="the file looks like binary data, not text")


def test_sources_keep_their_order_and_bad_ones_do_not_stop_the_rest(tmp_path: Path) -> None:
    good = tmp_path / "a.txt"
    good.write_text(ENGLISH, encoding="utf-8")
    missing = tmp_path / "missing.html"
    items = ingest(str(good), str(missing), "ftp://example.org/a", str(good))
    assert [type(item).__name__ for item in items] == ["Document", "Failure", "Failure", "Document"]
    assert items[1] == Failure(location=str(missing), reason="no such file or directory")
    assert items[2] == Failure(
        location="ftp://example.org/a",
        reason="unsupported URL scheme 'ftp' (only http and https are fetched)",
    )


def test_a_web_address_without_scheme_gets_a_hint() -> None:
    failure = only_failure(ingest("example.com/news/2024/vote"))
    assert failure.reason == (
        "no such file or directory (for a web page, give the full URL: https://...)"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text(ENGLISH, encoding="utf-8")
    path.chmod(0)
    assert only_failure(ingest(str(path))).reason == "cannot read it: permission denied"


def test_empty_and_blank_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b" \r\n\t\n")
    bom_only = tmp_path / "bom.txt"
    bom_only.write_bytes(b"\xef\xbb\xbf\n")
    items = ingest(str(empty), str(blank), str(bom_only))
    assert [item.reason for item in items if isinstance(item, Failure)] == ["the file is empty"] * 3


def test_a_huge_file_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.html"
    with path.open("wb") as f:
        f.truncate(50_000_000)  # sparse: instant, takes no disk
    tracemalloc.start()
    started = time.perf_counter()
    try:
        failure = only_failure(ingest(str(path)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert failure.reason == "the file is larger than the 10 MB limit"
    assert peak < 1_000_000
    assert time.perf_counter() - started < 1.0


def test_the_size_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(PAGE, encoding="utf-8")
    assert only_failure(ingest(str(path), max_bytes=100)).reason == (
        "the file is larger than the 100 bytes limit"
    )
    assert isinstance(only_document(ingest(str(path), max_bytes=len(PAGE))), Document)


# --- directories -------------------------------------------------------------------------


def test_directory_recursion_is_sorted_and_keeps_only_pages(tmp_path: Path) -> None:
    for name in [
        "b/z.txt",
        "b/a.HTM",
        "a.html",
        "c/d/e.txt",
        "b.txt",
        "notes.md",
        "c/image.png",
        ".git/x.html",
        ".hidden.html",
    ]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PAGE if ".htm" in name.lower() else ENGLISH, encoding="utf-8")
    items = ingest(str(tmp_path))
    docs = [item for item in items if isinstance(item, Document)]
    assert len(docs) == len(items)
    located = [Path(doc.source.location).relative_to(tmp_path).as_posix() for doc in docs]
    # Sorted by path components: the folder "b" comes before the file "b.txt".
    assert located == ["a.html", "b/a.HTM", "b/z.txt", "b.txt", "c/d/e.txt"]
    kinds = {(doc.source.kind, doc.media_type) for doc in docs}
    assert kinds == {("file", "text/html"), ("file", "text/plain")}


def test_a_bad_file_in_a_directory_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(ENGLISH, encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"")
    (tmp_path / "c.txt").write_text(ENGLISH, encoding="utf-8")
    items = ingest(str(tmp_path))
    assert [type(item).__name__ for item in items] == ["Document", "Failure", "Document"]
    assert items[1] == Failure(location=str(tmp_path / "b.txt"), reason="the file is empty")


def test_a_dangling_link_in_a_directory_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(ENGLISH, encoding="utf-8")
    (tmp_path / "b.html").symlink_to(tmp_path / "deleted.html")
    items = ingest(str(tmp_path))
    assert items[1] == Failure(
        location=str(tmp_path / "b.html"), reason="cannot read it: no such file or directory"
    )


def test_a_directory_without_pages_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    assert only_failure(ingest(str(tmp_path))).reason == (
        "the directory holds no .html, .htm or .txt files"
    )


# --- stdin -------------------------------------------------------------------------------


def test_stdin_html_and_plain_text() -> None:
    html = only_document(ingest("-", stdin=io.BytesIO(PAGE.encode())))
    assert (html.media_type, html.source.kind, html.source.location) == (
        "text/html",
        "text",
        "<stdin>",
    )
    text = only_document(ingest("-", stdin=io.BytesIO(ENGLISH.encode("cp1252"))))
    assert (text.media_type, text.body) == ("text/plain", ENGLISH)


def test_stdin_is_capped_while_reading() -> None:
    failure = only_failure(ingest("-", stdin=io.BytesIO(b"a" * 5000), max_bytes=1000))
    assert failure == Failure(
        location="<stdin>", reason="standard input is larger than the 1 kB limit"
    )


def test_empty_stdin_is_refused() -> None:
    assert only_failure(ingest("-", stdin=io.BytesIO(b""))).reason == "standard input is empty"


# --- JSON Lines --------------------------------------------------------------------------


def test_jsonl_lines_become_documents_and_bad_lines_failures(tmp_path: Path) -> None:
    path = tmp_path / "crawl.jsonl"
    lines = [
        json.dumps({"url": "https://example.org/1", "html": PAGE}),
        "{not json",
        json.dumps({"text": RUSSIAN}, ensure_ascii=False),
        "",
        json.dumps(["a", "list"]),
        json.dumps({"url": "https://example.org/5"}),
        json.dumps({"url": 5, "text": "x"}),
        json.dumps({"url": "https://example.org/7", "html": "   "}),
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + b'{"text": "caf\xe9"}\n')
    items = ingest(str(path))
    first, third = items[0], items[2]
    assert isinstance(first, Document) and isinstance(third, Document)
    assert (first.url, first.media_type, first.body) == ("https://example.org/1", "text/html", PAGE)
    assert (first.source.kind, first.source.location) == ("jsonl", f"{path}#L1")
    assert (third.url, third.media_type, third.body) == (None, "text/plain", RUSSIAN)
    assert items[1:2] + items[3:] == [
        Failure(
            location=f"{path}#L2",
            reason="the line is not valid JSON (Expecting property name enclosed in double quotes)",
        ),
        Failure(location=f"{path}#L5", reason="the line is not a JSON object"),
        Failure(location=f"{path}#L6", reason='the object has neither "html" nor "text"'),
        Failure(location=f"{path}#L7", reason='"url" must be a string'),
        Failure(location=f"{path}#L8", reason='"html" is empty'),
        Failure(location=f"{path}#L9", reason="the line is not valid UTF-8"),
    ]


def test_jsonl_overlong_line_is_skipped_and_line_numbers_stay_right(tmp_path: Path) -> None:
    path = tmp_path / "crawl.jsonl"
    long_line = json.dumps({"text": "word " * 50_000})
    short = json.dumps({"text": ENGLISH})
    path.write_text(f"{short}\n{long_line}\n{short}\n", encoding="utf-8")
    items = ingest(str(path), max_bytes=1000)
    assert items[1] == Failure(
        location=f"{path}#L2", reason="the line is larger than the 1 kB limit"
    )
    assert isinstance(items[2], Document) and items[2].source.location == f"{path}#L3"


# --- WARC --------------------------------------------------------------------------------


def _response(writer: WARCWriter, url: str, status: str, content_type: str, body: bytes) -> None:
    headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
    record = writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(body),
        http_headers=headers,
        warc_headers_dict={"WARC-Date": "2024-03-05T06:07:08Z"},
    )
    writer.write_record(record)


def _write_warc(path: Path, *, gzip_records: bool) -> list[int]:
    """An HTML page, an image, a 404 page, a request and a cp1251 page; returns record offsets."""
    offsets = []
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=gzip_records)
        for args in [
            ("https://example.org/vote", "200 OK", "text/html; charset=utf-8", PAGE.encode()),
            ("https://example.org/logo.png", "200 OK", "image/png", b"\x89PNG\r\n\x00\x00"),
            ("https://example.org/gone", "404 Not Found", "text/html", b"<p>Not found</p>"),
        ]:
            offsets.append(f.tell())
            _response(writer, *args)
        offsets.append(f.tell())
        request = writer.create_warc_record(
            "https://example.org/vote",
            "request",
            http_headers=StatusAndHeaders("GET /vote HTTP/1.1", [], is_http_request=True),
        )
        writer.write_record(request)
        offsets.append(f.tell())
        ru_page = f"<html><body><p>{RUSSIAN}</p></body></html>".encode("cp1251")
        _response(writer, "https://example.org/ru", "200 OK", "text/html", ru_page)
    return offsets


@pytest.mark.parametrize("name", ["crawl.warc", "crawl.warc.gz"])
def test_warc_html_responses_become_documents(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    offsets = _write_warc(path, gzip_records=name.endswith(".gz"))
    if name.endswith(".gz"):
        with gzip.open(path) as f:
            assert f.read(8) == b"WARC/1.0"
    items = ingest(str(path))
    assert len(items) == 2 and all(isinstance(item, Document) for item in items)
    vote, ru = items
    assert isinstance(vote, Document) and isinstance(ru, Document)
    assert (vote.url, vote.body, vote.media_type) == ("https://example.org/vote", PAGE, "text/html")
    assert vote.source.kind == "warc"
    assert vote.source.location == f"{path}#{offsets[0]}"
    assert vote.source.fetched_at == datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC)
    assert ru.source.location == f"{path}#{offsets[4]}"
    assert RUSSIAN in ru.body


def test_warc_without_html_and_non_warc_files_are_failures(tmp_path: Path) -> None:
    images = tmp_path / "images.warc"
    with images.open("wb") as f:
        _response(WARCWriter(f, gzip=False), "https://e.org/a.png", "200 OK", "image/png", b"x")
    not_warc = tmp_path / "page.warc.gz"
    not_warc.write_text(PAGE, encoding="utf-8")
    first, second = ingest(str(images), str(not_warc))
    assert first == Failure(
        location=str(images), reason="the WARC file holds no HTML response records"
    )
    assert second == Failure(
        location=str(not_warc), reason="not a WARC file (it does not start with a WARC record)"
    )


def test_truncated_warc_keeps_earlier_documents_and_reports_the_damage(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    offsets = _write_warc(path, gzip_records=True)
    path.write_bytes(path.read_bytes()[: offsets[4] + 40])
    items = ingest(str(path))
    assert isinstance(items[0], Document)
    assert items[-1] == Failure(
        location=str(path), reason=f"the WARC file is damaged near byte {offsets[4]}"
    )


# --- decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "codec"),
    [(RUSSIAN, "cp1251"), (JAPANESE, "shift_jis"), (JAPANESE, "euc-jp")],
)
def test_undeclared_legacy_encodings_are_detected(text: str, codec: str) -> None:
    assert decode_bytes(text.encode(codec), is_html=False) == text
    page = f"<html><head><title>x</title></head><body><p>{text}</p></body></html>"
    assert decode_bytes(page.encode(codec), is_html=True) == page


def test_undeclared_legacy_files_decode_through_iter_documents(tmp_path: Path) -> None:
    ru = tmp_path / "ru.txt"
    ru.write_bytes(RUSSIAN.encode("cp1251"))
    ja = tmp_path / "ja.html"
    ja.write_bytes(f"<html><body><p>{JAPANESE}</p></body></html>".encode("shift_jis"))
    ru_doc, ja_doc = ingest(str(ru), str(ja))
    assert isinstance(ru_doc, Document) and ru_doc.body == RUSSIAN
    assert isinstance(ja_doc, Document) and JAPANESE in ja_doc.body


def test_declared_charsets_are_honoured() -> None:
    # Short text that detection alone could misread: the declaration settles it.
    short = "Мир"
    assert decode_bytes(short.encode("koi8-r"), "koi8-r", is_html=False) == short
    meta = f'<html><head><meta charset="koi8-r"></head><body>{short}</body></html>'
    assert decode_bytes(meta.encode("koi8-r"), is_html=True) == meta
    http_equiv = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        f"</head><body>{short}</body></html>"
    )
    assert decode_bytes(http_equiv.encode("cp1251"), is_html=True) == http_equiv


def test_a_wrong_declaration_loses_to_the_bytes() -> None:
    data = RUSSIAN.encode("cp1251")
    assert decode_bytes(data, "utf-8", is_html=False) == RUSSIAN


def test_latin1_label_decodes_as_windows_1252_like_browsers() -> None:
    data = "\u201cQuoted\u201d \u2014 said the mayor.".encode("cp1252")
    assert (
        decode_bytes(data, "iso-8859-1", is_html=False)
        == "\u201cQuoted\u201d \u2014 said the mayor."
    )


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_byte_order_mark_wins_and_is_dropped(codec: str) -> None:
    data = RUSSIAN.encode(codec)  # these codecs write a BOM
    assert decode_bytes(data, "iso-8859-1", is_html=False) == RUSSIAN


def test_line_breaks_are_normalised_and_text_kept_otherwise() -> None:
    assert (
        decode_bytes(b"one\r\ntwo\rthree\n\tfour  ", is_html=False) == "one\ntwo\nthree\n\tfour  "
    )


def test_binary_junk_is_refused() -> None:
    rng = random.Random(7)
    with_nul = bytes(rng.randrange(256) for _ in range(4000))
    no_nul = bytes(rng.randrange(1, 256) for _ in range(4000))
    controls = bytes(rng.choice([1, 2, 3, 27, 127]) for _ in range(200)) + ENGLISH.encode()
    for data in (with_nul, no_nul, controls, b"PK\x03\x04\x14\x00\x00\x00"):
        with pytest.raises(IngestError, match=r"^the page looks like binary data, not text$"):
            decode_bytes(data, is_html=False, what="the page")


def test_a_stray_nul_deep_in_a_text_is_dropped() -> None:
    data = ENGLISH.encode() * 100 + b"\x00" + b" The end."
    assert decode_bytes(data, is_html=False) == ENGLISH * 100 + " The end."


def test_helpers() -> None:
    assert parse_content_type('text/HTML; Charset="UTF-8"') == ("text/html", "UTF-8")
    assert parse_content_type("text/plain") == ("text/plain", None)
    assert parse_content_type(None) == (None, None)
    assert looks_like_html("\n  <!doctype html><p>x</p>")
    assert looks_like_html("<div class=a>x</div>")
    assert not looks_like_html("a < b and <3 hearts")
