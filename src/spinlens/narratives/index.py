"""The catalogue's vectors, grouped by item, ready for exact search.

Every catalogue item is embedded once: a starter family as its title, its description and each
of its typical phrasings; a claim as its title and, when it has one, its title with its summary.
An item's score against a text is the best cosine over its vectors, less what a counterexample
beats it by (``CatalogueIndex.scores``). Claims are grouped under the starter families
(``_assign_families``).

Search is exact (one matrix product with numpy): an article's ~100 passages against the 16k
vectors of the starter families and all EUvsDisinfo cases take about 20 ms. An HNSW index
(benchmarks/narratives_scale.py) pays off only for catalogues far larger than any that exists,
so it would only add a dependency. The vectors are cached on disk (``vector_cache``), one file
for the starter families and one per catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import groupby
from pathlib import Path

import numpy as np

from spinlens.embed import TextEncoder
from spinlens.model import NarrativeMatch, Precedent, Span
from spinlens.narratives.catalogue import STARTER_CATALOGUE, Claim, Family
from spinlens.narratives.languages import ForeignReader, encode_by_language, encode_texts
from spinlens.narratives.vector_cache import VectorCache, catalogue_slot, content_key

# A claim belongs to the starter family its title is closest to, when at least this close. The
# fine-tuned encoder spreads claims apart, so titles sit further from the generic families than
# with base MiniLM: 0.45 gives a family to 44% of EUvsDisinfo titles (base MiniLM at 0.55: 53%),
# and 11 of 14 assignments sampled just above it (0.44-0.50) were right.
FAMILY_THRESHOLD = 0.45
# Texts embedded between two progress reports: about a second of MiniLM's time, one by one.
EMBED_CHUNK = 256

# Told (texts embedded so far, texts to embed) while a catalogue's vectors are built.
EmbedProgress = Callable[[int, int], None]


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
        return NarrativeMatch(**asdict(self), score=round(score, 4), evidence=evidence or [])

    def as_precedent(self, score: float) -> Precedent:
        fields = asdict(self)
        del fields["family"]  # a precedent is shown under its family
        return Precedent(**fields, score=round(score, 4))


def family_texts(family: Family) -> list[str]:
    return [family.title, family.description, *family.phrasings]


def claim_texts(claim: Claim) -> list[str]:
    texts = [claim.title]
    if claim.summary:
        texts.append(f"{claim.title} {claim.summary}")
    return texts


@dataclass
class _Unit:
    """Texts cached together: the starter families', or one catalogue's claims'."""

    slot: str
    texts: list[str]
    by_language: bool  # claims may be in another language; the families are English
    vectors: np.ndarray | None = None
    key: str = ""


