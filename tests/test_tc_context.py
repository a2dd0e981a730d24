"""Task TC's article-context correction (``techniques.tc_context``): a phrase the article has
already used is labelled Repetition more readily, learnt from held-out spans and measured on
spans it was not fitted on."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from spinlens.techniques import ptc
from spinlens.techniques.decoding import Doc
from spinlens.techniques.detectors import load_detector
from spinlens.techniques.ptc import NAMES
from spinlens.techniques.sensitivity import fit_tc_context
from spinlens.techniques.tc_context import FEATURES, TcContext, choose_context, context_features

from .conftest import accurate_installed

REPETITION, LOADED = NAMES.index("Repetition"), NAMES.index("Loaded_Language")


def _articles(n: int) -> tuple[dict[str, str], list[ptc.Label]]:
    """Articles that say a slogan three times (Repetition after the first) among words said
    once (Loaded language), as annotators label them."""
    texts, gold = {}, []
    for k in range(n):
        slogan = f"slogan{k} forever"
        text = (
            f"They call it a {slogan}. The vile plan{k} failed. Again the {slogan} rings out, "
            f"the sinister scheme{k} too, and once more: {slogan}."
        )
        article_id = str(100 + k)
        texts[article_id] = text
        starts = [i for i in range(len(text)) if text.startswith(slogan, i)]
        gold.append(ptc.Label(article_id, starts[0], starts[0] + len(slogan), NAMES[LOADED]))
        gold += [ptc.Label(article_id, s, s + len(slogan), NAMES[REPETITION]) for s in starts[1:]]
        for phrase in (f"vile plan{k}", f"sinister scheme{k}"):
            start = text.index(phrase)
            gold.append(ptc.Label(article_id, start, start + len(phrase), NAMES[LOADED]))
    return texts, gold


def _halves(texts: dict[str, str]) -> list[set[str]]:
    ids = sorted(texts)
    return [set(ids[0::2]), set(ids[1::2])]


def _leaning_to_loaded(article_id: str, spans: list[tuple[int, int]]) -> np.ndarray:
    """A detector that cannot tell: Loaded language 0.4, Repetition 0.3, the rest shared."""
    row = np.full(len(NAMES), 0.3 / (len(NAMES) - 2))
    row[LOADED], row[REPETITION] = 0.4, 0.3
    return np.tile(row, (len(spans), 1))


def test_context_features_count_where_else_the_phrase_occurs() -> None:
    text = "Stop the steal! They lied. Stop the steal, we said."
    first, second = text.index("Stop the steal"), text.rindex("Stop the steal")
    lied = text.index("lied")
    rows = context_features(text, [(first, first + 14), (second, second + 14), (lied, lied + 4)])
    assert rows.shape == (3, len(FEATURES))
    assert rows[0].tolist() == pytest.approx([np.log(2), 0.0])  # said again later
    assert rows[1].tolist() == pytest.approx([np.log(2), 1.0])  # said before
    assert rows[2].tolist() == pytest.approx([0.0, 0.0])  # said once


def test_the_correction_learns_that_repeated_phrases_are_repetition() -> None:
    texts, gold = _articles(40)
    context, plain, crossed = choose_context(NAMES, texts, gold, _leaning_to_loaded, _halves(texts))
    # Without it every span is Loaded language: right for the 3 of 5 spans per article that are.
    assert ptc.score_tc(gold, plain).overall.f1 == pytest.approx(0.6)
    # Cross-fitted (each half labelled by a correction fitted on the other half), the spans
    # said before become Repetition and the rest stay Loaded language.
    assert ptc.score_tc(gold, crossed).overall.f1 == pytest.approx(1.0)
    assert context.weights[FEATURES.index("earlier"), REPETITION] > 0
    # What ships round-trips through model.json.
    stored = context.to_json(NAMES)
    assert np.allclose(TcContext.from_json(stored, NAMES).weights, context.weights, atol=1e-4)


class _KnowsEveryLabel:
    """A detector whose TC is already right on every span: a correction can only hurt it."""

    techniques = NAMES
    tc_context: TcContext | None = None

    def __init__(self, gold: list[ptc.Label]) -> None:
        self.labels = {(la.article_id, la.start, la.end): la.technique for la in gold}

    def tc_distributions(self, reading: SimpleNamespace, spans: list[tuple[int, int]]):
        rows = np.full((len(spans), len(NAMES)), 0.01)
        for row, (start, end) in enumerate(spans):
            rows[row, NAMES.index(self.labels[(reading.article_id, start, end)])] = 0.9
        return rows


def test_a_correction_that_does_not_help_on_held_out_articles_is_not_kept() -> None:
    texts, gold = _articles(20)
    readings = {
        i: SimpleNamespace(article_id=i, doc=SimpleNamespace(text=t)) for i, t in texts.items()
    }
    detector = _KnowsEveryLabel(gold)
    detector.tc_context = TcContext(np.ones((len(FEATURES), len(NAMES))))  # an older one
    record, tc = fit_tc_context(detector, readings, gold)  # type: ignore[arg-type]
    assert record["kept"] is False
    assert detector.tc_context is None
    assert tc.overall.f1 == pytest.approx(1.0)  # the detector's own figure is the one reported
    # Its model.json keeps the record of why, and loading it applies no correction.
    assert load_detector("baseline").meta["tc_context"]["kept"] is False
    assert load_detector("baseline").tc_context is None


def test_a_malformed_correction_is_rejected() -> None:
    texts, gold = _articles(4)
    context, _, _ = choose_context(NAMES, texts, gold, _leaning_to_loaded, _halves(texts))
    stored = context.to_json(NAMES)
    with pytest.raises(ValueError, match="features"):
        TcContext.from_json({**stored, "features": ["log_repeats", "earlier", "bias"]}, NAMES)
    with pytest.raises(KeyError):
        TcContext.from_json({**stored, "weights": {}}, NAMES)


SLOGAN_ARTICLE = (
    "Make America Great Again, he told the crowd in Ohio. The plant had closed in March and two "
    "thousand jobs went with it. Make America Great Again, he said once more, and the crowd "
    "cheered. The opposition called the speech empty. By the end of the night he had said it a "
    "third time: Make America Great Again."
)


@pytest.mark.parametrize(
    "tier",
    [
        "fast",
        pytest.param(
            "accurate",
            marks=pytest.mark.skipif(
                not accurate_installed(),
                reason="the accurate tier's base weights are not installed (make test installs "
                "them)",
            ),
        ),
    ],
)
def test_the_shipped_tiers_label_a_phrase_said_again_repetition_more_readily(tier: str) -> None:
    detector = load_detector(tier)
    assert detector.tc_context is not None, f"{tier} ships the article-context correction"
    article = ptc.to_article(SLOGAN_ARTICLE)
    reading = detector.read_docs([Doc(article)])[0]
    slogan = "Make America Great Again"
    last = SLOGAN_ARTICLE.rindex(slogan)
    span = [(last, last + len(slogan))]
    corrected = detector.classify_reading(reading, span)[0]["Repetition"]
    context, detector.tc_context = detector.tc_context, None
    try:
        plain = detector.classify_reading(reading, span)[0]["Repetition"]
    finally:
        detector.tc_context = context
    assert corrected > plain
    # Its validation figure is the cross-fitted one, and it is no worse than without it.
    record = detector.meta["tc_context"]["validation"]
    assert record["tc_cross_fitted"] >= record["tc_without"]
    assert detector.meta["sensitivity_validation"]["balanced"]["tc"]["f1"] == pytest.approx(
        record["tc_cross_fitted"]
    )
