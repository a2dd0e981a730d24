"""The transformer technique detector: a fine-tuned MiniLM run with ONNX Runtime (no torch).

One encoder serves every task. The ONNX graph takes word pieces and returns, per piece,

* ``logits``: 15 independent (sigmoid) heads, one per technique plus "any technique" (SI), so
  overlapping spans of different techniques are simply several heads on at once;
* ``hidden``: the encoder's last hidden states, from which the span classifier (task TC, a
  softmax over the 14 techniques, stored as plain arrays in ``heads.npz``) reads a span's mean
  and max vectors, its context's mean vector and three counts (see :func:`span_extras`).

Articles are read whole: the word pieces of the full text are cut into windows of ``window``
pieces that overlap (a new one every ``stride`` pieces); windows of every article of a call are
batched together, and where windows overlap their outputs are averaged. Piece probabilities are
averaged onto the words of :class:`~spinlens.techniques.baseline.Doc`, and runs of words above a
head's threshold become spans exactly as in the baseline (:func:`decode_runs`: same sentence,
small gaps joined, punctuation trimmed). A span's score is the mean probability of its words,
mapped by a per-technique Platt scale fitted on validation to the probability that the span is a
correct detection.

Per-technique thresholds (of word probability) were chosen on validation and live in
``model.json``; override them with ``thresholds={"Doubt": 0.4, "Repetition": None, ...}`` (None
turns a technique off) or with a JSON file of that mapping named by the environment variable
``SPINLENS_TECHNIQUE_THRESHOLDS``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.errors import SpinlensError
from spinlens.model import Article, Finding
from spinlens.onnx_session import cpu_session
from spinlens.techniques import SpanVectors
from spinlens.techniques.baseline import ANY, Decoding, Doc, decode_runs, decodings_from_json
from spinlens.techniques.ptc import Label, label_template

FORMAT = "spinlens.transformer-ptc/1"
MODEL_FILE = "model.onnx"
META_FILE = "model.json"
HEADS_FILE = "heads.npz"
TOKENIZER_FILE = "tokenizer.json"
THRESHOLDS_ENV = "SPINLENS_TECHNIQUE_THRESHOLDS"
THREADS = 2
BATCH = 16
CONTEXT = 24  # pieces either side of a span that make its context vector


class ModelFileError(SpinlensError):
    """A transformer model folder is missing files or holds unreadable ones."""


def encode_text(tokenizer: Any, text: str) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """A whole text as word-piece ids and their (start, end) code-point offsets."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    ids = np.asarray(encoding.ids, dtype=np.int64)
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    return ids, offsets


def window_starts(n_pieces: int, size: int, stride: int) -> list[int]:
    """First piece of each window: every ``stride`` pieces, the last one flush with the end."""
    if n_pieces <= 0:
        return []
    if n_pieces <= size:
        return [0]
    starts = list(range(0, n_pieces - size + 1, stride))
    if starts[-1] + size < n_pieces:
        starts.append(n_pieces - size)
    return starts


def span_extras(text: str, start: int, end: int, n_pieces: int) -> list[float]:
    """Counts the encoder cannot see from inside one window: the span's length, how often the
    phrase recurs in the whole article (Repetition), and whether it is in the title line."""
    phrase = text[start:end].lower().strip()
    repeats = text.lower().count(phrase) if phrase else 0
    in_title = 1.0 if "\n" not in text[:start] else 0.0
    return [math.log1p(n_pieces), math.log1p(max(0, repeats - 1)), in_title]


def span_vector(
    hidden: NDArray[np.float32], first: int, last: int, text: str, start: int, end: int
) -> NDArray[np.float32]:
    """The TC head's input for pieces ``first:last`` of a text's hidden states."""
    rows = _pieces(hidden.shape[0], first, last)
    inside = hidden[rows]
    context = hidden[max(0, rows.start - CONTEXT) : rows.stop + CONTEXT]
    extras = np.asarray(span_extras(text, start, end, rows.stop - rows.start), dtype=np.float32)
    return np.concatenate([inside.mean(0), inside.max(0), context.mean(0), extras])


def _pieces(n_pieces: int, first: int, last: int) -> slice:
    """Pieces ``first:last``, at least one and within the text (a span between pieces, or past
    the last one, reads its nearest piece)."""
    first = min(first, n_pieces - 1)
    return slice(first, max(last, first + 1))


def piece_range(offsets: NDArray[np.int64], start: int, end: int) -> tuple[int, int]:
    """Pieces overlapping characters ``start:end`` (an empty range at ``start`` if none)."""
    first = int(np.searchsorted(offsets[:, 1], start, side="right"))
    last = int(np.searchsorted(offsets[:, 0], end, side="left"))
    return first, max(first, last)


