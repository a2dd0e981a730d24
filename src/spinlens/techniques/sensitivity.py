"""Choosing decodings on validation: one per head for each sensitivity level, by cross-fitting.

Every trainer ends here (training needs this; running a model does not). Given a detector's
readings of the validation articles (word probabilities per head) with their gold spans, and its
readings of ordinary news that should hardly be flagged at all:

* **balanced** (the default) is the best FLC F1 such that ordinary news keeps a mean flagged
  share of at most :data:`NEWS_CAP` of its text; the SI head takes its best SI F1.
* **precise** favours precision: the best F0.5, with each head's threshold at least and its gap
  at most balanced's (same smoothing and peak), so it never flags more than balanced.
* **thorough** favours recall: each head at its own best F2, threshold at most and gap at least
  balanced's, so it never flags less (and even a rare technique shows wherever the model leans
  towards it), among the decodings at least :data:`THOROUGH_MIN_PRECISION` precise; then, like
  balanced, brought under the news cap.

No technique is ever switched off: a weak one is still reported, and its validation F1 travels
with the detector (``TokenTagger.technique_reliability``) so reports can say how far to trust it.
Each technique's balanced decoding must also find at least :data:`MIN_FOUND` of as many spans as
the gold has of it, so that a weak head is not silenced by a threshold it never reaches.

**Cross-fitting.** :func:`choose_sensitivities` chooses on all the articles (what ships), and
measures the procedure honestly: the articles and the news items are each split into ``folds``
parts; each part is decoded with levels chosen on the others, and the figures (SI, FLC, per
technique, news flagged share) are those of the parts so decoded. Nothing is scored with choices
made on it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.model import Article
from spinlens.techniques import ptc
from spinlens.techniques.decoding import (
    ANY,
    SENSITIVITIES,
    Decoding,
    Decodings,
    Doc,
    Sensitivity,
    decode_runs,
    decodings_to_json,
    sensitivities_to_json,
    smoothed,
)
from spinlens.techniques.findings import (
    Reading,
    TokenTagger,
    predict_flc,
    predict_si,
    predict_tc,
)
from spinlens.techniques.tc_context import choose_context

THRESHOLDS = (
    0.02,
    0.03,
    0.05,
    0.07,
    0.1,
    0.13,
    0.16,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.55,
    0.6,
    0.65,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.95,
)
GAPS = (0, 1, 2, 3, 5, 8, 12)
SMOOTHING = (1, 3)  # moving-mean widths (Decoding.smooth)
# Peaks a run of the SI head must reach (Decoding.peak; 0: none). Hysteresis pays on the SI
# head, whose runs are long: on minilm-ptc@3's validation articles it raised SI F1 chosen on
# one half and scored on the other from 0.378 to 0.385 (in-sample 0.387 to 0.392).
SI_PEAKS = (0.0, 0.5, 0.6, 0.7, 0.8)
# issue 15: the default must keep ordinary news below a mean flagged share of 0.10.
NEWS_CAP = 0.10
# A technique's balanced decoding finds at least this many spans per gold span of it on the
# articles it is chosen on (else a weak technique could hide behind an unreachable threshold).
MIN_FOUND = 0.2
# Thorough widens a head only to decodings at least this precise on the articles it is chosen
# on (else it stays at balanced's). At its own best F2 alone, Repetition ran at a precision of
# 0.03 on the accurate tier's validation articles and put 16 Repetition findings scored 0.02 or
# less on the canonical example: noise no analyst can use. One finding in ten right is the
# least that still reads as a lead.
THOROUGH_MIN_PRECISION = 0.1
# F-beta of each level: beta < 1 weighs precision, beta > 1 recall.
BETAS: dict[Sensitivity, float] = {"precise": 0.5, "balanced": 1.0, "thorough": 2.0}
ROUNDS = 3  # coordinate ascent passes over the heads
# Where the ordinary English news items are (a folder of <name>.txt, title on the first line):
# in the repository, beside the benchmarks that report them. Only training reads them.
NEWS_FOLDER = Path(__file__).resolve().parents[3] / "benchmarks" / "data" / "english_news"

Levels = dict[Sensitivity, Decodings]


def read_news(folder: str | Path = NEWS_FOLDER) -> dict[str, Article]:
    """The ordinary news items of ``folder`` as articles, by file name."""
    return {
        path.stem: ptc.to_article(path.read_text(encoding="utf-8"))
        for path in sorted(Path(folder).glob("*.txt"))
    }


# --- what each candidate decoding does, per article ---------------------------------------


def _candidates(head: str) -> list[Decoding]:
    peaks = SI_PEAKS if head == ANY else (0.0,)
    return [
        Decoding(threshold, gap, smooth, peak)
        for threshold, gap, smooth, peak in itertools.product(THRESHOLDS, GAPS, SMOOTHING, peaks)
        if not 0.0 < peak <= threshold  # else every run reaches the peak: a duplicate
    ]


def _runs(doc: Doc, probs: NDArray[np.float32], decoding: Decoding) -> list[tuple[int, int]]:
    """Runs (first, last token) of pre-smoothed probabilities."""
    flat = Decoding(decoding.threshold, decoding.gap, 1, decoding.peak)
    return [(a, b) for a, b, _ in decode_runs(doc, probs, flat)]


def _span_sums(pred: NDArray[np.int64], gold: NDArray[np.int64]) -> tuple[float, int, float, int]:
    """The scorer's sums (``ptc.SpanSums``) of one article and head: merged gold, disjoint
    predictions."""
    if len(pred) == 0 or len(gold) == 0:
        return 0.0, len(pred), 0.0, len(gold)
    inter = np.clip(
        np.minimum(pred[:, 1:2], gold[None, :, 1]) - np.maximum(pred[:, 0:1], gold[None, :, 0]),
        0,
        None,
    ).astype(np.float64)
    prec = float((inter / (pred[:, 1] - pred[:, 0])[:, None]).sum())
    rec = float((inter / (gold[:, 1] - gold[:, 0])[None, :]).sum())
    return prec, len(pred), rec, len(gold)


@dataclass
class _NewsUnits:
    """Every news text cut into units (each word, and the characters between two words), so a
    run of words first..last covers units 2*first..2*last of its text."""

    offsets: list[int]  # first unit of each text
    weights: NDArray[np.float64]  # characters per unit
    text_of_unit: NDArray[np.int64]
    lengths: NDArray[np.float64]  # characters per text

    @classmethod
    def of(cls, docs: Sequence[Doc]) -> _NewsUnits:
        offsets: list[int] = []
        weights: list[NDArray[np.float64]] = []
        owner: list[NDArray[np.int64]] = []
        for i, doc in enumerate(docs):
            offsets.append(sum(w.size for w in weights))
            starts = np.array([t.start for t in doc.tokens], dtype=np.int64)
            ends = np.array([t.end for t in doc.tokens], dtype=np.int64)
            unit = np.zeros(max(0, 2 * len(starts) - 1), dtype=np.float64)
            unit[0::2] = ends - starts
            unit[1::2] = starts[1:] - ends[:-1]
            weights.append(unit)
            owner.append(np.full(unit.size, i, dtype=np.int64))
        return cls(
            offsets,
            np.concatenate(weights) if weights else np.zeros(0),
            np.concatenate(owner) if owner else np.zeros(0, np.int64),
            np.array([max(1, len(doc.text)) for doc in docs], dtype=np.float64),
        )

    def shares(self, covered: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Flagged share of each text, for each row of ``covered`` (rows x units)."""
        chars = np.zeros((covered.shape[0], self.lengths.size))
        for row in range(covered.shape[0]):
            chars[row] = np.bincount(
                self.text_of_unit, self.weights * covered[row], minlength=self.lengths.size
            )
        return chars / self.lengths


