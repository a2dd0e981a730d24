"""End to end: the real `spinlens` command on fixtures, checked the way a user reads the result."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .conftest import CANONICAL_EXAMPLE, EXAMPLES, need_shared

BLOG_TXT = EXAMPLES / "site-builder-blog.txt"
BLOG_HTML = EXAMPLES / "site-builder-blog.html"


def spinlens(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "spinlens", *args],
        input=stdin.decode("utf-8", "replace") if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def check_findings(analysis: dict) -> None:
    text = analysis["article"]["text"]
    for finding in analysis["techniques"]:
        assert 0 <= finding["start"] < finding["end"] <= len(text)
        assert text[finding["start"] : finding["end"]] == finding["text"]
        assert 0.0 <= finding["score"] <= 1.0


def test_json_report_of_a_pasted_page():
    result = spinlens("analyze", str(BLOG_TXT), "--format", "json")
    assert result.returncode == 0, result.stderr
    analysis = json.loads(result.stdout)
    assert analysis["schema"] == "spinlens.analysis/v1"
    assert analysis["article"]["title"] == (
        "Foreign hands behind the riots: how the republic was saved"
    )
    assert analysis["article"]["language"] == "en"
    assert "Recent Posts" not in analysis["article"]["text"]
    assert analysis["source"] == {"kind": "file", "location": str(BLOG_TXT), "fetched_at": None}
    assert analysis["models"]["techniques"]
    assert len(analysis["techniques"]) >= 3
    check_findings(analysis)
    counts = analysis["summary"]["technique_counts"]
    assert sum(counts.values()) == len(analysis["techniques"])


def test_the_canonical_example_as_json():
    example = need_shared(CANONICAL_EXAMPLE)
    result = spinlens("analyze", str(example), "--format", "json")
    assert result.returncode == 0, result.stderr
    analysis = json.loads(result.stdout)
    article = analysis["article"]
    assert article["title"] == (
        "The introduction of CSTO peacekeepers into Kazakhstan made it possible to preserve "
        "statehood"
    )
    assert article["language"] == "en"
    for chrome in ["top of page", "2,171 views", "Recent Posts", "See All", "コメント"]:
        assert chrome not in article["text"]
    check_findings(analysis)
    # What an analyst marks first: the labels pinned on the protesters and the fear of chaos.
    # A finding marks a passage when its span overlaps it (models differ by a word at the edges).
    text = article["text"]

    def marked(technique: str, passage: str) -> bool:
        start = text.index(passage)
        return any(
            f["technique"] == technique and f["start"] < start + len(passage) and start < f["end"]
            for f in analysis["techniques"]
        )

    assert marked("Name_Calling,Labeling", '"hotheads"')
    assert marked("Name_Calling,Labeling", "“professional”")
    assert marked("Loaded_Language", "plunge into chaos")


@pytest.mark.slow
def test_the_canonical_example_with_euvsdisinfo_imported():
    example = need_shared(CANONICAL_EXAMPLE)
    data = need_shared(CANONICAL_EXAMPLE.parents[1] / "data" / "euvsdisinfo")
    for name in ("cases-with-disproofs-2015-2017.csv", "cases-2015-2021.csv"):
        imported = spinlens("narratives", "import", str(data / name))
        assert imported.returncode == 0, imported.stderr
    result = spinlens("analyze", str(example), "--format", "json")
    assert result.returncode == 0, result.stderr
    analysis = json.loads(result.stdout)
    text = analysis["article"]["text"]
    matches = {m["family"]: m for m in analysis["narratives"][:6]}
    evidence = {
        family: [text[e["start"] : e["end"]] for e in match["evidence"]]
        for family, match in matches.items()
    }
    assert any("financed from abroad" in e for e in evidence["foreign-funded-agents"])
    assert any("in the interests of the West" in e for e in evidence["colour-revolution"])
    assert not any("gas prices" in e for passages in evidence.values() for e in passages)
    # Documented cases of the same narrative, with the debunk the reader needs.
    precedents = matches["colour-revolution"]["precedents"]
    assert precedents and all(p["catalogue"] == "euvsdisinfo" for p in precedents)
    assert any(p["disproof"] for p in precedents)


class _Marks(HTMLParser):
    """Collects highlight marks, external resource references and script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[dict[str, str | None]] = []
        self.external: list[str] = []
        self.scripts_with_payload = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "mark":
            self.marks.append(attributes)
        if tag == "script":
            self._in_script = True
        for name in ("src", "href"):
            value = attributes.get(name) or ""
            if name == "src" and value.startswith(("http:", "https:", "//")):
                self.external.append(value)
            if tag == "link" and value.startswith(("http:", "https:", "//")):
                self.external.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and "alert(" in data:
            self.scripts_with_payload += 1


