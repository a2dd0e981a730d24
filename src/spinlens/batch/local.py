"""The multiprocess engine of ``spinlens batch``: documents streamed from the sources to N worker
processes (each loads the models once) and their rows committed shard by shard.

Resume: what the committed shards hold (by ``source_key``) is skipped. Dedup: a document whose
body was met before in this run (resumed runs meet the committed ones again as they skip them)
is never sent to a worker; a result whose text (``article_id``) is already in the tables is
dropped, so no text gets two rows, and its source is listed as a duplicate in the manifest, so
a resumed run does not analyse it again. Memory: at most ``4 × workers`` documents are in flight and
one shard of rows is held; what grows with the corpus is only a set of keys and digests
(about 200 bytes per document).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from spinlens.batch import worker
from spinlens.batch.shards import ShardWriter
from spinlens.batch.sources import iter_sources
from spinlens.batch.tables import Rows, failure_rows, source_key
from spinlens.batch.worker import WorkerSettings
from spinlens.errors import SpinlensError
from spinlens.ingest.files import DEFAULT_MAX_BYTES
from spinlens.model import Document, Failure

# A shard is committed after this many documents or this many seconds, whichever comes
# first: a kill loses at most that much work, and each shard stays a few MB.
SHARD_DOCUMENTS = 500
SHARD_SECONDS = 60.0
# Documents handed to the pool ahead of the results read back: enough to keep every worker
# busy while the parent reads and writes, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 4
# Pools that may break (a worker killed) with no result in between before the run gives up.
MAX_POOL_BREAKS = 3


@dataclass(frozen=True)
class BatchSettings:
    workers: int = max(1, os.cpu_count() or 1)
    threads: int | None = None  # model threads per worker; None: the models' default
    techniques_model: str | None = None
    narratives: bool = True
    allow_private: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    shard_documents: int = SHARD_DOCUMENTS
    shard_seconds: float = SHARD_SECONDS
    # "spawn" or "forkserver": a forked copy of a parent with threads (the progress bar's) and
    # loaded libraries (ONNX Runtime) is not safe.
    start_method: str = "spawn"


@dataclass
class BatchResult:
    analysed: int = 0  # articles written by this run
    failed: int = 0  # failures written by this run
    failed_before: int = 0  # sources that failed in an earlier run of the same folder
    already_done: int = 0  # documents the committed shards held (skipped)
    duplicates: int = 0  # documents whose text was analysed already (no row of their own)
    shards: int = 0


@dataclass
class Reporter:
    """What the engine tells its caller (the CLI's progress bar and error lines)."""

    started: Callable[[int], None] = lambda already_done: None
    advanced: Callable[[int], None] = lambda documents: None
    failure: Callable[[str, str], None] = lambda location, reason: None


def run_batch(
    sources: Sequence[str], out: Path, settings: BatchSettings, reporter: Reporter | None = None
) -> BatchResult:
    """Analyse every document of ``sources`` into ``out``, continuing a run killed before."""
    reporter = reporter or Reporter()
    info = {"techniques_model": settings.techniques_model, "narratives": settings.narratives}
    with ShardWriter(out, info=info) as writer:
        committed = writer.committed()
        run = _Run(writer, committed.source_keys, committed.article_ids, settings, reporter)
        failure_keys = _committed_failure_keys(writer)
        reporter.started(len(committed.source_keys))
        try:
            for item in iter_sources(
                sources, allow_private=settings.allow_private, max_bytes=settings.max_bytes
            ):
                run.take(item, failure_keys)
            run.finish()
        except BaseException as error:
            if run.pool is not None:  # interrupted: leave what is in flight
                run.pool.shutdown(wait=False, cancel_futures=True)
            if isinstance(error, KeyboardInterrupt) and run.pending.documents:
                run.commit()  # what is done is kept: the next run goes on from there
            raise
        if run.pool is not None:
            run.pool.shutdown()  # the workers exit and are reaped (their CPU time counted)
        return run.result


class _Run:
    def __init__(
        self,
        writer: ShardWriter,
        done_keys: set[str],
        article_ids: set[str],
        settings: BatchSettings,
        reporter: Reporter,
    ) -> None:
        self.writer = writer
        self.done_keys = done_keys
        self.article_ids = article_ids
        self.bodies: set[bytes] = set()  # digests of the bodies met so far
        self.settings = settings
        self.reporter = reporter
        self.pool: ProcessPoolExecutor | None = None
        self.in_flight: deque[tuple[Document, str, Future[Rows]]] = deque()
        self.pending = Rows()
        self.pending_duplicates: list[str] = []  # keys of texts found already in the tables
        self.pending_since = time.monotonic()
        self.result = BatchResult()
        self.breaks = 0  # pools broken since the last result

    def take(self, item: Document | Failure, failure_keys: set[str]) -> None:
        key = source_key(item)
        if isinstance(item, Failure):
            if key in self.done_keys:
                self._skip_done(key in failure_keys)
            else:
                self.done_keys.add(key)
                self._add(failure_rows(item, key))
            return
        body = hashlib.blake2b(item.body.encode("utf-8"), digest_size=16).digest()
        if key in self.done_keys:
            self.bodies.add(body)  # a later copy of it is a duplicate, as in the first run
            self._skip_done(key in failure_keys)
        elif body in self.bodies:
            self.result.duplicates += 1
            self.reporter.advanced(1)
        else:
            self.bodies.add(body)
            self.done_keys.add(key)
            self._submit(item, key)
            while len(self.in_flight) >= self.settings.workers * IN_FLIGHT_PER_WORKER:
                self._collect()

    def finish(self) -> None:
        while self.in_flight:
            self._collect()
        if self.pending.documents or self.pending_duplicates:
            self.commit()

    def _skip_done(self, failed: bool) -> None:
        self.reporter.advanced(1)
        self.result.already_done += 1
        if failed:
            self.result.failed_before += 1

    def _submit(self, document: Document, key: str) -> None:
        if self.pool is None:  # started at the first document: a finished run loads no model
            self.pool = _new_pool(self.settings)
        future = self.pool.submit(worker.analyze_to_rows, document, key)
        self.in_flight.append((document, key, future))

    def _collect(self) -> None:
        """Read the oldest result (in input order, so which copy of a text wins is the same
        in every run)."""
        document, key, future = self.in_flight.popleft()
        try:
            rows = future.result()
        except BrokenProcessPool:
            # A worker died (killed, or out of memory) and took the pool with it. The oldest
            # document in flight is blamed; the others go to a fresh pool.
            self.breaks += 1
            if self.breaks > MAX_POOL_BREAKS:
                raise SpinlensError(
                    f"worker processes died {self.breaks} times in a row; giving up "
                    "(run the same command again to resume)"
                ) from None
            self._restart_pool()
            reason = "a worker process died while analysing it (out of memory?)"
            rows = failure_rows(Failure(location=document.source.location, reason=reason), key)
        except Exception as error:  # noqa: BLE001 - e.g. a result that cannot be unpickled
            reason = f"internal error ({type(error).__name__}: {error}); please report it"
            rows = failure_rows(Failure(location=document.source.location, reason=reason), key)
        else:
            self.breaks = 0
        if rows.articles:
            article_id = rows.articles[0]["article_id"]
            if article_id in self.article_ids:
                self.result.duplicates += 1
                self.pending_duplicates.append(key)
                self.reporter.advanced(1)
                return
            self.article_ids.add(article_id)
        self._add(rows)

    def _restart_pool(self) -> None:
        # Every document in flight is lost with the pool: send them again to a fresh one.
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = _new_pool(self.settings)
        again = list(self.in_flight)
        self.in_flight.clear()
        for document, key, _ in again:
            self._submit(document, key)

    def _add(self, rows: Rows) -> None:
        for row in rows.failures:
            self.result.failed += 1
            self.reporter.failure(row["source_location"], row["reason"])
        self.result.analysed += len(rows.articles)
        self.pending.extend(rows)
        self.reporter.advanced(rows.documents)
        self._maybe_commit()

    def _maybe_commit(self) -> None:
        full = self.pending.documents >= self.settings.shard_documents
        old = time.monotonic() - self.pending_since >= self.settings.shard_seconds
        if (self.pending.documents or self.pending_duplicates) and (full or old):
            self.commit()

    def commit(self) -> None:
        self.writer.write(self.pending, self.pending_duplicates)
        self.result.shards += 1
        self.pending = Rows()
        self.pending_duplicates = []
        self.pending_since = time.monotonic()


def _committed_failure_keys(writer: ShardWriter) -> set[str]:
    import pyarrow.parquet as pq

    from spinlens.batch.shards import part_name

    keys: set[str] = set()
    for shard in writer.shards:
        if shard.get("failures"):
            path = writer.out / "failures" / part_name(int(shard["part"]))
            keys.update(pq.read_table(path, columns=["source_key"]).column(0).to_pylist())
    return keys


def _new_pool(settings: BatchSettings) -> ProcessPoolExecutor:
    context = multiprocessing.get_context(settings.start_method)
    worker_settings = WorkerSettings(
        techniques_model=settings.techniques_model,
        narratives=settings.narratives,
        threads=settings.threads,
        parent_pid=os.getpid(),
    )
    with _thread_environment(settings.threads):
        pool = ProcessPoolExecutor(
            max_workers=settings.workers,
            mp_context=context,
            initializer=worker.init_worker,
            initargs=(worker_settings,),
        )
        # Start the workers now (they inherit the environment above) and surface a model that
        # cannot be loaded as one line, before any document is read.
        try:
            problem = pool.submit(worker.ready).result()
        except BrokenProcessPool:
            problem = (
                "the worker processes could not start (a script that starts a batch needs "
                "an `if __name__ == '__main__':` guard)"
            )
    if problem is not None:
        pool.shutdown(cancel_futures=True)
        raise SpinlensError(problem)
    return pool


@contextmanager
def _thread_environment(threads: int | None) -> Iterator[None]:
    """Workers started inside see ``threads`` for numpy's and OpenMP's thread pools."""
    if threads is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in worker.THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in worker.THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
