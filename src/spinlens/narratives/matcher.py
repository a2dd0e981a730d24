"""Link an article to documented claims by sentence embeddings: the composition of

- ``passages``: the article cut into passages, each sentence and clause embedded once;
- ``languages``: which encoder reads a text (MiniLM for English, USE and the bridge for others);
- ``index``: the catalogue's vectors and exact search, cached on disk (``vector_cache``);
- ``selection``: the thresholds, and which items match with which evidence and precedents.

``EmbeddingMatcher`` is what the pipeline calls; ``match`` reads an article, ``search`` queries.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from spinlens.embed import (
    BridgedEncoder,
    ModelUnavailableError,
    TextEncoder,
    load_bridge,
    load_encoder,
    load_multilingual_encoder,
    multilingual_encoder_name,
)
from spinlens.extract import short_language_rule
from spinlens.model import Article, NarrativeMatch
from spinlens.narratives.catalogue import (
    STARTER_CATALOGUE,
    CatalogueStore,
    Claim,
    default_store_path,
    starter_digest,
    starter_families,
)
from spinlens.narratives.index import CatalogueIndex, EmbedProgress
from spinlens.narratives.languages import ForeignReader, encode_by_language, is_english, supports
from spinlens.narratives.passages import PassagePlan, plan_passages
from spinlens.narratives.selection import (
    CLAIM_THRESHOLD,
    THRESHOLD,
    TOP,
    distinct_best,
    select,
    shortlist,
    thresholds_for,
)
from spinlens.narratives.vector_cache import default_cache_dir, store_slot
from spinlens.sentences import split_sentences
from spinlens.techniques import SpanVectors

# plan_passages is also the technique trainer's (techniques/train_transformer.py).
__all__ = ["EmbeddingMatcher", "plan_passages"]


class EmbeddingMatcher:
    """The starter families plus every claim in the local catalogue store, matched by MiniLM in
    English and by USE multilingual v3 across languages."""

    def __init__(
        self,
        store_path: Path | None = None,
        encoder: TextEncoder | None = None,
        threshold: float = THRESHOLD,
        claim_threshold: float = CLAIM_THRESHOLD,
        top: int = TOP,
        catalogues: Collection[str] | None = None,
        use_cache: bool = True,
        multilingual_encoder: BridgedEncoder | None = None,
        progress: EmbedProgress | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """``progress``: told how many of the catalogue's texts are embedded, when some are
        not in the cache (after an import or a change of encoder). ``cache_dir``: where the
        catalogue's vectors are cached (default: SPINLENS_HOME's cache)."""
        self.encoder = encoder if encoder is not None else load_encoder()
        self.threshold = threshold
        self.claim_threshold = claim_threshold
        self.top = top
        path = store_path if store_path is not None else default_store_path()
        wanted = set(catalogues) if catalogues is not None else None
        # Kept for reloaded(): a matcher rebuilt after an import keeps every setting (issue 16).
        self.store_path = path
        self.catalogues = frozenset(wanted) if wanted is not None else None
        self._progress = progress
        families = starter_families() if wanted is None or STARTER_CATALOGUE in wanted else ()
        self._cache_dir = (cache_dir or default_cache_dir()) if use_cache else None
        self._families = families
        # Loaded on the first article (or claim, or query) that needs them: English articles
        # never load USE, though building the catalogue's vectors does when some claims are in
        # another language (EUvsDisinfo has one Russian title; once per catalogue version).
        self._multilingual_encoder = multilingual_encoder
        self._multilingual_families: CatalogueIndex | None = None
        self.foreign = self._foreign_reader()
        store_version = "none"
        claims: list[Claim] = []
        # Matching never creates a store: without imports, the starter catalogue alone is used.
        if path.exists():
            with CatalogueStore(path) as store:
                store_version = store.version
                claims = [c for c in store.claims() if wanted is None or c.catalogue in wanted]
        self.index = CatalogueIndex.build(
            self.encoder,
            claims,
            families,
            self._cache_dir,
            store_slot(path),
            self.foreign,
            progress,
        )
        self.catalogue_version = f"{starter_digest()}.{store_version}"
        self.name = f"{self.encoder.name}+catalogue@{self.catalogue_version}"
        self.passage_space = self.encoder.name

    def reloaded(self) -> EmbeddingMatcher:
        """This matcher over the catalogue store as it is now (after an import or a removal):
        the same store, catalogues, thresholds, cache and progress, and the encoders already
        loaded (the core calls this; see Spinlens.import_catalogue)."""
        return EmbeddingMatcher(
            store_path=self.store_path,
            encoder=self.encoder,
            threshold=self.threshold,
            claim_threshold=self.claim_threshold,
            top=self.top,
            catalogues=self.catalogues,
            use_cache=self._cache_dir is not None,
            multilingual_encoder=self._multilingual_encoder,
            progress=self._progress,
            cache_dir=self._cache_dir,
        )

    def supports(self, language: str | None) -> bool:
        """Whether articles in ``language`` (a py3langid code; None: unknown) can be matched."""
        return supports(language)

    def name_for(self, language: str | None, passages_by: str | None = None) -> str:
        """The encoder and catalogue that match articles in ``language`` (for ``models``);
        ``passages_by``: the detector whose passage head gave an English article's vectors."""
        if passages_by is not None and is_english(language):
            return f"{passages_by}-shortlist+{self.name}"
        if is_english(language) or not self.supports(language):
            return self.name
        return f"{self._multilingual_name()}+catalogue@{self.catalogue_version}"

    def _foreign_reader(self) -> ForeignReader | None:
        """USE and the bridge, for claims and queries in other languages; None where the bridge
        is missing or fits another encoder (a benchmark's base MiniLM): MiniLM then reads them,
        as it reads everything English."""
        if self._multilingual_encoder is None:
            try:
                if load_bridge().target != self.encoder.name:
                    return None
            except ModelUnavailableError:
                return None
        name = f"{self._multilingual_name()}|{short_language_rule()}"
        return ForeignReader(name, self.encoder.dim, self.multilingual_encoder)

    def _multilingual_name(self) -> str:
        """The bridged encoder's name, known without loading USE (the name BridgedEncoder
        gives itself)."""
        if self._multilingual_encoder is not None:
            return self._multilingual_encoder.name
        return f"{multilingual_encoder_name()}+{load_bridge().name}"

    def multilingual_encoder(self) -> BridgedEncoder:
        """USE, bridged into the space of ``encoder`` (loaded on first use)."""
        if self._multilingual_encoder is None:
            self._multilingual_encoder = BridgedEncoder(
                load_multilingual_encoder(), load_bridge(), self.encoder
            )
        return self._multilingual_encoder

    def _multilingual_scores(self, plan: PassagePlan, text: str) -> np.ndarray:
        """Passages × items for an article USE reads: claims scored through the bridge alone;
        families by the mean of the bridged score and USE's own score against the families'
        texts, in English and in their translations, embedded with USE. The bridge blurs
        (held-out cosine 0.76), and on our English/Russian pairs the mean picks the English
        best family for 15 of 16 statements (with the first bridge, the bridge alone picked it
        for 13) and keeps neutral sentences further below the threshold."""
        encoder = self.multilingual_encoder()
        multilingual, bridged = encoder.encode_both(plan.unit_texts(text))
        scores = self.index.scores(plan.combine(bridged, text))
        n = self.index.n_families
        if n:
            if self._multilingual_families is None:
                self._multilingual_families = CatalogueIndex.build(
                    encoder.multilingual,
                    (),
                    [family.in_every_language() for family in self._families],
                    self._cache_dir,
                    "starter-multilingual",
                )
            own = self._multilingual_families.scores(plan.combine(multilingual, text))
            scores[:, :n] = (scores[:, :n] + own) / 2
        return scores

    def match(
        self, article: Article, span_vectors: SpanVectors | None = None
    ) -> list[NarrativeMatch]:
        """The article's matches; ``span_vectors``: rough vectors in this matcher's space for
        spans of the article (a technique detector's passage head), which choose the passages
        the encoder reads (``selection.shortlist``)."""
        if not self.supports(article.language):
            return []
        spans = article.sentences or split_sentences(article.text)
        plan = plan_passages(article.text, spans)
        if not plan.spans or not self.index.items:
            return []
        if is_english(article.language) and span_vectors is not None:
            rough = plan.combine(span_vectors(plan.units), article.text)
            plan = shortlist(plan, rough, self.index, self.threshold, self.claim_threshold)
            if not plan.spans:  # nothing comes near the catalogue: nothing to read
                return []
        threshold, claim_threshold = thresholds_for(
            article.language, self.threshold, self.claim_threshold
        )
        scores = self.passage_scores(plan, article.text, article.language)
        return select(self.index, plan.spans, scores, threshold, claim_threshold, self.top)

    def passage_scores(self, plan: PassagePlan, text: str, language: str | None) -> np.ndarray:
        """Passages × items, each passage read by the encoder of ``language``: MiniLM for
        English (and unknown), USE and the bridge for the other languages ``supports``."""
        if is_english(language):
            return self.index.scores(plan.vectors(self.encoder, text))
        return self._multilingual_scores(plan, text)

    def search(self, queries: Sequence[str], top: int = 10) -> list[list[NarrativeMatch]]:
        """The ``top`` items closest to each query, best first (no threshold); a case published
        in several languages (same title) is listed once, as in ``match``."""
        if not queries or not self.index.items:
            return [[] for _ in queries]
        scores = self.index.scores(encode_by_language(queries, self.encoder, self.foreign, 32))
        return [distinct_best(self.index, row, top) for row in scores]
