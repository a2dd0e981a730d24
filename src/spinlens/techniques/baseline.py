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
import re
import zlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.errors import SpinlensError
from spinlens.model import Article, Finding
from spinlens.sentences import split_sentences
from spinlens.techniques.ptc import Label, label_template

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
FORMAT = "spinlens.baseline-linear/1"
ANY = "ANY"  # the tagger head that predicts "inside some technique span" (task SI)

_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_QUOTES = frozenset('"“”«»')
# Annotation guidelines: spans never start or end with these (PTC v2 trimmed them).
_TRIM = frozenset({".", ",", ":", ";"})


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str
    lower: str
    sentence: int


class Doc:
    """An article's tokens, sentence membership and recurrence counts, computed once."""

    def __init__(self, article: Article) -> None:
        self.text = article.text
        sentences = article.sentences or split_sentences(article.text)
        starts = [s for s, _ in sentences]
        tokens: list[Token] = []
        for match in _TOKEN.finditer(self.text):
            index = max(0, bisect_right(starts, match.start()) - 1)
            word = match.group()
            tokens.append(Token(match.start(), match.end(), word, word.lower(), index))
        self.tokens = tokens
        self.sentences = sentences
        # Token index ranges per sentence (tokens are in text order, so are sentence indices).
        self.sentence_tokens: list[tuple[int, int]] = []
        position = 0
        for index in range(len(sentences)):
            first = position
            while position < len(tokens) and tokens[position].sentence == index:
                position += 1
            self.sentence_tokens.append((first, position))
        lowers = [t.lower for t in tokens]
        self.word_counts = Counter(lowers)
        self.bigram_counts = Counter(zip(lowers, lowers[1:], strict=False))
        self.lower_text = self.text.lower()
        self.token_sentence = np.array([t.sentence for t in tokens], dtype=np.int64)
        # Tokens a span may start or end with, and their rank among such tokens.
        self.content = np.array(
            [i for i, t in enumerate(tokens) if t.text not in _TRIM], dtype=np.int64
        )
        self.content_position = np.zeros(len(tokens), dtype=np.int64)
        self.content_position[self.content] = np.arange(self.content.size)


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


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


@dataclass(frozen=True)
class Decoding:
    """How one tagger head's token probabilities become spans."""

    threshold: float  # a token is inside a span when its probability is at least this
    gap: int  # runs separated by at most this many tokens below threshold are joined
    # Probabilities are first averaged over this many neighbouring tokens (1: not smoothed),
    # so one confident word carries its weaker neighbours and a lone dip does not split a span.
    smooth: int = 1
    # A run is kept only when some token of it reaches this (hysteresis: a confident core
    # carries its weaker neighbours, weak runs alone are dropped); 0: every run is kept.
    peak: float = 0.0


def decodings_to_json(decodings: Mapping[str, Decoding | None]) -> dict[str, Any]:
    """Per head, its decoding as model.json stores it (None: the head is never reported)."""
    return {head: None if d is None else asdict(d) for head, d in decodings.items()}


def decodings_from_json(stored: Mapping[str, Any]) -> dict[str, Decoding | None]:
    """The decodings of a model.json; fields a model predates keep their defaults. Raises
    KeyError, TypeError or ValueError on a malformed entry."""
    return {
        head: None
        if d is None
        else Decoding(
            float(d["threshold"]),
            int(d["gap"]),
            int(d.get("smooth", 1)),
            float(d.get("peak", 0.0)),
        )
        for head, d in stored.items()
    }


def smoothed(probabilities: NDArray[np.float32], width: int) -> NDArray[np.float32]:
    """Moving mean over ``width`` tokens centred on each token (shorter at the text's ends)."""
    if width <= 1 or probabilities.size == 0:
        return probabilities
    kernel = np.ones(width, dtype=np.float32)
    sums = np.convolve(probabilities, kernel, mode="same")
    counts = np.convolve(np.ones_like(probabilities), kernel, mode="same")
    return (sums / counts).astype(np.float32)


def decode_runs(
    doc: Doc, probabilities: NDArray[np.float32], decoding: Decoding
) -> list[tuple[int, int, float]]:
    """Spans of one head as (first token, last token inclusive, max probability).

    Punctuation that annotations never start or end with is ignored: a run is made of content
    tokens at or above the threshold, joined when at most ``gap`` content tokens below it lie
    between them, and never crosses a sentence boundary.
    """
    probabilities = smoothed(probabilities, decoding.smooth)
    content = doc.content
    above = content[probabilities[content] >= decoding.threshold]
    if above.size == 0:
        return []
    position = doc.content_position[above]
    sentence = doc.token_sentence[above]
    breaks = np.flatnonzero((np.diff(position) > decoding.gap + 1) | (np.diff(sentence) != 0)) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [above.size])) - 1
    peaks = np.maximum.reduceat(probabilities[above], starts)
    return [
        (int(above[s]), int(above[e]), float(p))
        for s, e, p in zip(starts, ends, peaks, strict=True)
        if p >= decoding.peak
    ]


