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
averaged onto the words of :class:`~spinlens.techniques.decoding.Doc`, and runs of words above a
head's threshold become spans exactly as in the baseline (``findings.TokenTagger``: same sentence,
small gaps joined, punctuation trimmed). A span's score is the mean probability of its words,
mapped by a per-technique Platt scale fitted on validation to the probability that the span is a
correct detection.

Per-technique decodings (thresholds of word probability), one set per sensitivity level, were
chosen on validation and live in ``model.json`` (see ``sensitivity``); override thresholds with
``thresholds={"Doubt": 0.4, "Repetition": None, ...}`` (None turns a technique off) or with a
JSON file of that mapping named by the environment variable ``SPINLENS_TECHNIQUE_THRESHOLDS``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.config import Settings
from spinlens.errors import SpinlensError
from spinlens.model import Article, Finding
from spinlens.onnx_session import cpu_session
from spinlens.techniques import SpanVectors, assemble
from spinlens.techniques.decoding import (
    ANY,
    DEFAULT_SENSITIVITY,
    Doc,
    sensitivities_from_json,
    sigmoid,
)
from spinlens.techniques.findings import (
    CalibratedTagger,
    predict_flc,
    predict_si,
    predict_tc,
)
from spinlens.techniques.tc_context import recurrence

# The SemEval outputs live in ``findings``; the trainer imports them from here too.
__all__ = [
    "Encoded",
    "TransformerDetector",
    "encode_all",
    "predict_flc",
    "predict_si",
    "predict_tc",
]

FORMAT = "spinlens.transformer-ptc/1"
MODEL_FILE = "model.onnx"
META_FILE = "model.json"
HEADS_FILE = "heads.npz"
TOKENIZER_FILE = assemble.TOKENIZER_FILE
THRESHOLDS_ENV = "SPINLENS_TECHNIQUE_THRESHOLDS"
THREADS = 2
BATCH = 16
CONTEXT = 24  # pieces either side of a span that make its context vector
# Techniques that usually span a clause or a whole sentence: for these, a model with a sentence
# head (trained on sentences that a technique covers at least half of) lifts each word of a
# sentence to the sentence's probability when that is higher, so the decodings chosen on
# validation can report the sentence where token evidence alone stays weak.
SENTENCE_TECHNIQUES = (
    "Appeal_to_Authority",
    "Black-and-White_Fallacy",
    "Causal_Oversimplification",
    "Thought-terminating_Cliches",
    "Whataboutism,Straw_Men,Red_Herring",
)


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


# Content words for the article-context features: letters only, three or more.
CONTENT_WORD = re.compile(r"[^\W\d_]{3,}")


def _stem(word: str) -> str:
    """A crude lemma: lower case, a plural s dropped ("elites" and "elite" count together)."""
    word = word.lower()
    return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word


@dataclass(frozen=True)
class ArticleWords:
    """What a span's label depends on beyond its window (Repetition is about the whole
    article): the article lower-cased and its content words counted, once per article."""

    lower: str
    counts: Counter[str]

    @classmethod
    def of(cls, text: str) -> ArticleWords:
        return cls(text.lower(), Counter(_stem(w) for w in CONTENT_WORD.findall(text)))


# Span features by version (``span_features`` in model.json): 1 (minilm-ptc@3) has the first
# three; 2 adds where else in the article the span's words and phrase occur (issue 15: the top
# SemEval-2020 TC systems gave Repetition this context; minilm-ptc@3 got it right 1 time in 4).
SPAN_FEATURES = {1: 3, 2: 7}


