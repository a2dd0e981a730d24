"""Which encoder reads a text: MiniLM for English, USE and the bridge for other languages.

English articles (and those whose language is unknown) are embedded with MiniLM. Articles in
another language USE multilingual v3 knows are embedded with USE and carried into MiniLM's space
by the bridge (``embed.Bridge``), then searched against the same catalogue vectors: the same
claims come up for an article and its translation far more often than when USE embeds both
sides (docs/benchmarks.md, "Narrative matching across languages"). Catalogued claims and
search queries written in one of those languages are embedded the same way
(``encode_by_language``). Other languages are not supported (``supports``), and the pipeline
says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from spinlens.embed import MULTILINGUAL_LANGUAGES, ModelUnavailableError, TextEncoder
from spinlens.extract import identify_short_language


def is_english(language: str | None) -> bool:
    """Articles MiniLM matches: English, and those whose language is unknown."""
    return language is None or language == "en"


def supports(language: str | None) -> bool:
    """Whether articles in ``language`` (a py3langid code; None: unknown) can be matched."""
    return is_english(language) or language in MULTILINGUAL_LANGUAGES


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
        return encode_texts(encoder, texts, batch_size)
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    other = [i for i, text in enumerate(texts) if foreign.reads(text)]
    own = sorted(set(range(len(texts))) - set(other))
    vectors[own] = encode_texts(encoder, [texts[i] for i in own], batch_size)
    if other:
        try:
            vectors[other] = encode_texts(foreign, [texts[i] for i in other], batch_size)
        except ModelUnavailableError as exc:
            # A broken USE install must not stop English matching: MiniLM reads these too.
            foreign.unavailable = str(exc)
            vectors[other] = encode_texts(encoder, [texts[i] for i in other], batch_size)
    return vectors


def encode_texts(encoder: TextEncoder, texts: Sequence[str], batch_size: int = 1) -> np.ndarray:
    """``encoder``'s vectors of ``texts`` (one text per call by default: see
    CatalogueIndex.build); an empty array of the right width for no text."""
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return encoder.encode(texts, batch_size=batch_size)