@dataclass
class Encoded:
    """One article through the encoder: per piece and per word probabilities, hidden states."""

    doc: Doc
    offsets: NDArray[np.int64]
    piece_probs: NDArray[np.float32]  # pieces x heads
    hidden: NDArray[np.float32]  # pieces x hidden size
    word_probs: NDArray[np.float32]  # doc tokens x heads


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def read_thresholds(path: str | Path) -> dict[str, float | None]:
    """A JSON object {technique: threshold or null} (the SPINLENS_TECHNIQUE_THRESHOLDS file)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SpinlensError(f"cannot read technique thresholds {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise SpinlensError(f"technique thresholds {path}: not JSON ({error.msg})") from None
    if not isinstance(data, dict):
        raise SpinlensError(f"technique thresholds {path}: expected a JSON object")
    return data


class TransformerDetector:
    """Technique spans (``detect``), propaganda spans (SI) and span labels (TC) from one
    fine-tuned encoder. Load a trained model folder with :meth:`load`."""

    def __init__(
        self,
        folder: str | Path,
        *,
        model_file: str = MODEL_FILE,
        thresholds: Mapping[str, float | None] | None = None,
        threads: int = THREADS,
        session: Any = None,
    ) -> None:
        """``session``: anything with ONNX Runtime's ``run(names, feeds)`` to use instead of
        ``model_file`` (training evaluates its PyTorch model through this)."""
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        paths = [self.folder / f for f in (model_file, META_FILE, HEADS_FILE, TOKENIZER_FILE)]
        for path in paths[1:] if session is not None else paths:
            if not path.is_file():
                raise ModelFileError(f"technique model file missing: {path}")
        try:
            meta = json.loads(paths[1].read_text(encoding="utf-8"))
            with np.load(paths[2], allow_pickle=False) as arrays:
                self.tc_weights = arrays["tc_weights"].astype(np.float32)
                self.tc_bias = arrays["tc_bias"].astype(np.float32)
                # Weights and bias of the passage head, for models trained with a passage
                # encoder (see passage_vectors); None otherwise.
                self.passage_head: tuple[NDArray[np.float32], NDArray[np.float32]] | None = (
                    (
                        arrays["passage_weights"].astype(np.float32),
                        arrays["passage_bias"].astype(np.float32),
                    )
                    if "passage_weights" in arrays
                    else None
                )
            self._tokenizer = Tokenizer.from_file(str(paths[3]))
            if session is None:
                session = cpu_session(paths[0], threads)
            self._session = session
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
            raise ModelFileError(f"cannot read technique model in {self.folder}: {error}") from None
        except Exception as error:  # ONNX Runtime and tokenizers raise their own types
            raise ModelFileError(f"cannot load technique model {self.folder}: {error}") from None
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{paths[1]}: not a {FORMAT} model")
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.meta: dict[str, Any] = meta
        try:
            self.name: str = meta["name"]
            self.techniques: list[str] = list(meta["techniques"])
            self.heads = [*self.techniques, ANY]
            self.window = int(meta["window"])
            self.stride = int(meta["stride"])
            self.cls_id = int(meta["cls_id"])
            self.sep_id = int(meta["sep_id"])
            self.tc_temperature = float(meta.get("tc_temperature", 1.0))
            # The sentence encoder whose vectors the passage head reproduces (its name).
            self.passage_encoder: str | None = (
                str(meta["passage_encoder"]) if self.passage_head is not None else None
            )
            # Platt scale per head: calibrated = sigmoid(a * logit(mean probability) + b).
            self.calibration: dict[str, tuple[float, float]] = {
                head: (float(a), float(b)) for head, (a, b) in meta.get("calibration", {}).items()
            }
            self.decodings = decodings_from_json(meta["decodings"])
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{paths[1]}: malformed model metadata ({error!r})") from None
        overrides = dict(thresholds or {})
        env = os.environ.get(THRESHOLDS_ENV)
        if env and thresholds is None:
            overrides = read_thresholds(env)
        self.set_thresholds(overrides)

    @classmethod
    def load(cls, folder: str | Path, **kwargs: Any) -> TransformerDetector:
        return cls(folder, **kwargs)

    def set_thresholds(self, thresholds: Mapping[str, float | None]) -> None:
        """Override decoding thresholds per technique (None: never report it)."""
        for head, value in thresholds.items():
            if head not in self.heads:
                raise SpinlensError(
                    f"technique thresholds: unknown technique {head!r}; known: "
                    + ", ".join(self.heads)
                )
            if value is None:
                self.decodings[head] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpinlensError(f"technique thresholds: {head} must be a number or null")
            if not 0.0 < float(value) < 1.0:
                raise SpinlensError(f"technique thresholds: {head} must be between 0 and 1")
            current = self.decodings.get(head)
            self.decodings[head] = (
                replace(current, threshold=float(value)) if current else Decoding(float(value), 1)
            )

    # --- the encoder -----------------------------------------------------------------------

    def encode_docs(self, docs: Sequence[Doc]) -> list[Encoded]:
        """Run the encoder over every window of every document, batched across documents."""
        pieces = [encode_text(self._tokenizer, doc.text) for doc in docs]
        size = self.window - 2  # [CLS] and [SEP] take two places
        jobs = [
            (d, s, min(s + size, len(ids)))
            for d, (ids, _) in enumerate(pieces)
            for s in window_starts(len(ids), size, self.stride)
        ]
        n_heads = len(self.heads)
        hidden_size = (self.tc_weights.shape[0] - 3) // 3
        prob_sums = [np.zeros((len(ids), n_heads), np.float32) for ids, _ in pieces]
        hidden_sums = [np.zeros((len(ids), hidden_size), np.float32) for ids, _ in pieces]
        counts = [np.zeros((len(ids), 1), np.float32) for ids, _ in pieces]
        # Similar lengths share a batch, so little work goes into padding.
        jobs.sort(key=lambda job: job[2] - job[1])
        for first in range(0, len(jobs), BATCH):
            batch = jobs[first : first + BATCH]
            width = max(e - s for _, s, e in batch) + 2
            input_ids = np.zeros((len(batch), width), np.int64)
            mask = np.zeros((len(batch), width), np.int64)
            for row, (d, s, e) in enumerate(batch):
                n = e - s
                input_ids[row, 0] = self.cls_id
                input_ids[row, 1 : n + 1] = pieces[d][0][s:e]
                input_ids[row, n + 1] = self.sep_id
                mask[row, : n + 2] = 1
            logits, hidden = self._session.run(
                ["logits", "hidden"], {"input_ids": input_ids, "attention_mask": mask}
            )
            probs = _sigmoid(logits)
            for row, (d, s, e) in enumerate(batch):
                n = e - s
                prob_sums[d][s:e] += probs[row, 1 : n + 1]
                hidden_sums[d][s:e] += hidden[row, 1 : n + 1]
                counts[d][s:e] += 1.0
        out = []
        for doc, (_, offsets), p, h, c in zip(
            docs, pieces, prob_sums, hidden_sums, counts, strict=True
        ):
            c = np.maximum(c, np.float32(1.0))
            piece_probs, hidden_states = (p / c).astype(np.float32), (h / c).astype(np.float32)
            out.append(
                Encoded(
                    doc,
                    offsets,
                    piece_probs,
                    hidden_states,
                    self._word_probs(doc, offsets, piece_probs),
                )
            )
        return out

    @staticmethod
    def _word_probs(
        doc: Doc, offsets: NDArray[np.int64], piece_probs: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        """Mean probability of the pieces inside each word of the Doc."""
        n_words, n_heads = len(doc.tokens), piece_probs.shape[1]
        sums = np.zeros((n_words, n_heads), np.float32)
        counts = np.zeros((n_words, 1), np.float32)
        if n_words == 0 or len(offsets) == 0:
            return sums
        starts = np.array([t.start for t in doc.tokens], dtype=np.int64)
        ends = np.array([t.end for t in doc.tokens], dtype=np.int64)
        word = np.searchsorted(starts, offsets[:, 0], side="right") - 1
        valid = (word >= 0) & (offsets[:, 0] < ends[np.maximum(word, 0)])
        np.add.at(sums, word[valid], piece_probs[valid])
        np.add.at(counts, word[valid], 1.0)
        return (sums / np.maximum(counts, 1.0)).astype(np.float32)

    # --- spans -----------------------------------------------------------------------------

    def calibrated(self, head: str, raw: float) -> float:
        """Probability that a span of ``head`` with mean word probability ``raw`` is correct."""
        a, b = self.calibration.get(head, (1.0, 0.0))
        p = min(max(raw, 1e-6), 1 - 1e-6)
        return 1.0 / (1.0 + math.exp(-(a * math.log(p / (1 - p)) + b)))

    def head_spans(self, encoded: Encoded, head: str) -> list[tuple[int, int, float]]:
        """Spans of one head as (start, end, calibrated score), or none if it is switched off."""
        decoding = self.decodings.get(head)
        if decoding is None or not encoded.doc.tokens:
            return []
        column = self.heads.index(head)
        probs = encoded.word_probs[:, column]
        tokens = encoded.doc.tokens
        return [
            (
                tokens[a].start,
                tokens[b].end,
                self.calibrated(
                    head,
                    float(
                        probs[
                            encoded.doc.content[
                                (encoded.doc.content >= a) & (encoded.doc.content <= b)
                            ]
                        ].mean()
                    ),
                ),
            )
            for a, b, _ in decode_runs(encoded.doc, probs, decoding)
        ]

    def findings(self, encoded: Encoded) -> list[Finding]:
        text = encoded.doc.text
        findings = [
            Finding(start=s, end=e, technique=t, score=round(p, 4), text=text[s:e])
            for t in self.techniques
            for s, e, p in self.head_spans(encoded, t)
        ]
        findings.sort(key=lambda f: (f.start, f.end, f.technique))
        return findings

    def detect(self, article: Article) -> list[Finding]:
        return self.detect_many([article])[0]

    def read(self, article: Article) -> tuple[list[Finding], SpanVectors]:
        """Findings, and the passage head's vectors of any spans of the article from the same
        pass (``passage_vectors``): narrative matching then needs no encoder of its own."""
        encoded = self.encode_docs([Doc(article)])[0]
        return self.findings(encoded), lambda spans: self.passage_vectors(encoded, spans)

    def detect_many(self, articles: Sequence[Article]) -> list[list[Finding]]:
        """Findings of several articles, their windows batched together."""
        return [self.findings(e) for e in self.encode_docs([Doc(a) for a in articles])]

    def propaganda_spans(self, encoded: Encoded) -> list[tuple[int, int, float]]:
        """Spans that hold some technique (task SI)."""
        return self.head_spans(encoded, ANY)

    def classify_encoded(
        self, encoded: Encoded, spans: Sequence[tuple[int, int]]
    ) -> list[dict[str, float]]:
        """Probability of each technique for each given span, highest first."""
        text = encoded.doc.text
        if any(not 0 <= s < e <= len(text) for s, e in spans):
            raise SpinlensError("span offsets are outside the article text")
        if not spans:
            return []
        if len(encoded.offsets) == 0:
            uniform = 1.0 / len(self.techniques)
            return [dict.fromkeys(self.techniques, uniform) for _ in spans]
        rows = []
        for start, end in spans:
            first, last = piece_range(encoded.offsets, start, end)
            rows.append(span_vector(encoded.hidden, first, last, text, start, end))
        logits = (np.stack(rows) @ self.tc_weights + self.tc_bias) / self.tc_temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return [{self.techniques[i]: float(row[i]) for i in np.argsort(-row)} for row in probs]

    def passage_vectors(
        self, encoded: Encoded, spans: Sequence[tuple[int, int]]
    ) -> NDArray[np.float32]:
        """Unit vectors of these text spans in the space of ``self.passage_encoder``: the
        passage head over the mean hidden state of each span's pieces. A model without a
        passage head raises SpinlensError."""
        if self.passage_head is None:
            raise SpinlensError(f"technique model {self.name} has no passage head")
        weights, bias = self.passage_head
        if not spans or len(encoded.offsets) == 0:
            return np.zeros((len(spans), weights.shape[1]), np.float32)
        pooled = np.stack(
            [
                encoded.hidden[
                    _pieces(len(encoded.offsets), *piece_range(encoded.offsets, s, e))
                ].mean(0)
                for s, e in spans
            ]
        )
        out = pooled @ weights + bias
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(
            np.float32
        )

    def classify_span(self, article: Article, start: int, end: int) -> dict[str, float]:
        """Probability of each technique for the given span (task TC), highest first."""
        return self.classify_encoded(self.encode_docs([Doc(article)])[0], [(start, end)])[0]


# --- SemEval task outputs ----------------------------------------------------------------


def encode_all(model: TransformerDetector, docs: Mapping[str, Doc]) -> dict[str, Encoded]:
    ids = list(docs)
    return dict(zip(ids, model.encode_docs([docs[i] for i in ids]), strict=True))


def predict_si(model: TransformerDetector, encoded: Mapping[str, Encoded]) -> list[Label]:
    return [
        Label(article_id, s, e)
        for article_id, enc in encoded.items()
        for s, e, _ in model.propaganda_spans(enc)
    ]


def predict_flc(model: TransformerDetector, encoded: Mapping[str, Encoded]) -> list[Label]:
    return [
        Label(article_id, f.start, f.end, f.technique)
        for article_id, enc in encoded.items()
        for f in model.findings(enc)
    ]


def predict_tc(
    model: TransformerDetector, encoded: Mapping[str, Encoded], template: Sequence[Label]
) -> list[Label]:
    """Task TC: label every template span (see ``ptc.label_template``)."""
    return label_template(
        template,
        encoded,
        lambda article_id, spans: [
            list(p) for p in model.classify_encoded(encoded[article_id], spans)
        ],
    )