def span_extras(
    text: str, start: int, end: int, n_pieces: int, words: ArticleWords, version: int = 1
) -> list[float]:
    """Counts the encoder cannot see from inside one window: the span's length, how often the
    phrase recurs in the whole article, whether it is in the title line; with version 2 also
    the share of its content words found elsewhere in the article, how often they are (mean,
    log), whether the phrase already occurred before it and where in the article it stands."""
    repeats, earlier = recurrence(words.lower, start, end)
    in_title = 1.0 if "\n" not in text[:start] else 0.0
    extras = [math.log1p(n_pieces), math.log1p(max(0, repeats - 1)), in_title]
    if version < 2:
        return extras
    inside = Counter(_stem(w) for w in CONTENT_WORD.findall(text[start:end]))
    # At least 0: a span cut inside a word has pieces of words the article never counted.
    elsewhere = [max(0, words.counts[w] - n) for w, n in inside.items() for _ in range(n)]
    found = sum(1 for n in elsewhere if n > 0) / len(elsewhere) if elsewhere else 0.0
    mean_count = math.log1p(sum(elsewhere) / len(elsewhere)) if elsewhere else 0.0
    return [*extras, found, mean_count, float(earlier), start / max(1, len(text))]


def span_vector(
    hidden: NDArray[np.float32],
    first: int,
    last: int,
    text: str,
    start: int,
    end: int,
    words: ArticleWords,
    version: int = 1,
) -> NDArray[np.float32]:
    """The TC head's input for pieces ``first:last`` of a text's hidden states."""
    rows = _pieces(hidden.shape[0], first, last)
    inside = hidden[rows]
    context = hidden[max(0, rows.start - CONTEXT) : rows.stop + CONTEXT]
    extras = span_extras(text, start, end, rows.stop - rows.start, words, version)
    return np.concatenate(
        [inside.mean(0), inside.max(0), context.mean(0), np.asarray(extras, np.float32)]
    )


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


