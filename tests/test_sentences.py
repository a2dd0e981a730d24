from hypothesis import given
from hypothesis import strategies as st

from spinlens.sentences import split_sentences


def texts(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_splits_on_terminal_punctuation_before_a_capital():
    assert texts("The army moved in. Nobody asked why! Was it planned? Yes.") == [
        "The army moved in.",
        "Nobody asked why!",
        "Was it planned?",
        "Yes.",
    ]


def test_abbreviations_and_initials_do_not_end_a_sentence():
    assert texts(
        "Mr. Smith met Dr. J. R. Brown in the U.S. capital at 5 p.m. Monday. Then he left."
    ) == [
        "Mr. Smith met Dr. J. R. Brown in the U.S. capital at 5 p.m. Monday.",
        "Then he left.",
    ]


def test_closing_quotes_stay_with_their_sentence():
    assert texts('He said: "It is over." Then the crowd left.') == [
        'He said: "It is over."',
        "Then the crowd left.",
    ]


def test_lines_always_end_sentences_and_cjk_punctuation_splits():
    assert texts(
        "A headline without a stop\n\nBody text here. More.\n日本語の文です。次の文。"
    ) == [
        "A headline without a stop",
        "Body text here.",
        "More.",
        "日本語の文です。",
        "次の文。",
    ]


def test_lowercase_after_a_full_stop_continues_the_sentence():
    assert texts("Prices rose by 3.5 per cent. in the west, protests began.") == [
        "Prices rose by 3.5 per cent. in the west, protests began.",
    ]


@given(st.text())
def test_spans_are_ordered_trimmed_and_inside_the_text(text: str):
    spans = split_sentences(text)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        previous_end = end
