"""The spinlens command line: a thin face of the core (``Spinlens``) and the reports.

Exit codes: 0 when every document was analysed, 2 when some failed, 1 for usage errors.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

# Typer vendors click and does not re-export its exception classes; usage errors must map to
# our exit code 1 (click's own is 2, which we use for "some documents failed").
from typer._click import exceptions as click_exceptions

from spinlens.batch.cli import batch_command
from spinlens.batch.watch import watch_command
from spinlens.config import Settings
from spinlens.core import Spinlens
from spinlens.corpus.cli import corpus_app
from spinlens.errors import SpinlensError, UsageError
from spinlens.model import Analysis, Document, Failure
from spinlens.narratives.cli import narratives_app, train_bridge_command, train_command
from spinlens.report import IndexEntry, extension, render, render_index
from spinlens.server.cli import serve_command
from spinlens.techniques.cli import ptc_app, train_app
from spinlens.version import __version__

EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2

app = typer.Typer(
    name="spinlens",
    help="See how a news or blog article manipulates its reader: persuasion techniques, "
    "span by span, and known disinformation narratives.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(ptc_app, name="ptc", help="Predict and score in the SemEval-2020 Task 11 formats.")
train_app.command("narratives")(train_command)
train_app.command("bridge")(train_bridge_command)
app.add_typer(train_app, name="train", help="Train the models (needs the train extra).")
app.add_typer(
    narratives_app, name="narratives", help="Import, list and search catalogues of known claims."
)
app.command("serve", help="Serve the web app and the REST API.")(serve_command)
app.command("batch", help="Analyse a corpus into resumable Parquet tables.")(batch_command)
app.add_typer(corpus_app, name="corpus", help="Dashboards of a corpus written by batch or watch.")
app.command("watch", help="Keep a corpus of feeds up to date.")(watch_command)

stderr = Console(stderr=True, highlight=False)


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"
    md = "md"


@app.command()
def analyze(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="URLs, .html/.txt files, '-' for standard input, directories, .jsonl or "
            ".warc(.gz) files.",
            show_default=False,
        ),
    ],
    report_format: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Report format.")
    ] = ReportFormat.text,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the report to this file; with several documents, a directory that "
            "receives one report per document and an index.",
        ),
    ] = None,
    allow_private: Annotated[
        bool | None,
        typer.Option(
            "--allow-private/--no-allow-private",
            help="Allow fetching URLs on private, loopback and link-local addresses.",
            show_default="no-allow-private",
        ),
    ] = None,
    max_bytes: Annotated[
        int | None,
        typer.Option(
            help="Largest page or file read, in bytes.",
            min=1,
            show_default=str(Settings.model_fields["max_bytes"].default),
        ),
    ] = None,
    techniques_model: Annotated[
        str | None,
        typer.Option(
            help="Technique model by tier: accurate, fast or baseline (default: "
            "SPINLENS_TECHNIQUES_MODEL, else the best shipped one).",
            show_default=False,
        ),
    ] = None,
    sensitivity: Annotated[
        str | None,
        typer.Option(
            help="How readily passages are flagged: precise, balanced or thorough (default: "
            "SPINLENS_SENSITIVITY, else the model's own).",
            show_default=False,
        ),
    ] = None,
    narratives: Annotated[
        bool | None,
        typer.Option(
            "--narratives/--no-narratives",
            help="Match known disinformation narratives (slower).",
            show_default="narratives",
        ),
    ] = None,
) -> None:
    """Analyse articles and report persuasion techniques and known narratives."""
    flags = {
        "allow_private": allow_private,
        "max_bytes": max_bytes,
        "techniques_model": techniques_model,
        "sensitivity": sensitivity,
        "narratives": narratives,
    }
    fmt = report_format.value
    several = _may_yield_several(sources)
    if output is not None and not several and output.is_dir():
        several = True
    if output is not None and several and output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file; several documents need a directory")
    core = Spinlens(Settings.from_env(**{k: v for k, v in flags.items() if v is not None}))
    core.pipeline  # noqa: B018 - a model that cannot load fails here, once, not per document
    items = core.documents(sources, stdin=sys.stdin.buffer)

    entries: list[IndexEntry] = []  # for the index of a report directory
    analysed = failed = 0
    for index, result in enumerate(_analyse_all(core, items), start=1):
        if isinstance(result, Failure):
            failed += 1
            _print_error(f"{result.location}: {result.reason}")
            entries.append(IndexEntry.for_failure(result))
            continue
        analysed += 1
        to_terminal = output is None and sys.stdout.isatty()
        width = shutil.get_terminal_size().columns if to_terminal else 100
        report = render(result, fmt, color=to_terminal, width=width)
        if output is None:
            _print_to_stdout(report, fmt, several)
        elif several:
            output.mkdir(parents=True, exist_ok=True)
            report_name = f"{index:04d}-{_slug(result)}{extension(fmt)}"
            (output / report_name).write_text(report, encoding="utf-8")
            entries.append(IndexEntry.for_analysis(result, report_name))
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(report, encoding="utf-8")

    if output is not None and several:
        output.mkdir(parents=True, exist_ok=True)
        index_path = output / f"index{extension(fmt)}"
        index_path.write_text(render_index(entries, fmt), encoding="utf-8")
        stderr.print(f"wrote {analysed} report(s) and {index_path}")
    elif output is not None and analysed:
        stderr.print(f"wrote {output}")
    if not analysed and not failed:
        raise UsageError("no documents to analyse")
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def _analyse_all(
    core: Spinlens, items: Iterable[Document | Failure]
) -> Iterator[Analysis | Failure]:
    """Analyse each document (the core's analyze_documents), showing progress on a terminal."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    with progress:
        task = progress.add_task("analysing", total=None)

        def shown(items: Iterable[Document | Failure]) -> Iterator[Document | Failure]:
            for item in items:
                if isinstance(item, Document):
                    progress.update(task, description=_short(item.source.location))
                yield item

        for result in core.analyze_documents(shown(items)):
            yield result
            progress.advance(task)


def _may_yield_several(sources: list[str]) -> bool:
    if len(sources) > 1:
        return True
    source = sources[0]
    if source.startswith(("http://", "https://")) or source == "-":
        return False
    path = Path(source)
    return (
        path.is_dir() or path.suffix.lower() in {".jsonl", ".warc"} or source.endswith(".warc.gz")
    )


def _print_to_stdout(report: str, fmt: str, several: bool) -> None:
    if fmt == "json" and several:
        # Several JSON documents on stdout: one per line (JSON Lines), each valid on its own.
        import json

        report = json.dumps(json.loads(report), ensure_ascii=False)
    sys.stdout.write(report if report.endswith("\n") else report + "\n")
    sys.stdout.flush()


def _slug(analysis: Analysis) -> str:
    base = analysis.article.title or Path(analysis.source.location).stem or "document"
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:60] or "document"


def _print_error(message: str) -> None:
    # Locations and reasons come from the input: never let them be read as rich markup.
    stderr.print(f"[red]error:[/red] {escape(message)}", markup=True, soft_wrap=True)


def _short(location: str, width: int = 40) -> str:
    return location if len(location) <= width else "…" + location[-(width - 1) :]


@app.command()
def version() -> None:
    """Print the spinlens version and the models it uses (named as analyses name them)."""
    models = Spinlens().models()
    typer.echo(f"spinlens {__version__}")
    for role, name in models.items():
        typer.echo(f"{role}: {name}")


def main() -> None:
    """Entry point: turns user errors into one line and the documented exit codes."""
    try:
        code = app(standalone_mode=False)
    except click_exceptions.UsageError as error:
        error.show()
        code = EXIT_USAGE
    except typer.Abort:
        stderr.print("aborted")
        code = EXIT_USAGE
    except SpinlensError as error:
        _print_error(str(error))
        code = EXIT_USAGE
    except BrokenPipeError:
        code = EXIT_OK  # the reader (e.g. `| head`) went away: not an error of ours
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
