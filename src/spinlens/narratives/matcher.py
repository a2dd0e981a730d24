"""Link an article to documented claims by sentence embeddings.

Every catalogue item is embedded once: a starter family as its title, its description and each
of its typical phrasings; a claim as its title and, when it has one, its title with its summary.
An item's score against a text is the best cosine over its vectors. An article is cut into
passages (windows of 1–2 consecutive sentences, and clauses of long sentences); a claim matches
when one passage scores at least its threshold, and the best passages are its evidence. Each
sentence and clause is embedded once; a two-sentence window is the length-weighted mean of its
sentences' vectors: half the encoder time of embedding each window, with 99 of 100 needles
still found (docs/benchmarks.md, "Narrative matching").

English articles (and those whose language is unknown) are embedded with MiniLM. Articles in
another language USE multilingual v3 knows are embedded with USE and carried into MiniLM's space
by the bridge (``embed.Bridge``), then searched against the same catalogue vectors: the same
claims come up for an article and its translation far more often than when USE embeds both
sides (docs/benchmarks.md, "Narrative matching across languages"). Catalogued claims and
search queries written in one of those languages are embedded the same way
(``encode_by_language``). Other languages are not supported (``supports``), and the pipeline
says so.

Search is exact (one matrix product with numpy): an article's ~100 passages against the 16k
vectors of the starter families and all EUvsDisinfo cases take about 20 ms. An HNSW index
(benchmarks/narratives_scale.py) pays off only for catalogues far larger than any that exists,
so it would only add a dependency. The catalogue's vectors are cached on disk under
``home()/cache``, keyed by encoder and catalogue version.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from spinlens.config import home
from spinlens.embed import (
    MULTILINGUAL_LANGUAGES,
    BridgedEncoder,
    ModelUnavailableError,
    TextEncoder,
    load_bridge,
    load_encoder,
    load_multilingual_encoder,
    multilingual_encoder_name,
)
from spinlens.extract import identify_short_language, short_language_rule
from spinlens.model import Article, NarrativeMatch, Precedent, Span
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
from spinlens.techniques import SpanVectors

# The scores above which a passage is taken to repeat a narrative, calibrated with
# benchmarks/narratives_retrieval.py (docs/benchmarks.md, "Narrative matching") for the shipped
# encoder. Families are matched through short generic phrasings: at 0.6, 5% of 100 PTC news
# articles match one, and the example article's documented narratives score 0.66-0.71. With 13k
# specific cases chance matches add up: at 0.7, 99 of 100 pasted case summaries are still found,
# and 5% of PTC articles match some case.
THRESHOLD = 0.6
CLAIM_THRESHOLD = 0.7
# Bridged vectors are a blurred copy of MiniLM's (held-out cosine 0.76), and the blur raises
# chance scores: read through USE and the first bridge (2026-12-01), 96% of 90 PTC test
# articles reached some claim at 0.6. Each threshold is where the bridge matches those
# articles as often as MiniLM does at THRESHOLD / CLAIM_THRESHOLD (0.608 and 0.729:
# benchmarks/narratives_crosslingual.py, docs/benchmarks.md "... across languages"), less what
# translation costs a true repeat: our Russian versions of 24 narrative statements
# (benchmarks/data) score 0.03 below their English originals, families (matched in Russian
# too since the families have Russian texts) and claims alike. Of 30 plain news articles we
# wrote in Russian, 2 then match some family (EU sanctions, migration statistics) and 1 some
# claim (at 0.55, 3 match a family).
MULTILINGUAL_THRESHOLD = 0.58
MULTILINGUAL_CLAIM_THRESHOLD = 0.70
# At most this many families, and as many claims, per article.
TOP = 8
# Three-sentence windows cost a third more time (1.7 s instead of 2.5 s for a PTC article)
# and found nothing the two-sentence windows missed on 40 PTC articles.
MAX_WINDOW = 2
# A passage shorter than this is page chrome or a fragment ("top of page", a byline).
MIN_PASSAGE_WORDS = 5
MAX_EVIDENCE = 3
# Where a long sentence splits into clauses that can carry a claim of their own.
_CLAUSE_BREAK = re.compile(r"[:;]\s+|\s[-–—]\s+")
# A long sentence or clause also counts by its head, the words before its first comma, when
# those are a statement of their own: a trailing qualifier dilutes the claim as a leading one
# does. "the Kazakh turmoil was in the interests of the West, including as another hotbed of
# tension near the borders of Russia, in the CIS space" scores 0.50 for the colour revolution,
# its head 0.61.
LONG_CLAUSE_WORDS = 16
HEAD_WORDS = 6
# With a technique detector's rough passage vectors (its passage head), the encoder reads only
# the passages whose rough vectors come within this of a threshold (a family's or a claim's).
# Rough vectors score a median 0.08 below the encoder's on the passages that matter. Chosen on
# 40 PTC dev articles and 30 PTC articles with a pasted case summary: at 0.12 the encoder reads
# 12% of the passages, and every one of the 97 matches is kept (131 of 133 evidence passages).
# Checked on 50 PTC test articles and 40 other pasted summaries: it reads 19%, keeps all 150
# matches and all 192 evidence passages; at 0.11 one match is lost.
SHORTLIST_MARGIN = 0.12
# Other passages are evidence too when they score this close to the best one (overlapping ones
# join it).
EVIDENCE_MARGIN = 0.05
# A claim belongs to the starter family its title is closest to, when at least this close. The
# fine-tuned encoder spreads claims apart, so titles sit further from the generic families than
# with base MiniLM: 0.45 gives a family to 44% of EUvsDisinfo titles (base MiniLM at 0.55: 53%),
# and 11 of 14 assignments sampled just above it (0.44-0.50) were right.
FAMILY_THRESHOLD = 0.45
# Precedents shown under a family match: its documented cases closest to the article. A case is
# shown only when it is clearly of the family: of 12 debunked cases sampled per band of
# typicality, 5 belonged to the family they were grouped under at 0.45-0.50, 8 at 0.50-0.55 and
# 10 at 0.55-0.60.
PRECEDENTS = 3
PRECEDENT_FLOOR = 0.45
PRECEDENT_TYPICALITY = 0.55
# Cases are compared with every passage that leans towards the family (scoring at least the
# threshold less this), not only with its evidence: the evidence is often one pointed clause
# ("the Kazakh turmoil was in the interests of the West"), too short to be near any documented
# case, while the passages around it say how this article tells the narrative. On the example
# article the colour revolution's evidence alone brought no debunked case above the floor; with
# these passages, three (Moscow 2012, Hungary 1956, a "revolution" plotted in Russia).
PRECEDENT_REACH = 0.1


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


class ForeignReader:
    """Embeds texts in the languages besides English that USE knows, into MiniLM's space
    (through the bridge); USE is loaded on the first text that needs it."""

    def __init__(self, name: str, dim: int, load: Callable[[], TextEncoder]) -> None:
        self.name = name
        self.dim = dim
        self._load = load
        # Set when USE or the bridge failed to load: the texts it should have read were read
        # by MiniLM instead, and vectors made so are not cached (see CatalogueIndex.build).
        self.unavailable: str | None = None

    @staticmethod
    def reads(text: str) -> bool:
        """Whether ``text`` is, surely enough, in a language this reads and MiniLM does not."""
        return identify_short_language(text, MULTILINGUAL_LANGUAGES) not in (None, "en")

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._load().encode(texts, batch_size)


def encode_by_language(
    texts: Sequence[str],
    encoder: TextEncoder,
    foreign: ForeignReader | None,
    batch_size: int = 1,
) -> np.ndarray:
    """Each text embedded by ``encoder``, or by ``foreign`` when it is in another language
    ``foreign`` reads (alone, by default: see CatalogueIndex.build)."""
    if foreign is None:
        return _encode(encoder, texts, batch_size)
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    other = [i for i, text in enumerate(texts) if foreign.reads(text)]
    own = sorted(set(range(len(texts))) - set(other))
    vectors[own] = _encode(encoder, [texts[i] for i in own], batch_size)
    if other:
        try:
            vectors[other] = _encode(foreign, [texts[i] for i in other], batch_size)
        except ModelUnavailableError as exc:
            # A broken USE install must not stop English matching: MiniLM reads these too.
            foreign.unavailable = str(exc)
            vectors[other] = _encode(encoder, [texts[i] for i in other], batch_size)
    return vectors


def _encode(encoder: TextEncoder, texts: Sequence[str], batch_size: int = 1) -> np.ndarray:
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return encoder.encode(texts, batch_size=batch_size)


class CatalogueIndex:
    """The vectors of every item of a catalogue, grouped by item, ready for exact search."""

    def __init__(
        self,
        items: list[Item],
        vectors: np.ndarray,
        starts: np.ndarray,
        version: str,
        counters: np.ndarray | None = None,
        counter_owners: np.ndarray | None = None,
    ) -> None:
        self.items = items
        self.vectors = vectors
        # Item i owns vectors[starts[i]:starts[i + 1]] (contiguous, so np.maximum.reduceat works).
        self.starts = starts
        self.version = version
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
        claims: Sequence[Claim] = (),
        families: Sequence[Family] = (),
        catalogue_version: str = "",
        cache_dir: Path | None = None,
        cache_slot: str = "default",
        other_languages: ForeignReader | None = None,
    ) -> CatalogueIndex:
        """Embed the items, or load their vectors from ``cache_dir``.

        A slot (one store and one choice of catalogues) keeps one cache file, for the latest
        catalogue version, so searching one catalogue does not evict the vectors of all.
        Claims written in another language ``other_languages`` reads (a team's list in Russian,
        a Spanish fact-checker's ClaimReview) are embedded by it, into ``encoder``'s space.
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
        owners = [f for f, family in enumerate(families) for _ in family.counterexamples]
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
        n_item_texts = len(texts)
        texts.extend(text for family in families for text in family.counterexamples)
        readers = encoder.name
        if other_languages is not None:
            readers += f"|{other_languages.name}"
        key = hashlib.sha256(
            f"{readers}|{catalogue_version}|{len(texts)}|one-by-one".encode()
        ).hexdigest()[:16]
        cache = cache_dir / f"narratives-{cache_slot}-{key}.npy" if cache_dir else None
        vectors = _cached(cache) if cache is not None else None
        if vectors is None or vectors.shape != (len(texts), encoder.dim):
            # One text per call: int8 activations are quantised per batch, so batched vectors
            # move with their neighbours, and adding a team's list or a counterexample would
            # move every claim a little (enough to reorder the claims just under a threshold).
            # Alone, a text always gets the same vector. Three times slower, once per version.
            # The starter families' texts (and counterexamples) are English.
            claims_from = int(starts[n_families]) if claims else n_item_texts
            vectors = np.concatenate(
                [
                    _encode(encoder, texts[:claims_from]),
                    encode_by_language(texts[claims_from:n_item_texts], encoder, other_languages),
                    _encode(encoder, texts[n_item_texts:]),
                ]
            )
            if cache is not None and (other_languages is None or not other_languages.unavailable):
                _store(cache, vectors)
        index = cls(
            items,
            vectors[:n_item_texts],
            np.array(starts, dtype=np.int64),
            key,
            vectors[n_item_texts:],
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


def _countered(own: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """A score less what the counterexample's score beats it by."""
    return own - np.maximum(0.0, counter - own)


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
        self._cache_dir = home() / "cache" if use_cache else None
        self._families = families
        # Loaded on the first article (or claim, or query) that needs them: English articles
        # never load USE, though building the catalogue's vectors does when some claims are in
        # another language (EUvsDisinfo has one Russian title; once per catalogue version).
        self._multilingual_encoder = multilingual_encoder
        self._multilingual_families: CatalogueIndex | None = None
        self.foreign = self._foreign_reader()
        self.index = CatalogueIndex.build(
            self.encoder,
            claims,
            families,
            f"{self.catalogue_version}|{selection}",
            self._cache_dir,
            slot,
            self.foreign,
        )
        self.name = f"{self.encoder.name}+catalogue@{self.catalogue_version}"
        self.passage_space = self.encoder.name

    def supports(self, language: str | None) -> bool:
        """Whether articles in ``language`` (a py3langid code; None: unknown) can be matched."""
        return _is_english(language) or language in MULTILINGUAL_LANGUAGES

    def name_for(self, language: str | None, passages_by: str | None = None) -> str:
        """The encoder and catalogue that match articles in ``language`` (for ``models``);
        ``passages_by``: the detector whose passage head gave an English article's vectors."""
        if passages_by is not None and _is_english(language):
            return f"{passages_by}-shortlist+{self.name}"
        if _is_english(language) or not self.supports(language):
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
                    starter_digest(),
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
        the encoder reads (see ``_shortlist``)."""
        if not self.supports(article.language):
            return []
        spans = article.sentences or split_sentences(article.text)
        plan = plan_passages(article.text, spans)
        if not plan.spans or not self.index.items:
            return []
        threshold, claim_threshold = self.threshold, self.claim_threshold
        if _is_english(article.language):
            if span_vectors is not None:
                plan = self._shortlist(plan, span_vectors, article.text)
                if not plan.spans:  # nothing comes near the catalogue: nothing to read
                    return []
        else:
            # Calibrated for bridged scores; an explicit threshold of the caller (e.g. -1 to
            # rank everything) applies to both.
            threshold = min(threshold, MULTILINGUAL_THRESHOLD)
            claim_threshold = min(claim_threshold, MULTILINGUAL_CLAIM_THRESHOLD)
        scores = self.passage_scores(plan, article.text, article.language)
        return self._select(self.index, plan.spans, scores, threshold, claim_threshold)

    def passage_scores(self, plan: PassagePlan, text: str, language: str | None) -> np.ndarray:
        """Passages × items, each passage read by the encoder of ``language``: MiniLM for
        English (and unknown), USE and the bridge for the other languages ``supports``."""
        if _is_english(language):
            return self.index.scores(plan.vectors(self.encoder, text))
        return self._multilingual_scores(plan, text)

    def _shortlist(self, plan: PassagePlan, span_vectors: SpanVectors, text: str) -> PassagePlan:
        """The passages whose rough vectors score within SHORTLIST_MARGIN of this matcher's
        threshold for some family or claim, so the encoder reads only those."""
        rough = plan.combine(span_vectors(plan.units), text) @ self.index.vectors.T
        family_end = self.index.family_end
        margin = np.full(len(plan.spans), -np.inf, dtype=np.float32)
        if family_end:
            margin = rough[:, :family_end].max(axis=1) - self.threshold
        if family_end < rough.shape[1]:
            claims = rough[:, family_end:].max(axis=1) - self.claim_threshold
            margin = np.maximum(margin, claims)
        return plan.subset(np.flatnonzero(margin >= -SHORTLIST_MARGIN).tolist())

    def _select(
        self,
        index: CatalogueIndex,
        passages: list[tuple[int, int]],
        scores: np.ndarray,
        threshold: float,
        claim_threshold: float,
    ) -> list[NarrativeMatch]:
        best = scores.max(axis=0)
        families = np.array([i.catalogue == STARTER_CATALOGUE for i in index.items])
        floors = np.where(families, threshold, claim_threshold)
        matches: list[NarrativeMatch] = []
        family_matches: list[tuple[int, NarrativeMatch]] = []  # (item index, match)
        seen_titles: set[str] = set()
        # Families and claims each get ``top`` places: an article about MH17 can match a dozen
        # cases above 0.7, and the family it tells (with its precedents) must not fall off the
        # report behind them.
        room = {True: self.top, False: self.top}
        for item_index in np.argsort(-best, kind="stable"):
            score = float(best[item_index])
            if not any(room.values()) or score < min(threshold, claim_threshold):
                break
            floor = float(floors[item_index])
            item = index.items[item_index]
            is_family = bool(families[item_index])
            # One case published in several languages has several pages: show it once.
            title = normalize_title(item.title)
            if score < floor or title in seen_titles or not room[is_family]:
                continue
            room[is_family] -= 1
            seen_titles.add(title)
            evidence = _evidence(passages, scores[:, item_index], score, floor)
            matches.append(item.as_match(score, evidence))
            if is_family:
                family_matches.append((int(item_index), matches[-1]))
        # Each family's documented cases, judged on the passages that lean towards it.
        shown = {normalize_title(m.title) for m in matches if m.catalogue != STARTER_CATALOGUE}
        for item_index, match in family_matches:
            if match.family in index.members:
                rows = scores[:, item_index] >= threshold - PRECEDENT_REACH
                match.precedents = _precedents(
                    index, index.members[match.family], scores[rows], shown
                )
        return matches

    def search(self, queries: Sequence[str], top: int = 10) -> list[list[NarrativeMatch]]:
        """The ``top`` items closest to each query, best first (no threshold); a case published
        in several languages (same title) is listed once, as in ``match``."""
        if not queries or not self.index.items:
            return [[] for _ in queries]
        scores = self.index.scores(encode_by_language(queries, self.encoder, self.foreign, 32))
        return [self._distinct_best(row, top) for row in scores]

    def _distinct_best(self, row: np.ndarray, top: int) -> list[NarrativeMatch]:
        """The ``top`` best items of one score row with distinct titles. Candidates are taken
        a few times ``top`` at a time: a case with many language versions can fill them all."""
        found: list[NarrativeMatch] = []
        seen: set[str] = set()
        wanted = top * 4
        while True:
            if wanted < len(row):
                part = np.argpartition(-row, wanted - 1)[:wanted]
            else:
                part = np.arange(len(row))
            for i in part[np.argsort(-row[part], kind="stable")]:
                title = normalize_title(self.index.items[i].title)
                if title not in seen:
                    seen.add(title)
                    found.append(self.index.items[i].as_match(float(row[i])))
                    if len(found) == top:
                        return found
            if len(part) == len(row):
                return found
            wanted *= 4


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
        weights = np.zeros((len(self.spans), len(self.units)), dtype=np.float32)
        for p, parts in enumerate(self.parts):
            weights[p, list(parts)] = words[list(parts)]
        out = weights @ units
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


def _head(text: str, start: int, end: int) -> int | None:
    """Where the head of ``text[start:end]`` ends (its first comma), for a clause of at least
    LONG_CLAUSE_WORDS words whose head has at least HEAD_WORDS; None otherwise."""
    if len(text[start:end].split()) < LONG_CLAUSE_WORDS:
        return None
    comma = text.find(", ", start, end)
    if comma < 0 or len(text[start:comma].split()) < HEAD_WORDS:
        return None
    return comma


def passage_spans(text: str, sentences: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (start, end) offsets into ``text`` of the passages ``plan_passages`` makes."""
    return plan_passages(text, sentences).spans


def _is_english(language: str | None) -> bool:
    """Articles MiniLM matches: English, and those whose language is unknown."""
    return language is None or language == "en"


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _precedents(
    index: CatalogueIndex, members: np.ndarray, passage_scores: np.ndarray, shown: set[str]
) -> list[Precedent]:
    """A family's documented cases closest to the article, at most PRECEDENTS.

    A case's score is the mean of its best cosine to the passages that lean towards the family
    (``passage_scores``: those passages x items; how near it is to what this article says) and
    its typicality (how squarely it tells the family's narrative): either alone ranks badly,
    the first bringing up any case about protests, the second the same few textbook cases for
    every article. Only cases of typicality at least PRECEDENT_TYPICALITY are candidates. Cases
    with a published disproof come first, as the debunk is what a reader of the report needs;
    claims the article matched outright are not repeated.
    """
    members = members[index.typicality[members] >= PRECEDENT_TYPICALITY]
    if not len(members):
        return []
    near = passage_scores[:, members].max(axis=0)
    combined = (near + index.typicality[members]) / 2
    debunked = np.array([bool(index.items[i].disproof) for i in members])
    found: list[Precedent] = []
    titles = set(shown)
    for j in np.lexsort((-combined, ~debunked)):
        item = index.items[int(members[j])]
        title = normalize_title(item.title)
        if combined[j] < PRECEDENT_FLOOR or title in titles:
            continue
        titles.add(title)
        found.append(item.as_precedent(float(combined[j])))
        if len(found) == PRECEDENTS:
            break
    return found


def _evidence(
    passages: list[tuple[int, int]], scores: np.ndarray, best: float, threshold: float
) -> list[Span]:
    """The passages that score nearly as well as the best one, at most MAX_EVIDENCE places.

    Passages that overlap join into one span: a one-sentence passage and the two-sentence
    window around it that scores nearly as well are one piece of evidence, and the reader sees
    both sentences ("professional protesters joined" + "NGOs financed from abroad").
    """
    floor = max(threshold, best - EVIDENCE_MARGIN)
    chosen: list[tuple[int, int]] = []
    for p in np.argsort(-scores, kind="stable"):
        if scores[p] < floor:
            break
        start, end = passages[p]
        touching = [(s, e) for s, e in chosen if start < e and s < end]
        if touching:
            chosen = [span for span in chosen if span not in touching]
            start = min(start, *(s for s, _ in touching))
            end = max(end, *(e for _, e in touching))
            chosen.append((start, end))
        elif len(chosen) < MAX_EVIDENCE:
            chosen.append((start, end))
    return [Span(start=s, end=e) for s, e in sorted(chosen)]
