"""Reports: JSON (schema), terminal text, Markdown, the batch index and the span segmentation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import lxml.html
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from spinlens.errors import UsageError
from spinlens.model import (
    Analysis,
    Article,
    Finding,
    NarrativeMatch,
    Precedent,
    Source,
    Span,
    Summary,
)
from spinlens.report import FORMATS, IndexEntry, extension, render, render_index
from spinlens.report.json_report import schema_text
from spinlens.report.spans import segments, web_url

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "analysis.schema.json"

TEXT = (
    "Our brave nation will never surrender to these corrupt traitors.\n"
    "\n"
    "Experts say the so-called reforms are a disaster, and everyone knows it.\n"
    "NATO provoked the conflict in Ukraine, the minister said.\n"
    "Make our country great again!"
)


def finding(phrase: str, technique: str, score: float, text: str = TEXT) -> Finding:
    start = text.index(phrase)
    return Finding(
        start=start, end=start + len(phrase), technique=technique, score=score, text=phrase
    )


def make_analysis(
    text: str = TEXT,
    findings: list[Finding] | None = None,
    narratives: list[NarrativeMatch] | None = None,
    **article: str | None,
) -> Analysis:
    if findings is None:
        findings = [
            finding("Our brave nation will never surrender", "Flag-Waving", 0.81),
            finding("never surrender to these corrupt", "Loaded_Language", 0.66),
            finding("corrupt traitors", "Name_Calling,Labeling", 0.93),
            finding("so-called reforms are a disaster", "Loaded_Language", 0.88),
            finding("everyone knows it", "Bandwagon,Reductio_ad_hitlerum", 0.71),
            finding("Make our country great again!", "Slogans", 0.95),
        ]
    if narratives is None:
        start = text.index("NATO provoked") if "NATO provoked" in text else 0
        narratives = [
            NarrativeMatch(
                claim_id="euvs-4711",
                title="NATO provoked the war in Ukraine",
                catalogue="euvsdisinfo",
                score=0.74,
                evidence=[Span(start=start, end=start + 37)],
                family="War in Ukraine",
                date="2022-03-01",
                url="https://euvsdisinfo.eu/report/nato-provoked",
                disproof="The invasion was unprovoked; NATO is a defensive alliance.",
            )
        ]
    fields: dict[str, str | None] = {
        "title": "The truth they hide",
        "author": "J. Doe",
        "date": "2024-03-01",
        "site": "example.org",
        "url": "https://example.org/post",
        "language": "en",
    }
    fields.update(article)
    return Analysis(
        id="0" * 64,
        source=Source(
            kind="url",
            location="https://example.org/post",
            fetched_at=datetime(2024, 3, 2, 10, 0, tzinfo=UTC),
        ),
        article=Article(text=text, sentences=[(0, 64)], **fields),
        techniques=sorted(findings, key=lambda f: (f.start, f.end)),
        narratives=narratives,
        summary=Summary(technique_counts={f.technique: 1 for f in findings}, flagged_share=0.25),
        models={"techniques": "baseline-linear@0.1.0", "narratives": "euvs-minilm@1"},
        warnings=["the page had no <article> element"],
    )


def with_precedent() -> Analysis:
    analysis = make_analysis()
    analysis.narratives[0].precedents = [
        Precedent(
            claim_id="euvs-2016-1",
            title="The protests in the capital were organised from abroad",
            catalogue="euvsdisinfo",
            score=0.52,
            date="2016-04-08",
            url="https://euvsdisinfo.eu/report/protests-organised",
            disproof="No evidence supports this; the protests were domestic.",
        )
    ]
    return analysis


@pytest.mark.parametrize("fmt", ["html", "md", "text"])
def test_every_report_shows_documented_cases_with_their_debunk(fmt: str) -> None:
    report = render(with_precedent(), fmt)
    assert "The protests in the capital were organised from abroad" in report
    assert "No evidence supports this; the protests were domestic." in report
    assert "https://euvsdisinfo.eu/report/protests-organised" in report


def bare_analysis() -> Analysis:
    """No metadata, no findings, no narratives, no models: every optional field empty."""
    return Analysis(
        id="1" * 64,
        source=Source(kind="text", location="<stdin>"),
        article=Article(text="A calm, factual paragraph about the weather."),
    )


# --- JSON ---------------------------------------------------------------------------------


def test_json_round_trips_to_an_equal_analysis() -> None:
    analysis = make_analysis()
    report = render(analysis, "json")
    data = json.loads(report)
    assert data["schema"] == "spinlens.analysis/v1"
    assert Analysis.model_validate(data) == analysis
    assert data["techniques"][0]["text"] == "Our brave nation will never surrender"


def test_json_keeps_non_ascii_text_readable() -> None:
    text = "Ça suffit : « trahison » — 裏切り者!"
    analysis = make_analysis(
        text=text, findings=[finding("« trahison »", "Loaded_Language", 0.5, text)]
    )
    report = render(analysis, "json")
    assert "« trahison »" in report and "\\u" not in report


@pytest.mark.parametrize("analysis", [make_analysis(), bare_analysis()], ids=["full", "bare"])
def test_json_validates_against_the_shipped_schema(analysis: Analysis) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(render(analysis, "json")), schema)


def test_schema_rejects_another_version() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    data = json.loads(render(make_analysis(), "json"))
    data["schema"] = "spinlens.analysis/v2"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_shipped_schema_matches_the_data_model() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        'docs/analysis.schema.json is out of date; regenerate it with `python -c "from '
        "spinlens.report.json_report import schema_text as s; print(s(), end='')\" "
        "> docs/analysis.schema.json`"
    )


# --- text ---------------------------------------------------------------------------------


def test_text_report_summarises_the_analysis() -> None:
    report = render(make_analysis(), "text", width=100)
    assert "The truth they hide" in report
    assert "https://example.org/post" in report and "J. Doe" in report
    assert "baseline-linear@0.1.0" in report
    assert re.search(r"Loaded language\s+2\b", report)
    assert re.search(r"Slogans\s+1\b", report)
    # Top passages, strongest first.
    assert report.index("Make our country great again!") < report.index("corrupt traitors")
    assert report.index("corrupt traitors") < report.index("so-called reforms")
    assert "NATO provoked the war in Ukraine" in report and "defensive alliance" in report
    assert "warning: the page had no <article> element" in report
    assert "\x1b[" not in report
    assert all(len(line) <= 100 for line in report.splitlines())


def test_text_report_lists_at_most_ten_passages() -> None:
    text = " ".join(f"word{i}" for i in range(30))
    findings = [finding(f"word{i}", "Doubt", i / 100, text) for i in range(10, 30)]
    report = render(make_analysis(text=text, findings=findings, narratives=[]), "text")
    assert "word29" in report and "word20" in report
    assert "word19" not in report
    assert "10 more" in report


def test_text_report_without_metadata_or_findings() -> None:
    report = render(bare_analysis(), "text")
    assert "Untitled article" in report
    assert "No persuasion techniques found" in report


def test_text_report_never_obeys_untrusted_text() -> None:
    hostile = make_analysis(title="[bold red]boom[/bold red] \x1b[2J\x1b]0;pwned\x07 [/oops]")
    report = render(hostile, "text", color=True)
    assert "[bold red]boom[/bold red]" in report and "[/oops]" in report
    assert "\x1b[2J" not in report and "\x1b]0;" not in report


def test_text_report_colours_only_when_asked() -> None:
    assert "\x1b[" in render(make_analysis(), "text", color=True)
    assert "\x1b[" not in render(make_analysis(), "text", color=False)


# --- Markdown -----------------------------------------------------------------------------


def markdown_to_html(markdown: str) -> lxml.html.HtmlElement:
    """Render as a permissive renderer would (raw HTML allowed), to see what gets through."""
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return lxml.html.fragment_fromstring(html, create_parent="div")


def test_markdown_report_content() -> None:
    doc = markdown_to_html(render(make_analysis(), "md"))
    assert doc.xpath("string(//h1)") == "The truth they hide"
    rows = {
        r.xpath("string(td[1])"): r.xpath("string(td[2])") for r in doc.xpath("//table[1]/tbody/tr")
    }
    assert rows["Loaded language"] == "2" and rows["Name calling / labelling"] == "1"
    bold = [b.text_content() for b in doc.xpath("//p/strong")]
    # Overlapping findings merge into one bold stretch.
    assert "Our brave nation will never surrender to these corrupt traitors" in bold
    assert "Make our country great again!" in bold
    links = doc.xpath("//a/@href")
    assert "https://euvsdisinfo.eu/report/nato-provoked" in links
    text = doc.text_content()
    assert "The invasion was unprovoked" in text
    assert "NATO provoked the conflict in Ukraine" in text


PAYLOADS = {
    "title": "<script>alert(1)</script> # Title ###",
    "author": '"><img src=x onerror=alert(1)>',
    "site": "[click](javascript:alert(1))",
}


def test_markdown_escapes_hostile_text() -> None:
    text = (
        "# Not a heading\n- not a list\n1. not ordered\n    not code\n"
        "<iframe src=x></iframe> **not bold** `not code` | pipe | [x](javascript:alert(1))"
    )
    narrative = NarrativeMatch(
        claim_id="c1",
        title="<b>claim</b>",
        catalogue="euvsdisinfo",
        score=0.5,
        url="javascript:alert(1)",
        disproof="<script>alert(2)</script>\n> quoted",
    )
    analysis = make_analysis(
        text=text,
        findings=[finding("**not bold**", "Slogans", 0.9, text)],
        narratives=[narrative],
        **PAYLOADS,
    )
    doc = markdown_to_html(render(analysis, "md"))
    assert not doc.xpath("//script | //img | //iframe | //b | //code | //ol | //pre")
    assert not [a for a in doc.xpath("//a/@href") if "javascript" in a]
    assert doc.xpath("string(//h1)") == PAYLOADS["title"]
    assert len(doc.xpath("//h1")) == 1
    assert doc.xpath("//strong[.='**not bold**']")
    body = doc.text_content()
    assert "# Not a heading" in body and "- not a list" in body and "1. not ordered" in body
    assert "<iframe src=x></iframe>" in body and "<script>alert(2)</script>" in body


# --- every format -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_findings_is_said_clearly(fmt: str) -> None:
    report = render(bare_analysis(), fmt)
    if fmt == "json":
        assert json.loads(report)["techniques"] == []
    else:
        assert "No persuasion techniques found" in report


@pytest.mark.parametrize("fmt", FORMATS)
def test_reports_are_deterministic(fmt: str) -> None:
    assert render(make_analysis(), fmt) == render(make_analysis(), fmt)


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown report format 'pdf'"):
        render(make_analysis(), "pdf")
    with pytest.raises(UsageError):
        extension("pdf")


def test_extensions() -> None:
    assert [extension(f) for f in FORMATS] == [".txt", ".json", ".html", ".md"]


def test_unknown_technique_names_still_render() -> None:
    text = "An odd label appears here."
    analysis = make_analysis(
        text=text, findings=[finding("odd label", "Made_Up_Class", 0.5, text)], narratives=[]
    )
    for fmt in FORMATS:
        assert "Made" in render(analysis, fmt)


def test_out_of_range_offsets_do_not_crash() -> None:
    text = "short text"
    bad = [
        Finding(start=-5, end=3, technique="Doubt", score=0.5, text="sho"),
        Finding(start=8, end=99, technique="Doubt", score=0.5, text="xt"),
        Finding(start=6, end=2, technique="Doubt", score=0.5, text=""),
    ]
    analysis = make_analysis(text=text, findings=bad, narratives=[])
    for fmt in FORMATS:
        assert render(analysis, fmt)


# --- index --------------------------------------------------------------------------------


ENTRIES = [
    IndexEntry("https://example.org/a", "0001-a.html", "First <i>article</i>", 4, 1),
    IndexEntry("feed.xml#3", None, None, 0, 0, failure="no article text found"),
]


def test_index_json() -> None:
    data = json.loads(render_index(ENTRIES, "json"))
    assert data["schema"] == "spinlens.index/v1"
    assert data["documents"][0] == {
        "location": "https://example.org/a",
        "report": "0001-a.html",
        "title": "First <i>article</i>",
        "techniques": 4,
        "narratives": 1,
        "failure": None,
    }
    assert data["documents"][1]["failure"] == "no article text found"


def test_index_text_and_markdown() -> None:
    text = render_index(ENTRIES, "text", width=120)
    assert "1 of 2 documents analysed, 1 failed" in text
    assert "0001-a.html" in text and "no article text found" in text
    doc = markdown_to_html(render_index(ENTRIES, "md"))
    assert doc.xpath("//a[.='open report']/@href") == ["0001-a.html"]
    assert not doc.xpath("//i")
    assert "Failed: no article text found" in doc.text_content()


# --- span segmentation --------------------------------------------------------------------


spans = st.lists(st.tuples(st.integers(-5, 60), st.integers(-5, 60)), max_size=12)


@given(st.integers(0, 50), spans, spans)
def test_segments_tile_the_text_and_track_every_span(
    length: int, findings: list[tuple[int, int]], evidence: list[tuple[int, int]]
) -> None:
    cuts = segments(length, findings, evidence)
    assert [c.start for c in cuts[1:]] == [c.end for c in cuts[:-1]]
    assert sum(c.end - c.start for c in cuts) == length
    assert all(c.start < c.end for c in cuts)
    for kind, group in (("findings", findings), ("evidence", evidence)):
        for i, (start, end) in enumerate(group):
            covered = [c for c in cuts if i in getattr(c, kind)]
            clipped = (max(0, start), min(length, end))
            if clipped[0] < clipped[1]:
                assert (covered[0].start, covered[-1].end) == clipped
                assert sum(c.end - c.start for c in covered) == clipped[1] - clipped[0]
            else:
                assert not covered


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://euvsdisinfo.eu/report/x", True),
        ("HTTP://example.org", True),
        ("javascript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\nscript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//evil.example/x", False),
        ("https://", False),
        ("http://[::1", False),
        (None, False),
    ],
)
def test_web_url(url: str | None, ok: bool) -> None:
    assert (web_url(url) == url) if ok else web_url(url) is None


def test_documented_example_is_valid() -> None:
    doc = (SCHEMA_FILE.parent / "json-schema.md").read_text(encoding="utf-8")
    example = re.search(r"## Example\n\n```json\n(.*?)```", doc, re.S)
    assert example, "docs/json-schema.md lost its example"
    data = json.loads(example.group(1))
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    analysis = Analysis.model_validate(data)
    for f in analysis.techniques:
        assert analysis.article.text[f.start : f.end] == f.text
