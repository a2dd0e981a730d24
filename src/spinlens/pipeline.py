"""analyze(): the one place that composes the stages. The CLI, the server and batch runs call it."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from spinlens.extract import extract
from spinlens.model import Analysis, Article, Document, Finding, NarrativeMatch, Summary
from spinlens.techniques import PassageReader, SpanVectors, TechniqueDetector


class NarrativeMatcher(Protocol):
    """Anything that links an article to documented claims."""

    name: str
    # The sentence encoder whose vector space the catalogue is searched in: a detector with a
    # passage head for the same space can hand over its own passage vectors.
    passage_space: str

    def supports(self, language: str | None) -> bool:
        """Whether articles in ``language`` can be matched (others get a warning instead)."""
        ...

    def name_for(self, language: str | None, passages_by: str | None = None) -> str:
        """The model that matches articles in ``language`` (reports name it in ``models``);
        ``passages_by``: the detector whose passage head gave the article's vectors."""
        ...

    def match(
        self, article: Article, span_vectors: SpanVectors | None = None
    ) -> list[NarrativeMatch]: ...


class Pipeline:
    """Holds the loaded models (loaded once per process) and analyses documents with them."""

    def __init__(
        self,
        detector: TechniqueDetector | None = None,
        matchers: Sequence[NarrativeMatcher] = (),
        technique_languages: frozenset[str] = frozenset({"en"}),
        share_passages: bool = True,
    ) -> None:
        self.detector = detector
        self.matchers = list(matchers)
        # Languages the technique detector was trained on; others get a warning, not guesses.
        self.technique_languages = technique_languages
        # Matching reuses the detector's pass when the detector has a passage head for the
        # matcher's vector space (one transformer pass per article instead of two).
        self.share_passages = share_passages

    def shared_passage_space(self) -> str | None:
        """The vector space the detector's pass is shared in, or None when matching embeds
        the article itself (no passage head, no matcher of that space, or sharing off)."""
        space = getattr(self.detector, "passage_encoder", None)
        if self.share_passages and space and any(m.passage_space == space for m in self.matchers):
            return str(space)
        return None

    def analyze(self, document: Document) -> Analysis:
        article = extract(document)
        warnings: list[str] = []
        findings: list[Finding] = []
        models: dict[str, str] = {}
        span_vectors: SpanVectors | None = None
        space = self.shared_passage_space()
        if self.detector is not None:
            models["techniques"] = self.detector.name
            if article.language not in self.technique_languages:
                warnings.append(f"techniques are not available for language {article.language!r}")
            elif space is not None:
                reader: PassageReader = self.detector  # type: ignore[assignment]
                findings, span_vectors = reader.read(article)
            else:
                findings = self.detector.detect(article)
            findings.sort(key=lambda f: (f.start, f.end))
        narratives: list[NarrativeMatch] = []
        for matcher in self.matchers:
            shared = span_vectors if matcher.passage_space == space else None
            passages_by = self.detector.name if shared is not None and self.detector else None
            models["narratives"] = matcher.name_for(article.language, passages_by)
            if matcher.supports(article.language):
                narratives.extend(matcher.match(article, shared))
            else:
                warnings.append(f"narratives are not available for language {article.language!r}")
        narratives.sort(key=lambda m: -m.score)
        return Analysis(
            id=hashlib.sha256(article.text.encode("utf-8")).hexdigest(),
            source=document.source,
            article=article,
            techniques=findings,
            narratives=narratives,
            summary=summarize(article, findings),
            models=models,
            warnings=warnings,
        )


def summarize(article: Article, findings: Sequence[Finding]) -> Summary:
    counts = Counter(f.technique for f in findings)
    covered = [False] * len(article.text)
    for f in findings:
        covered[f.start : f.end] = [True] * (f.end - f.start)
    share = sum(covered) / len(covered) if covered else 0.0
    return Summary(technique_counts=dict(counts.most_common()), flagged_share=round(share, 4))


def default_pipeline(techniques_model: str | None = None, narratives: bool = True) -> Pipeline:
    """The pipeline with the shipped models; ``techniques_model`` picks another detector by
    name (e.g. ``baseline``), otherwise the registry's default. Narratives are matched against
    the starter catalogue plus whatever was imported under SPINLENS_HOME."""
    from spinlens.narratives.matcher import EmbeddingMatcher
    from spinlens.techniques.detectors import load_detector

    matchers = [EmbeddingMatcher()] if narratives else []
    return Pipeline(detector=load_detector(techniques_model), matchers=matchers)
