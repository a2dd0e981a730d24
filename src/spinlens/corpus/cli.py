"""``spinlens corpus report``: the dashboard of a batch folder as one HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from spinlens.errors import UsageError

corpus_app = typer.Typer(no_args_is_help=True)
stderr = Console(stderr=True, highlight=False)


@corpus_app.command("report")
def report_command(
    folder: Annotated[
        str,
        typer.Argument(
            help="Folder written by `spinlens batch` or `spinlens watch` (a path, or an "
            "s3:// or gs:// URI pyarrow can read).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the HTML dashboard.")
    ] = Path("report.html"),
    site: Annotated[
        list[str] | None, typer.Option(help="Only these sites (repeat the option for several).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Only articles dated on or after YYYY-MM-DD.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Only articles dated on or before YYYY-MM-DD.")
    ] = None,
    report_url: Annotated[
        str | None,
        typer.Option(
            help="Link each article to its report at this address, '{article_id}' standing "
            "for the analysis id (e.g. http://localhost:8000/analyses/{article_id}); "
            "default: the article's own URL.",
        ),
    ] = None,
    title: Annotated[str, typer.Option(help="The page's title.")] = "spinlens corpus report",
) -> None:
    """Write a self-contained HTML dashboard: techniques and narratives by site and over time,
    and the most manipulative articles."""
    from spinlens.corpus.data import read_folder
    from spinlens.corpus.queries import Filters, build
    from spinlens.corpus.report import render

    if report_url is not None and "{article_id}" not in report_url:
        raise UsageError("--report-url must contain {article_id}")
    filters = Filters.parse(site or (), start, end)
    link = (
        (lambda row: report_url.replace("{article_id}", row["article_id"])) if report_url else None
    )
    dashboard = build(read_folder(folder), filters, link=link)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(dashboard, title=title), encoding="utf-8")
    stderr.print(f"wrote {output} ({dashboard.articles} articles)")
