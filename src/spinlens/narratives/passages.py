"""An article's passages: the pieces of text that are compared with the catalogue.

A passage is a window of 1 to MAX_WINDOW consecutive sentences, a clause of a long sentence, or
the head of a long sentence or clause. Each sentence and clause (a *unit*) is embedded once; a
two-sentence window is the length-weighted mean of its sentences' vectors: half the encoder
time of embedding each window, with 99 of 100 needles still found (docs/benchmarks.md,
"Narrative matching").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from spinlens.embed import TextEncoder

# Three-sentence windows cost a third more time (1.7 s instead of 2.5 s for a PTC article)
# and found nothing the two-sentence windows missed on 40 PTC articles.
MAX_WINDOW = 2
# A passage shorter than this is page chrome or a fragment ("top of page", a byline).
MIN_PASSAGE_WORDS = 5
# Where a long sentence splits into clauses that can carry a claim of their own.
_CLAUSE_BREAK = re.compile(r"[:;]\s+|\s[-–—]\s+")
# A long sentence or clause also counts by its head, the words before its first comma, when
# those are a statement of their own: a trailing qualifier dilutes the claim as a leading one
# does. "the Kazakh turmoil was in the interests of the West, including as another hotbed of
# tension near the borders of Russia, in the CIS space" scores 0.50 for the colour revolution,
# its head 0.61.
LONG_CLAUSE_WORDS = 16
HEAD_WORDS = 6


@dataclass(frozen=True)
class PassagePlan:
    """An article's passages, and the units (sentences, clauses) whose vectors make them."""

    units: list[tuple[int, int]]
    spans: list[tuple[int, int]]
    # Passage p is the mean of the vectors of units parts[p], weighted by their word counts.
    parts: list[tuple[int, ...]]

    def vectors(self, encoder: TextEncoder, text: str) -> np.ndarray:
        """One unit vector per passage, embedding each unit once."""
        return self.combine(encoder.encode(self.unit_texts(text)), text)

    def subset(self, passages: Sequence[int]) -> PassagePlan:
        """These passages only, with only the units that make them."""
        used = sorted({u for p in passages for u in self.parts[p]})
        position = {u: i for i, u in enumerate(used)}
        return PassagePlan(
            [self.units[u] for u in used],
            [self.spans[p] for p in passages],
            [tuple(position[u] for u in self.parts[p]) for p in passages],
        )

    def unit_texts(self, text: str) -> list[str]:
        return [text[s:e] for s, e in self.units]

    def combine(self, units: np.ndarray, text: str) -> np.ndarray:
        """Passage vectors from the vectors of the units (rows in the order of ``units``)."""
        words = np.array([len(text[s:e].split()) for s, e in self.units], dtype=np.float32)
        # Summed member by member: a dense passages x units weight matrix grew with the square
        # of the article's length (12 s and 2 GB for a 1 MB article).
        sizes = np.fromiter(map(len, self.parts), np.int64, len(self.parts))
        members = np.fromiter(chain.from_iterable(self.parts), np.int64, int(sizes.sum()))
        out = np.zeros((len(self.parts), units.shape[1]), dtype=np.float32)
        np.add.at(
            out, np.repeat(np.arange(len(self.parts)), sizes), units[members] * words[members, None]
        )
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def plan_passages(text: str, sentences: Sequence[tuple[int, int]]) -> PassagePlan:
    """Windows of 1 to MAX_WINDOW consecutive sentences, and the clauses of long sentences.

    Clauses count on their own because a claim is often the tail of a long sentence ("...this
    can mean only one thing: X"), and the sentence's first half dilutes its vector; for the
    same reason the head of a long sentence or clause counts on its own (``_head``).
    """
    units: dict[tuple[int, int], int] = {}
    spans: list[tuple[int, int]] = []
    parts: list[tuple[int, ...]] = []

    def unit(start: int, end: int) -> int:
        return units.setdefault(_trim(text, start, end), len(units))

    def add(start: int, end: int, members: tuple[int, ...]) -> None:
        spans.append(_trim(text, start, end))
        parts.append(members)

    trimmed = [_trim(text, s, e) for s, e in sentences]
    for i in range(len(trimmed)):
        for size in range(1, MAX_WINDOW + 1):
            if i + size > len(trimmed):
                break
            window = trimmed[i : i + size]
            if len(text[window[0][0] : window[-1][1]].split()) >= MIN_PASSAGE_WORDS:
                add(window[0][0], window[-1][1], tuple(unit(s, e) for s, e in window))
        start, end = trimmed[i]
        cuts = [m.end() for m in _CLAUSE_BREAK.finditer(text, start, end)]
        for a, b in zip([start, *cuts], [*cuts, end], strict=True):
            if cuts and len(text[a:b].split()) >= MIN_PASSAGE_WORDS:
                add(a, b, (unit(a, b),))
            head = _head(text, a, b)
            if head is not None:
                add(a, head, (unit(a, head),))
    return PassagePlan(list(units), spans, parts)


def passage_spans(text: str, sentences: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (start, end) offsets into ``text`` of the passages ``plan_passages`` makes."""
    return plan_passages(text, sentences).spans


def _head(text: str, start: int, end: int) -> int | None:
    """Where the head of ``text[start:end]`` ends (its first comma), for a clause of at least
    LONG_CLAUSE_WORDS words whose head has at least HEAD_WORDS; None otherwise."""
    if len(text[start:end].split()) < LONG_CLAUSE_WORDS:
        return None
    comma = text.find(", ", start, end)
    if comma < 0 or len(text[start:comma].split()) < HEAD_WORDS:
        return None
    return comma


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
