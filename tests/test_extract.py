"""Extraction: the article, not the page, from HTML and from copied page text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spinlens.embed import MULTILINGUAL_LANGUAGES
from spinlens.errors import ExtractionError
from spinlens.extract import extract, identify_short_language, is_chrome, parse_date
from spinlens.model import Document, Source

from .conftest import CANONICAL_EXAMPLE, EXAMPLES, need_shared

TITLE = "Foreign hands behind the riots: how the republic was saved"
CHROME = [
    "top of page",
    "bottom of page",
    "1,204 views",
    "Recent Posts",
    "See All",
    "コメント",
    "Log In",
    "Winter in the mountains",
    "© 2022",
    "3 min read",
]


def document(body: str, media_type: str = "text/plain", url: str | None = None) -> Document:
    return Document(
        source=Source(kind="file", location="test"), body=body, media_type=media_type, url=url
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name, media_type",
    [("site-builder-blog.html", "text/html"), ("site-builder-blog.txt", "text/plain")],
)
def test_site_builder_page_gives_the_article_without_chrome(name: str, media_type: str):
    article = extract(document((EXAMPLES / name).read_text(encoding="utf-8"), media_type))
    assert article.title == TITLE
    assert article.author is not None and article.author.lower() == "marta"
    assert article.date == "2022-01-14"
    assert article.language == "en"
    assert article.text.startswith("For a week the whole world watched in horror")
    assert article.text.endswith("Those who lit it will try again.")
    for chrome in CHROME:
        assert chrome not in article.text, chrome
    assert article.text.count("\n\n") == 4  # five paragraphs, kept apart


def test_html_metadata_comes_from_the_page():
    html = (EXAMPLES / "site-builder-blog.html").read_text(encoding="utf-8")
    article = extract(document(html, "text/html"))
    assert article.site == "Northwind Notes"
    assert article.url == "https://northwind-notes.example/post/foreign-hands-behind-the-riots"


def test_sentences_cover_the_text_with_exact_offsets():
    article = extract(document((EXAMPLES / "site-builder-blog.txt").read_text(encoding="utf-8")))
    assert len(article.sentences) == 19
    assert article.sentence_texts()[0] == (
        "For a week the whole world watched in horror as our peaceful republic was dragged to "
        "the edge of the abyss."
    )
    for start, end in article.sentences:
        assert article.text[start:end].strip() == article.text[start:end]


def test_the_canonical_example_reads_like_an_analyst_would():
    text = need_shared(CANONICAL_EXAMPLE).read_text(encoding="utf-8")
    article = extract(document(text))
    assert article.title == (
        "The introduction of CSTO peacekeepers into Kazakhstan made it possible to preserve "
        "statehood"
    )
    assert article.language == "en"
    assert article.text.startswith("Since the beginning of the year, alarming reports")
    assert article.text.endswith("in the CIS space.")
    for chrome in [
        "top of page",
        "john",
        "2,171 views",
        "0 comments",
        "Recent Posts",
        "See All",
        "コメント",
        "bottom of page",
    ]:
        assert chrome not in article.text, chrome


def test_a_pasted_snippet_is_the_article_itself():
    article = extract(document("They are traitors, every one of them."))
    assert article.text == "They are traitors, every one of them."
    assert article.title is None


def test_other_languages_are_identified():
    russian = (
        "Протесты в стране начались с недовольства ценами на газ, но вскоре переросли в "
        "беспорядки, за которыми, по словам властей, стояли иностранные силы."
    )
    assert extract(document(russian)).language == "ru"


def test_html_without_an_article_is_a_clear_error():
    html = "<html><body><nav><a href='/'>Home</a> <a href='/blog'>Blog</a></nav></body></html>"
    with pytest.raises(ExtractionError, match="no article text"):
        extract(document(html, "text/html"))


def test_chrome_and_dates_are_recognised():
    assert is_chrome("2,171 views0 comments") and is_chrome("See All") and is_chrome("3 min read")
    assert not is_chrome("The views of the government were ignored.")
    assert parse_date("Jan 14, 2022") == "2022-01-14"
    assert parse_date("2022年1月14日") == "2022-01-14"
    assert parse_date("January was cold") is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<div>",
                "</div>",
                "<script>",
                "<!--",
                "-->",
                "<a href='",
                "'>",
                "&amp;",
                "&#x",
                ";",
                "<",
                ">",
                "\n",
                "word ",
                "Sentence here. ",
                "<html><body>",
                "\x00",
            ]
        ),
        max_size=80,
    ).map("".join)
)
def test_malformed_html_gives_an_article_or_a_clear_error(html: str):
    try:
        article = extract(document(html, "text/html"))
    except ExtractionError:
        return
    assert article.text.strip()
    assert all(0 <= s < e <= len(article.text) for s, e in article.sentences)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=600))
def test_any_text_gives_an_article_or_a_clear_error(text: str):
    try:
        article = extract(document(text))
    except ExtractionError:
        return
    assert article.text.strip()


def test_a_short_text_gets_a_language_only_when_it_is_clear() -> None:
    def language(text: str) -> str | None:
        return identify_short_language(text, MULTILINGUAL_LANGUAGES)

    assert language("Выборы решили взломанные машины") == "ru"
    assert language("Szczepionki powodują autyzm u dzieci") == "pl"
    # An English title py3langid would call French if it had to choose: no language.
    assert language("Europe destroyed Ukraine") is None
    # Ukrainian, which USE was not trained on, is not taken for its nearest neighbour, Russian.
    assert language("Вибори вирішили зламані машини для голосування") is None
    assert language("") is None