def test_html_report_is_self_contained_and_highlights_spans(tmp_path: Path):
    report = tmp_path / "report.html"
    result = spinlens("analyze", str(BLOG_HTML), "--format", "html", "--output", str(report))
    assert result.returncode == 0, result.stderr
    html = report.read_text(encoding="utf-8")
    parser = _Marks()
    parser.feed(html)
    assert parser.marks, "no highlighted spans in the HTML report"
    assert parser.external == []
    assert "Foreign hands behind the riots" in html
    assert "Loaded" in html  # the legend names the techniques found


def test_hostile_text_is_escaped_in_the_html_report(tmp_path: Path):
    page = tmp_path / "hostile.html"
    payload = "<script>alert(1)</script>"
    page.write_text(
        f"<html><head><title>{payload.replace('<', '&lt;')}</title>"
        f'<meta name="author" content="&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"></head>'
        "<body><article><h1>Evil &lt;script&gt;alert(3)&lt;/script&gt; title</h1>"
        "<p>These corrupt traitors &lt;script&gt;alert(4)&lt;/script&gt; want to destroy our "
        "glorious nation, and every patriot knows that the shameful liars will stop at "
        "nothing to betray us all.</p></article></body></html>",
        encoding="utf-8",
    )
    report = tmp_path / "report.html"
    result = spinlens("analyze", str(page), "--format", "html", "--output", str(report))
    assert result.returncode == 0, result.stderr
    html = report.read_text(encoding="utf-8")
    parser = _Marks()
    parser.feed(html)
    assert parser.scripts_with_payload == 0
    assert "<script>alert" not in html and "onerror=alert" not in html.replace("&", "")
    assert "&lt;script&gt;alert(4)" in html  # shown as text, not run


def test_markdown_and_text_reports(tmp_path: Path):
    markdown = spinlens("analyze", str(BLOG_TXT), "--format", "md")
    assert markdown.returncode == 0, markdown.stderr
    assert "# Foreign hands behind the riots" in markdown.stdout
    text = spinlens("analyze", str(BLOG_TXT))
    assert text.returncode == 0, text.stderr
    assert "Foreign hands behind the riots" in text.stdout
    assert "Loaded language" in text.stdout or "Loaded_Language" in text.stdout


def test_standard_input():
    result = spinlens("analyze", "-", "--format", "json", stdin=BLOG_TXT.read_bytes())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"]["kind"] == "text"


def test_many_documents_go_on_past_failures_and_write_an_index(tmp_path: Path):
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "a-blog.html").write_bytes(BLOG_HTML.read_bytes())
    (folder / "b-empty.txt").write_bytes(b"")
    (folder / "nested").mkdir()
    (folder / "nested" / "c-pasted.txt").write_bytes(BLOG_TXT.read_bytes())
    (folder / "d-junk.html").write_bytes(bytes(range(256)) * 40)
    out = tmp_path / "reports"
    result = spinlens("analyze", str(folder), "--format", "html", "--output", str(out))
    assert result.returncode == 2
    assert "b-empty.txt" in result.stderr and "d-junk.html" in result.stderr
    reports = sorted(p.name for p in out.iterdir())
    assert "index.html" in reports
    assert len([name for name in reports if name != "index.html"]) == 2
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "b-empty.txt" in index and "Foreign hands behind the riots" in index


