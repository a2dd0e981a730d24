"""Link an article to documented claims by sentence embeddings.

Every catalogue item is embedded once: a starter family as its title, its description and each
of its typical phrasings; a claim as its title and, when it has one, its title with its summary.
An item's score against a text is the best cosine over its vectors. An article is cut into
passages (windows of 1–2 consecutive sentences, and clauses of long sentences); a claim matches
when one passage scores at least its threshold, and the best passages are its evidence.

Search is exact (one matrix product with numpy): an article's ~150 passages against the 16k
vectors of the starter families and all EUvsDisinfo cases take about 20 ms, next to ~0.7 s to
embed the passages, so an approximate index would only add a dependency at this size. The
catalogue's vectors are cached on disk under ``home()/cache``, keyed by encoder and catalogue
version.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from spinlens.config import home
from spinlens.embed import Encoder, load_encoder
from spinlens.model import Article, NarrativeMatch, Span
from spinlens.narratives.catalogue import (
    STARTER_CATALOGUE,
    CatalogueStore,
    Claim,
    Family,
    default_store_path,
    normalize_title,
    starter_digest,
    starter_families,
)
from spinlens.sentences import split_sentences

# The scores above which a passage is taken to repeat a narrative, calibrated with
# benchmarks/narratives_retrieval.py (docs/benchmarks.md, "Narrative matching"). Families are
# matched through short generic phrasings: at 0.6, 6% of 100 PTC news articles match one, and
# the example article's documented narratives score 0.64-0.75. With 13k specific cases chance
# matches add up: at 0.7 every pasted case summary is still found, and 10% of PTC articles
# match some case.
THRESHOLD = 0.6
CLAIM_THRESHOLD = 0.7
TOP = 8
# Three-sentence windows cost a third more time (1.7 s instead of 2.5 s for a PTC article)
# and found nothing the two-sentence windows missed on 40 PTC articles.
MAX_WINDOW = 2
# A passage shorter than this is page chrome or a fragment ("top of page", a byline).
MIN_PASSAGE_WORDS = 5
MAX_EVIDENCE = 3
# Where a long sentence splits into clauses that can carry a claim of their own.
_CLAUSE_BREAK = re.compile(r"[:;]\s+|\s[-–—]\s+")
# Other passages are evidence too when they score this close to the best one.
EVIDENCE_MARGIN = 0.05
# A claim belongs to the starter family it is closest to, when at least this close.
FAMILY_THRESHOLD = 0.55


@dataclass(frozen=True)
class Item:
    """What a match reports about a family or a claim."""

    claim_id: str
    title: str
    catalogue: str
    family: str | None = None
    date: str | None = None
    url: str | None = None
    disproof: str | None = None

    def as_match(self, score: float, evidence: list[Span] | None = None) -> NarrativeMatch:
        return NarrativeMatch(
            claim_id=self.claim_id,
            title=self.title,
            catalogue=self.catalogue,
            score=round(score, 4),
            evidence=evidence or [],
            family=self.family,
            date=self.date,
            url=self.url,
            disproof=self.disproof,
        )


def family_texts(family: Family) -> list[str]:
    return [family.title, family.description, *family.phrasings]


def claim_texts(claim: Claim) -> list[str]:
    texts = [claim.title]
    if claim.summary:
        texts.append(f"{claim.title} {claim.summary}")
    return texts


class CatalogueIndex:
    """The vectors of every item of a catalogue, grouped by item, ready for exact search."""

    def __init__(
        self, items: list[Item], vectors: np.ndarray, starts: np.ndarray, version: str
    ) -> None:
        self.items = items
        self.vectors = vectors
        # Item i owns vectors[starts[i]:starts[i + 1]] (contiguous, so np.maximum.reduceat works).
        self.starts = starts
        self.version = version

    @classmethod
    def build(
        cls,
        encoder: Encoder,
        claims: Sequence[Claim] = (),
        families: Sequence[Family] = (),
        catalogue_version: str = "",
        cache_dir: Path | None = None,
        cache_slot: str = "default",
    ) -> CatalogueIndex:
        """Embed the items, or load their vectors from ``cache_dir``.

        A slot (one store and one choice of catalogues) keeps one cache file, for the latest
        catalogue version, so searching one catalogue does not evict the vectors of all.
        """
        texts: list[str] = []
        starts: list[int] = []
        items: list[Item] = []
        for family in families:
            starts.append(len(texts))
            texts.extend(family_texts(family))
            items.append(
                Item(f"{STARTER_CATALOGUE}:{family.id}", family.title, STARTER_CATALOGUE, family.id)
            )
        n_families = len(items)
        for claim in claims:
            starts.append(len(texts))
            texts.extend(claim_texts(claim))
            items.append(
                Item(
                    claim.id,
                    claim.title,
                    claim.catalogue,
                    claim.family,
                    claim.date,
                    claim.url,
                    claim.disproof,
                )
            )
        key = hashlib.sha256(
            f"{encoder.name}|{catalogue_version}|{len(texts)}".encode()
        ).hexdigest()[:16]
        cache = cache_dir / f"narratives-{cache_slot}-{key}.npy" if cache_dir else None
        vectors = _cached(cache) if cache is not None else None
        if vectors is None or vectors.shape != (len(texts), encoder.dim):
            vectors = encoder.encode(texts)
            if cache is not None:
                _store(cache, vectors)
        index = cls(items, vectors, np.array(starts, dtype=np.int64), key)
        if n_families:
            index._assign_families(n_families, families)
        return index

    def _assign_families(self, n_families: int, families: Sequence[Family]) -> None:
        """Claims without a family join the starter family their title is closest to."""
        family_end = int(self.starts[n_families]) if n_families < len(self.items) else None
        if family_end is None:
            return
        titles = self.vectors[self.starts[n_families:]]
        scores = self._item_scores(titles @ self.vectors[:family_end].T, n_families)
        best = scores.argmax(axis=1)
        for row, item_index in enumerate(range(n_families, len(self.items))):
            item = self.items[item_index]
            if item.family is None and scores[row, best[row]] >= FAMILY_THRESHOLD:
                family = families[int(best[row])].id
                self.items[item_index] = replace(item, family=family)

    def _item_scores(self, sims: np.ndarray, n_items: int | None = None) -> np.ndarray:
        """Per-vector similarities (rows × vectors) to per-item scores (rows × items)."""
        starts = self.starts if n_items is None else self.starts[:n_items]
        if sims.shape[1] == 0:
            return np.zeros((sims.shape[0], 0), dtype=np.float32)
        return np.maximum.reduceat(sims, starts, axis=1)

    def scores(self, query_vectors: np.ndarray) -> np.ndarray:
        """Cosine of each query with each item (queries × items)."""
        return self._item_scores(query_vectors @ self.vectors.T)


def _cached(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _store(target: Path, vectors: np.ndarray) -> None:
    """Write atomically, then drop the slot's older versions: only the latest is ever used."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as f:
            np.save(f, vectors, allow_pickle=False)
        partial.replace(target)
        slot = target.name.rsplit("-", 1)[0]
        for old in target.parent.glob(f"{slot}-*.npy"):
            if old != target:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache that cannot be written only costs time on the next run