class LinearDetector:
    """Finds technique spans with the linear token tagger; labels given spans with the span
    classifier. Load a trained model with :meth:`load`."""

    def __init__(
        self,
        *,
        techniques: Sequence[str],
        tagger_weights: NDArray[np.float32],
        tagger_bias: NDArray[np.float32],
        tagger_bits: int,
        decodings: dict[str, Decoding | None],
        span_weights: NDArray[np.float32],
        span_bias: NDArray[np.float32],
        span_bits: int,
        name: str = "baseline-linear@1",
        meta: dict[str, Any] | None = None,
    ) -> None:
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
        self.decodings = decodings
        self.span_weights = span_weights
        self.span_bias = span_bias
        self.span_mask = (1 << span_bits) - 1
        self.meta = meta or {}

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
        decodings = decodings_from_json(meta["decodings"])
        return cls(
            techniques=meta["techniques"],
            tagger_weights=weights["tagger_weights"],
            tagger_bias=weights["tagger_bias"],
            tagger_bits=meta["tagger_bits"],
            decodings=decodings,
            span_weights=weights["span_weights"],
            span_bias=weights["span_bias"],
            span_bits=meta["span_bits"],
            name=meta["name"],
            meta=meta,
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
        return _sigmoid(scores + self.tagger_bias)

    def detect(self, article: Article) -> list[Finding]:
        return self.detect_doc(Doc(article))

    def detect_doc(self, doc: Doc) -> list[Finding]:
        if not doc.tokens:
            return []
        probabilities = self.token_probabilities(doc)
        findings: list[Finding] = []
        for column, technique in enumerate(self.techniques):
            decoding = self.decodings.get(technique)
            if decoding is None:
                continue
            for first, last, score in decode_runs(doc, probabilities[:, column], decoding):
                start, end = doc.tokens[first].start, doc.tokens[last].end
                findings.append(
                    Finding(
                        start=start,
                        end=end,
                        technique=technique,
                        score=round(score, 4),
                        text=doc.text[start:end],
                    )
                )
        findings.sort(key=lambda f: (f.start, f.end, f.technique))
        return findings

    def propaganda_spans(self, article: Article) -> list[tuple[int, int, float]]:
        """Spans that hold some technique, for task SI: (start, end, probability)."""
        return self.propaganda_spans_doc(Doc(article))

    def propaganda_spans_doc(self, doc: Doc) -> list[tuple[int, int, float]]:
        decoding = self.decodings.get(ANY)
        if not doc.tokens or decoding is None:
            return []
        probabilities = self.token_probabilities(doc)[:, len(self.techniques)]
        return [
            (doc.tokens[first].start, doc.tokens[last].end, score)
            for first, last, score in decode_runs(doc, probabilities, decoding)
        ]

    def classify_span(self, article: Article, start: int, end: int) -> dict[str, float]:
        """Probability of each technique for the given span (task TC), highest first."""
        return self.classify_spans(Doc(article), [(start, end)])[0]

    def classify_spans(self, doc: Doc, spans: Sequence[tuple[int, int]]) -> list[dict[str, float]]:
        if any(not 0 <= s < e <= len(doc.text) for s, e in spans):
            raise SpinlensError("span offsets are outside the article text")
        results: list[dict[str, float]] = []
        for start, end in spans:
            indices = hashed(span_features(doc, start, end), self.span_mask)
            logits = self.span_weights[indices].sum(axis=0) + self.span_bias
            exp = np.exp(logits - logits.max())
            probabilities = exp / exp.sum()
            order = np.argsort(-probabilities)
            results.append({self.techniques[i]: float(probabilities[i]) for i in order})
        return results


# --- SemEval task outputs ----------------------------------------------------------------


def predict_si(model: LinearDetector, docs: Mapping[str, Doc]) -> list[Label]:
    """Task SI: propaganda spans of each article (the "any technique" head)."""
    return [
        Label(article_id, start, end)
        for article_id, doc in docs.items()
        for start, end, _ in model.propaganda_spans_doc(doc)
    ]


def predict_flc(model: LinearDetector, docs: Mapping[str, Doc]) -> list[Label]:
    """Task FLC: technique spans of each article."""
    return [
        Label(article_id, f.start, f.end, f.technique)
        for article_id, doc in docs.items()
        for f in model.detect_doc(doc)
    ]


def predict_tc(
    model: LinearDetector, docs: Mapping[str, Doc], template: Sequence[Label]
) -> list[Label]:
    """Task TC: label every template span (see ``ptc.label_template``)."""
    return label_template(
        template,
        docs,
        lambda article_id, spans: [list(p) for p in model.classify_spans(docs[article_id], spans)],
    )
