"""ONNX Runtime sessions as spinlens runs every model: on the CPU, with a fixed thread count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Set by `spinlens batch --threads` in each worker process: with N workers, the models' own
# thread counts would put N times that many threads on the cores.
_threads_override: int | None = None


def set_threads(threads: int | None) -> None:
    """Make every session this process opens from now on use ``threads`` (None: the model's)."""
    global _threads_override
    _threads_override = threads


def cpu_session(path: Path, threads: int) -> Any:
    """An inference session for the model file at ``path`` (``onnxruntime.InferenceSession``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads if _threads_override is None else _threads_override
    options.inter_op_num_threads = 1
    # By default idle worker threads spin-wait for the next run, taking the cores from whatever
    # runs in between: the other model, numpy's catalogue search. Without spinning, analyze with
    # narrative matching ran 15% faster on 2 cores and the detector alone just as fast
    # (docs/benchmarks.md, "Narrative matching cost").
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
