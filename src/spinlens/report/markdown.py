"""The report as Markdown (CommonMark + GitHub tables), for pasting into tickets and wikis.

Every piece of untrusted text is escaped so that it renders literally: ``<``, ``>`` and ``&``
become entities (a hostile title cannot inject HTML into a renderer that allows it), Markdown
punctuation is backslash-escaped, and line starts that would open a heading, list, quote or
code block are neutralised. Links are written only for http(s) URLs.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from spinlens.model import Analysis, Precedent
from spinlens.report.spans import (
    clean,
    ranked,
    segments,
    snippet,
    technique,
    technique_counts,
    web_url,
)

if TYPE_CHECKING:
    from spinlens.report import IndexEntry

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Characters with meaning somewhere in CommonMark or GitHub Markdown: $ opens math, and # is
# escaped everywhere because a trailing run of them would close (and vanish from) a heading.
_INLINE = re.compile(r"([\\`*_\[\]|~$#])")
_ENTITY_CHARS = re.compile(r"[&<>]")
# URL characters left as they are in a link destination; the rest (space, quotes, parentheses,
# angle brackets, backslash) are percent-encoded so they cannot end or confuse the link.
_URL_SAFE = ":/?#[]@!$&'*+,;=%~"
# Line starts that open a block: list item, setext underline, ordered list item.
_BLOCK_START = re.compile(r"^([+=-])|^(\d+)([.)])")


def escape(text: str) -> str:
    """Escape text for use inside a Markdown paragraph, heading or table cell."""
    text = _ENTITY_CHARS.sub(lambda m: _ENTITIES[m.group()], clean(text))
    return _INLINE.sub(r"\\\1", text)


def _escape_line(text: str) -> str:
    """Escape one line of text that starts a block (indentation dropped: it would make code)."""
    line = escape(text.lstrip())
    return _BLOCK_START.sub(
        lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", line
    )


def _one_line(text: str, limit: int = 160) -> str:
    return escape(snippet(text, limit))


def _link(label: str, url: str | None) -> str:
    """A Markdown link when ``url`` is http(s), else the escaped text of the URL or label."""
    safe = web_url(url)
    if safe is None:
        return _one_line(url or label)
    return f"[{escape(label)}]({quote(safe, safe=_URL_SAFE)})"


def render_markdown(analysis: Analysis) -> str:
    article = analysis.article
    out: list[str] = [f"# {_one_line(article.title, 300) if article.title else 'Untitled article'}"]
    out.append("*spinlens persuasion analysis*")

    meta = [
        ("Site", _one_line(article.site) if article.site else None),
        ("Author", _one_line(article.author) if article.author else None),
        ("Date", _one_line(article.date) if article.date else None),
        ("Language", _one_line(article.language) if article.language else None),
        ("URL", _link(article.url, article.url) if article.url else None),
        (
            f"Source ({analysis.source.kind})",
            _link(analysis.source.location, analysis.source.location),
        ),
    ]
    out.append("\n".join(f"- **{label}:** {value}" for label, value in meta if value))

    if analysis.warnings:
        out.append(
            "> **Warnings**\n>\n" + "\n".join(f"> - {_one_line(w, 300)}" for w in analysis.warnings)
        )

    out.append("## Summary")
    counts = technique_counts(analysis)
    n = len(analysis.techniques)
    narratives = len(analysis.narratives)
    if counts:
        out.append(
            f"**{n} flagged passage{'s' * (n != 1)}** in {len(counts)} of 14 techniques · "
            f"{analysis.summary.flagged_share * 100:.1f}% of the text flagged · "
            f"{narratives} known narrative{'s' * (narratives != 1)}"
        )
        out.append(
            "| Technique | Passages |\n|---|---:|\n"
            + "\n".join(f"| {escape(t.label)} | {count} |" for t, count in counts)
        )
    else:
        out.append(
            f"**No persuasion techniques found.** · {narratives} known "
            f"narrative{'s' * (narratives != 1)}"
        )

    if analysis.narratives:
        out.append("## Known narratives")
        for i, match in enumerate(analysis.narratives, 1):
            out.append(f"### N{i}. {_one_line(match.title, 300)} (score {match.score:.2f})")
            facts = [f"Catalogue: {_one_line(match.catalogue)}"]
            if match.family:
                facts.append(f"Family: {_one_line(match.family)}")
            if match.date:
                facts.append(f"Date: {_one_line(match.date)}")
            facts.append(f"Claim: {_one_line(match.claim_id)}")
            lines = [" · ".join(facts)]
            if match.url:
                lines.append(f"Case: {_link('Open the case', match.url)}")
            out.append("\n".join(f"- {line}" for line in lines))
            if match.disproof:
                out.append("**Disproof:**\n\n" + _quote(match.disproof))
            passages = [
                article.text[max(0, e.start) : e.end]
                for e in match.evidence
                if article.text[max(0, e.start) : e.end].strip()
            ]
            if passages:
                out.append(
                    "**Evidence in this article:**\n\n"
                    + "\n>\n".join(f"> {_one_line(p, 400)}" for p in passages)
                )
            if match.precedents:
                out.append("**Documented cases of this narrative:**")
                out.append("\n".join(_precedent(p) for p in match.precedents))

    numbers: dict[int, int] = {}
    if analysis.techniques:
        out.append("## Flagged passages, strongest first")
        rows = []
        for rank, (i, f) in enumerate(ranked(analysis.techniques), 1):
            numbers[i] = rank
            rows.append(
                f"| {rank} | {f.score:.2f} | {escape(technique(f.technique).label)} "
                f"| {_one_line(f.text, 240)} |"
            )
        out.append("| # | Score | Technique | Passage |\n|---:|---:|---|---|\n" + "\n".join(rows))

    out.append("## Article")
    if numbers:
        out.append("*Flagged passages are in bold, followed by their numbers in the table above.*")
    out.extend(_article(analysis, numbers) or ["*(no text)*"])

    footer = [
        f"{escape(role)} model {escape(name)}" for role, name in sorted(analysis.models.items())
    ]
    out.append(
        "---\n\n*Generated by spinlens"
        + "".join(f" · {f}" for f in footer)
        + f" · analysis {escape(analysis.id)}*"
    )
    return "\n\n".join(out) + "\n"


def _precedent(p: Precedent) -> str:
    facts = " · ".join(_one_line(f) for f in (p.catalogue, p.date) if f)
    line = f"- {_link(snippet(p.title, 200), p.url)} ({facts}, score {p.score:.2f})"
    if p.disproof:
        line += f"\n  - Disproof: {_one_line(p.disproof, 400)}"
    return line


def _quote(text: str) -> str:
    lines = [_escape_line(line) for line in text.splitlines() if line.strip()]
    return "\n>\n".join(f"> {line}" for line in lines)


def _article(analysis: Analysis, numbers: dict[int, int]) -> list[str]:
    """The article's paragraphs, flagged stretches in bold and tagged with passage numbers.

    Overlapping findings are merged into maximal flagged stretches, each tagged once with all
    the passages it contains. Each line of the text becomes a paragraph, because emphasis
    cannot cross a paragraph break and a single newline would otherwise be joined away.
    """
    text = analysis.article.text
    cuts = segments(len(text), [(f.start, f.end) for f in analysis.techniques])
    # Maximal runs of flagged segments: (start, end, passage numbers).
    runs: list[tuple[int, int, set[int]]] = []
    for seg in cuts:
        if not seg.findings:
            continue
        tags = {numbers[i] for i in seg.findings}
        if runs and runs[-1][1] == seg.start:
            runs[-1] = (runs[-1][0], seg.end, runs[-1][2] | tags)
        else:
            runs.append((seg.start, seg.end, tags))
    run_ends = [end for _start, end, _tags in runs]
    paragraphs = []
    pos = 0
    for line in text.split("\n"):
        start, end = pos, pos + len(line)
        pos = end + 1
        if line.strip():
            # Runs are sorted and disjoint: those on this line start at the first ending after it.
            first = bisect_right(run_ends, start)
            paragraphs.append(_line(text, start, end, runs[first:]))
    return paragraphs


def _line(text: str, start: int, end: int, runs: Sequence[tuple[int, int, set[int]]]) -> str:
    parts: list[str] = []
    cursor = start
    for run_start, run_end, tags in runs:
        if run_start >= end:
            break
        left, right = max(run_start, start), min(run_end, end)
        parts.append(_plain(text[cursor:left], first=not parts))
        parts.append(_bold(text[left:right]))
        if run_end <= end:
            parts.append(" \\[" + ", ".join(str(t) for t in sorted(tags)) + "\\]")
        cursor = right
    parts.append(_plain(text[cursor:end], first=not parts))
    return "".join(parts).strip()


def _plain(text: str, *, first: bool) -> str:
    return _escape_line(text) if first else escape(text)


def _bold(text: str) -> str:
    # Emphasis markers must touch non-space characters, so whitespace stays outside them.
    core = text.strip()
    if not core:
        return escape(text)
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    return f"{escape(lead)}**{escape(core)}**{escape(trail)}"


def render_index_markdown(entries: Sequence[IndexEntry]) -> str:
    failed = sum(1 for e in entries if e.failure)
    rows = []
    for e in entries:
        untitled = "*Not analysed*" if e.failure else "*Untitled article*"
        title = _one_line(e.title, 200) if e.title else untitled
        location = _link(e.location, e.location)
        if e.failure:
            rows.append(f"| {title} | {location} | – | – | Failed: {_one_line(e.failure, 300)} |")
        else:
            report = f"[open report]({quote(e.report, safe='/')})" if e.report else "–"
            rows.append(f"| {title} | {location} | {e.techniques} | {e.narratives} | {report} |")
    head = (
        f"# spinlens reports\n\n{len(entries) - failed} of {len(entries)} "
        f"document{'s' * (len(entries) != 1)} analysed"
        + (f", {failed} failed" if failed else "")
        + "."
    )
    table = (
        "| Document | Source | Techniques | Narratives | Report |\n|---|---|---:|---:|---|\n"
        + "\n".join(rows)
    )
    return head + "\n\n" + (table if rows else "*No documents.*") + "\n"