def test_jsonl_and_warc_sources(tmp_path: Path):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    jsonl = tmp_path / "pages.jsonl"
    jsonl.write_text(
        json.dumps({"url": "https://a.example/1", "html": BLOG_HTML.read_text("utf-8")})
        + "\n"
        + json.dumps({"url": "https://a.example/2", "text": BLOG_TXT.read_text("utf-8")})
        + "\n",
        encoding="utf-8",
    )
    warc = tmp_path / "crawl.warc.gz"
    with warc.open("wb") as stream:
        writer = WARCWriter(stream, gzip=True)
        headers = StatusAndHeaders(
            "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
        )
        record = writer.create_warc_record(
            "https://b.example/post",
            "response",
            payload=io.BytesIO(BLOG_HTML.read_bytes()),
            http_headers=headers,
        )
        writer.write_record(record)
    result = spinlens("analyze", str(jsonl), str(warc), "--format", "json")
    assert result.returncode == 0, result.stderr
    analyses = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [a["source"]["kind"] for a in analyses] == ["jsonl", "jsonl", "warc"]
    assert analyses[2]["source"]["location"].startswith(f"{warc}#")
    # The page's own canonical link names the article, whatever address it was crawled at.
    assert analyses[2]["article"]["url"].startswith("https://northwind-notes.example/")


@pytest.mark.parametrize(
    "source, reason",
    [
        ("missing-file.html", "no such file"),
        ("http://127.0.0.1:9/", "loopback"),
        ("http://10.0.0.7/page", "private"),
        ("ftp://example.org/x", "http"),
        ("http://", "url"),
    ],
)
def test_bad_sources_give_one_clear_line_and_exit_code_2(source: str, reason: str):
    result = spinlens("analyze", source)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert reason in lines[0].lower()


def test_encodings_without_declaration(tmp_path: Path):
    page = tmp_path / "ru.html"
    russian = (
        "Протесты в стране начались с недовольства ценами на газ, но вскоре переросли в "
        "беспорядки, за которыми, по словам властей, стояли иностранные силы и их агенты."
    )
    page.write_bytes(
        f"<html><body><article><p>{russian}</p></article></body></html>".encode("cp1251")
    )
    result = spinlens("analyze", str(page), "--format", "json")
    assert result.returncode == 0, result.stderr
    analysis = json.loads(result.stdout)
    assert analysis["article"]["language"] == "ru"
    assert "иностранные силы" in analysis["article"]["text"]
    assert any("language 'ru'" in warning for warning in analysis["warnings"])


def test_usage_errors_exit_with_1():
    assert spinlens("analyze").returncode == 1
    assert spinlens("analyze", str(BLOG_TXT), "--format", "pdf").returncode == 1
    assert spinlens("no-such-command").returncode == 1


def test_the_technique_model_can_be_picked_by_name():
    result = spinlens(
        "analyze", str(BLOG_TXT), "--format", "json", "--techniques-model", "baseline"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["models"]["techniques"].startswith("baseline-linear@")
    unknown = spinlens("analyze", str(BLOG_TXT), "--techniques-model", "no-such-model")
    assert unknown.returncode == 1
    assert "unknown technique model 'no-such-model'" in unknown.stderr


def test_training_the_narrative_encoder_without_its_data_says_what_is_missing(tmp_path) -> None:
    result = spinlens("train", "narratives", "--euvsdisinfo", str(tmp_path), "--out", "out")
    assert result.returncode == 1
    assert "cases-with-disproofs-2015-2017.csv" in result.stderr
    assert not (tmp_path / "out").exists()


def test_version_healthz_and_analyses_name_the_models_alike():
    """Issue 16: /healthz and `spinlens version` worked out model names on their own, and their
    names differed from those analyses record."""
    from fastapi.testclient import TestClient

    from spinlens.server import Settings, create_app

    version = spinlens("version")
    assert version.returncode == 0, version.stderr
    named = dict(line.split(": ", 1) for line in version.stdout.splitlines()[1:])
    analysed = spinlens("analyze", str(BLOG_TXT), "--format", "json")
    models = json.loads(analysed.stdout)["models"]
    assert set(models) == {"techniques", "narratives"}
    assert named == models
    with TestClient(create_app(Settings()), base_url="http://127.0.0.1:8000") as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["models"] == models
        served = client.post("/api/v1/analyses", json={"text": BLOG_TXT.read_text("utf-8")})
        assert served.json()["models"] == models
