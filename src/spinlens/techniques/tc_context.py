"""Task TC's article context: a detector's technique distribution for a span, corrected by
where else in the article the span's phrase occurs.

The members' span heads see these counts too (``transformer.span_extras``), but they learn them
on the training articles, where the fine-tuned encoder has already memorised the labels and the
counts add little. On held-out articles they matter: 85 % of the gold Repetition spans of the
validation articles recur in the article (77 % occurred before the span), against 12 % of the
Loaded language spans, yet a Repetition span was labelled Name calling or Loaded language one
time in three. So a correction is fitted on the validation articles, which no member trained on:

    score(technique) = log p(technique) + w_repeats · log(1 + other occurrences)
                       + w_earlier · [the phrase occurred before]

per technique (2 × 14 numbers), by L2-regularised maximum likelihood; the argmax of the
softmax is the label. Its TC figure is cross-fitted (fitted on some articles, scored on the
others, :func:`choose_context`), like every other validation figure.

There is no constant per technique: with one, the correction also learnt the validation
articles' mix of techniques (cross-fitted TC 0.654 on the accurate tier, against 0.652
without), taking from the rare techniques (causal oversimplification 0.29 to 0.16) what it
gave the frequent ones. Without it, only Repetition moves (0.63 to 0.76) and the other
techniques stay within 0.02.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.techniques import ptc

FEATURES = ("log_repeats", "earlier")
# L2 penalty of the fit (sum of squared weights, against the summed log-likelihood of about a
# thousand validation spans): strong, so the correction stays small where the counts say
# little. With a constant too, 10, 30 and 100 gave cross-fitted gains of +0.010, +0.010 and
# +0.006 on the accurate tier's validation articles (20 random halvings); 30 is the middle, and
# without the constant 10 and 30 give the same.
L2 = 30.0


def recurrence(lower: str, start: int, end: int) -> tuple[int, bool]:
    """How often the phrase at ``start:end`` of ``lower`` (an article in lower case) occurs in
    the whole article, and whether it already occurred before ``start``."""
    phrase = lower[start:end].strip()
    if not phrase:
        return 0, False
    return lower.count(phrase), 0 <= lower.find(phrase) < start


def context_features(text: str, spans: Sequence[tuple[int, int]]) -> NDArray[np.float64]:
    """One row per span: log(1 + other occurrences of its phrase), whether it occurred before
    the span."""
    lower = text.lower()
    rows = []
    for start, end in spans:
        repeats, earlier = recurrence(lower, start, end)
        rows.append((math.log1p(max(0, repeats - 1)), float(earlier)))
    return np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES))


@dataclass(frozen=True)
class TcContext:
    """The correction's weights: one row per feature (:data:`FEATURES`), one column per
    technique, in the detector's technique order."""

    weights: NDArray[np.float64]

    def adjust(
        self, probs: NDArray[np.float64], text: str, spans: Sequence[tuple[int, int]]
    ) -> NDArray[np.float64]:
        """``probs`` (spans × techniques) corrected for the spans' context; rows sum to 1."""
        logits = np.log(np.clip(probs, 1e-9, None)) + context_features(text, spans) @ self.weights
        logits -= logits.max(axis=1, keepdims=True)
        out = np.exp(logits)
        return out / out.sum(axis=1, keepdims=True)

    def to_json(self, techniques: Sequence[str]) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "weights": {
                t: [round(float(w), 5) for w in self.weights[:, k]]
                for k, t in enumerate(techniques)
            },
        }

    @classmethod
    def from_json(cls, stored: Mapping[str, Any], techniques: Sequence[str]) -> TcContext:
        """Raises KeyError, TypeError or ValueError on a malformed entry."""
        if list(stored["features"]) != list(FEATURES):
            raise ValueError(f"tc_context features {stored['features']!r}, expected {FEATURES}")
        weights = np.array([stored["weights"][t] for t in techniques], dtype=np.float64).T
        if weights.shape != (len(FEATURES), len(techniques)):
            raise ValueError(f"tc_context weights: {len(FEATURES)} numbers per technique")
        return cls(weights)


def fit(
    probs: NDArray[np.float64], features: NDArray[np.float64], labels: NDArray[np.int64]
) -> TcContext:
    """The weights that best predict ``labels`` (technique indices) from ``probs`` and
    ``features`` (one row each, a span listed once per gold label), with the L2 penalty."""
    from scipy.optimize import minimize  # training only (scikit-learn's dependency)

    offsets = np.log(np.clip(probs, 1e-9, None))
    n_features, n_techniques = features.shape[1], probs.shape[1]
    rows = np.arange(len(labels))

    def loss(flat: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        weights = flat.reshape(n_features, n_techniques)
        logits = offsets + features @ weights
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1))
        likelihood = float((logits[rows, labels] - log_norm).sum())
        grad = np.exp(logits - log_norm[:, None])
        grad[rows, labels] -= 1.0
        gradient = features.T @ grad + L2 * weights
        return -likelihood + 0.5 * L2 * float((weights**2).sum()), gradient.ravel()

    result = minimize(loss, np.zeros(n_features * n_techniques), jac=True, method="L-BFGS-B")
    return TcContext(result.x.reshape(n_features, n_techniques))


def choose_context(
    techniques: Sequence[str],
    texts: Mapping[str, str],
    gold: Sequence[ptc.Label],
    distributions: Callable[[str, list[tuple[int, int]]], NDArray[np.float64]],
    folds: Sequence[Collection[str]],
) -> tuple[TcContext, list[ptc.Label], list[ptc.Label]]:
    """The correction fitted on all the ``gold`` spans of ``texts`` (what ships), and two TC
    predictions of those spans: without the correction, and cross-fitted (the articles of each
    of ``folds`` labelled with a correction fitted on the others). ``distributions(article_id,
    spans)`` gives the detector's uncorrected distributions (spans × techniques)."""
    articles = sorted(texts)
    by_article = ptc.spans_by_article(gold)
    spans = {i: sorted({(la.start, la.end) for la in by_article.get(i, [])}) for i in articles}
    row_of = {i: {span: k for k, span in enumerate(spans[i])} for i in articles}
    column = {technique: k for k, technique in enumerate(techniques)}
    probs = {i: distributions(i, spans[i]) for i in articles}
    features = {i: context_features(texts[i], spans[i]) for i in articles}

    def training_rows(ids: Collection[str]) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        p, f, y = [], [], []
        for i in ids:
            for la in by_article.get(i, []):
                row = row_of[i][(la.start, la.end)]
                p.append(probs[i][row])
                f.append(features[i][row])
                y.append(column[la.technique or ""])
        return (
            np.array(p).reshape(-1, len(techniques)),
            np.array(f).reshape(-1, len(FEATURES)),
            np.array(y, dtype=np.int64),
        )

    def labelled(rankings: Mapping[str, NDArray[np.float64]]) -> list[ptc.Label]:
        return ptc.label_template(
            ptc.tc_template(gold),
            articles,
            lambda i, asked: [
                [techniques[k] for k in np.argsort(-rankings[i][row_of[i][span]])] for span in asked
            ],
        )

    shipped = fit(*training_rows(articles))
    crossed: dict[str, NDArray[np.float64]] = {}
    for held in folds:
        context = fit(*training_rows([i for i in articles if i not in held]))
        for i in held:
            crossed[i] = context.adjust(probs[i], texts[i], spans[i])
    return shipped, labelled(probs), labelled(crossed)
