"""The output folder of a batch run: Parquet shards of the four tables and the manifest that
commits them.

```
DIR/manifest.json                 the commit record
DIR/articles/part-NNNNN.parquet   (and findings/, narratives/, failures/)
```

Shard NNNNN is written to all four tables together, each file as a temporary file that is
fsync'ed and renamed into place; it counts only once manifest.json (rewritten the same way)
lists it. So a run killed at any moment leaves every shard whole or absent, and the next run
removes the parts no manifest lists before it goes on.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from spinlens.batch.tables import SCHEMAS, Rows
from spinlens.errors import UsageError

FORMAT = "spinlens.batch/1"
MANIFEST = "manifest.json"
TABLES = tuple(SCHEMAS)
_PART = re.compile(r"^part-(\d{5,})\.parquet$")
_LOCK = ".lock"


def part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


@dataclass(frozen=True)
class Committed:
    """What the committed shards of a folder already hold (what a resumed run skips)."""

    source_keys: set[str]
    article_ids: set[str]


class ShardWriter:
    """Writes shards into ``out`` and commits them in its manifest; one writer per folder at a
    time (a lock file refuses a second). Use as a context manager."""

    def __init__(self, out: Path, *, info: dict[str, Any] | None = None) -> None:
        """``info``: extra fields for the manifest (the command's settings, for the record)."""
        self.out = out
        self.info = dict(info or {})
        self._lock: IO[str] | None = None
        self.shards: list[dict[str, Any]] = []

    def __enter__(self) -> ShardWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Take the folder's lock, read its manifest and remove uncommitted parts."""
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} is a file; a batch run writes a folder")
        for table in TABLES:
            (self.out / table).mkdir(parents=True, exist_ok=True)
        lock = (self.out / _LOCK).open("w")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise UsageError(f"another spinlens batch is writing to {self.out}") from None
        self._lock = lock
        self.shards = read_manifest(self.out).get("shards", [])
        remove_uncommitted(self.out, {int(s["part"]) for s in self.shards})

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def next_part(self) -> int:
        return max((int(s["part"]) for s in self.shards), default=-1) + 1

    def committed(self) -> Committed:
        committed = read_committed(self.out, [int(s["part"]) for s in self.shards])
        for shard in self.shards:
            committed.source_keys.update(shard.get("duplicates", ()))
        return committed

    def write(self, rows: Rows, duplicates: Sequence[str] = ()) -> int:
        """Write ``rows`` as the next shard and commit it; returns its number. ``duplicates``:
        source keys whose text was found (once analysed) to be in the tables already; the
        manifest lists them so that a resumed run skips them too."""
        if self._lock is None:
            raise RuntimeError("ShardWriter.write before open()")
        number = self.next_part
        counts = {}
        for table in TABLES:
            data = rows.table(table)
            counts[table] = data.num_rows
            _write_table(data, self.out / table / part_name(number))
        written_at = datetime.now(UTC).isoformat(timespec="seconds")
        shard: dict[str, Any] = {"part": number, **counts, "written_at": written_at}
        if duplicates:
            shard["duplicates"] = list(duplicates)
        self.shards.append(shard)
        _write_json(self.out / MANIFEST, {"format": FORMAT, **self.info, "shards": self.shards})
        return number


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of ``out`` ({} when there is none yet: nothing committed)."""
    path = out / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{path} is not a {FORMAT} manifest")
    return manifest


def committed_parts(out: Path, table: str) -> list[Path]:
    """The committed shard files of one table, in order (what a reader of the folder reads)."""
    parts = sorted(int(s["part"]) for s in read_manifest(out).get("shards", []))
    return [out / table / part_name(n) for n in parts]


def read_committed(out: Path, parts: list[int]) -> Committed:
    """Source keys (articles and failures) and article ids of the given committed shards;
    only those columns are read, so this stays cheap for a large corpus."""
    keys: set[str] = set()
    ids: set[str] = set()
    for number in parts:
        name = part_name(number)
        articles = pq.read_table(out / "articles" / name, columns=["source_key", "article_id"])
        keys.update(articles.column("source_key").to_pylist())
        ids.update(articles.column("article_id").to_pylist())
        failures = pq.read_table(out / "failures" / name, columns=["source_key"])
        keys.update(failures.column("source_key").to_pylist())
    return Committed(source_keys=keys, article_ids=ids)


def remove_uncommitted(out: Path, committed: set[int]) -> list[Path]:
    """Delete the shard files and temporary files no manifest lists (left by a killed run)."""
    removed = []
    for path in _table_files(out):
        match = _PART.match(path.name)
        if match is None or int(match.group(1)) not in committed:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _table_files(out: Path) -> Iterator[Path]:
    for table in TABLES:
        folder = out / table
        if folder.is_dir():
            yield from (p for p in folder.iterdir() if p.is_file())


def _write_table(data: pa.Table, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(data, tmp, compression="zstd")
    _fsync_file(tmp)
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _write_json(target: Path, value: dict[str, Any]) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # The rename itself must reach the disk before the manifest may name the file.
    _fsync_file(path)