class CatalogueIndex:
    """The vectors of every item of a catalogue, grouped by item, ready for exact search."""

    def __init__(
        self,
        items: list[Item],
        vectors: np.ndarray,
        starts: np.ndarray,
        counters: np.ndarray | None = None,
        counter_owners: np.ndarray | None = None,
    ) -> None:
        self.items = items
        self.vectors = vectors
        # Item i owns vectors[starts[i]:starts[i + 1]] (contiguous, so np.maximum.reduceat works).
        self.starts = starts
        # The starter families' counterexamples (see ``scores``): counter vector j belongs to
        # the family of item counter_owners[j]; a family's counters are contiguous.
        self.counters = (
            counters if counters is not None else np.zeros((0, vectors.shape[1]), np.float32)
        )
        owners = counter_owners if counter_owners is not None else np.zeros(0, np.int64)
        self._countered, self._counter_starts = np.unique(owners, return_index=True)
        # Family id -> the claims that belong to it, and each claim's cosine to its family
        # (how typical of the narrative it is); filled by _assign_families.
        self.members: dict[str, np.ndarray] = {}
        self.typicality = np.zeros(len(items), dtype=np.float32)
        # The starter families come first: items[:n_families], vectors[:family_end].
        self.n_families = sum(item.catalogue == STARTER_CATALOGUE for item in items)
        self.family_end = (
            int(starts[self.n_families]) if self.n_families < len(items) else len(vectors)
        )

    @classmethod
    def build(
        cls,
        encoder: TextEncoder,
        claims: Iterable[Claim] = (),
        families: Sequence[Family] = (),
        cache_dir: Path | None = None,
        cache_slot: str = "default",
        other_languages: ForeignReader | None = None,
        progress: EmbedProgress | None = None,
    ) -> CatalogueIndex:
        """Embed the items, or load their vectors from ``cache_dir``.

        The starter families and each catalogue (a run of ``claims`` of one catalogue) are
        cached apart, under ``cache_slot``: importing or removing one catalogue re-embeds only
        it. Claims written in another language ``other_languages`` reads (a team's list in
        Russian, a Spanish fact-checker's ClaimReview) are embedded by it, into ``encoder``'s
        space. ``progress`` is told how many texts are embedded, as they are.
        """
        starts: list[int] = []
        items: list[Item] = []
        units: list[_Unit] = []
        item_texts: list[str] = []
        for family in families:
            starts.append(len(item_texts))
            item_texts.extend(family_texts(family))
            items.append(
                Item(f"{STARTER_CATALOGUE}:{family.id}", family.title, STARTER_CATALOGUE, family.id)
            )
        n_families = len(items)
        n_family_texts = len(item_texts)
        owners = [f for f, family in enumerate(families) for _ in family.counterexamples]
        counter_texts = [text for family in families for text in family.counterexamples]
        if families:
            units.append(_Unit(f"{cache_slot}-starter", item_texts + counter_texts, False))
        n_texts = n_family_texts
        seen: set[str] = set()
        for catalogue, group in groupby(claims, key=lambda claim: claim.catalogue):
            texts: list[str] = []
            for claim in group:
                starts.append(n_texts + len(texts))
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
            slot = catalogue_slot(cache_slot, catalogue)
            if slot in seen:  # claims of one catalogue not given together: cached apart
                slot = f"{slot}{len(seen)}"
            seen.add(slot)
            units.append(_Unit(slot, texts, True))
            n_texts += len(texts)
        _embed(units, encoder, other_languages, cache_dir, progress)
        vectors = np.empty((n_texts, encoder.dim), dtype=np.float32)
        counters = np.zeros((0, encoder.dim), dtype=np.float32)
        at = 0
        for unit in units:
            assert unit.vectors is not None
            if unit.by_language:
                vectors[at : at + len(unit.texts)] = unit.vectors
                at += len(unit.texts)
            else:
                vectors[:n_family_texts] = unit.vectors[:n_family_texts]
                counters = unit.vectors[n_family_texts:]
                at = n_family_texts
            unit.vectors = None  # the unit's copy is not needed any more
        index = cls(
            items,
            vectors,
            np.array(starts, dtype=np.int64),
            counters,
            np.array(owners, dtype=np.int64),
        )
        if n_families:
            index._assign_families(n_families, families)
        return index

    def _assign_families(self, n_families: int, families: Sequence[Family]) -> None:
        """Claims without a family join the starter family their title is closest to; every
        claim of a starter family gets its typicality (best cosine of its vectors to the
        family's) and is listed among the family's members."""
        if n_families >= len(self.items):
            return
        family_end = self.family_end
        titles = self.vectors[self.starts[n_families:]]
        scores = self._item_scores(titles @ self.vectors[:family_end].T, n_families)
        best = scores.argmax(axis=1)
        for row, item_index in enumerate(range(n_families, len(self.items))):
            item = self.items[item_index]
            if item.family is None and scores[row, best[row]] >= FAMILY_THRESHOLD:
                family = families[int(best[row])].id
                self.items[item_index] = replace(item, family=family)
        # Every vector of every claim against every family: claims' vectors × families.
        per_vector = self._item_scores(
            self.vectors[family_end:] @ self.vectors[:family_end].T, n_families
        )
        per_claim = np.maximum.reduceat(per_vector, self.starts[n_families:] - family_end, axis=0)
        column = {family.id: f for f, family in enumerate(families)}
        members: dict[str, list[int]] = {}
        for row, item_index in enumerate(range(n_families, len(self.items))):
            name = self.items[item_index].family
            if name in column:
                members.setdefault(name, []).append(item_index)
                self.typicality[item_index] = per_claim[row, column[name]]
        self.members = {name: np.array(rows) for name, rows in members.items()}

    def _item_scores(self, sims: np.ndarray, n_items: int | None = None) -> np.ndarray:
        """Per-vector similarities (rows × vectors) to per-item scores (rows × items)."""
        starts = self.starts if n_items is None else self.starts[:n_items]
        if sims.shape[1] == 0:
            return np.zeros((sims.shape[0], 0), dtype=np.float32)
        return np.maximum.reduceat(sims, starts, axis=1)

    def scores(self, query_vectors: np.ndarray) -> np.ndarray:
        """Cosine of each query with each item (queries × items).

        A family's score loses what its closest counterexample beats it by: a passage nearer
        plain reporting of the topic than the narrative itself does not tell the narrative. The
        uncased encoder takes "It all started with reports of protests in the west of the
        country." for a Western-orchestrated colour revolution (0.61), but that sentence is
        nearer "Protests began in the western regions and spread to other cities." (0.75), so
        it scores 0.48; the narrative's own statements are far nearer the family than any of
        its counterexamples.

        A claim's score loses what the closest of all counterexamples beats it by, for the same
        reason: read through USE and the bridge, that sentence scored 0.70 for the EUvsDisinfo
        claim "Western media inflate protests in Russia" (a chance match in a report) and is far
        nearer plain reporting.
        """
        scores = self._item_scores(query_vectors @ self.vectors.T)
        if len(self.counters):
            to_counters = query_vectors @ self.counters.T
            families = np.maximum.reduceat(to_counters, self._counter_starts, axis=1)
            scores[:, self._countered] = _countered(scores[:, self._countered], families)
            every = to_counters.max(axis=1, keepdims=True)
            scores[:, self.n_families :] = _countered(scores[:, self.n_families :], every)
        return scores


