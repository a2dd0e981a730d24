"""End to end in a real browser: Debian's Chromium, driven by Playwright, against a real
``spinlens serve`` (uvicorn on a free loopback port).

Skipped, saying why, when the playwright package or /usr/bin/chromium is missing (``make test``
installs chromium with apt-get). Screenshots are kept under test-artifacts/.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinlens.errors import SpinlensError
from spinlens.pipeline import Pipeline, default_pipeline
from spinlens.server import Settings, create_app
from spinlens.store import Store

from .conftest import CANONICAL_EXAMPLE, REPO, need_shared
from .test_server_api import ARTICLE, CLAIMS, PHRASES, phrase_pipeline

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium; make test does it)",
        allow_module_level=True,
    )


class LiveServer:
    """The app under uvicorn in a background thread, as ``spinlens serve`` runs it."""

    def __init__(self, pipeline: Pipeline, store: Store) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = create_app(Settings(), pipeline=pipeline, store=store)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1360, "height": 1000})
    pg = context.new_page()
    # A Content-Security-Policy violation or a failed asset shows up as a console error.
    pg.problems = []
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(m.text))
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    yield pg
    context.close()


def tooltip(page, mark) -> tuple[str, str]:
    """The hover tooltip: the report draws it as the mark's ::after box."""
    return page.evaluate(
        "m => { const s = getComputedStyle(m, '::after'); return [s.content, s.opacity]; }", mark
    )


def paste_and_analyse(page, server: LiveServer, text: str) -> None:
    page.goto(server.url + "/")
    page.fill("#text", text)
    page.click("#paste-form button[type=submit]")
    page.wait_for_url("**/analyses/*", timeout=60_000)


def test_paste_text_see_highlights_tooltip_and_narratives(page, tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with LiveServer(phrase_pipeline(), store) as server:
        paste_and_analyse(page, server, ARTICLE)

        highlighted = page.locator(".article-text mark.hl")
        assert set(PHRASES) <= set(highlighted.all_inner_texts())

        mark = page.locator(".article-text mark.hl", has_text="traitors").first
        assert tooltip(page, mark.element_handle())[1] == "0"  # hidden until hovered
        mark.hover()
        page.wait_for_function(
            "m => getComputedStyle(m, '::after').opacity === '1'", arg=mark.element_handle()
        )
        content, _ = tooltip(page, mark.element_handle())
        assert "Name calling" in content and "0.87" in content
        assert "label the audience fears" in content  # the technique's definition

        panel = page.locator("#narratives")
        (claim_id, title, disproof) = CLAIMS["financed from abroad"]
        assert title in panel.inner_text()
        assert disproof in panel.inner_text()
        assert "financed from abroad" in panel.locator(".evidence").inner_text()

        assert page.locator("#technique-chart g.bar").count() == len(set(PHRASES.values()))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-report.png"), full_page=True)

        page.click("nav >> text=History")
        page.select_option("#technique", "Appeal_to_Authority")
        page.click("#filters button")
        assert "Foreign hands behind the unrest" in page.locator("table.history").inner_text()
        page.select_option("#technique", "Slogans")
        page.click("#filters button")
        assert "No analysis matches these filters." in page.content()

        page.goto(server.url + "/docs")  # Swagger UI, from this server's own files
        page.wait_for_selector(".opblock", timeout=20_000)
        assert page.locator(".opblock").count() >= 4
    store.close()
    assert page.problems == []


def test_the_canonical_example_in_chromium(page, tmp_path: Path):
    example = need_shared(CANONICAL_EXAMPLE)
    try:
        pipeline = default_pipeline()
    except SpinlensError as error:
        pytest.skip(f"the shipped models cannot be loaded here: {error}")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with LiveServer(pipeline, store) as server:
        paste_and_analyse(page, server, example.read_text(encoding="utf-8"))
        assert "CSTO" in page.locator("h1").inner_text()
        marks = page.locator(".article-text mark.hl")
        assert marks.count() >= 3
        first = marks.first.element_handle()
        marks.first.hover()
        page.wait_for_function("m => getComputedStyle(m, '::after').opacity === '1'", arg=first)
        assert "score" in tooltip(page, first)[0]
        # The starter catalogue's foreign-funded-NGO narrative, with its evidence in the text.
        panel = page.locator("#narratives")
        assert page.locator("#narratives .narrative").count() >= 2
        assert "foreign-funded" in panel.inner_text()
        evidence = panel.locator(".evidence").all_inner_texts()
        assert any("financed from abroad" in passage for passage in evidence)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-canonical-example.png"), full_page=True)
    store.close()
    assert page.problems == []
