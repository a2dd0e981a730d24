"""How any technique detector's token probabilities become spans: the words of an article
(:class:`Doc`), one head's decoding (:class:`Decoding`, :func:`decode_runs`) and the sensitivity
levels, each a decoding per head.

Every detector (the linear baseline, the fine-tuned transformers) gives, for each word of a
:class:`Doc`, a probability per head: one head per technique plus :data:`ANY` ("inside some
technique span", task SI). Runs of words above a head's threshold become that head's spans.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from spinlens.errors import SpinlensError
from spinlens.model import Article
from spinlens.sentences import split_sentences

ANY = "ANY"  # the tagger head that predicts "inside some technique span" (task SI)

_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
# Annotation guidelines: spans never start or end with these (PTC v2 trimmed them).
_TRIM = frozenset({".", ",", ":", ";"})
# Words that carry no technique on their own: a span made only of these ("to", "the", "be",
# "would") is a fragment of the probabilities, not a finding. 3 of the 6,128 PTC training
# spans are made only of these (0.8 % only of function words in a wider sense, mostly "our"
# and "no", which are therefore not here), and 6 end on a modal verb.
_FUNCTION_WORDS = frozenset(
    """a an the and or but nor of to in on at by from with into onto as than then that this these
    those there here it its is are was were be been being am do does did have has had i me my he
    him his she her they them their who whom whose which when where while if so for s t
    will would shall should can could may might must
    """.split()
)

# How many words on a span that ends on a function word ("could plunge into") may run to reach
# the content word that completes its phrase ("could plunge into chaos").
PHRASE_REACH = 3

Sensitivity = Literal["precise", "balanced", "thorough"]
# Least to most text flagged; every model's levels are chosen so that this order holds.
SENSITIVITIES: tuple[Sensitivity, ...] = get_args(Sensitivity)
DEFAULT_SENSITIVITY: Sensitivity = "balanced"


def check_sensitivity(level: str) -> Sensitivity:
    """``level`` as a :data:`Sensitivity`, or one clear error naming the choices."""
    for known in SENSITIVITIES:
        if level == known:
            return known
    raise SpinlensError(f"unknown sensitivity {level!r}; choose one of: {', '.join(SENSITIVITIES)}")


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
        # Tokens a span needs at least one of: words that are not function words.
        self.meaningful = np.array(
            [
                t.lower not in _FUNCTION_WORDS and (t.text[0].isalnum() or t.text[0] == "_")
                for t in tokens
            ],
            dtype=bool,
        )
        self.meaningful_before = np.concatenate(([0], np.cumsum(self.meaningful)))
        self.phrase_end = self._phrase_ends()

    def _phrase_ends(self) -> NDArray[np.int64]:
        """Where a span whose last token is each token should end. Gold spans end on a function
        word 3 % of the time, the runs of word probabilities 8 % ("could plunge into",
        "sponsored from"): such a span runs on, over function words only, to the next content
        word of its sentence within :data:`PHRASE_REACH` words; failing that, it ends at its
        last word that is not a function word."""
        tokens = self.tokens
        function = [t.text[0].isalnum() and t.lower in _FUNCTION_WORDS for t in tokens]
        ends = np.arange(len(tokens), dtype=np.int64)
        last_kept = -1  # the last token before here that a span may end on
        for k, token in enumerate(tokens):
            if not function[k]:
                if token.text not in _TRIM:
                    last_kept = k
                continue
            ends[k] = last_kept
            for j in range(k + 1, min(k + 1 + PHRASE_REACH, len(tokens))):
                if tokens[j].sentence != token.sentence or not (function[j] or self.meaningful[j]):
                    break
                if self.meaningful[j]:
                    ends[k] = j
                    break
        return ends


def sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
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


Decodings = dict[str, Decoding | None]  # per head; None: the head is never reported


def decodings_to_json(decodings: Mapping[str, Decoding | None]) -> dict[str, Any]:
    """Per head, its decoding as model.json stores it (None: the head is never reported)."""
    return {head: None if d is None else asdict(d) for head, d in decodings.items()}


def decodings_from_json(stored: Mapping[str, Any]) -> Decodings:
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


def sensitivities_to_json(levels: Mapping[Sensitivity, Decodings]) -> dict[str, Any]:
    return {level: decodings_to_json(decodings) for level, decodings in levels.items()}


def sensitivities_from_json(meta: Mapping[str, Any]) -> dict[Sensitivity, Decodings]:
    """A model.json's decodings per sensitivity level. A model that predates the levels has
    one set of ``decodings``, which then serves every level. Raises KeyError, TypeError or
    ValueError on a malformed entry."""
    stored = meta.get("sensitivities")
    if stored is None:
        single = decodings_from_json(meta["decodings"])
        return {level: dict(single) for level in SENSITIVITIES}
    return {level: decodings_from_json(stored[level]) for level in SENSITIVITIES}


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
    between them, and never crosses a sentence boundary. A run of function words only ("to",
    "the") is dropped, and one that ends on a function word ends its phrase instead
    (``Doc.phrase_end``: "could plunge into" becomes "could plunge into chaos"); runs that
    then meet are one span. With the same smoothing and peak, a lower threshold or a larger gap
    never flags less text (the sensitivity levels rely on it).
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
    first, last = above[starts], above[ends]
    keep = (doc.meaningful_before[last + 1] - doc.meaningful_before[first] > 0) & (
        peaks >= decoding.peak
    )
    first, last, peaks = first[keep], doc.phrase_end[last[keep]], peaks[keep]
    if first.size > 1:  # a completed phrase may reach the next run: join them
        joined = np.concatenate(([0], np.flatnonzero(first[1:] > last[:-1]) + 1))
        first = first[joined]
        last = np.maximum.reduceat(last, joined)
        peaks = np.maximum.reduceat(peaks, joined)
    return [(int(f), int(e), float(p)) for f, e, p in zip(first, last, peaks, strict=True)]