class TransformerDetector(CalibratedTagger[Encoded]):
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
        sensitivity: str = DEFAULT_SENSITIVITY,
    ) -> None:
        """``session``: anything with ONNX Runtime's ``run(names, feeds)`` to use instead of
        ``model_file`` (training evaluates its PyTorch model through this)."""
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        paths = [self.folder / f for f in (model_file, META_FILE, HEADS_FILE, TOKENIZER_FILE)]
        if not paths[3].is_file() and session is None:
            # A model assembled onto its base ships no tokenizer: the base's lies beside the
            # assembled graph (``assemble.assembled_model``).
            paths[3] = paths[0].parent / TOKENIZER_FILE
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
                # The sentence head (per sentence: mean hidden state -> technique logits).
                self.sentence_head: tuple[NDArray[np.float32], NDArray[np.float32]] | None = (
                    (
                        arrays["sentence_weights"].astype(np.float32),
                        arrays["sentence_bias"].astype(np.float32),
                    )
                    if "sentence_weights" in arrays
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
            self.span_features = int(meta.get("span_features", 1))
            self.stride = int(meta["stride"])
            self.cls_id = int(meta["cls_id"])
            self.sep_id = int(meta["sep_id"])
            self.tc_temperature = float(meta.get("tc_temperature", 1.0))
            # The sentence encoder whose vectors the passage head reproduces (its name).
            self.passage_encoder: str | None = (
                str(meta["passage_encoder"]) if self.passage_head is not None else None
            )
            # Platt scale per head (see CalibratedTagger).
            self.calibration = {
                head: (float(a), float(b)) for head, (a, b) in meta.get("calibration", {}).items()
            }
            # Which technique columns the sentence head informs (model.json may narrow them;
            # an empty list turns the blend off).
            blended = meta.get("sentence_techniques", SENTENCE_TECHNIQUES)
            self.sentence_columns = (
                [self.techniques.index(t) for t in blended if t in self.techniques]
                if self.sentence_head is not None
                else []
            )
            levels = sensitivities_from_json(meta)
            self._use_tc_context()
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{paths[1]}: malformed model metadata ({error!r})") from None
        self._use_levels(levels, sensitivity)
        overrides = dict(thresholds or {})
        # SPINLENS_TECHNIQUE_THRESHOLDS, read (like every setting) through Settings.
        configured = Settings.from_env().technique_thresholds
        if configured is not None and thresholds is None:
            overrides = read_thresholds(configured)
        self.set_thresholds(overrides)

    @classmethod
    def load(cls, folder: str | Path, **kwargs: Any) -> TransformerDetector:
        """A model folder; one shipped as adapters is first assembled onto its PyPI base
        (once, into the cache under the spinlens home; see ``assemble``)."""
        if assemble.is_assembled(Path(folder)) and "model_file" not in kwargs:
            model = assemble.assembled_model(Path(folder), Settings.from_env().cache_dir)
            kwargs["model_file"] = str(model)
        return cls(folder, **kwargs)

    # --- the encoder -----------------------------------------------------------------------

    def read_docs(self, docs: Sequence[Doc]) -> list[Encoded]:
        return self.encode_docs(docs)

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
        hidden_size = (self.tc_weights.shape[0] - SPAN_FEATURES[self.span_features]) // 3
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
            probs = sigmoid(logits)
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
            word_probs = self._word_probs(doc, offsets, piece_probs)
            self._lift_to_sentences(doc, offsets, hidden_states, word_probs)
            out.append(Encoded(doc, offsets, piece_probs, hidden_states, word_probs))
        return out

    def sentence_probs(
        self, doc: Doc, offsets: NDArray[np.int64], hidden: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        """The sentence head's technique probabilities, one row per sentence of ``doc`` (zeros
        for a sentence without pieces)."""
        assert self.sentence_head is not None
        weights, bias = self.sentence_head
        pooled = np.zeros((len(doc.sentences), hidden.shape[1]), np.float32)
        for index, (start, end) in enumerate(doc.sentences):
            first, last = piece_range(offsets, start, end)
            if last > first:
                pooled[index] = hidden[first:last].mean(0)
        probs = sigmoid(pooled @ weights + bias)
        empty = ~pooled.any(axis=1)
        probs[empty] = 0.0
        return probs

    def _lift_to_sentences(
        self,
        doc: Doc,
        offsets: NDArray[np.int64],
        hidden: NDArray[np.float32],
        word_probs: NDArray[np.float32],
    ) -> None:
        """Raise the sentence techniques' word probabilities to their sentence's (in place)."""
        if not self.sentence_columns or not doc.sentences:
            return
        probs = self.sentence_probs(doc, offsets, hidden)
        columns = self.sentence_columns
        for index, (first, last) in enumerate(doc.sentence_tokens):
            if last > first:
                word_probs[first:last, columns] = np.maximum(
                    word_probs[first:last, columns], probs[index, columns]
                )

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

    def read(self, article: Article) -> tuple[list[Finding], SpanVectors]:
        """Findings, and the passage head's vectors of any spans of the article from the same
        pass (``passage_vectors``): narrative matching then needs no encoder of its own."""
        encoded = self.encode_docs([Doc(article)])[0]
        return self.findings(encoded), lambda spans: self.passage_vectors(encoded, spans)

    def tc_distributions(
        self, encoded: Encoded, spans: Sequence[tuple[int, int]]
    ) -> NDArray[np.float64]:
        """The span head's distribution of each span (spans x techniques)."""
        text = encoded.doc.text
        if not spans or len(encoded.offsets) == 0:
            return np.full((len(spans), len(self.techniques)), 1.0 / len(self.techniques))
        rows = []
        words = ArticleWords.of(text)
        for start, end in spans:
            first, last = piece_range(encoded.offsets, start, end)
            rows.append(
                span_vector(
                    encoded.hidden, first, last, text, start, end, words, self.span_features
                )
            )
        logits = (np.stack(rows) @ self.tc_weights + self.tc_bias) / self.tc_temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits).astype(np.float64)
        return probs / probs.sum(axis=1, keepdims=True)

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


# --- SemEval task outputs (``findings.predict_si`` etc. take what this gives) ------------


def encode_all(model: TransformerDetector, docs: Mapping[str, Doc]) -> dict[str, Encoded]:
    return model.read_all(docs)
