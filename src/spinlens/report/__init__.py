"""Reports: one Analysis rendered as text, JSON, HTML or Markdown, and an index for batches.

Every format is a pure function of the analysis (no clock, no I/O), so the same analysis always
gives byte-identical reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, get_args

from spinlens.errors import UsageError
from spinlens.model import Analysis, Failure
from spinlens.report.html import render_html, render_index_html
from spinlens.report.json_report import render_index_json, render_json
from spinlens.report.markdown import render_index_markdown, render_markdown
from spinlens.report.terminal import render_index_text, render_text

Format = Literal["text", "json", "html", "md"]
FORMATS: tuple[str, ...] = get_args(Format)
_EXTENSIONS = {"text": ".txt", "json": ".json", "html": ".html", "md": ".md"}


@dataclass(frozen=True)
class IndexEntry:
    """One document of a batch, as listed on the index page."""

    location: str  # where the document came from (URL, path...)
    report: str | None  # the report's file name, relative to the index; None when it failed
    title: str | None
    techniques: int  # number of flagged passages
    narratives: int  # number of known narratives matched
    failure: str | None = None  # the one-line reason, for documents that could not be analysed

    @classmethod
    def for_failure(cls, failure: Failure) -> IndexEntry:
        return cls(
            location=failure.location,
            report=None,
            title=None,
            techniques=0,
            narratives=0,
            failure=failure.reason,
        )

    @classmethod
    def for_analysis(cls, analysis: Analysis, report: str) -> IndexEntry:
        return cls(
            location=analysis.source.location,
            report=report,
            title=analysis.article.title,
            techniques=len(analysis.techniques),
            narratives=len(analysis.narratives),
        )


def _check(fmt: str) -> None:
    if fmt not in _EXTENSIONS:
        raise UsageError(f"unknown report format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def extension(fmt: str) -> str:
    """The file extension for a format, with its dot (".txt", ".json", ".html", ".md")."""
    _check(fmt)
    return _EXTENSIONS[fmt]


def render(analysis: Analysis, fmt: str, *, color: bool = False, width: int = 100) -> str:
    """The report for one analysis; ``color`` and ``width`` only matter for ``text``."""
    _check(fmt)
    if fmt == "json":
        return render_json(analysis)
    if fmt == "html":
        return render_html(analysis)
    if fmt == "md":
        return render_markdown(analysis)
    return render_text(analysis, color=color, width=width)


def render_index(
    entries: Sequence[IndexEntry], fmt: str, *, color: bool = False, width: int = 100
) -> str:
    """An index of a batch's reports: each document with its counts and report, or why it failed."""
    _check(fmt)
    if fmt == "json":
        return render_index_json([asdict(e) for e in entries])
    if fmt == "html":
        return render_index_html(entries)
    if fmt == "md":
        return render_index_markdown(entries)
    return render_index_text(entries, color=color, width=width)


__all__ = ["FORMATS", "Format", "IndexEntry", "extension", "render", "render_index"]
