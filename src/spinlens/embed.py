"""The shared sentence encoder: all-MiniLM-L6-v2 (int8 ONNX) run with ONNX Runtime.

The graph in ``models/minilm-l6-v2/model.onnx`` already does mean pooling and L2
normalisation (see benchmarks/export_encoder.py), so ``encode`` returns unit vectors whose dot
products are cosine similarities. Activations are quantised per batch (dynamic int8), so a
text's vector moves slightly (cosine > 0.98) with the texts batched beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from spinlens.config import models_dir
from spinlens.errors import SpinlensError

ENCODER_DIR = "minilm-l6-v2"
# The encoder was trained on sequences of at most 256 word pieces; longer text is cut.
MAX_TOKENS = 256
# The machine spinlens targets is a laptop; 2 threads keep a batch run from starving the rest.
THREADS = 2


class ModelUnavailableError(SpinlensError):
    """A model's files are missing or unreadable."""


class Encoder:
    """Texts in, L2-normalised float32 vectors out (one row per text)."""

    def __init__(self, model_dir: Path, threads: int = THREADS) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_path = model_dir / "model.onnx"
        tokenizer_path = model_dir / "tokenizer.json"
        for path in (onnx_path, tokenizer_path):
            if not path.is_file():
                raise ModelUnavailableError(f"sentence encoder file missing: {path}")
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT and tokenizers raise their own exception types
            raise ModelUnavailableError(f"cannot load sentence encoder {model_dir}: {exc}") from exc
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:12]
        # Changes whenever the model file does, so caches of embeddings know to rebuild.
        self.name = f"all-MiniLM-L6-v2-int8@{digest}"
        self.dim = int(self._session.get_outputs()[0].shape[1])

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Batches of similar length waste little work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            out[rows] = self._session.run(["sentence_embedding"], feeds)[0]
        # The graph normalises already; this guards against a model file that does not.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@lru_cache(maxsize=4)
def load_encoder(model_dir: Path | None = None) -> Encoder:
    """The encoder, loaded once per process (default: the shipped models/minilm-l6-v2)."""
    return Encoder(model_dir if model_dir is not None else models_dir() / ENCODER_DIR)