def _embed(
    units: list[_Unit],
    encoder: TextEncoder,
    other_languages: ForeignReader | None,
    cache_dir: Path | None,
    progress: EmbedProgress | None,
) -> None:
    """Each unit's vectors, from the cache or embedded (then cached).

    One text per call: int8 activations are quantised per batch, so batched vectors move with
    their neighbours, and adding a team's list or a counterexample would move every claim a
    little (enough to reorder the claims just under a threshold). Alone, a text always gets the
    same vector, so the units can be cached apart. Three times slower, once per content.
    """
    cache = VectorCache(cache_dir) if cache_dir is not None else None
    foreign_name = f"|{other_languages.name}" if other_languages is not None else ""
    missing: list[_Unit] = []
    for unit in units:
        readers = encoder.name + (foreign_name if unit.by_language else "")
        unit.key = content_key(readers, unit.texts)
        if cache is not None:
            unit.vectors = cache.load(unit.slot, unit.key, (len(unit.texts), encoder.dim))
        if unit.vectors is None:
            missing.append(unit)
    total = sum(len(unit.texts) for unit in missing)
    done = 0
    if missing and progress is not None:
        progress(done, total)
    for unit in missing:
        vectors = np.empty((len(unit.texts), encoder.dim), dtype=np.float32)
        for first in range(0, len(unit.texts), EMBED_CHUNK):
            chunk = unit.texts[first : first + EMBED_CHUNK]
            if unit.by_language:
                vectors[first : first + len(chunk)] = encode_by_language(
                    chunk, encoder, other_languages
                )
            else:
                vectors[first : first + len(chunk)] = encode_texts(encoder, chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        unit.vectors = vectors
    # Vectors read by MiniLM in USE's place are not kept: the next start, with USE working,
    # reads those claims right.
    if cache is not None and (other_languages is None or not other_languages.unavailable):
        for unit in missing:
            assert unit.vectors is not None
            cache.save(unit.slot, unit.key, unit.vectors)


def _countered(own: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """A score less what the counterexample's score beats it by."""
    return own - np.maximum(0.0, counter - own)
