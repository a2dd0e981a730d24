"""What every technique detector does once it has read an article: spans per head, findings,
the sensitivity levels, and the SemEval-2020 Task 11 outputs (SI, TC, FLC).

A detector subclasses :class:`TokenTagger` and supplies two things: :meth:`~TokenTagger.read_docs`
(one pass of its model over some articles, giving each word's probability per head) and
:meth:`~TokenTagger.classify_reading` (a distribution over the techniques for given spans,
task TC). Everything else, the same for the linear baseline and the transformers, is here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from spinlens.errors import SpinlensError
from spinlens.model import Article, Finding
from spinlens.techniques.decoding import (
    ANY,
    DEFAULT_SENSITIVITY,
    Decoding,
    Decodings,
    Doc,
    Sensitivity,
    check_sensitivity,
    decode_runs,
)
from spinlens.techniques.ptc import Label, label_template
from spinlens.techniques.tc_context import TcContext


class Reading(Protocol):
    """One article after a detector's pass: its words and their probability per head."""

    doc: Doc
    word_probs: NDArray[np.float32]  # doc tokens x heads


@dataclass
class TokenReading:
    doc: Doc
    word_probs: NDArray[np.float32]


R = TypeVar("R", bound=Reading)


def reliability_from_meta(meta: Mapping[str, Any], level: str) -> dict[str, float]:
    """Per technique, the validation FLC F1 a model.json records for ``level`` (cross-fitted,
    see ``sensitivity``), else its single validation figures; empty when it has none."""
    figures = meta.get("sensitivity_validation", {}).get(level) or meta.get("validation", {})
    try:
        return {t: float(v["flc"]) for t, v in figures.get("per_technique_f1", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return {}


class TokenTagger(Generic[R]):
    """The shared part of every technique detector (see the module doc)."""

    name: str
    techniques: list[str]
    heads: list[str]  # the techniques, then ANY
    meta: dict[str, Any]
    # Decodings per sensitivity level, and the level in use, whose decodings are ``decodings``.
    sensitivities: dict[Sensitivity, Decodings]
    sensitivity: Sensitivity
    decodings: Decodings
    _overrides: dict[str, float | None]
    # Task TC's correction for where else in the article a span's phrase occurs (see
    # ``tc_context``); None: the span distributions are reported as they are.
    tc_context: TcContext | None = None

    def _use_levels(
        self, sensitivities: Mapping[Sensitivity, Decodings], level: str = DEFAULT_SENSITIVITY
    ) -> None:
        self.sensitivities = {k: dict(v) for k, v in sensitivities.items()}
        self.sensitivity = check_sensitivity(level)
        self.decodings = dict(self.sensitivities[self.sensitivity])
        self._overrides = {}

    def _use_tc_context(self) -> None:
        """The TC correction ``self.meta`` holds, if any and kept (after ``techniques`` is set;
        one fitted but not kept only records why). Raises KeyError, TypeError or ValueError on
        a malformed one."""
        stored = self.meta.get("tc_context")
        if stored is None or (isinstance(stored, dict) and stored.get("kept") is False):
            self.tc_context = None
        else:
            self.tc_context = TcContext.from_json(stored, self.techniques)

    # --- what each detector supplies ---------------------------------------------------------

    def read_docs(self, docs: Sequence[Doc]) -> list[R]:
        """One pass of the model over these articles."""
        raise NotImplementedError

    def tc_distributions(self, reading: R, spans: Sequence[tuple[int, int]]) -> NDArray[np.float64]:
        """Each span's distribution over the techniques (spans x techniques), before the
        article-context correction."""
        raise NotImplementedError

    # --- task TC ---------------------------------------------------------------------------

    def classify_reading(
        self, reading: R, spans: Sequence[tuple[int, int]]
    ) -> list[dict[str, float]]:
        """Probability of each technique for each given span, highest first (task TC): the
        detector's distributions, corrected for the spans' article context when the model has
        that correction."""
        if any(not 0 <= s < e <= len(reading.doc.text) for s, e in spans):
            raise SpinlensError("span offsets are outside the article text")
        if not spans:
            return []
        rows = self.tc_distributions(reading, spans)
        if self.tc_context is not None:
            rows = self.tc_context.adjust(rows, reading.doc.text, spans)
        return [{self.techniques[i]: float(row[i]) for i in np.argsort(-row)} for row in rows]

    def span_score(self, head: str, reading: R, first: int, last: int, peak: float) -> float:
        """The score of a run of words ``first..last`` of ``head`` (``peak``: its highest
        probability). Here that peak; a calibrated detector maps the run to a probability."""
        return peak

    # --- sensitivity and thresholds ------------------------------------------------------------

    def with_sensitivity(self, level: str) -> Self:
        """This detector reporting at another sensitivity level; the model itself is shared."""
        other = copy.copy(self)
        other.sensitivity = check_sensitivity(level)
        other.decodings = dict(self.sensitivities[other.sensitivity])
        other._overrides = {}
        other.set_thresholds(self._overrides)
        return other

    def set_thresholds(self, thresholds: Mapping[str, float | None]) -> None:
        """Override decoding thresholds per head (None: never report it)."""
        for head, value in thresholds.items():
            if head not in self.heads:
                raise SpinlensError(
                    f"technique thresholds: unknown technique {head!r}; known: "
                    + ", ".join(self.heads)
                )
            if value is None:
                self.decodings[head] = None
                self._overrides[head] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpinlensError(f"technique thresholds: {head} must be a number or null")
            if not 0.0 < float(value) < 1.0:
                raise SpinlensError(f"technique thresholds: {head} must be between 0 and 1")
            current = self.decodings.get(head)
            self.decodings[head] = (
                replace(current, threshold=float(value)) if current else Decoding(float(value), 1)
            )
            self._overrides[head] = float(value)

    @property
    def technique_reliability(self) -> dict[str, float]:
        """Per technique, its validation FLC F1 at this sensitivity (how far to trust it)."""
        return reliability_from_meta(self.meta, self.sensitivity)

    # --- spans and findings --------------------------------------------------------------------

    def read_all(self, docs: Mapping[str, Doc]) -> dict[str, R]:
        """:meth:`read_docs` over a mapping of article id to Doc."""
        ids = list(docs)
        return dict(zip(ids, self.read_docs([docs[i] for i in ids]), strict=True))

    def head_spans(self, reading: R, head: str) -> list[tuple[int, int, float]]:
        """Spans of one head as (start, end, score), or none if it is switched off."""
        decoding = self.decodings.get(head)
        if decoding is None or not reading.doc.tokens:
            return []
        tokens = reading.doc.tokens
        probs = reading.word_probs[:, self.heads.index(head)]
        return [
            (tokens[a].start, tokens[b].end, self.span_score(head, reading, a, b, peak))
            for a, b, peak in decode_runs(reading.doc, probs, decoding)
        ]

    def findings(self, reading: R) -> list[Finding]:
        text = reading.doc.text
        findings = [
            Finding(start=s, end=e, technique=t, score=round(p, 4), text=text[s:e])
            for t in self.techniques
            for s, e, p in self.head_spans(reading, t)
        ]
        findings.sort(key=lambda f: (f.start, f.end, f.technique))
        return findings

    def propaganda_spans(self, reading: R) -> list[tuple[int, int, float]]:
        """Spans that hold some technique (task SI)."""
        return self.head_spans(reading, ANY)

    def detect(self, article: Article) -> list[Finding]:
        return self.detect_many([article])[0]

    def detect_many(self, articles: Sequence[Article]) -> list[list[Finding]]:
        """Findings of several articles (a detector may batch their reading)."""
        return [self.findings(r) for r in self.read_docs([Doc(a) for a in articles])]

    def classify_span(self, article: Article, start: int, end: int) -> dict[str, float]:
        """Probability of each technique for the given span (task TC), highest first."""
        return self.classify_reading(self.read_docs([Doc(article)])[0], [(start, end)])[0]


class CalibratedTagger(TokenTagger[R]):
    """A detector whose span scores are calibrated probabilities: a span's score is the mean
    probability of its content words, mapped by the head's Platt scale (fitted on validation)
    to the probability that the span is a correct detection."""

    # Per head (a, b): calibrated = sigmoid(a * logit(mean probability) + b).
    calibration: dict[str, tuple[float, float]]

    def calibrated(self, head: str, raw: float) -> float:
        """Probability that a span of ``head`` with mean word probability ``raw`` is correct."""
        a, b = self.calibration.get(head, (1.0, 0.0))
        p = min(max(raw, 1e-6), 1 - 1e-6)
        return 1.0 / (1.0 + math.exp(-(a * math.log(p / (1 - p)) + b)))

    def span_score(self, head: str, reading: R, first: int, last: int, peak: float) -> float:
        """The calibrated mean probability of the run's content words."""
        content = reading.doc.content
        inside = content[(content >= first) & (content <= last)]
        column = self.heads.index(head)
        return self.calibrated(head, float(reading.word_probs[inside, column].mean()))


# --- SemEval task outputs ----------------------------------------------------------------


def predict_si(detector: TokenTagger[R], readings: Mapping[str, R]) -> list[Label]:
    """Task SI: propaganda spans of each article (the "any technique" head)."""
    return [
        Label(article_id, s, e)
        for article_id, reading in readings.items()
        for s, e, _ in detector.propaganda_spans(reading)
    ]


def predict_flc(detector: TokenTagger[R], readings: Mapping[str, R]) -> list[Label]:
    """Task FLC: technique spans of each article."""
    return [
        Label(article_id, f.start, f.end, f.technique)
        for article_id, reading in readings.items()
        for f in detector.findings(reading)
    ]


def predict_tc(
    detector: TokenTagger[R], readings: Mapping[str, R], template: Sequence[Label]
) -> list[Label]:
    """Task TC: label every template span (see ``ptc.label_template``)."""
    return label_template(
        template,
        readings,
        lambda article_id, spans: [
            list(p) for p in detector.classify_reading(readings[article_id], spans)
        ],
    )
