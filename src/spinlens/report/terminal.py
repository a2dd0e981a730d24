"""The report as a terminal summary, rendered with rich into a string.

Untrusted text only ever enters rich as ``Text`` (never as markup, so ``[red]`` in a title is
printed, not obeyed) and is cleaned of control characters first (an escape sequence in an
article must not reach the user's terminal).
"""

from __future__ import annotations

from collections.abc import Sequence
from io import StringIO
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from spinlens.model import Analysis, NarrativeMatch
from spinlens.report.spans import clean, ranked, snippet, technique, technique_counts

if TYPE_CHECKING:
    from spinlens.report import IndexEntry

TOP_PASSAGES = 10


def _console(color: bool, width: int) -> tuple[Console, StringIO]:
    out = StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=color,
        color_system="auto" if color else None,
        no_color=not color,
        markup=False,
        emoji=False,
        highlight=False,
        legacy_windows=False,
    )
    return console, out


def _trimmed(out: StringIO) -> str:
    """The output without the padding rich adds to fill each line to the console's width."""
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip().splitlines()) + "\n"


def render_text(analysis: Analysis, *, color: bool = False, width: int = 100) -> str:
    console, out = _console(color, width)
    article = analysis.article
    console.print(
        Text(clean(article.title), style="bold")
        if article.title
        else Text("Untitled article", style="bold italic")
    )
    console.print(Text("spinlens persuasion analysis", style="dim"))
    console.print(_metadata(analysis))

    for warning in analysis.warnings:
        console.print(Text.assemble(("warning: ", "bold yellow"), clean(warning)))

    console.print()
    counts = technique_counts(analysis)
    n = len(analysis.techniques)
    if counts:
        console.print(
            Text.assemble(
                ("Persuasion techniques", "bold"),
                f"  {n} flagged passage{'s' * (n != 1)}, "
                f"{analysis.summary.flagged_share * 100:.1f}% of the text",
            )
        )
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("Technique")
        table.add_column("Passages", justify="right")
        for t, count in counts:
            table.add_row(Text.assemble(("■ ", t.colour), t.label), str(count))
        console.print(Padding(table, (0, 0, 0, 2)))
        console.print(_passages(analysis))
    else:
        console.print(Text("No persuasion techniques found.", style="bold green"))

    console.print()
    if analysis.narratives:
        console.print(Text("Known narratives", style="bold"))
        for i, match in enumerate(analysis.narratives, 1):
            console.print(_narrative(article.text, i, match))
    elif "narratives" in analysis.models:
        console.print(Text("No known disinformation narrative matched."))
    return _trimmed(out)


def _metadata(analysis: Analysis) -> Table:
    article = analysis.article
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    rows = [
        ("Source", f"{analysis.source.kind}: {analysis.source.location}"),
        ("URL", article.url if article.url != analysis.source.location else None),
        ("Site", article.site),
        ("Author", article.author),
        ("Date", article.date),
        ("Language", article.language),
        ("Models", ", ".join(f"{role} {name}" for role, name in sorted(analysis.models.items()))),
    ]
    for label, value in rows:
        if value:
            grid.add_row(label, Text(clean(value)))
    return grid


def _passages(analysis: Analysis) -> RenderableType:
    top = ranked(analysis.techniques)[:TOP_PASSAGES]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("Score", justify="right", no_wrap=True)
    table.add_column("Technique", no_wrap=True, max_width=30, overflow="ellipsis")
    table.add_column("Passage", ratio=1, overflow="fold")
    for rank, (_i, f) in enumerate(top, 1):
        t = technique(f.technique)
        table.add_row(
            str(rank),
            f"{f.score:.2f}",
            Text.assemble(("■ ", t.colour), t.label),
            Text(snippet(f.text)),
        )
    title = Text("Top passages", style="bold")
    rest = len(analysis.techniques) - len(top)
    if rest:
        title.append(f"  ({rest} more in the full report)", style="dim")
    return Group(Text(), title, Padding(table, (0, 0, 0, 2)))


def _narrative(text: str, i: int, match: NarrativeMatch) -> RenderableType:
    head = Text.assemble(
        (f"N{i}. ", "bold magenta"),
        (clean(match.title), "bold"),
        (f"  score {match.score:.2f}", "dim"),
    )
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    facts = [match.catalogue, match.family, match.date, f"claim {match.claim_id}"]
    grid.add_row("Catalogue", Text(clean(" · ".join(f for f in facts if f))))
    for e in match.evidence[:3]:
        passage = text[max(0, e.start) : e.end]
        if passage.strip():
            grid.add_row("Evidence", Text(f"“{snippet(passage, 240)}”", style="italic"))
    if match.disproof:
        grid.add_row("Disproof", Text(snippet(match.disproof, 400)))
    if match.url:
        grid.add_row("Case", Text(clean(match.url)))
    for p in match.precedents:
        where = " · ".join(f for f in (p.catalogue, p.date, f"score {p.score:.2f}") if f)
        grid.add_row("Precedent", Text(clean(f"{snippet(p.title, 200)} ({where})")))
        if p.disproof:
            grid.add_row("", Text(clean(f"Disproof: {snippet(p.disproof, 300)}"), style="dim"))
        if p.url:
            grid.add_row("", Text(clean(p.url), style="dim"))
    return Group(head, Padding(grid, (0, 0, 1, 4)))


def render_index_text(
    entries: Sequence[IndexEntry], *, color: bool = False, width: int = 100
) -> str:
    console, out = _console(color, width)
    failed = sum(1 for e in entries if e.failure)
    console.print(
        Text.assemble(
            (f"{len(entries) - failed} of {len(entries)} documents analysed", "bold"),
            (f", {failed} failed" if failed else "", "bold red"),
        )
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True)
    table.add_column("Document", ratio=2, overflow="fold")
    table.add_column("Source", ratio=2, overflow="fold")
    table.add_column("Techniques", justify="right", no_wrap=True)
    table.add_column("Narratives", justify="right", no_wrap=True)
    table.add_column("Report", ratio=2, overflow="fold")
    for e in entries:
        untitled = "Not analysed" if e.failure else "Untitled article"
        title = Text(clean(e.title)) if e.title else Text(untitled, style="italic")
        if e.failure:
            table.add_row(
                title, Text(clean(e.location)), "–", "–", Text(clean(e.failure), style="red")
            )
        else:
            table.add_row(
                title,
                Text(clean(e.location)),
                str(e.techniques),
                str(e.narratives),
                Text(clean(e.report or "–")),
            )
    console.print(table)
    return _trimmed(out)
