"""One self-contained HTML page per analysis, and an index page for a batch.

The page loads nothing: CSS is inline, there is no script, and a Content-Security-Policy meta
tag forbids every other resource. All text from the article or a catalogue goes through
Jinja2's autoescaping; only colours from the taxonomy are written into ``style`` attributes,
and only http(s) URLs into links.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined

from spinlens.model import Analysis
from spinlens.report.spans import (
    Segment,
    ranked,
    segments,
    snippet,
    technique,
    technique_counts,
    web_url,
)

if TYPE_CHECKING:
    from spinlens.report import IndexEntry

_ENV = Environment(
    loader=PackageLoader("spinlens.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# A BCP 47 language tag (what the language identifier writes); anything else is left out of lang.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class Anchor:
    """An empty element marking where a finding or evidence passage starts (a link target)."""

    id: str
    label: str = ""  # a badge drawn by CSS, so it never becomes part of the article's text


@dataclass(frozen=True)
class Piece:
    """One segment of the article text as rendered: plain when ``classes`` is empty."""

    text: str
    anchors: tuple[Anchor, ...] = ()
    classes: str = ""
    style: str = ""
    tip: str = ""
    findings: str = ""  # space-separated finding indices
    techniques: str = ""  # space-separated technique names


@dataclass(frozen=True)
class Paragraph:
    """One line of the article text, closing newline included."""

    pieces: tuple[Piece, ...]
    blank: bool  # only whitespace: margins already separate paragraphs, so it is collapsed


@dataclass(frozen=True)
class LegendItem:
    name: str
    label: str
    category: str
    definition: str
    colour: str
    count: int
    f1: float | None  # the model's validation F1 for this technique, when known


@dataclass(frozen=True)
class Passage:
    anchor: str
    label: str
    colour: str
    score: float
    text: str


@dataclass(frozen=True)
class Evidence:
    anchor: str
    text: str


@dataclass(frozen=True)
class PrecedentView:
    title: str
    catalogue: str
    date: str | None
    score: float
    url: str | None
    disproof: str | None


@dataclass(frozen=True)
class Narrative:
    badge: str
    title: str
    catalogue: str
    claim_id: str
    family: str | None
    date: str | None
    score: float
    url: str | None
    disproof: str | None
    evidence: tuple[Evidence, ...]
    precedents: tuple[PrecedentView, ...]


def render_html(analysis: Analysis) -> str:
    article = analysis.article
    evidence_spans = [
        (n, j, e.start, e.end)
        for n, match in enumerate(analysis.narratives)
        for j, e in enumerate(match.evidence)
    ]
    paragraphs = _paragraphs(analysis, evidence_spans)
    # Recorded in the analysis when it ran: rendering never reads the model files.
    scores = analysis.model_scores.technique_f1
    legend = [
        LegendItem(t.name, t.label, t.category, t.definition, t.colour, count, scores.get(t.name))
        for t, count in technique_counts(analysis)
    ]
    passages = [
        Passage(
            f"f-{i}",
            technique(f.technique).label,
            technique(f.technique).colour,
            f.score,
            snippet(f.text, 240),
        )
        for i, f in ranked(analysis.techniques)
    ]
    narratives = [
        Narrative(
            badge=f"N{n + 1}",
            title=match.title,
            catalogue=match.catalogue,
            claim_id=match.claim_id,
            family=match.family,
            date=match.date,
            score=match.score,
            url=web_url(match.url),
            disproof=match.disproof,
            evidence=tuple(
                Evidence(f"ev-{n}-{j}", snippet(article.text[max(0, e.start) : e.end], 300))
                for j, e in enumerate(match.evidence)
                if article.text[max(0, e.start) : e.end].strip()
            ),
            precedents=tuple(
                PrecedentView(p.title, p.catalogue, p.date, p.score, web_url(p.url), p.disproof)
                for p in match.precedents
            ),
        )
        for n, match in enumerate(analysis.narratives)
    ]
    source = analysis.source
    meta = [
        (label, value, href)
        for label, value, href in (
            ("Site", article.site, None),
            ("Author", article.author, None),
            ("Date", article.date, None),
            ("Language", article.language, None),
            # The source line already shows the URL when the page was fetched from it.
            ("URL", article.url if article.url != source.location else None, web_url(article.url)),
            (f"Source ({source.kind})", source.location, web_url(source.location)),
            (
                "Fetched",
                source.fetched_at.isoformat(timespec="seconds") if source.fetched_at else None,
                None,
            ),
        )
        if value
    ]
    return _ENV.get_template("report.html.j2").render(
        title=article.title or "Untitled article",
        has_title=bool(article.title),
        language=article.language if _LANGUAGE_TAG.fullmatch(article.language or "") else None,
        meta=meta,
        analysis_id=analysis.id,
        paragraphs=paragraphs,
        legend=legend,
        passages=passages,
        narratives=narratives,
        narratives_run="narratives" in analysis.models,
        warnings=analysis.warnings,
        models=sorted(analysis.models.items()),
        finding_count=len(analysis.techniques),
        flagged_percent=round(analysis.summary.flagged_share * 100, 1),
    )


def render_index_html(entries: Sequence[IndexEntry]) -> str:
    rows = [
        {
            "title": e.title or ("Not analysed" if e.failure else "Untitled article"),
            "location": e.location,
            "location_href": web_url(e.location),
            # Report names are relative file names; quoting turns a stray "scheme:" into
            # plain path characters, so the link can only ever point at a sibling file.
            "href": quote(e.report, safe="/") if e.report else None,
            "techniques": e.techniques,
            "narratives": e.narratives,
            "failure": e.failure,
        }
        for e in entries
    ]
    return _ENV.get_template("index.html.j2").render(
        rows=rows,
        failed=sum(1 for e in entries if e.failure),
    )


def _paragraphs(
    analysis: Analysis, evidence_spans: Sequence[tuple[int, int, int, int]]
) -> list[Paragraph]:
    """The article as paragraphs of pieces. Each paragraph keeps its closing newline, so the
    page's text is still exactly ``article.text`` while each line gets its own block."""
    text = analysis.article.text
    findings = analysis.techniques
    anchors: dict[int, list[Anchor]] = {}
    for i, f in enumerate(findings):
        if 0 <= f.start < len(text):
            anchors.setdefault(f.start, []).append(Anchor(f"f-{i}"))
    for n, j, start, _end in evidence_spans:
        if 0 <= start < len(text):
            anchors.setdefault(start, []).append(Anchor(f"ev-{n}-{j}", f"N{n + 1}"))
    cuts = segments(
        len(text),
        [(f.start, f.end) for f in findings],
        [(start, end) for _n, _j, start, end in evidence_spans],
    )
    paragraphs: list[list[Piece]] = [[]]
    for seg in cuts:
        start = seg.start
        while start < seg.end:
            newline = text.find("\n", start, seg.end)
            end = seg.end if newline < 0 else newline + 1
            piece = _piece(analysis, evidence_spans, seg, text[start:end])
            if start == seg.start:
                piece = replace(piece, anchors=tuple(anchors.get(start, ())))
            paragraphs[-1].append(piece)
            if newline >= 0:
                paragraphs.append([])
            start = end
    return [Paragraph(tuple(p), not "".join(x.text for x in p).strip()) for p in paragraphs if p]


