"""Persuasion techniques: the taxonomy, detectors, PTC corpus tooling and training."""

from __future__ import annotations

from typing import Protocol

from spinlens.model import Article, Finding


class TechniqueDetector(Protocol):
    """Anything that finds technique spans in an article.

    ``name`` is ``model-name@version``; it is written into every analysis's ``models`` field.
    """

    name: str

    def detect(self, article: Article) -> list[Finding]: ...
