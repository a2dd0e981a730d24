"""One input, one article: the command line and the server read the same tricky inputs alike.

Each input goes through the real CLI (``spinlens analyze FILE... --format json``), through the
web app's upload form, and pasted through the REST API (into ``text`` or ``html``, where a user
would paste it); all three must give the same article text and title, or refuse it for the
same reason.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spinlens.pipeline import Pipeline
from spinlens.server import Settings, create_app
from spinlens.store import Store

TITLE = "Foreign hands behind the unrest in the capital"
PARAGRAPHS = [
    "The shameful riots in the capital did not start by themselves. The so-called activists "
    "were financed from abroad by Western foundations, as every honest citizen already knows.",
    "Officials said that the situation is now under control and that the streets are calm "
    "again, while the investigation into who organised the violence continues.",
]
PLAIN = TITLE + "\n\n" + "\n\n".join(PARAGRAPHS) + "\n"
RUSSIAN = (
    "Иностранные руки за беспорядками в столице\n\n"
    "Позорные беспорядки в столице не начались сами по себе. Так называемые активисты "
    "финансировались из-за рубежа западными фондами, как уже знает каждый честный гражданин.\n"
)
PAGE = (
    f"<!DOCTYPE html><html><head><title>{TITLE}</title></head><body><nav>Home | News</nav>"
    f"<article><h1>{TITLE}</h1>" + "".join(f"<p>{p}</p>" for p in PARAGRAPHS) + "</article>"
    "<footer>© 2024 The Daily Example</footer></body></html>"
)
CP1252_PAGE = PAGE.replace("<head>", "<head><meta charset='windows-1252'>").replace(
    "Officials", "Café officials"
)


@dataclass(frozen=True)
class Case:
    name: str  # the file's name: its suffix is part of the trick
    data: bytes
    # What a user pastes instead, and into which field; None: nothing one could paste.
    paste: tuple[str, str] | None


CASES = [
    # A whole page saved with the wrong suffix is still a page.
    Case("page-saved-as-notes.txt", PAGE.encode(), ("text", PAGE)),
    # Fragments of HTML named .html: markup, not text with tags in it.
    Case(
        "fragment.html",
        ("<section>" + "".join(f"<p>{p}</p>\n" for p in PARAGRAPHS) + "</section>").encode(),
        ("html", "<section>" + "".join(f"<p>{p}</p>\n" for p in PARAGRAPHS) + "</section>"),
    ),
    Case(
        "inline-fragment.html",
        ("<b>Breaking:</b> " + " ".join(PARAGRAPHS)).encode(),
        ("html", "<b>Breaking:</b> " + " ".join(PARAGRAPHS)),
    ),
    # Markup quoted in a text file stays text; a .html file without a tag is text too.
    Case(
        "quoted-markup.txt",
        ("<p>is how a paragraph starts in HTML.</p>\n\n" + PLAIN).encode(),
        ("text", "<p>is how a paragraph starts in HTML.</p>\n\n" + PLAIN),
    ),
    Case("plain-text.html", PLAIN.encode(), ("html", PLAIN)),
    # Encodings: a BOM (pasted by a client that read the file without decoding it), cp1251
    # without any declaration, UTF-16 without a BOM (Windows tools), cp1252 declared in <meta>.
    Case("bom.txt", b"\xef\xbb\xbf" + PLAIN.encode(), ("text", "\ufeff" + PLAIN)),
    Case("russian-cp1251.txt", RUSSIAN.encode("cp1251"), ("text", RUSSIAN)),
    Case("utf16-no-bom.txt", PLAIN.encode("utf-16-le"), ("text", PLAIN)),
    Case("cp1252-meta.html", CP1252_PAGE.encode("cp1252"), ("html", CP1252_PAGE)),
    Case("windows-crlf.txt", PLAIN.replace("\n", "\r\n").encode(), ("text", PLAIN)),
    # A page in a file without a suffix: its content decides.
    Case("saved-page", PAGE.encode(), ("html", PAGE)),
    # Nothing to read.
    Case("empty.txt", b"", ("text", "")),
    Case("blank.txt", b" \n\t \r\n", ("text", " \n\t \n")),
    Case("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8, None),
]


@dataclass(frozen=True)
class Outcome:
    title: str | None = None
    text: str | None = None
    refused: str | None = None  # the reason, with the input's name ("the file") left out


def refused(reason: str) -> Outcome:
    for subject in ("the file", "the pasted text", "the pasted HTML"):
        reason = reason.replace(subject, "it")
    return Outcome(refused=reason)


def read(analysis: dict) -> Outcome:
    return Outcome(title=analysis["article"]["title"], text=analysis["article"]["text"])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    paths = {}
    for case in CASES:
        paths[case.name] = folder / case.name
        paths[case.name].write_bytes(case.data)
    return paths


@pytest.fixture(scope="module")
def by_cli(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case through one run of the real command line."""
    home = tmp_path_factory.mktemp("cli-home")
    run = subprocess.run(
        [sys.executable, "-m", "spinlens", "analyze", *map(str, files.values())]
        + ["--format", "json", "--techniques-model", "baseline", "--no-narratives"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SPINLENS_HOME": str(home), "COLUMNS": "10000"},
    )
    assert run.returncode in (0, 2), run.stderr
    outcomes = {}
    for line in run.stdout.splitlines():
        analysis = json.loads(line)
        outcomes[Path(analysis["source"]["location"]).name] = read(analysis)
    for line in run.stderr.splitlines():
        if line.startswith("error: "):
            location, _, reason = line.removeprefix("error: ").partition(": ")
            # Errors name the file as it was given: here a path, in the server its name.
            name = Path(location).name
            outcomes[name] = refused(reason.replace(location, name))
    assert set(outcomes) == set(files), run.stderr
    return outcomes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The real app (no models: the article is what is compared)."""
    folder = tmp_path_factory.mktemp("server")
    settings = Settings(requests_per_minute=10_000, analyses_per_minute=10_000)
    app = create_app(settings, pipeline=Pipeline(), store=Store(f"sqlite:///{folder}/s.db"))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


def by_upload(client: TestClient, case: Case) -> Outcome:
    posted = client.post(
        "/analyze",
        data={"kind": "file"},
        files={"file": (case.name, case.data, "application/octet-stream")},
        follow_redirects=False,
    )
    if posted.status_code == 422:
        shown = re.search(r'class="error".*?</strong>(.*?)</div>', posted.text, re.S)
        assert shown is not None, posted.text
        return refused(html.unescape(shown.group(1).strip()))
    assert posted.status_code == 303, posted.text
    analysis_id = posted.headers["location"].rsplit("/", 1)[1]
    return read(client.get(f"/api/v1/analyses/{analysis_id}").json())


def by_paste(client: TestClient, field: str, content: str) -> Outcome:
    posted = client.post("/api/v1/analyses", json={field: content})
    if posted.status_code == 422:
        return refused(posted.json()["error"]["message"])
    assert posted.status_code == 201, posted.text
    return read(posted.json())


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_cli_and_the_server_read_an_input_alike(
    case: Case, by_cli: dict[str, Outcome], server: TestClient
) -> None:
    from_cli = by_cli[case.name]
    assert by_upload(server, case) == from_cli
    if case.paste is not None:
        assert by_paste(server, *case.paste) == from_cli


@pytest.mark.slow
def test_what_the_tricky_inputs_read_as(by_cli: dict[str, Outcome]) -> None:
    """Agreeing is not enough: each reads as its user meant it."""
    for name in ("page-saved-as-notes.txt", "fragment.html", "inline-fragment.html"):
        text = by_cli[name].text or ""
        assert "<" not in text and "so-called activists" in text, name  # markup was read
    assert "Home | News" not in (by_cli["page-saved-as-notes.txt"].text or "")
    # Read as page text: the quoted line above the title is not part of the article.
    for name in (
        "quoted-markup.txt",
        "plain-text.html",
        "bom.txt",
        "utf16-no-bom.txt",
        "windows-crlf.txt",
    ):
        assert by_cli[name] == Outcome(title=TITLE, text=PLAIN.split("\n\n", 1)[1].strip()), name
    assert "финансировались из-за рубежа" in (by_cli["russian-cp1251.txt"].text or "")
    assert "Café officials" in (by_cli["cp1252-meta.html"].text or "")
    assert by_cli["empty.txt"] == by_cli["blank.txt"] == Outcome(refused="it is empty")
    assert by_cli["photo.png"] == Outcome(refused="it looks like binary data, not text")