def _piece(
    analysis: Analysis,
    evidence_spans: Sequence[tuple[int, int, int, int]],
    seg: Segment,
    text: str,
) -> Piece:
    if not seg.marked:
        return Piece(text)
    found = [analysis.techniques[i] for i in seg.findings]
    tips = [
        f"{technique(f.technique).label} · score {f.score:.2f}\n{technique(f.technique).definition}"
        for f in found
    ]
    claims = dict.fromkeys(evidence_spans[i][0] for i in seg.evidence)
    tips += [f"Evidence for narrative N{n + 1}: {analysis.narratives[n].title}" for n in claims]
    classes = ["hl"] if found else []
    if seg.evidence:
        classes.append("ev")
    return Piece(
        text,
        classes=" ".join(classes),
        style=_background(list(dict.fromkeys(technique(f.technique).colour for f in found))),
        tip="\n\n".join(tips),
        findings=" ".join(str(i) for i in seg.findings),
        techniques=" ".join(f.technique for f in found),
    )


def _background(colours: list[str]) -> str:
    """One technique: its colour. Several: one horizontal band each, so all stay visible."""
    if not colours:
        return ""
    if len(colours) == 1:
        return f"background-color:{colours[0]}"
    step = 100 / len(colours)
    stops = ",".join(f"{c} {k * step:.2f}% {(k + 1) * step:.2f}%" for k, c in enumerate(colours))
    return f"background-image:linear-gradient({stops})"
