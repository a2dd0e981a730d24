"""Persuasion techniques: the taxonomy, detectors, PTC corpus tooling and training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from spinlens.model import Article, Finding

# Vectors, one row per (start, end) span of the article just read.
SpanVectors = Callable[[Sequence[tuple[int, int]]], NDArray[np.float32]]


class TechniqueDetector(Protocol):
    """Anything that finds technique spans in an article.

    ``name`` is ``model-name@version``; it is written into every analysis's ``models`` field.
    """

    name: str

    def detect(self, article: Article) -> list[Finding]: ...


class PassageReader(TechniqueDetector, Protocol):
    """A detector whose one pass over an article also serves narrative matching.

    ``read`` returns the findings and a function giving, for any spans of that article, vectors
    in the space of the sentence encoder named ``passage_encoder`` (None: this model has no
    passage head, so matching must embed the article itself).
    """

    passage_encoder: str | None

    def read(self, article: Article) -> tuple[list[Finding], SpanVectors]: ...
