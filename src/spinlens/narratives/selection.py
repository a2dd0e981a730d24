"""Which items an article matches, on which evidence, with which documented precedents.

A claim matches when one passage scores at least its threshold, and the best passages are its
evidence; a family match lists the documented cases of the family closest to the article.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spinlens.model import NarrativeMatch, Precedent, Span
from spinlens.narratives.catalogue import STARTER_CATALOGUE, normalize_title
from spinlens.narratives.index import CatalogueIndex
from spinlens.narratives.languages import is_english
from spinlens.narratives.passages import PassagePlan

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
MAX_EVIDENCE = 3
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


def thresholds_for(
    language: str | None, threshold: float, claim_threshold: float
) -> tuple[float, float]:
    """The family and claim thresholds for an article in ``language``: those given for English;
    at most the bridge's calibrated ones for the others (an explicit threshold of the caller,
    e.g. -1 to rank everything, applies to both)."""
    if is_english(language):
        return threshold, claim_threshold
    return (
        min(threshold, MULTILINGUAL_THRESHOLD),
        min(claim_threshold, MULTILINGUAL_CLAIM_THRESHOLD),
    )


def shortlist(
    plan: PassagePlan,
    rough: np.ndarray,
    index: CatalogueIndex,
    threshold: float,
    claim_threshold: float,
) -> PassagePlan:
    """The passages whose rough vectors (``rough``: one per passage of ``plan``) score within
    SHORTLIST_MARGIN of a threshold for some family or claim, so the encoder reads only those."""
    scores = rough @ index.vectors.T
    family_end = index.family_end
    margin = np.full(len(plan.spans), -np.inf, dtype=np.float32)
    if family_end:
        margin = scores[:, :family_end].max(axis=1) - threshold
    if family_end < scores.shape[1]:
        claims = scores[:, family_end:].max(axis=1) - claim_threshold
        margin = np.maximum(margin, claims)
    return plan.subset(np.flatnonzero(margin >= -SHORTLIST_MARGIN).tolist())


def select(
    index: CatalogueIndex,
    passages: list[tuple[int, int]],
    scores: np.ndarray,
    threshold: float,
    claim_threshold: float,
    top: int = TOP,
) -> list[NarrativeMatch]:
    """The items ``scores`` (passages × items) reach, best first: at most ``top`` families and
    ``top`` claims, each with its evidence, and each family with its precedents."""
    best = scores.max(axis=0)
    families = np.array([i.catalogue == STARTER_CATALOGUE for i in index.items])
    floors = np.where(families, threshold, claim_threshold)
    matches: list[NarrativeMatch] = []
    family_matches: list[tuple[int, NarrativeMatch]] = []  # (item index, match)
    seen_titles: set[str] = set()
    # Families and claims each get ``top`` places: an article about MH17 can match a dozen
    # cases above 0.7, and the family it tells (with its precedents) must not fall off the
    # report behind them.
    room = {True: top, False: top}
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
            match.precedents = _precedents(index, index.members[match.family], scores[rows], shown)
    return matches


def distinct_best(index: CatalogueIndex, row: np.ndarray, top: int) -> list[NarrativeMatch]:
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
            title = normalize_title(index.items[i].title)
            if title not in seen:
                seen.add(title)
                found.append(index.items[i].as_match(float(row[i])))
                if len(found) == top:
                    return found
        if len(part) == len(row):
            return found
        wanted *= 4


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
    passages: Sequence[tuple[int, int]], scores: np.ndarray, best: float, threshold: float
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