class EmbeddingMatcher:
    """The starter families plus every claim in the local catalogue store, matched by MiniLM."""

    def __init__(
        self,
        store_path: Path | None = None,
        encoder: Encoder | None = None,
        threshold: float = THRESHOLD,
        claim_threshold: float = CLAIM_THRESHOLD,
        top: int = TOP,
        catalogues: Collection[str] | None = None,
        use_cache: bool = True,
    ) -> None:
        self.encoder = encoder if encoder is not None else load_encoder()
        self.threshold = threshold
        self.claim_threshold = claim_threshold
        self.top = top
        path = store_path if store_path is not None else default_store_path()
        claims: list[Claim] = []
        store_version = "none"
        # Matching never creates a store: without imports, the starter catalogue alone is used.
        if path.exists():
            with CatalogueStore(path) as store:
                claims = store.claims()
                store_version = store.version
        wanted = set(catalogues) if catalogues is not None else None
        families = starter_families() if wanted is None or STARTER_CATALOGUE in wanted else ()
        if wanted is not None:
            claims = [c for c in claims if c.catalogue in wanted]
        self.catalogue_version = f"{starter_digest()}.{store_version}"
        selection = ",".join(sorted(wanted)) if wanted is not None else "*"
        slot = hashlib.sha256(f"{path.resolve()}|{selection}".encode()).hexdigest()[:10]
        self.index = CatalogueIndex.build(
            self.encoder,
            claims,
            families,
            f"{self.catalogue_version}|{selection}",
            home() / "cache" if use_cache else None,
            slot,
        )
        self.name = f"{self.encoder.name}+catalogue@{self.catalogue_version}"

    def match(self, article: Article) -> list[NarrativeMatch]:
        spans = article.sentences or split_sentences(article.text)
        passages = passage_spans(article.text, spans)
        if not passages or not self.index.items:
            return []
        vectors = self.encoder.encode([article.text[s:e] for s, e in passages])
        scores = self.index.scores(vectors)  # passages × items
        best = scores.max(axis=0)
        families = np.array([i.catalogue == STARTER_CATALOGUE for i in self.index.items])
        floors = np.where(families, self.threshold, self.claim_threshold)
        matches: list[NarrativeMatch] = []
        seen_titles: set[str] = set()
        for item_index in np.argsort(-best, kind="stable"):
            score = float(best[item_index])
            if len(matches) >= self.top or score < min(self.threshold, self.claim_threshold):
                break
            floor = float(floors[item_index])
            item = self.index.items[item_index]
            # One case published in several languages has several pages: show it once.
            title = normalize_title(item.title)
            if score < floor or title in seen_titles:
                continue
            seen_titles.add(title)
            evidence = _evidence(passages, scores[:, item_index], score, floor)
            matches.append(item.as_match(score, evidence))
        return matches

    def search(self, queries: Sequence[str], top: int = 10) -> list[list[NarrativeMatch]]:
        """The ``top`` items closest to each query, best first (no threshold)."""
        if not queries or not self.index.items:
            return [[] for _ in queries]
        scores = self.index.scores(self.encoder.encode(queries))
        results = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:top]
            results.append([self.index.items[i].as_match(float(row[i])) for i in order])
        return results