@dataclass
class _Head:
    candidates: list[Decoding]
    sums: NDArray[np.float64]  # candidates x articles x (prec_sum, n_pred, rec_sum, n_gold)
    news: NDArray[np.bool_] | None  # candidates x news units (technique heads only)


@dataclass
class _Table:
    """Each head's candidates and what they do on each article and news text."""

    heads: dict[str, _Head]
    articles: list[str]
    news: _NewsUnits
    news_ids: list[str]
    techniques: list[str] = field(default_factory=list)


def _table(
    heads: Sequence[str],
    readings: Mapping[str, Reading],
    gold: Sequence[ptc.Label],
    news: Mapping[str, Reading],
    only: Collection[str] | None = None,
) -> _Table:
    articles = sorted(readings)
    news_ids = sorted(news)
    units = _NewsUnits.of([news[i].doc for i in news_ids])
    gold_spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for la in gold:
        for head in (la.technique or "", ANY):
            gold_spans.setdefault((la.article_id, head), []).append((la.start, la.end))
    table: dict[str, _Head] = {}
    for column, head in enumerate(heads):
        if only is not None and head not in only:
            continue
        candidates = _candidates(head)
        sums = np.zeros((len(candidates), len(articles), 4))
        for a, article_id in enumerate(articles):
            reading = readings[article_id]
            tokens = reading.doc.tokens
            merged = ptc.merge_overlapping(gold_spans.get((article_id, head), []))
            gold_array = np.array(merged, dtype=np.int64).reshape(-1, 2)
            by_smooth = {w: smoothed(reading.word_probs[:, column], w) for w in SMOOTHING}
            for k, decoding in enumerate(candidates):
                runs = _runs(reading.doc, by_smooth[decoding.smooth], decoding)
                pred = np.array(
                    [(tokens[x].start, tokens[y].end) for x, y in runs], dtype=np.int64
                ).reshape(-1, 2)
                sums[k, a] = _span_sums(pred, gold_array)
        covered = None
        if head != ANY:
            covered = np.zeros((len(candidates), units.weights.size), dtype=bool)
            for n, news_id in enumerate(news_ids):
                reading = news[news_id]
                by_smooth = {w: smoothed(reading.word_probs[:, column], w) for w in SMOOTHING}
                base = units.offsets[n]
                for k, decoding in enumerate(candidates):
                    for x, y in _runs(reading.doc, by_smooth[decoding.smooth], decoding):
                        covered[k, base + 2 * x : base + 2 * y + 1] = True
        table[head] = _Head(candidates, sums, covered)
    return _Table(table, articles, units, news_ids, [h for h in table if h != ANY])


