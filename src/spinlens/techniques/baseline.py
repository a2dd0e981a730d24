"""The linear baseline technique detector: hashed features, logistic regression, numpy only.

Two models share one feature hashing scheme:

* a **token tagger**: for every token, one logistic regression per technique (plus one for
  "any technique", used for task SI) estimates the probability that the token lies inside a span
  of that technique. Features: the word, its neighbours, word shape, suffix, whether the word or
  bigram recurs in the article (Repetition), quotes, position, and the sentence's words. Runs of
  tokens above a per-technique threshold (allowing a per-technique number of gap tokens) become
  spans; thresholds and gaps were chosen on a validation split (see ``train_baseline``).
* a **span classifier** (task TC): a multinomial logistic regression over the words of a given
  span, its context, its length and how often it recurs in the article.

Weights are plain arrays in ``weights.npz`` (loaded with ``allow_pickle=False``) and everything
else is in ``model.json``: no pickle, no scikit-learn at run time.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.errors import SpinlensError
from spinlens.model import Article
from spinlens.techniques.decoding import (
    ANY,
    SENSITIVITIES,
    Decoding,
    Decodings,
    Doc,
    Sensitivity,
    Token,
    decode_runs,
    decodings_from_json,
    decodings_to_json,
    sensitivities_from_json,
    sensitivities_to_json,
    sigmoid,
    smoothed,
)
from spinlens.techniques.findings import TokenReading, TokenTagger

# Names that moved to ``decoding`` and are still imported from here.
__all__ = [
    "ANY",
    "Decoding",
    "Doc",
    "LinearDetector",
    "Token",
    "decode_runs",
    "decodings_from_json",
    "decodings_to_json",
    "smoothed",
]

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
FORMAT = "spinlens.baseline-linear/1"

_QUOTES = frozenset('"“”«»')


def _hash(feature: str, mask: int) -> int:
    return zlib.crc32(feature.encode("utf-8")) & mask


def _shape(word: str) -> str:
    if word.isdigit():
        return "d"
    if not word[0].isalnum():
        return word[0]
    if word.isupper():
        return "X" if len(word) > 1 else "Xs"
    if word[0].isupper():
        return "Xx"
    return "x"


def _bucket(n: int, edges: Sequence[int]) -> int:
    """Index of the first edge >= n (len(edges) when above all)."""
    for i, edge in enumerate(edges):
        if n <= edge:
            return i
    return len(edges)


def _is_word(lower: str) -> bool:
    return lower.isalpha() and len(lower) > 3


def sentence_features(doc: Doc, sentence: int) -> list[str]:
    """Features shared by every token of a sentence: its words, length, whether it is the title."""
    first, last = doc.sentence_tokens[sentence]
    words = {doc.tokens[i].lower for i in range(first, last)}
    features = [f"s={w}" for w in sorted(words)]
    features.append(f"slen={_bucket(last - first, (3, 8, 15, 25, 40))}")
    if sentence == 0:
        features.append("title")
    return features


def token_features(doc: Doc, index: int) -> list[str]:
    """Features of one token (its sentence's features are added separately)."""
    tokens = doc.tokens
    token = tokens[index]
    first, last = doc.sentence_tokens[token.sentence]

    def word(offset: int) -> str:
        j = index + offset
        if j < first:
            return "<s>"
        if j >= last:
            return "</s>"
        return tokens[j].lower

    w = token.lower
    features = [
        f"w={w}",
        f"w-1={word(-1)}",
        f"w+1={word(1)}",
        f"w-2={word(-2)}",
        f"w+2={word(2)}",
        f"b-={word(-1)}|{w}",
        f"b+={w}|{word(1)}",
        f"sh={_shape(token.text)}",
        f"sh-1={_shape(tokens[index - 1].text) if index > first else '<s>'}",
        f"sh+1={_shape(tokens[index + 1].text) if index + 1 < last else '</s>'}",
    ]
    if len(w) > 4:
        features.append(f"suf={w[-3:]}")
    if len(w) > 6:
        features.append(f"pre={w[:5]}")
    features.append(f"t={word(-1)}|{w}|{word(1)}")
    # Unordered nearby words: emotional wording clusters around the span.
    for j in range(max(first, index - 4), min(last, index + 5)):
        if j != index and tokens[j].lower.isalpha():
            features.append(f"c={tokens[j].lower}")
    if _is_word(w):
        features.append(f"rep={_bucket(doc.word_counts[w], (1, 2, 4))}")
    if index + 1 < last:
        count = doc.bigram_counts[(w, tokens[index + 1].lower)]
        features.append(f"brep={_bucket(count, (1, 2, 4))}")
    quotes_before = sum(tokens[j].text in _QUOTES for j in range(first, index))
    if quotes_before % 2:
        features.append("inq")
    relative = (index - first) / max(1, last - first)
    features.append(f"pos={int(relative * 4)}")
    if index == first:
        features.append("first")
    return features


def span_features(doc: Doc, start: int, end: int) -> list[str]:
    """Features of a given span (task TC): its words, context, length and recurrence."""
    inside = [t for t in doc.tokens if t.start < end and t.end > start]
    before = [t for t in doc.tokens if t.end <= start][-3:]
    after = [t for t in doc.tokens if t.start >= end][:3]
    words = [t.lower for t in inside]
    features = [f"u={w}" for w in words]
    features += [f"bi={a}|{b}" for a, b in zip(words, words[1:], strict=False)]
    if words:
        features += [f"first={words[0]}", f"last={words[-1]}"]
        sentence = inside[0].sentence
        features += [f"s={f[2:]}" for f in sentence_features(doc, sentence) if f.startswith("s=")]
        s_first, s_last = doc.sentence_tokens[sentence]
        coverage = len(inside) / max(1, s_last - s_first)
        features.append(f"cov={_bucket(int(coverage * 10), (2, 5, 8, 9))}")
        if sentence == 0:
            features.append("title")
        capitals = sum(t.text[0].isupper() for t in inside if t.text[0].isalpha())
        features.append(f"caps={_bucket(int(10 * capitals / len(inside)), (0, 3, 6))}")
    features += [f"l{i}={t.lower}" for i, t in enumerate(reversed(before), 1)]
    features += [f"r{i}={t.lower}" for i, t in enumerate(after, 1)]
    features.append(f"len={_bucket(len(inside), (1, 2, 3, 5, 9, 19))}")
    phrase = doc.text[start:end].lower()
    if phrase.strip():
        features.append(f"rep={_bucket(doc.lower_text.count(phrase), (1, 2, 3, 5))}")
    for mark in ("!", "?", '"', "“"):
        if mark in doc.text[start:end]:
            features.append(f"has={mark}")
    return features


def hashed(features: Sequence[str], mask: int) -> list[int]:
    return [_hash(f, mask) for f in features]


class LinearDetector(TokenTagger[TokenReading]):
    """Finds technique spans with the linear token tagger; labels given spans with the span
    classifier. Load a trained model with :meth:`load`."""

    def __init__(
        self,
        *,
        techniques: Sequence[str],
        tagger_weights: NDArray[np.float32],
        tagger_bias: NDArray[np.float32],
        tagger_bits: int,
        decodings: Decodings,
        span_weights: NDArray[np.float32],
        span_bias: NDArray[np.float32],
        span_bits: int,
        name: str = "baseline-linear@1",
        meta: dict[str, Any] | None = None,
        sensitivities: dict[Sensitivity, Decodings] | None = None,
    ) -> None:
        """``decodings`` serve every sensitivity level unless ``sensitivities`` are given."""
        self.name = name
        self.techniques = list(techniques)
        # Tagger heads: one per technique, then ANY.
        self.heads = [*self.techniques, ANY]
        if tagger_weights.shape != (1 << tagger_bits, len(self.heads)):
            raise SpinlensError(f"{name}: tagger weights have shape {tagger_weights.shape}")
        if span_weights.shape != (1 << span_bits, len(self.techniques)):
            raise SpinlensError(f"{name}: span classifier weights have shape {span_weights.shape}")
        self.tagger_weights = tagger_weights
        self.tagger_bias = tagger_bias
        self.tagger_mask = (1 << tagger_bits) - 1
        self.span_weights = span_weights
        self.span_bias = span_bias
        self.span_mask = (1 << span_bits) - 1
        self.meta = meta or {}
        self._use_levels(sensitivities or {level: dict(decodings) for level in SENSITIVITIES})
        try:
            self._use_tc_context()
        except (KeyError, TypeError, ValueError) as error:
            raise SpinlensError(f"{name}: malformed tc_context ({error!r})") from None
        self.decodings = dict(decodings)

    # --- persistence ---------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> LinearDetector:
        folder = Path(path)
        model_file, weights_file = folder / MODEL_FILE, folder / WEIGHTS_FILE
        for required in (model_file, weights_file):
            if not required.is_file():
                raise SpinlensError(f"baseline model file missing: {required}")
        try:
            meta = json.loads(model_file.read_text(encoding="utf-8"))
            with np.load(weights_file, allow_pickle=False) as arrays:
                weights = {key: arrays[key].astype(np.float32) for key in arrays.files}
        except (OSError, ValueError, json.JSONDecodeError) as error:
            raise SpinlensError(f"cannot read baseline model in {folder}: {error}") from None
        if meta.get("format") != FORMAT:
            raise SpinlensError(f"{model_file}: not a {FORMAT} model")
        try:
            levels = sensitivities_from_json(meta)
        except (KeyError, TypeError, ValueError) as error:
            raise SpinlensError(f"{model_file}: malformed decodings ({error!r})") from None
        return cls(
            techniques=meta["techniques"],
            tagger_weights=weights["tagger_weights"],
            tagger_bias=weights["tagger_bias"],
            tagger_bits=meta["tagger_bits"],
            decodings=levels["balanced"],
            span_weights=weights["span_weights"],
            span_bias=weights["span_bias"],
            span_bits=meta["span_bits"],
            name=meta["name"],
            meta=meta,
            sensitivities=levels,
        )

    def save(self, path: str | Path) -> None:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            **self.meta,
            "format": FORMAT,
            "name": self.name,
            "techniques": self.techniques,
            "tagger_bits": self.tagger_mask.bit_length(),
            "span_bits": self.span_mask.bit_length(),
            # All of each decoding: its smoothing and peak were chosen on validation too.
            "decodings": decodings_to_json(self.decodings),
            # The decodings in use replace their level's: what was measured is what is saved.
            "sensitivities": sensitivities_to_json(
                {**self.sensitivities, self.sensitivity: self.decodings}
            ),
        }
        # float16 halves the files; the scores it changes move by far less than any threshold.
        np.savez_compressed(
            folder / WEIGHTS_FILE,
            tagger_weights=self.tagger_weights.astype(np.float16),
            tagger_bias=self.tagger_bias.astype(np.float32),
            span_weights=self.span_weights.astype(np.float16),
            span_bias=self.span_bias.astype(np.float32),
        )
        (folder / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    # --- inference -----------------------------------------------------------------------

    def token_probabilities(self, doc: Doc) -> NDArray[np.float32]:
        """(tokens × heads) probabilities of each token lying inside a span of each head."""
        n_heads = len(self.heads)
        scores = np.zeros((len(doc.tokens), n_heads), dtype=np.float32)
        weights, mask = self.tagger_weights, self.tagger_mask
        for sentence, (first, last) in enumerate(doc.sentence_tokens):
            if first == last:
                continue
            # Sentence features are the same for all its tokens: sum their weights once.
            shared = weights[hashed(sentence_features(doc, sentence), mask)].sum(axis=0)
            rows = [hashed(token_features(doc, i), mask) for i in range(first, last)]
            lengths = [len(r) for r in rows]
            flat = np.fromiter((h for r in rows for h in r), dtype=np.int64, count=sum(lengths))
            offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            scores[first:last] = np.add.reduceat(weights[flat], offsets, axis=0) + shared
        return sigmoid(scores + self.tagger_bias)

    def read_docs(self, docs: Sequence[Doc]) -> list[TokenReading]:
        return [TokenReading(doc, self.token_probabilities(doc)) for doc in docs]

    def tc_distributions(
        self, reading: TokenReading, spans: Sequence[tuple[int, int]]
    ) -> NDArray[np.float64]:
        """The span classifier's distribution of each span, from the words alone."""
        rows = np.zeros((len(spans), len(self.techniques)))
        for row, (start, end) in zip(rows, spans, strict=True):
            indices = hashed(span_features(reading.doc, start, end), self.span_mask)
            logits = self.span_weights[indices].sum(axis=0) + self.span_bias
            exp = np.exp(logits - logits.max())
            row[:] = exp / exp.sum()
        return rows

    def classify_spans(self, doc: Doc, spans: Sequence[tuple[int, int]]) -> list[dict[str, float]]:
        """:meth:`classify_reading` without the tagger's pass, which the span classifier does
        not need (so the reading carries no word probabilities)."""
        return self.classify_reading(TokenReading(doc, np.zeros((0, 0), np.float32)), spans)

    def classify_span(self, article: Article, start: int, end: int) -> dict[str, float]:
        return self.classify_spans(Doc(article), [(start, end)])[0]
