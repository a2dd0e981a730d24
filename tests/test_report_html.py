"""The HTML report: highlights match the findings, hostile text stays text, nothing is loaded."""

from __future__ import annotations

import re

import lxml.html
import pytest

from spinlens.model import Analysis, NarrativeMatch, Precedent, Span
from spinlens.report import IndexEntry, render, render_index
from spinlens.techniques.taxonomy import BY_NAME
from tests.test_reports import TEXT, bare_analysis, finding, make_analysis

CASE_URL = "https://euvsdisinfo.eu/report/nato-provoked"


def parse(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def marks_of(doc: lxml.html.HtmlElement, index: int) -> list[lxml.html.HtmlElement]:
    return [
        m
        for m in doc.xpath("//div[@class='article-text']//mark[@data-findings]")
        if str(index) in m.get("data-findings").split()
    ]


def test_every_finding_is_highlighted_with_its_technique_and_exact_text() -> None:
    analysis = make_analysis()
    doc = parse(render(analysis, "html"))
    for i, f in enumerate(analysis.techniques):
        marks = marks_of(doc, i)
        assert marks, f"finding {i} ({f.technique}) has no highlight"
        assert "".join(m.text_content() for m in marks) == f.text
        for m in marks:
            assert f.technique in m.get("data-techniques").split()
            tip = m.get("data-tip")
            assert tip == m.get("title")
            label = BY_NAME[f.technique].label
            assert f"{label} · score {f.score:.2f}" in tip
            assert BY_NAME[f.technique].definition in tip


def test_a_finding_across_paragraphs_is_highlighted_in_each() -> None:
    crossing = finding("traitors.\n\nExperts say", "Doubt", 0.3)
    analysis = make_analysis(findings=[crossing], narratives=[])
    doc = parse(render(analysis, "html"))
    marks = marks_of(doc, 0)
    assert len(marks) == 3  # end of one paragraph, the blank line, start of the next
    assert "".join(m.text_content() for m in marks) == crossing.text
    assert len({m.getroottree().getpath(m.getparent()) for m in marks}) == 3


def test_overlapping_spans_of_different_techniques_both_show() -> None:
    analysis = make_analysis()
    doc = parse(render(analysis, "html"))
    # "never surrender" is both Flag-Waving and Loaded_Language.
    both = [m for m in doc.xpath("//mark") if m.text_content() == "never surrender"]
    assert len(both) == 1
    assert set(both[0].get("data-techniques").split()) == {"Flag-Waving", "Loaded_Language"}
    style = both[0].get("style")
    assert BY_NAME["Flag-Waving"].colour in style and BY_NAME["Loaded_Language"].colour in style


def test_article_text_is_reproduced_exactly_with_paragraphs() -> None:
    doc = parse(render(make_analysis(), "html"))
    (article,) = doc.xpath("//div[@class='article-text']")
    assert article.text_content() == TEXT
    assert article.get("lang") == "en"
    paragraphs = article.xpath("p[contains(@class, 'para') and not(contains(@class, 'blank'))]")
    assert [p.text_content().strip() for p in paragraphs] == [
        line for line in TEXT.split("\n") if line.strip()
    ]


def test_legend_counts_and_definitions() -> None:
    doc = parse(render(make_analysis(), "html"))
    legend = {li.get("data-technique"): li for li in doc.xpath("//ul[@class='legend']/li")}
    assert set(legend) == {
        "Flag-Waving",
        "Loaded_Language",
        "Name_Calling,Labeling",
        "Bandwagon,Reductio_ad_hitlerum",
        "Slogans",
    }
    loaded = legend["Loaded_Language"]
    assert loaded.xpath("string(.//*[contains(@class, 'count')])") == "2"
    assert BY_NAME["Loaded_Language"].definition in loaded.text_content()
    assert BY_NAME["Loaded_Language"].colour in loaded.xpath(
        "string(.//span[@class='chip']/@style)"
    )


def test_narrative_panel_links_evidence_and_case() -> None:
    analysis = make_analysis()
    doc = parse(render(analysis, "html"))
    (panel,) = doc.xpath("//section[@id='narratives']")
    text = panel.text_content()
    for part in (
        "NATO provoked the war in Ukraine",
        "euvsdisinfo",
        "War in Ukraine",
        "2022-03-01",
        "0.74",
        "defensive alliance",
    ):
        assert part in text
    assert panel.xpath("//a[@class='case']/@href") == [CASE_URL]
    (evidence_link,) = panel.xpath(".//div[@class='evidence']//a")
    assert evidence_link.get("href") == "#ev-0-0"
    assert evidence_link.text_content() == "“NATO provoked the conflict in Ukraine”"
    # The target exists in the article, right before the underlined evidence passage.
    (anchor,) = doc.xpath("//div[@class='article-text']//span[@id='ev-0-0']")
    evidence = anchor.getnext()
    assert "ev" in evidence.get("class").split()
    assert evidence.text_content() == "NATO provoked the conflict in Ukraine"


def test_every_passage_link_has_a_target() -> None:
    doc = parse(render(make_analysis(), "html"))
    ids = set(doc.xpath("//@id"))
    internal = [h[1:] for h in doc.xpath("//a/@href") if h.startswith("#")]
    assert len(internal) == 6 + 1  # six passages, one evidence link
    assert set(internal) <= ids


PAYLOAD = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def hostile_analysis() -> Analysis:
    text = f"Intro. {PAYLOAD} and more {PAYLOAD}\nsecond line"
    narrative = NarrativeMatch(
        claim_id=f"id{PAYLOAD}",
        title=f"claim {PAYLOAD}",
        catalogue=PAYLOAD,
        family=PAYLOAD,
        date=PAYLOAD,
        score=0.5,
        evidence=[Span(start=7, end=7 + len(PAYLOAD))],
        url="javascript:alert(1)",
        disproof=f"disproof {PAYLOAD}",
        precedents=[
            Precedent(
                claim_id=PAYLOAD,
                title=f"precedent {PAYLOAD}",
                catalogue=PAYLOAD,
                score=0.5,
                date=PAYLOAD,
                url="javascript:alert(3)",
                disproof=f"debunk {PAYLOAD}",
            )
        ],
    )
    analysis = make_analysis(
        text=text,
        findings=[
            finding(PAYLOAD, "Loaded_Language", 0.9, text),
            finding("more", PAYLOAD, 0.4, text),
        ],
        narratives=[narrative],
        title=f"title {PAYLOAD}",
        author=PAYLOAD,
        site=PAYLOAD,
        date=PAYLOAD,
        language=PAYLOAD,
        url="javascript:alert(1)",
    )
    analysis.source.location = "javascript:alert(2)"
    analysis.warnings = [PAYLOAD]
    analysis.models = {"techniques": PAYLOAD}
    return analysis


def test_hostile_text_is_escaped_everywhere() -> None:
    html = render(hostile_analysis(), "html")
    doc = parse(html)
    assert not doc.xpath("//script | //img | //iframe | //object | //embed")
    assert "<script" not in html.lower()
    assert not [a for el in doc.iter() for a in el.attrib if a.lower().startswith("on")]
    assert "javascript:" not in " ".join(doc.xpath("//@href | //@src | //@action"))
    assert doc.xpath("string(//h1)") == f"title {PAYLOAD}"
    assert doc.xpath("string(//h3)") == f"claim {PAYLOAD}"
    assert PAYLOAD in doc.xpath("string(//div[@class='disproof'])")
    assert f"precedent {PAYLOAD}" in doc.xpath("string(//div[@class='precedents'])")
    assert f"debunk {PAYLOAD}" in doc.xpath("string(//div[@class='precedents']//details)")
    assert PAYLOAD in doc.xpath("string(//div[@class='warnings'])")
    assert doc.xpath("string(//div[@class='article-text'])") == hostile_analysis().article.text
    assert not doc.xpath("//a[@class='case']")
    assert not doc.xpath("//@lang[. != 'en']")


def test_the_page_loads_nothing() -> None:
    html = render(make_analysis(), "html")
    doc = parse(html)
    assert not doc.xpath("//@src | //link | //script | //iframe | //object | //embed | //base")
    assert "@import" not in html and "url(" not in html
    # The only absolute links are the ones a reader may follow: the source and the case.
    external = [h for h in doc.xpath("//a/@href") if not h.startswith("#")]
    assert sorted(external) == [CASE_URL, "https://example.org/post"]
    # And no URL hides anywhere else (a style, a meta refresh...): each is a link or text.
    in_links = len(re.findall(r"https?://", " ".join(doc.xpath("//a/@href"))))
    in_text = len(re.findall(r"https?://", " ".join(doc.xpath("//text()"))))
    assert len(re.findall(r"https?://", html)) == in_links + in_text
    (csp,) = doc.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_no_findings_html() -> None:
    doc = parse(render(bare_analysis(), "html"))
    assert "No persuasion techniques found" in doc.xpath("string(//section[@id='article'])")
    assert not doc.xpath("//mark")
    assert doc.xpath("string(//h1)") == "Untitled article"
    assert "Narrative matching was not run" in doc.text_content()


@pytest.mark.parametrize("failure", [None, "fetch refused: 404"])
def test_index_page(failure: str | None) -> None:
    entries = [
        IndexEntry("https://example.org/a", "0001-<b>a</b>.html", f"A {PAYLOAD}", 4, 1),
        IndexEntry("javascript:alert(1)", "javascript:alert(1)", "B", 2, 0),
        IndexEntry("feed.xml#3", None, None, 0, 0, failure=failure),
    ]
    html = render_index(entries, "html")
    doc = parse(html)
    assert not doc.xpath("//script | //img | //b | //@src")
    hrefs = doc.xpath("//a/@href")
    assert "https://example.org/a" in hrefs
    assert "0001-%3Cb%3Ea%3C/b%3E.html" in hrefs
    assert "javascript%3Aalert%281%29" in hrefs  # a relative file name, not a script URL
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]
    rows = doc.xpath("//tbody/tr")
    assert len(rows) == 3
    assert rows[0].xpath("string(td[1])") == f"A {PAYLOAD}"
    assert [r.xpath("string(td[3])") for r in rows[:2]] == ["4", "2"]
    if failure:
        assert "Failed: fetch refused: 404" in rows[2].text_content()
        assert "2 reports written, 1 failed" in doc.text_content()


