"""Document -> Article: the article without the page around it.

HTML goes through trafilatura (main text and metadata). Plain text is usually a copy of a
page's visible text (menus, counters, "Recent Posts", a comment widget around the article), so
it gets the same treatment by hand: find the block of prose, take the heading line above it as
the title, and drop the chrome lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib import metadata

import py3langid
import trafilatura
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from trafilatura.settings import Document as TrafilaturaDocument

from spinlens.errors import ExtractionError
from spinlens.model import Article, Document
from spinlens.sentences import split_sentences

# Lines a site builder or blog platform puts around every article (lower-cased, exact).
CHROME_LINES = frozenset(
    {
        "top of page",
        "bottom of page",
        "skip to content",
        "skip to main content",
        "menu",
        "home",
        "blog",
        "about",
        "about us",
        "contact",
        "log in",
        "login",
        "sign up",
        "subscribe",
        "search",
        "share",
        "share this",
        "share this post",
        "recent posts",
        "see all",
        "related posts",
        "related articles",
        "read more",
        "comments",
        "comment",
        "leave a comment",
        "leave a reply",
        "write a comment",
        "all posts",
        "previous post",
        "next post",
        "follow us",
        "tags",
        "categories",
        "like",
        "reply",
        "more",
    }
)
_COUNTED = r"(views?|comments?|likes?|shares?|reads?)"
# Counters, reading times and footers: "2,171 views0 comments", "3 min read", "© 2022 by ...".
CHROME_PATTERNS = (
    re.compile(rf"^[\d.,\s]*k?\s*{_COUNTED}(\s*[\d.,]+\s*k?\s*{_COUNTED})*$", re.I),
    re.compile(r"^\d+\s*(min|minute)s?\s*read$", re.I),
    re.compile(r"^(©|\(c\)|copyright)\s", re.I),
    re.compile(r"^(updated|posted|published)\s*:?\s*\S", re.I),
)
# A line is prose when it reads like running text, not a menu item or a heading: enough words
# and a sentence ending, or so many words that no heading is that long.
PROSE_MIN_WORDS = 12
PROSE_ANY_ENDING_WORDS = 35
SENTENCE_ENDINGS = (".", "!", "?", "…", '"', "'", "”", "’", "»", ")", "。", "！", "？")
PROSE_MIN_CJK_CHARS = 30
# A heading: several words, short enough to be a title, no full stop at the end.
TITLE_WORDS = (3, 30)
# An author line above the title: a name of one to four words.
AUTHOR_MAX_WORDS = 4
# Fewer words than this in what a web page yields is navigation or boilerplate, not an article
# (pasted text has no such floor: the user chose it).
MIN_HTML_ARTICLE_WORDS = 12
# py3langid guesses on the first characters only: enough for a confident guess, and fast.
LANGUAGE_SAMPLE_CHARS = 5000

# The most words one article is analysed for; the rest is cut off with a warning. The detector
# and the encoder cost time and memory in proportion to the text (docs/benchmarks.md, "Cost per
# article"): 50,000 words (~300 kB of English, ten long features) take well under a minute on
# a laptop CPU and under 1.5 GB, where a 10 MB page would take many minutes and gigabytes.
# Settings.max_words (SPINLENS_MAX_WORDS) overrides it; None: no limit.
MAX_WORDS = 50_000
# The limit also holds for text with few but long "words" (URLs, base64, punctuation runs):
# no more than this many characters per allowed word are analysed (English averages ~6).
MAX_CHARS_PER_WORD = 12

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"\w+", re.UNICODE)
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


@dataclass
class Extraction:
    """An article, and what the report must say about how it was read (a cut, for one)."""

    article: Article
    warnings: list[str] = field(default_factory=list)


def extract(document: Document, *, max_words: int | None = MAX_WORDS) -> Article:
    """Return the clean article of ``document``; raise ExtractionError when there is none."""
    return extract_article(document, max_words=max_words).article


def extract_article(document: Document, *, max_words: int | None = MAX_WORDS) -> Extraction:
    """The clean article of ``document``, cut after ``max_words`` words (None: never), with
    a warning when it was cut; raise ExtractionError when there is no article."""
    if document.media_type == "text/html":
        article = _from_html(document.body, document.url)
    else:
        article = _from_page_text(document.body)
        article.url = document.url
    if not article.text.strip():
        raise ExtractionError(f"no article text found in {document.source.location}")
    warnings = []
    if max_words is not None and (cut := word_limit_cut(article.text, max_words)) is not None:
        total = count_words(article.text)
        article.text = article.text[:cut].rstrip()
        warnings.append(
            f"the article was cut to its first {count_words(article.text):,} of {total:,} "
            f"words: spinlens analyses at most {max_words:,} words "
            f"({max_words * MAX_CHARS_PER_WORD:,} characters) per article"
        )
    article.language = identify_language(article.text)
    article.sentences = split_sentences(article.text)
    return Extraction(article, warnings)


# A word, as the limit counts them: a run of letters and digits, or one Chinese or Japanese
# character (those scripts put no spaces between words).
_LIMIT_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]|[^\W\u3040-\u30ff\u3400-\u9fff]+")


def count_words(text: str) -> int:
    """Words in ``text`` as MAX_WORDS counts them."""
    return sum(1 for _ in _LIMIT_WORD.finditer(text))


def word_limit_cut(text: str, max_words: int) -> int | None:
    """Where ``text`` must be cut to hold at most ``max_words`` words and
    ``max_words * MAX_CHARS_PER_WORD`` characters: the end of the last whole word before
    that; None when the text is within both limits."""
    max_chars = max_words * MAX_CHARS_PER_WORD
    end = 0
    for n, word in enumerate(_LIMIT_WORD.finditer(text), start=1):
        if n > max_words or word.end() > max_chars:
            return end or min(len(text), max_chars)
        end = word.end()
    return None if len(text) <= max_chars else (end or max_chars)


def identify_language(text: str) -> str:
    language, _score = py3langid.classify(text[:LANGUAGE_SAMPLE_CHARS])
    return str(language)


# A short text (a catalogued claim, a search query) is taken to be in a language only this sure:
# among the 13,123 English EUvsDisinfo titles, 10 come out French, Polish or Portuguese at 0.5
# ("Europe destroyed Ukraine": French, 0.57) and 1 at 0.9, a title quoting a Russian slur.
SHORT_TEXT_CONFIDENCE = 0.9


def identify_short_language(text: str, among: frozenset[str]) -> str | None:
    """The language of a short ``text`` when it is one of the py3langid codes ``among`` and
    py3langid, choosing among those, is at least SHORT_TEXT_CONFIDENCE sure of it; else None.
    A text whose likeliest language of all is another one (Ukrainian, for USE's languages) is
    not forced into the nearest of ``among``."""
    sample = text[:LANGUAGE_SAMPLE_CHARS]
    if identify_language(sample) not in among:
        return None
    language, probability = _short_text_identifier(among).classify(sample)
    return str(language) if probability >= SHORT_TEXT_CONFIDENCE else None


def short_language_rule() -> str:
    """Names what decides a short text's language (the py3langid release, the confidence):
    a change to either may send claims to another encoder, so caches of their vectors name it."""
    try:
        version = metadata.version("py3langid")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"py3langid-{version}@{SHORT_TEXT_CONFIDENCE}"


@lru_cache(maxsize=4)
def _short_text_identifier(among: frozenset[str]) -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(sorted(among))
    return identifier


# --- HTML -----------------------------------------------------------------------------------


# libxml2 (under lxml, so under trafilatura) stops building the tree 256 elements deep and
# drops all below: a paragraph inside 300 nested divs gave "no article text found". Such a
# page is read again without its layout wrappers, which removes the nesting at any depth.
_LAYOUT_WRAPPER = re.compile(
    r"</?(?:div|span|section|article|main|font|center)\b[^>]*>", re.IGNORECASE
)


_DOCUMENT_TAG = re.compile(r"<(html|body)[\s>]", re.IGNORECASE)


def _from_html(html: str, url: str | None) -> Article:
    if not _DOCUMENT_TAG.search(html):
        # A fragment ("<b>Breaking:</b> ..."): trafilatura takes the tree lxml makes of it for
        # no page at all and finds nothing; in a body it is read as any page is.
        html = f"<html><body>{html}</body></html>"
    article = _extract_html(html, url)
    if not article.text and _too_deep(html):
        article = _extract_html(_LAYOUT_WRAPPER.sub("", html), url)
    return article


def _too_deep(html: str) -> bool:
    """Whether libxml2 gave up on the page's nesting (it says so in its error log)."""
    from lxml import etree

    parser = etree.HTMLParser()
    try:
        etree.fromstring(html, parser)
    except (etree.LxmlError, ValueError):
        return False
    return any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log)


