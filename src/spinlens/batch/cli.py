"""``spinlens batch``: a corpus analysed into Parquet tables, resumable and deduplicated."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from spinlens.config import Settings
from spinlens.ingest.files import DEFAULT_MAX_BYTES

EXIT_OK, EXIT_SOME_FAILED = 0, 2


class Engine(StrEnum):
    local = "local"
    ray = "ray"


stderr = Console(stderr=True, highlight=False)


def batch_command(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Directories, .html/.txt files, .jsonl or .warc(.gz) files, URLs.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder of the Parquet tables; run the same command again to resume.",
            show_default=False,
        ),
    ],
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-w", min=1, help="Worker processes (default: one per CPU core)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Model threads per worker (default: the models' own)."),
    ] = None,
    techniques_model: Annotated[
        str | None,
        typer.Option(
            help="Technique model by tier: accurate, fast or baseline; default: "
            "SPINLENS_TECHNIQUES_MODEL (read by Settings), else fast, the tier for crawls.",
        ),
    ] = None,
    narratives: Annotated[
        bool, typer.Option(help="Match known disinformation narratives (slower).")
    ] = True,
    allow_private: Annotated[
        bool,
        typer.Option(help="Allow fetching URLs on private, loopback and link-local addresses."),
    ] = False,
    max_bytes: Annotated[
        int, typer.Option(help="Largest page or file read, in bytes.", min=1)
    ] = DEFAULT_MAX_BYTES,
    shard_size: Annotated[
        int,
        typer.Option(
            min=1, help="Documents per Parquet shard (also committed at least every minute)."
        ),
    ] = 500,
    engine: Annotated[
        Engine,
        typer.Option(
            help="local: worker processes on this machine; ray: a Ray Data map over --workers "
            "actors (pip install 'spinlens[ray]').",
        ),
    ] = Engine.local,
    address: Annotated[
        str | None,
        typer.Option(
            help="With --engine ray: the cluster to join (auto, or ray://HOST:PORT); "
            "default: a local Ray.",
        ),
    ] = None,
) -> None:
    """Analyse a corpus into Parquet tables (articles, findings, narratives, failures).

    Killed at any moment, the same command run again goes on where the last committed shard
    ended: no article is missing and none appears twice. The same text is analysed once.
    """
    from spinlens.batch.local import BatchSettings, Reporter, run_batch
    from spinlens.techniques.detectors import CORPUS_DEFAULT

    settings = BatchSettings(
        threads=threads,
        techniques_model=techniques_model or Settings.from_env().techniques_model or CORPUS_DEFAULT,
        narratives=narratives,
        allow_private=allow_private,
        max_bytes=max_bytes,
        shard_documents=shard_size,
    )
    if workers is not None:
        settings = BatchSettings(**{**settings.__dict__, "workers": workers})

    progress = Progress(
        SpinnerColumn(),
        TextColumn("analysing"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
    )
    task = progress.add_task("analysing", total=None)

    def started(already_done: int) -> None:
        if already_done:
            stderr.print(f"resuming: {already_done} document(s) already in {out}")
        _count_in_background(progress, task, sources)

    def failure(location: str, reason: str) -> None:
        progress.console.print(
            f"[red]error:[/red] {escape(location)}: {escape(reason)}", markup=True, soft_wrap=True
        )

    reporter = Reporter(
        started=started,
        advanced=lambda n: progress.advance(task, n),
        failure=failure,
    )
    with progress:
        if engine is Engine.ray:
            from spinlens.batch.ray_engine import RaySettings, run_ray_batch

            ray_settings = RaySettings(address=address, actors=settings.workers)
            result = run_ray_batch(sources, out, settings, ray_settings, reporter)
        else:
            result = run_batch(sources, out, settings, reporter)

    parts = [f"{result.analysed} article(s) analysed"]
    if result.failed:
        parts.append(f"{result.failed} failed")
    if result.duplicates:
        parts.append(f"{result.duplicates} duplicate(s) skipped")
    if result.already_done:
        parts.append(f"{result.already_done} already done")
    stderr.print(f"{', '.join(parts)}; tables in {out}")
    if result.failed_before:
        stderr.print(
            f"{result.failed_before} source(s) failed in an earlier run: see {out / 'failures'}"
        )
    failed = result.failed or result.failed_before
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


class _RateColumn(ProgressColumn):
    """Documents per second over the last half minute."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "–/s", style="progress.data.speed")


def _count_in_background(progress: Progress, task: TaskID, sources: Sequence[str]) -> None:
    """Give the bar its total (for the ETA) once the sources are counted, without delaying the
    first document."""
    from spinlens.batch.sources import count_documents

    def count() -> None:
        total = count_documents(sources)
        if total is not None:
            progress.update(task, total=total)

    threading.Thread(target=count, daemon=True, name="count-documents").start()
