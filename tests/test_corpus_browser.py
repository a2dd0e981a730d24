"""The corpus dashboard in a real browser: Debian's Chromium, driven by Playwright, opens the
page ``spinlens corpus report`` writes and the web app's /corpus from a real server (uvicorn,
as ``spinlens serve`` runs it), checks that their charts are drawn and keeps screenshots under
test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spinlens.corpus.data import read_folder
from spinlens.corpus.queries import build
from spinlens.corpus.report import render
from spinlens.store import Store

from .conftest import REPO
from .corpus_fixtures import HOSTILE_TITLE, write_corpus

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium; make test does it)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def page() -> Iterator:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        pg.problems = []
        pg.requests = []
        pg.on("console", lambda m: m.type == "error" and pg.problems.append(m.text))
        pg.on("pageerror", lambda e: pg.problems.append(str(e)))
        pg.on("dialog", lambda d: (pg.problems.append(f"dialog: {d.message}"), d.dismiss()))
        pg.on("request", lambda r: pg.requests.append(r.url))
        yield pg
        browser.close()


def test_the_dashboard_draws_its_charts(page, tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "run")
    report = tmp_path / "report.html"
    report.write_text(render(build(read_folder(str(folder))), title="Test corpus"))
    page.goto(report.as_uri())

    charts = page.locator("svg.chart")
    assert charts.count() == 4
    for name in (
        "techniques-by-site",
        "techniques-over-time",
        "narratives-over-time",
        "narratives-by-site",
    ):
        chart = page.locator(f"svg.chart[data-chart={name}]")
        box = chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100, name
    # Marks are drawn with real sizes: 4 sites × 4 techniques, one bar per technique and day.
    heat = page.locator("svg[data-chart=techniques-by-site] g.cell rect")
    assert heat.count() == 16
    bars = page.locator("svg[data-chart=techniques-over-time] rect.bar")
    assert bars.count() == 5  # (day, technique) pairs of the dated articles
    heights = [bars.nth(i).bounding_box()["height"] for i in range(bars.count())]
    assert min(heights) > 5
    legend = page.locator("svg[data-chart=narratives-over-time] g.legend").all_text_contents()
    assert any("rigged" in text for text in legend)
    tooltip = page.locator("svg[data-chart=techniques-by-site] g.cell rect title").first
    assert "articles" in tooltip.text_content()

    rows = page.locator("#most-manipulative tbody tr")
    assert rows.count() == 6
    assert HOSTILE_TITLE in page.locator("#most-manipulative").inner_text()  # shown as text
    assert page.problems == []  # no script ran, no asset was refused
    assert page.requests == [report.as_uri()]  # nothing fetched but the page itself

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "corpus-report.png"), full_page=True)


def test_the_web_apps_corpus_page(page, tmp_path: Path) -> None:
    from .test_browser import LiveServer
    from .test_corpus_web import XSS_TITLE, fill
    from .test_server_api import phrase_pipeline

    store = fill(Store(f"sqlite:///{tmp_path / 'store.db'}"))
    page.problems.clear()  # the page is shared by the module's tests
    page.requests.clear()
    with LiveServer(phrase_pipeline(), store) as server:
        page.goto(server.url + "/history")
        page.click("nav >> text=Corpus")
        page.wait_for_url("**/corpus")
        assert page.locator("svg.chart").count() == 4
        for chart in page.locator("svg.chart").all():
            box = chart.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 100
        # 4 sites (one unknown) × 4 techniques; one bar per (day, technique) with spans, every
        # stored analysis being dated (article 5 by the day it was analysed).
        assert page.locator("svg[data-chart=techniques-by-site] g.cell rect").count() == 16
        assert page.locator("svg[data-chart=techniques-over-time] rect.bar").count() == 6
        # The linked stylesheet applies (a policy that refused it would leave a console error).
        display = page.evaluate("getComputedStyle(document.querySelector('.corpus .numbers'))"
                                ".display")  # fmt: skip
        assert display == "flex"
        table = page.locator("#most-manipulative")
        assert XSS_TITLE in table.inner_text()  # shown as text, never run
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "corpus-web.png"), full_page=True)

        # The filters are a plain GET form.
        page.select_option("select[name=site]", "a.example")
        page.fill("input[name=since]", "2026-01-01")
        page.fill("input[name=until]", "2026-01-31")
        page.click("form.filters button")
        page.wait_for_url("**/corpus?site=a.example&since=2026-01-01&until=2026-01-31")
        numbers = page.locator(".corpus .numbers").inner_text()
        assert "2\narticles" in numbers and "4\ntechnique spans" in numbers
        # The most manipulative article opens its report in the app.
        table.locator("a").first.click()
        page.wait_for_url(f"**/analyses/{1:064x}")
        assert "Stored 1" in page.locator("h1").first.inner_text()
    store.close()
    assert page.problems == []
    assert all(url.startswith(server.url) for url in page.requests)  # nothing from elsewhere