def _extract_html(html: str, url: str | None) -> Article:
    result = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=False
    )
    if (
        isinstance(result, TrafilaturaDocument)
        and _word_count(result.text) >= MIN_HTML_ARTICLE_WORDS
    ):
        return Article(
            title=_clean(result.title),
            author=_clean(result.author),
            date=_clean(result.date),
            site=_clean(result.sitename) or _clean(result.hostname),
            url=_clean(result.url) or url,
            # trafilatura puts one paragraph per line; a blank line between paragraphs
            # keeps them apart in every report.
            text=_join_paragraphs((result.text or "").splitlines()),
        )
    # trafilatura finds nothing on some small or odd pages: read the visible text instead.
    visible = trafilatura.html2txt(html) or ""
    article = _from_page_text(visible, require_prose=True)
    if _word_count(article.text) < MIN_HTML_ARTICLE_WORDS:
        return Article(text="")
    article.url = url
    return article


def _word_count(text: str | None) -> int:
    return len(_WORD.findall(text or ""))


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


# --- Plain page text ------------------------------------------------------------------------


@dataclass
class _Line:
    text: str  # stripped

    @property
    def words(self) -> int:
        return len(_WORD.findall(self.text))

    @property
    def is_prose(self) -> bool:
        cjk = len(_CJK.findall(self.text))
        if cjk >= PROSE_MIN_CJK_CHARS:
            return True
        ends_like_sentence = self.text.endswith(SENTENCE_ENDINGS)
        return (
            self.words >= PROSE_ANY_ENDING_WORDS
            or (self.words >= PROSE_MIN_WORDS and ends_like_sentence)
        ) and not is_chrome(self.text)

    @property
    def is_title(self) -> bool:
        low, high = TITLE_WORDS
        return (
            low <= self.words <= high
            and not self.text.endswith((".", ":", ";", ","))
            and not is_chrome(self.text)
        )

    @property
    def is_author(self) -> bool:
        return (
            1 <= self.words <= AUTHOR_MAX_WORDS
            and not is_chrome(self.text)
            and not any(ch.isdigit() for ch in self.text)
            and all(_LETTERS.match(word) for word in self.text.split())
        )