# --- choosing ------------------------------------------------------------------------------


def _precision(sums: NDArray[np.float64]) -> NDArray[np.float64]:
    """The scorer's precision from summed (prec_sum, n_pred, rec_sum, n_gold), last axis."""
    return np.divide(
        sums[..., 0], sums[..., 1], out=np.zeros(sums.shape[:-1]), where=sums[..., 1] > 0
    )


def _fbeta(sums: NDArray[np.float64], beta: float) -> NDArray[np.float64]:
    """F-beta of the scorer's P/R from summed (prec_sum, n_pred, rec_sum, n_gold), last axis."""
    precision = _precision(sums)
    recall = np.divide(
        sums[..., 2], sums[..., 3], out=np.zeros(sums.shape[:-1]), where=sums[..., 3] > 0
    )
    b2 = beta * beta
    denominator = b2 * precision + recall
    return np.divide(
        (1 + b2) * precision * recall,
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )


class _Chooser:
    """Chooses the levels on some of the articles and news texts of a table."""

    def __init__(self, table: _Table, articles: NDArray[np.bool_], news: NDArray[np.bool_]):
        self.table = table
        # Per head: candidates x 4 sums over the chosen articles.
        self.sums = {h: t.sums[:, articles].sum(axis=1) for h, t in table.heads.items()}
        self.news = news  # which news texts count

    def news_share(self, covered: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Mean flagged share over the counted news texts, per row of ``covered``."""
        if not self.news.any():
            return np.zeros(covered.shape[0])
        return self.table.news.shares(covered)[:, self.news].mean(axis=1)

    def covered_by(
        self, chosen: Mapping[str, int], leave_out: str | None = None
    ) -> NDArray[np.bool_]:
        units = np.zeros(self.table.news.weights.size, dtype=bool)
        for head in self.table.techniques:
            if head != leave_out:
                news = self.table.heads[head].news
                assert news is not None
                units |= news[chosen[head]]
        return units

    def technique_level(
        self,
        beta: float,
        start: dict[str, int],
        allowed: Mapping[str, NDArray[np.bool_]],
        cap: float | None,
    ) -> dict[str, int]:
        """Coordinate ascent on overall F-beta of the technique heads from ``start`` (which
        must respect the cap), each head among its ``allowed`` candidates."""
        chosen = dict(start)
        techniques = self.table.techniques
        for _ in range(ROUNDS):
            changed = False
            for head in techniques:
                others = sum(self.sums[t][chosen[t]] for t in techniques if t != head)
                score = _fbeta(self.sums[head] + others, beta)
                ok = allowed[head].copy()
                if cap is not None:
                    news = self.table.heads[head].news
                    assert news is not None
                    share = self.news_share(news | self.covered_by(chosen, leave_out=head))
                    ok &= share <= cap
                if not ok.any():
                    continue
                best = int(np.flatnonzero(ok)[np.argmax(score[ok])])
                if score[best] > score[chosen[head]] + 1e-12 or not ok[chosen[head]]:
                    changed |= best != chosen[head]
                    chosen[head] = best
            if not changed:
                break
        return chosen

    def within_cap(
        self, chosen: dict[str, int], allowed: Mapping[str, NDArray[np.bool_]], cap: float
    ) -> dict[str, int]:
        """Lower the news share below ``cap``, each step the move that loses least FLC F1 per
        unit of share removed."""
        chosen = dict(chosen)
        techniques = self.table.techniques
        while True:
            current = float(self.news_share(self.covered_by(chosen)[None])[0])
            if current <= cap:
                return chosen
            total = sum(self.sums[t][chosen[t]] for t in techniques)
            f1_now = float(_fbeta(total, 1.0))
            best: tuple[float, str, int] | None = None
            for head in techniques:
                news = self.table.heads[head].news
                assert news is not None
                share = self.news_share(news | self.covered_by(chosen, leave_out=head))
                f1 = _fbeta(total - self.sums[head][chosen[head]] + self.sums[head], 1.0)
                gain = current - share
                for k in np.flatnonzero(allowed[head] & (gain > 1e-9)):
                    cost = (f1_now - f1[k]) / gain[k]
                    if best is None or cost < best[0]:
                        best = (float(cost), head, int(k))
            if best is None:
                return chosen  # nothing lowers it further: as low as the candidates go
            chosen[best[1]] = best[2]

    def balanced_score(self, chosen: Mapping[str, int]) -> float:
        """SI F1 plus FLC F1 of a level on the chooser's articles (what picks a variant)."""
        techniques = self.table.techniques
        flc = float(_fbeta(sum(self.sums[t][chosen[t]] for t in techniques), 1.0))
        si = float(_fbeta(self.sums[ANY][chosen[ANY]], 1.0)) if ANY in chosen else 0.0
        return si + flc

    def levels(self) -> dict[Sensitivity, dict[str, int]]:
        heads = self.table.heads
        techniques = self.table.techniques
        # Balanced: no technique silenced (it must find MIN_FOUND per gold span), then FLC F1
        # under the news cap.
        present = {
            h: (self.sums[h][:, 1] >= MIN_FOUND * self.sums[h][:, 3]) | (self.sums[h][:, 3] == 0)
            for h in techniques
        }
        for h in techniques:
            if not present[h].any():  # the head never gets there: its most eager candidate
                present[h] = self.sums[h][:, 1] == self.sums[h][:, 1].max()
        own = {
            h: int(np.flatnonzero(present[h])[np.argmax(_fbeta(self.sums[h], 1.0)[present[h]])])
            for h in techniques
        }
        balanced = self.within_cap(own, present, NEWS_CAP)
        balanced = self.technique_level(1.0, balanced, present, NEWS_CAP)
        out: dict[Sensitivity, dict[str, int]] = {"balanced": balanced}
        if ANY in heads:
            out["balanced"][ANY] = int(np.argmax(_fbeta(self.sums[ANY], 1.0)))
        # Precise: overall F0.5 (coordinate ascent), so the weak heads mostly fall silent.
        allowed = {h: self._beside(h, out["balanced"][h], 1) for h in heads}
        start = {h: out["balanced"][h] for h in techniques}
        out["precise"] = self.technique_level(BETAS["precise"], start, allowed, None)
        # Thorough: each head at its own best F2. An overall F2 lets the frequent techniques
        # decide and keeps the rare ones almost as quiet as balanced (on minilm-ptc@3's
        # validation articles Appeal_to_Authority stayed at 0.55 where its own best F2 is 0.2).
        out["thorough"] = {}
        more = {
            h: self._beside(h, out["balanced"][h], -1) & self._precise_enough(h, out["balanced"][h])
            for h in heads
        }
        for head in heads:
            score = _fbeta(self.sums[head], BETAS["thorough"])
            out["thorough"][head] = int(np.flatnonzero(more[head])[np.argmax(score[more[head]])])
        # Then back under the news cap, as balanced is: each head at its own F2 flagged 0.26 to
        # 0.31 of ordinary news (cross-fitted), which no analyst can use.
        techniques_thorough = self.within_cap(
            {h: out["thorough"][h] for h in techniques}, more, NEWS_CAP
        )
        out["thorough"].update(techniques_thorough)
        if ANY in heads:
            ok = allowed[ANY]
            score = _fbeta(self.sums[ANY], BETAS["precise"])
            out["precise"][ANY] = int(np.flatnonzero(ok)[np.argmax(score[ok])])
        return out

    def _precise_enough(self, head: str, anchor: int) -> NDArray[np.bool_]:
        """Candidates of ``head`` at least :data:`THOROUGH_MIN_PRECISION` precise, and
        ``anchor`` whatever its precision (thorough never flags less than balanced)."""
        ok = _precision(self.sums[head]) >= THOROUGH_MIN_PRECISION
        ok[anchor] = True
        return ok

    def _beside(self, head: str, anchor: int, sign: int) -> NDArray[np.bool_]:
        """Candidates that flag no more (sign 1) or no less (sign -1) text than ``anchor``:
        same smoothing and peak, threshold and gap on the right side of it."""
        a = self.table.heads[head].candidates[anchor]
        return np.array(
            [
                c.smooth == a.smooth
                and c.peak == a.peak
                and sign * (c.threshold - a.threshold) >= 0
                and sign * (c.gap - a.gap) <= 0
                for c in self.table.heads[head].candidates
            ]
        )


def _decodings(table: _Table, chosen: Mapping[str, int]) -> Decodings:
    return {head: table.heads[head].candidates[k] for head, k in chosen.items()}


def _folds(ids: Sequence[str], folds: int) -> list[set[str]]:
    return [set(ids[k::folds]) for k in range(folds)]


# --- the public entry points ---------------------------------------------------------------


@dataclass
class SensitivityChoice:
    """What :func:`choose_sensitivities` gives: the levels to ship, and the cross-fitted
    figures of each level (``validation_figures`` fields without TC, plus the news share).
    Chosen among variants (:func:`choose_variant`): the variant that ships, and the one each
    fold chose on the other folds."""

    levels: Levels
    cross_fitted: dict[Sensitivity, dict[str, Any]]
    variant: str = ""
    fold_variants: list[str] = field(default_factory=list)


# Readings of the validation articles and of the news items, one pair per variant.
Variants = Mapping[str, tuple[Mapping[str, Reading], Mapping[str, Reading]]]


def choose_sensitivities(
    heads: Sequence[str],
    readings: Mapping[str, Reading],
    gold: Sequence[ptc.Label],
    news: Mapping[str, Reading],
    folds: int = 2,
    log: Callable[[str], None] = lambda _: None,
) -> SensitivityChoice:
    """The decodings of every head at each sensitivity level, chosen on all of ``readings``
    (validation articles, with their ``gold`` labels) and ``news`` (ordinary news readings),
    and the levels' cross-fitted figures (see the module doc)."""
    return choose_variant(heads, {"": (readings, news)}, gold, folds, log)


def choose_variant(
    heads: Sequence[str],
    variants: Variants,
    gold: Sequence[ptc.Label],
    folds: int = 2,
    log: Callable[[str], None] = lambda _: None,
) -> SensitivityChoice:
    """:func:`choose_sensitivities` over several readings of the same articles (an ensemble's
    blend weights): where levels are chosen, the variant whose balanced level scores best (SI
    F1 + FLC F1) on those articles is chosen with them, so the cross-fitted figures also pay
    for choosing the variant."""
    tables = {name: _table(heads, r, gold, n) for name, (r, n) in variants.items()}
    first = next(iter(tables.values()))
    log(
        f"decoding candidates scored on {len(first.articles)} articles and {len(first.news_ids)} "
        f"news texts, {len(tables)} variant(s)"
    )

    def choose(articles: NDArray[np.bool_], news: NDArray[np.bool_]) -> tuple[str, Levels]:
        best: tuple[float, str, dict[Sensitivity, dict[str, int]]] | None = None
        for name, table in tables.items():
            chooser = _Chooser(table, articles, news)
            levels = chooser.levels()
            score = chooser.balanced_score(levels["balanced"])
            if best is None or score > best[0] + 1e-12:
                best = (score, name, levels)
        assert best is not None
        _, name, levels = best
        return name, {level: _decodings(tables[name], levels[level]) for level in SENSITIVITIES}

    variant, shipped = choose(
        np.ones(len(first.articles), dtype=bool), np.ones(len(first.news_ids), dtype=bool)
    )
    predictions: dict[Sensitivity, dict[str, list[ptc.Label]]] = {
        level: {"si": [], "flc": []} for level in SENSITIVITIES
    }
    shares: dict[Sensitivity, list[float]] = {level: [] for level in SENSITIVITIES}
    article_folds = _folds(first.articles, folds)
    news_folds = _folds(first.news_ids, folds)
    fold_variants = []
    for k in range(folds):
        fit_articles = np.array([i not in article_folds[k] for i in first.articles])
        fit_news = np.array([i not in news_folds[k] for i in first.news_ids])
        name, chosen = choose(fit_articles, fit_news)
        fold_variants.append(name)
        readings, news = variants[name]
        for level in SENSITIVITIES:
            decodings = chosen[level]
            for article_id in sorted(article_folds[k]):
                for head, labels in (
                    (ANY, predictions[level]["si"]),
                    *((t, predictions[level]["flc"]) for t in first.techniques),
                ):
                    labels += _labels(article_id, readings[article_id], heads, head, decodings)
            for news_id in sorted(news_folds[k]):
                spans = [
                    la
                    for t in first.techniques
                    for la in _labels(news_id, news[news_id], heads, t, decodings)
                ]
                shares[level].append(flagged_share(news[news_id].doc.text, spans))
    figures: dict[Sensitivity, dict[str, Any]] = {}
    for level in SENSITIVITIES:
        si = ptc.score_si(gold, predictions[level]["si"]).overall
        flc = ptc.score_flc(gold, predictions[level]["flc"])
        figures[level] = {
            "si": si.rounded(),
            "flc": flc.overall.rounded(),
            "per_technique_f1": {t: {"flc": round(p.f1, 4)} for t, p in flc.per_technique.items()},
            "news_flagged_share": round(float(np.mean(shares[level])) if shares[level] else 0.0, 4),
            "news_texts": len(shares[level]),
            "articles": len(first.articles),
            "folds": folds,
        }
        log(
            f"{level} (cross-fitted): SI F1 {si.f1:.4f}, FLC F1 {flc.overall.f1:.4f}, "
            f"news flagged share {figures[level]['news_flagged_share']:.3f}"
        )
    return SensitivityChoice(shipped, figures, variant, fold_variants)


def _labels(
    article_id: str, reading: Reading, heads: Sequence[str], head: str, decodings: Decodings
) -> list[ptc.Label]:
    decoding = decodings[head]
    if decoding is None:
        return []
    tokens = reading.doc.tokens
    probs = reading.word_probs[:, list(heads).index(head)]
    label = None if head == ANY else head
    return [
        ptc.Label(article_id, tokens[a].start, tokens[b].end, label)
        for a, b, _ in decode_runs(reading.doc, probs, decoding)
    ]


def flagged_share(text: str, spans: Sequence[ptc.Label]) -> float:
    """Share of the text's characters inside some span (as ``pipeline.summarize`` counts it)."""
    if not text:
        return 0.0
    covered = np.zeros(len(text), dtype=bool)
    for la in spans:
        covered[la.start : la.end] = True
    return float(covered.mean())


def choose_decodings(
    heads: Sequence[str],
    docs: Mapping[str, Doc],
    probabilities: Mapping[str, NDArray[np.float32]],
    gold: Sequence[ptc.Label],
    only: Collection[str] | None = None,
) -> Decodings:
    """Per head, the balanced decoding on these articles alone (no news cap, no folds): what a
    trainer uses to watch SI F1 between epochs. ``only`` restricts the search to some heads."""
    readings = {i: _Plain(docs[i], probabilities[i]) for i in docs}
    table = _table(heads, readings, gold, {}, only)
    chooser = _Chooser(table, np.ones(len(table.articles), dtype=bool), np.zeros(0, dtype=bool))
    chosen = chooser.levels()["balanced"]
    return _decodings(table, chosen)


@dataclass
class _Plain:
    doc: Doc
    word_probs: NDArray[np.float32]


# --- a detector's levels, end to end ---------------------------------------------------------


def evaluate(
    detector: TokenTagger[Any], readings: Mapping[str, Any], gold: Sequence[ptc.Label]
) -> dict[str, Any]:
    """Validation figures at the detector's decodings: SI, TC (labelling the gold spans), FLC,
    and per technique."""
    return ptc.validation_figures(
        gold,
        si=predict_si(detector, readings),
        tc=predict_tc(detector, readings, ptc.tc_template(gold)),
        flc=predict_flc(detector, readings),
    )


def fit_tc_context(
    detector: TokenTagger[Any],
    readings: Mapping[str, Any],
    gold: Sequence[ptc.Label],
    log: Callable[[str], None] = lambda _: None,
) -> tuple[dict[str, Any], ptc.Score]:
    """Fit ``detector``'s TC correction for article context on these validation readings and
    set it (see ``tc_context``) if it labels the held-out halves better than the detector
    alone; else the detector keeps none (the linear baseline's span classifier already weighs
    the same counts, and its cross-fitted TC fell from 0.5625 to 0.5594 with one). Returns the
    model.json record (``kept`` says which) and the TC score to report
    (:func:`cross_fitted_tc`): cross-fitted if kept, else the detector's own."""
    context, plain, crossed = choose_context(
        detector.techniques,
        {i: r.doc.text for i, r in readings.items()},
        gold,
        lambda i, spans: detector.tc_distributions(readings[i], spans),
        _folds(sorted(readings), 2),  # the halves the levels are cross-fitted on
    )
    without, with_context = ptc.score_tc(gold, plain), ptc.score_tc(gold, crossed)
    kept = with_context.overall.f1 > without.overall.f1
    detector.tc_context = context if kept else None
    log(
        f"TC micro-F1 {without.overall.f1:.4f}, with the article-context correction "
        f"{with_context.overall.f1:.4f} (cross-fitted): "
        + ("kept" if kept else "not kept, it does not help this detector")
    )
    record = {
        **context.to_json(detector.techniques),
        "kept": kept,
        "validation": {
            "tc_without": round(without.overall.f1, 4),
            "tc_cross_fitted": round(with_context.overall.f1, 4),
        },
    }
    return record, with_context if kept else without


def cross_fitted_tc(metrics: dict[str, Any], tc: ptc.Score) -> dict[str, Any]:
    """``metrics`` (``evaluate``'s) with its TC figures replaced by ``tc``: the correction was
    fitted on these articles, so their in-sample TC would overstate it."""
    metrics["tc"] = tc.overall.rounded()
    for technique, figures in metrics["per_technique_f1"].items():
        figures["tc"] = round(tc.per_technique[technique].f1, 4)
    return metrics


def with_tc(choice: SensitivityChoice, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The cross-fitted figures of each level with TC added from ``metrics`` (``evaluate``'s):
    TC labels given spans, which no decoding changes."""
    cross_fitted: dict[str, Any] = {}
    for level, figures in choice.cross_fitted.items():
        per_technique = {
            t: {"tc": metrics["per_technique_f1"][t]["tc"], **f}
            for t, f in figures["per_technique_f1"].items()
        }
        cross_fitted[level] = {**figures, "tc": metrics["tc"], "per_technique_f1": per_technique}
    return cross_fitted


def tune(
    detector: TokenTagger[Any],
    val_docs: Mapping[str, Doc],
    val_gold: Sequence[ptc.Label],
    news_docs: Mapping[str, Doc],
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Choose ``detector``'s sensitivity levels on validation articles it was not trained on
    and on ordinary news, set them on it (balanced in use), fit its TC correction for article
    context, and return the record a model.json keeps: ``cross_fitted`` figures per level (TC,
    which no decoding changes, included), the ``in_sample`` figures of balanced (but TC
    cross-fitted) and the ``tc_context``."""
    readings = detector.read_all(val_docs)
    choice = choose_sensitivities(
        detector.heads, readings, val_gold, detector.read_all(news_docs), log=log
    )
    detector.sensitivities = choice.levels
    detector.sensitivity = "balanced"
    detector.decodings = dict(choice.levels["balanced"])
    context, tc = fit_tc_context(detector, readings, val_gold, log)
    metrics = cross_fitted_tc(evaluate(detector, readings, val_gold), tc)
    return {
        "in_sample": metrics,
        "cross_fitted": with_tc(choice, metrics),
        "tc_context": context,
    }


def write_levels(
    meta_file: str | Path, detector: TokenTagger[Any], record: Mapping[str, Any]
) -> None:
    """Store the detector's levels and ``record`` (from :func:`tune`) in its model.json:
    ``sensitivities``, ``decodings`` (balanced's, for readers that predate the levels),
    ``sensitivity_validation`` (the cross-fitted figures), balanced's in-sample figures in
    ``validation`` and the ``tc_context``. Nothing else in the model changes."""
    path = Path(meta_file)
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["tc_context"] = record["tc_context"]
    meta["sensitivities"] = sensitivities_to_json(detector.sensitivities)
    meta["decodings"] = decodings_to_json(detector.sensitivities["balanced"])
    meta["sensitivity_validation"] = record["cross_fitted"]
    # The in-sample figures of the decodings now in use (the split's record stays).
    meta.setdefault("validation", {}).update(record["in_sample"])
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
