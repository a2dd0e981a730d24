"""analyze(): the one place that composes the stages. The CLI, the server and batch runs call it."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

from spinlens.extract import MAX_WORDS, extract_article
from spinlens.model import (
    Analysis,
    Article,
    Document,
    Finding,
    ModelScores,
    NarrativeMatch,
    Summary,
)
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
        technique_f1: Mapping[str, float] | None = None,
        max_words: int | None = MAX_WORDS,
    ) -> None:
        self.detector = detector
        self.matchers = list(matchers)
        # Recorded in every analysis, so reports never read model files when they render;
        # None: what the detector says of itself (its validation F1 at its sensitivity).
        self.technique_f1 = dict(technique_f1 if technique_f1 is not None else _f1_of(detector))
        # Languages the technique detector was trained on; others get a warning, not guesses.
        self.technique_languages = technique_languages
        # Matching reuses the detector's pass when the detector has a passage head for the
        # matcher's vector space (one transformer pass per article instead of two).
        self.share_passages = share_passages
        # Longer articles are cut here, with a warning: cost grows with the text.
        self.max_words = max_words

    def shared_passage_space(self) -> str | None:
        """The vector space the detector's pass is shared in, or None when matching embeds
        the article itself (no passage head, no matcher of that space, or sharing off)."""
        space = getattr(self.detector, "passage_encoder", None)
        if self.share_passages and space and any(m.passage_space == space for m in self.matchers):
            return str(space)
        return None

    def models_for(self, language: str | None = "en") -> dict[str, str]:
        """The models that analyse an article in ``language``, by role, named as the analysis
        records them (``models``): the one place that names models."""
        models: dict[str, str] = {}
        space = self.shared_passage_space()
        # The detector's pass serves matching only where the detector reads the language.
        reads = self.detector is not None and language in self.technique_languages
        if self.detector is not None:
            models["techniques"] = self.detector.name
        for matcher in self.matchers:
            shares = reads and space is not None and matcher.passage_space == space
            passages_by = self.detector.name if shares and self.detector is not None else None
            models["narratives"] = matcher.name_for(language, passages_by)
        return models

    def analyze(self, document: Document) -> Analysis:
        extraction = extract_article(document, max_words=self.max_words)
        article = extraction.article
        warnings: list[str] = list(extraction.warnings)
        findings: list[Finding] = []
        span_vectors: SpanVectors | None = None
        space = self.shared_passage_space()
        if self.detector is not None:
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
            # Named as models_for names them: /healthz and `spinlens version` agree.
            models=self.models_for(article.language),
            model_scores=ModelScores(technique_f1=self.technique_f1),
            warnings=warnings,
        )


def summarize(article: Article, findings: Sequence[Finding]) -> Summary:
    counts = Counter(f.technique for f in findings)
    covered = [False] * len(article.text)
    for f in findings:
        covered[f.start : f.end] = [True] * (f.end - f.start)
    share = sum(covered) / len(covered) if covered else 0.0
    return Summary(technique_counts=dict(counts.most_common()), flagged_share=round(share, 4))


def _f1_of(detector: TechniqueDetector | None) -> dict[str, float]:
    """A detector's per-technique validation F1 (``technique_reliability``); a detector without
    one (a test's stand-in) has none."""
    reliability = getattr(detector, "technique_reliability", None)
    if reliability is None:
        return {}
    scores = reliability() if callable(reliability) else reliability
    return {str(name): float(value) for name, value in dict(scores).items()}


def default_pipeline(techniques_model: str | None = None, narratives: bool = True) -> Pipeline:
    """The pipeline with the shipped models; ``techniques_model`` picks another detector by
    name (e.g. ``baseline``), otherwise the registry's default. Narratives are matched against
    the starter catalogue plus whatever was imported under SPINLENS_HOME."""
    from spinlens.narratives.matcher import EmbeddingMatcher
    from spinlens.techniques.detectors import load_detector

    matchers = [EmbeddingMatcher()] if narratives else []
    return Pipeline(detector=load_detector(techniques_model), matchers=matchers)