def passage_spans(text: str, sentences: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Windows of 1 to MAX_WINDOW consecutive sentences, and the clauses of long sentences, as
    (start, end) offsets into ``text``.

    Clauses count on their own because a claim is often the tail of a long sentence ("...this
    can mean only one thing: X"), and the sentence's first half dilutes its vector.
    """
    out: list[tuple[int, int]] = []
    for i in range(len(sentences)):
        for size in range(1, MAX_WINDOW + 1):
            if i + size > len(sentences):
                break
            _add_passage(text, sentences[i][0], sentences[i + size - 1][1], out)
        start, end = sentences[i]
        cuts = [m.end() for m in _CLAUSE_BREAK.finditer(text, start, end)]
        for a, b in zip([start, *cuts], [*cuts, end], strict=True):
            if cuts:
                _add_passage(text, a, b, out)
    return out


def _add_passage(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if len(text[start:end].split()) >= MIN_PASSAGE_WORDS:
        out.append((start, end))


def _evidence(
    passages: list[tuple[int, int]], scores: np.ndarray, best: float, threshold: float
) -> list[Span]:
    """The best passage and up to two more that score nearly as well and do not overlap it."""
    floor = max(threshold, best - EVIDENCE_MARGIN)
    chosen: list[tuple[int, int]] = []
    for p in np.argsort(-scores, kind="stable"):
        if scores[p] < floor or len(chosen) >= MAX_EVIDENCE:
            break
        start, end = passages[p]
        if all(end <= s or start >= e for s, e in chosen):
            chosen.append((start, end))
    return [Span(start=s, end=e) for s, e in sorted(chosen)]
