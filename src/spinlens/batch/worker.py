"""What runs inside each worker process: the models, loaded once, and one document at a time."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass

from spinlens.batch.tables import Rows, analysis_rows, failure_rows
from spinlens.config import Settings
from spinlens.core import Spinlens
from spinlens.errors import SpinlensError
from spinlens.model import Analysis, Document, Failure

# Libraries that size their thread pools from these at import time (numpy's BLAS, OpenMP).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class WorkerSettings:
    """How each worker loads its models (pickled to the worker processes)."""

    techniques_model: str | None = None
    narratives: bool = True
    threads: int | None = None  # ONNX Runtime threads per worker; None: the models' default
    # The process that started the pool: a worker leaves when it is gone. Given by the parent,
    # since a worker still importing when the parent dies would read its new parent (init).
    parent_pid: int | None = None


_core: Spinlens | None = None
_load_error: str | None = None


def init_worker(settings: WorkerSettings) -> None:
    """Pool initializer: load the models once for every document this process analyses."""
    global _core, _load_error
    _exit_with_parent(settings.parent_pid)
    # Ctrl-C is the parent's to handle (it commits what is done); a worker keeps going.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings.threads is not None:
        from spinlens.onnx_session import set_threads

        set_threads(settings.threads)
    overrides: dict[str, object] = {"narratives": settings.narratives}
    if settings.techniques_model is not None:
        overrides["techniques_model"] = settings.techniques_model
    try:
        core = Spinlens(Settings.from_env(**overrides))
        core.pipeline  # noqa: B018 - loads the models now, once
        _core = core
    except SpinlensError as error:
        _load_error = str(error)  # reported once by ready(), not as a crash of the pool


def _exit_with_parent(parent: int | None, every: float = 1.0) -> None:
    """A worker whose parent was killed (SIGKILL, power button) would wait on its queue
    forever, holding its models' memory: it leaves as soon as it is orphaned."""
    if parent is None:
        parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def ready() -> str | None:
    """Called once after start-up: None, or why the models could not be loaded."""
    return _load_error


def analyze_document(document: Document) -> Analysis | Failure:
    """The one call into the analysis: the core's, as ``analyze`` makes it."""
    if _core is None:
        raise RuntimeError(f"worker {os.getpid()} has no models: {_load_error}")
    return next(iter(_core.analyze_documents([document])))


def analyze_to_rows(document: Document, key: str) -> Rows:
    """A document's table rows (built here, so the parent process only writes them)."""
    result = analyze_document(document)
    if isinstance(result, Failure):
        return failure_rows(result, key)
    return analysis_rows(result, key)
