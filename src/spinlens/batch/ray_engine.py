"""``spinlens batch --engine ray``: the same run as the multiprocess engine, on Ray Data.

The pipeline is a Ray Data dataset:

    one row per source ──flat_map(read)──▶ one row per document ──map_batches(Analyzer actors)──▶
    rows of the four tables (pickled) ──▶ the driver's ShardWriter

- Reading: each file or folder source (a folder, a JSONL or WARC file) is read by one Ray
  task, and all URLs (pages, feeds, sitemaps) by one more, with the same ingest code as
  ``spinlens batch``; so on a cluster the files must be visible to every node (a shared file
  system, a mounted bucket).
- Analysing: ``concurrency`` actors each load the models once (``worker.init_worker``) and turn
  documents into table rows (``worker.analyze_to_rows``), as the worker processes do.
- Writing: the driver commits shards through the same ``ShardWriter`` and manifest, so the
  folder, its resume and its dedup are those of the multiprocess engine: sources whose key a
  committed shard holds are skipped by the readers, and a text already in the tables is
  dropped (its source listed as a duplicate in the manifest). Two documents with the same text
  are both analysed here (the readers do not share a view of the bodies) and the second is
  dropped when written, so the rows are the same.
- Order: Ray Data keeps the input order (``preserve_order``), so which copy of a text wins and
  the shard contents are reproducible, as in the multiprocess engine.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spinlens.batch import worker
from spinlens.batch.local import BatchResult, BatchSettings, Reporter
from spinlens.batch.shards import ShardWriter
from spinlens.batch.sources import iter_sources
from spinlens.batch.tables import Rows, failure_rows, source_key
from spinlens.batch.worker import WorkerSettings
from spinlens.errors import SpinlensError, UsageError
from spinlens.model import Document, Failure

# Bytes per block between the readers and the actors. An actor takes a whole block as one
# task, so big blocks split a corpus unevenly: at 2 MiB a folder of 536 pages made two blocks
# of about 350 and 180 documents, one actor did most of the work, and the run reached 0.68x
# the multiprocess engine (0.91x and 1.00x in two runs at 16 KiB). Blocks of a document or two
# are bundled back up to ACTOR_BATCH per call.
BLOCK_BYTES = 16 * 1024
# Documents per call of an actor: small, so the actors share a short source evenly.
ACTOR_BATCH = 4


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # None: a local Ray (or the one this process already joined)
    actors: int = 2


def run_ray_batch(
    sources: Sequence[str],
    out: Path,
    settings: BatchSettings,
    ray_settings: RaySettings,
    reporter: Reporter | None = None,
) -> BatchResult:
    """Analyse every document of ``sources`` into ``out`` on Ray, continuing a killed run."""
    ray = _import_ray()
    reporter = reporter or Reporter()
    if not ray.is_initialized():
        ray.init(address=ray_settings.address, log_to_driver=False, include_dashboard=False)
    info = {"techniques_model": settings.techniques_model, "narratives": settings.narratives}
    with ShardWriter(out, info=info) as writer:
        committed = writer.committed()
        reporter.started(len(committed.source_keys))
        result = BatchResult()
        done_keys = set(committed.source_keys)
        article_ids = set(committed.article_ids)
        pending, duplicates = Rows(), list[str]()
        pending_since = time.monotonic()
        for key, skipped, rows in _run(sources, settings, ray_settings, done_keys):
            if skipped or key in done_keys:
                result.already_done += 1
                reporter.advanced(1)
                continue
            done_keys.add(key)
            if rows.articles and rows.articles[0]["article_id"] in article_ids:
                # Listed in the manifest, as the multiprocess engine does: a resumed run
                # skips it instead of analysing it again.
                result.duplicates += 1
                duplicates.append(key)
                reporter.advanced(1)
            else:
                article_ids.update(row["article_id"] for row in rows.articles)
                for row in rows.failures:
                    result.failed += 1
                    reporter.failure(row["source_location"], row["reason"])
                result.analysed += len(rows.articles)
                pending.extend(rows)
                reporter.advanced(rows.documents)
            full = pending.documents >= settings.shard_documents
            if (pending.documents or duplicates) and (
                full or time.monotonic() - pending_since >= settings.shard_seconds
            ):
                writer.write(pending, duplicates)
                result.shards += 1
                pending, duplicates, pending_since = Rows(), [], time.monotonic()
        if pending.documents or duplicates:
            writer.write(pending, duplicates)
            result.shards += 1
        return result


def _run(
    sources: Sequence[str], settings: BatchSettings, ray_settings: RaySettings, done: set[str]
) -> Iterator[tuple[str, bool, Rows]]:
    """(source key, skipped as already done, rows) per document, in input order."""
    ray = _import_ray()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.target_max_block_size = BLOCK_BYTES
    context.enable_progress_bars = False
    done_ref = ray.put(done)
    units = read_units(sources)
    read_options = {"allow_private": settings.allow_private, "max_bytes": settings.max_bytes}
    worker_settings = WorkerSettings(
        techniques_model=settings.techniques_model,
        narratives=settings.narratives,
        threads=settings.threads,
    )
    env = {name: str(settings.threads) for name in worker.THREAD_VARIABLES}
    dataset = (
        ray.data.from_items(units, override_num_blocks=len(units))
        # Reading is light next to analysing: it must not wait for a CPU the actors hold.
        .flat_map(_read_source, fn_kwargs={"done_ref": done_ref, **read_options}, num_cpus=0)
        .map_batches(
            Analyzer,
            fn_constructor_args=(worker_settings,),
            batch_size=ACTOR_BATCH,
            batch_format="numpy",
            concurrency=ray_settings.actors,
            num_cpus=1,
            runtime_env={"env_vars": env} if settings.threads is not None else None,
        )
    )
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for key, skipped, rows in zip(
                batch["key"], batch["skipped"], batch["rows"], strict=True
            ):
                yield str(key), bool(skipped), pickle.loads(rows) if rows else Rows()
    except ray.exceptions.RayError as error:
        raise SpinlensError(f"the Ray run failed: {_first_line(error)}") from None


def read_units(sources: Sequence[str]) -> list[dict[str, list[str]]]:
    """What each reading task reads: one file or folder each, and every URL in a single task,
    so that no two tasks ever fetch from the same host at once (feeds and sitemaps are
    fetched one request at a time per host)."""
    urls = [s for s in sources if s.lower().startswith(("http://", "https://"))]
    units: list[dict[str, list[str]]] = []
    for source in sources:
        if source not in urls:
            units.append({"sources": [source]})
        elif source == urls[0]:
            units.append({"sources": urls})  # where the first URL was: the order is kept
    return units


def _read_source(
    row: dict[str, Any], done_ref: Any, allow_private: bool, max_bytes: int
) -> Iterator[dict[str, Any]]:
    """The documents of one read unit (a Ray task); those already committed pass as skipped."""
    done: set[str] = _import_ray().get(done_ref)  # shared once through the object store
    sources = [str(source) for source in row["sources"]]
    for item in iter_sources(sources, allow_private=allow_private, max_bytes=max_bytes):
        key = source_key(item)
        skipped = key in done
        kind = "document" if isinstance(item, Document) else "failure"
        payload = "" if skipped else item.model_dump_json()
        yield {"key": key, "kind": kind, "skipped": skipped, "payload": payload}


class Analyzer:
    """A Ray actor holding the models: documents in, pickled table rows out."""

    def __init__(self, settings: WorkerSettings) -> None:
        if settings.threads is not None:
            from spinlens.onnx_session import set_threads

            set_threads(settings.threads)
        worker.init_worker(settings)
        problem = worker.ready()
        if problem is not None:
            raise SpinlensError(problem)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        out = []
        for key, kind, skipped, payload in zip(
            batch["key"], batch["kind"], batch["skipped"], batch["payload"], strict=True
        ):
            if skipped:
                out.append(b"")
                continue
            if kind == "failure":
                rows = failure_rows(Failure.model_validate_json(payload), str(key))
            else:
                rows = worker.analyze_to_rows(Document.model_validate_json(payload), str(key))
            out.append(pickle.dumps(rows))
        rows_column = np.empty(len(out), dtype=object)
        rows_column[:] = out
        return {"key": batch["key"], "skipped": batch["skipped"], "rows": rows_column}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError(
            "--engine ray needs Ray: pip install 'spinlens[ray]' (or -e '.[ray]')"
        ) from None
    return ray


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    spinlens_lines = [line for line in lines if "SpinlensError" in line]
    return (spinlens_lines or lines or [type(error).__name__])[-1][:300]