def is_chrome(line: str) -> bool:
    """True for the menu items, counters and widgets a page puts around its article."""
    text = line.strip()
    lowered = text.lower().rstrip(":")
    return lowered in CHROME_LINES or any(p.match(text) for p in CHROME_PATTERNS)


def _from_page_text(text: str, *, require_prose: bool = False) -> Article:
    lines = [_Line(raw.strip()) for raw in text.splitlines()]
    prose = [i for i, line in enumerate(lines) if line.is_prose]
    if not prose:
        if require_prose:
            return Article(text="")
        # A pasted snippet with no page around it: the whole text is the article.
        kept = [line.text for line in lines if line.text and not is_chrome(line.text)]
        return Article(text=_join_paragraphs(kept))

    first, last = _main_block(lines, prose)
    body = [line.text for line in lines[first : last + 1] if line.text and not is_chrome(line.text)]

    title_index = _previous_content_line(lines, first)
    title = author = date = None
    if title_index is not None and lines[title_index].is_title:
        title = lines[title_index].text
        # Blog platforms put the author's name, a date and a reading time above the title.
        for i in range(title_index - 1, -1, -1):
            line = lines[i]
            if not line.text or is_chrome(line.text):
                continue
            if (parsed := parse_date(line.text)) is not None:
                date = date or parsed
                continue
            if line.is_author:
                author = line.text
            break
    return Article(title=title, author=author, date=date, text=_join_paragraphs(body))


def _main_block(lines: list[_Line], prose: list[int]) -> tuple[int, int]:
    """The longest run of prose lines, allowing short non-chrome lines between them
    (subheadings, one-line paragraphs) but not a chrome line such as "Recent Posts"."""
    runs: list[tuple[int, int]] = []
    start = previous = prose[0]
    for index in prose[1:]:
        between = lines[previous + 1 : index]
        if any(is_chrome(line.text) for line in between if line.text):
            runs.append((start, previous))
            start = index
        previous = index
    runs.append((start, previous))
    return max(runs, key=lambda run: sum(len(lines[i].text) for i in range(run[0], run[1] + 1)))


def _previous_content_line(lines: list[_Line], index: int) -> int | None:
    for i in range(index - 1, -1, -1):
        if lines[i].text and not is_chrome(lines[i].text):
            return i
    return None


# Date lines as blog platforms print them ("Jan 14, 2022", "14 January 2022", "2022-01-14").
DATE_FORMATS = (
    "%b %d, %Y",
    "%B %d, %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%Y-%m-%d",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%Y年%m月%d日",
)


def parse_date(text: str) -> str | None:
    """The date on a line that holds only a date, as YYYY-MM-DD; None otherwise."""
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip().replace("Sept ", "Sep "), fmt).date().isoformat()
        except ValueError:
            continue
    return None


def _join_paragraphs(paragraphs: list[str]) -> str:
    return "\n\n".join(p.strip() for p in paragraphs if p.strip())