def test_a_stored_analysis_renders_the_same_after_the_models_change(tmp_path, monkeypatch):
    """Issue 16: the legend's validation F1 was read from the model files at render time, so a
    stored analysis looked different once the models changed or moved. It travels inside the
    analysis now (``model_scores``)."""
    from spinlens.techniques import detectors

    stored = make_analysis().model_copy(
        update={"models": {"techniques": "minilm-ptc@3", "narratives": "minilm+catalogue@1"}}
    )
    stored = Analysis.model_validate(
        {
            **stored.to_json_dict(),
            "model_scores": {"technique_f1": {"Loaded_Language": 0.123, "Slogans": 0.456}},
        }
    )
    before = render(stored, "html")
    legend = parse(before).xpath("//ul[contains(@class, 'legend')]")[0].text_content()
    assert "validation F1 0.12" in legend and "validation F1 0.46" in legend

    # The models move away (another SPINLENS_MODELS, e.g. after an upgrade): nothing changes.
    monkeypatch.setenv("SPINLENS_MODELS", str(tmp_path / "elsewhere"))
    for cached in (getattr(detectors, "validation_f1", None),):
        if cached is not None:
            cached.cache_clear()  # as in a new process
    assert render(stored, "html") == before
    assert render(Analysis.model_validate_json(stored.model_dump_json(by_alias=True)), "html") == (
        before
    )
