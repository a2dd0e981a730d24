"""The span classifier's article context: a span knows where else its words and phrase occur
(Repetition is a property of the whole article, which no window sees)."""

from __future__ import annotations

import pytest

from spinlens.techniques.transformer import SPAN_FEATURES, ArticleWords, span_extras

TEXT = (
    "Stop the Steal\n\n"
    "They want to stop the steal. We will stop the steal. Leaders spoke of elections, "
    "and the council met on Tuesday."
)


def _extras(phrase: str, occurrence: int = 0, version: int = 2) -> list[float]:
    start = -1
    for _ in range(occurrence + 1):
        start = TEXT.lower().index(phrase.lower(), start + 1)
    return span_extras(TEXT, start, start + len(phrase), 4, ArticleWords.of(TEXT), version)


def test_models_of_the_first_version_keep_their_three_features() -> None:
    assert len(_extras("stop the steal", version=1)) == SPAN_FEATURES[1] == 3
    assert len(_extras("stop the steal")) == SPAN_FEATURES[2]


def test_a_repeated_slogan_knows_it_occurred_before_and_that_its_words_recur() -> None:
    length, repeats, in_title, found, mean_count, earlier, position = _extras(
        "stop the steal", occurrence=2
    )
    assert repeats > 0 and in_title == 0.0
    assert found == 1.0 and mean_count > 0  # "stop" and "steal" occur elsewhere
    assert earlier == 1.0 and 0 < position < 1


def test_a_phrase_said_once_has_no_repetition_context() -> None:
    _, repeats, _, found, mean_count, earlier, _ = _extras("council met on Tuesday")
    assert repeats == 0.0 and found == 0.0 and mean_count == 0.0 and earlier == 0.0


def test_plural_and_singular_count_as_the_same_word() -> None:
    text = "The elites lied. Every elite knows it."
    words = ArticleWords.of(text)
    start = text.index("elite ")
    assert span_extras(text, start, start + 5, 1, words, 2)[3] == pytest.approx(1.0)


def test_a_span_cut_inside_a_word_still_gets_features() -> None:
    text = "The elites lied again and again."
    start = text.index("lites")  # a span that starts inside a word
    extras = span_extras(text, start, start + 10, 3, ArticleWords.of(text), 2)
    assert len(extras) == SPAN_FEATURES[2] and extras[3] == 0.0
