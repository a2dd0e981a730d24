"""The tables a dashboard reads: a batch folder's committed shards, or analyses in memory
(``history`` reads the web app's stored analyses into the same tables).

A batch folder may be a local path or any URI pyarrow reads (``s3://bucket/run``,
``gs://bucket/run``); only the shards its manifest lists are read, so a run in progress or a
killed one shows exactly what it committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from spinlens.batch.shards import FORMAT, MANIFEST, TABLES, part_name
from spinlens.batch.tables import SCHEMAS, Rows, analysis_rows
from spinlens.errors import UsageError
from spinlens.model import Analysis


@dataclass(frozen=True)
class Corpus:
    articles: pa.Table
    findings: pa.Table
    narratives: pa.Table
    failures: pa.Table | None  # None: a source that keeps no failures (the web app's history)


def read_folder(location: str) -> Corpus:
    """The committed tables of a ``spinlens batch`` folder (a path or a pyarrow URI)."""
    try:
        filesystem, root = pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, ValueError):
        filesystem, root = pafs.LocalFileSystem(), location
    except pa.ArrowNotImplementedError as error:
        raise UsageError(f"cannot read {location}: {error}") from None
    root = root.rstrip("/")
    try:
        with filesystem.open_input_stream(f"{root}/{MANIFEST}") as stream:
            manifest = json.loads(stream.read().decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{location} has no {MANIFEST}: not a spinlens batch folder") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {location}/{MANIFEST}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{location}/{MANIFEST} is not a {FORMAT} manifest")
    parts = sorted(int(shard["part"]) for shard in manifest.get("shards", []))
    tables = {}
    for table in TABLES:
        paths = [f"{root}/{table}/{part_name(n)}" for n in parts]
        pieces = [pq.read_table(path, filesystem=filesystem) for path in paths]
        tables[table] = (pa.concat_tables(pieces) if pieces else SCHEMAS[table].empty_table()).cast(
            SCHEMAS[table]
        )
    return Corpus(**tables)


def from_analyses(analyses: Iterable[Analysis]) -> Corpus:
    """The same tables for analyses held in memory."""
    rows = Rows()
    for analysis in analyses:
        rows.extend(analysis_rows(analysis, analysis.source.location))
    return from_rows(rows)


def from_rows(rows: Rows, *, failures: bool = True) -> Corpus:
    """The tables of ``rows``; without ``failures``, a corpus that keeps no failures table."""
    tables = {table: rows.table(table) for table in TABLES if table != "failures"}
    return Corpus(**tables, failures=rows.table("failures") if failures else None)
