"""Logic every report shares: cutting overlapping spans into flat highlight segments,
looking up how a technique is shown, ranking passages and vetting links.

Findings of different techniques overlap and cross each other, so they cannot be nested as
markup. Instead the text is cut at every span boundary; each segment then carries the set of
spans active over it, and concatenating the segments gives back the text exactly.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from spinlens.model import Analysis, Finding
from spinlens.techniques.taxonomy import BY_NAME, TECHNIQUES, Technique

# Shown for technique names that are not in the taxonomy (an analysis read from a file may
# carry any name): neutral grey, so the highlight never claims a known technique's colour.
UNKNOWN_COLOUR = "#e9ecef"


@dataclass(frozen=True)
class Segment:
    """``text[start:end]`` and the indices of the spans active over all of it."""

    start: int
    end: int
    findings: tuple[int, ...] = ()
    evidence: tuple[int, ...] = ()

    @property
    def marked(self) -> bool:
        return bool(self.findings or self.evidence)


def segments(
    length: int,
    findings: Sequence[tuple[int, int]],
    evidence: Sequence[tuple[int, int]] = (),
) -> list[Segment]:
    """Cut ``[0, length)`` at every boundary of ``findings`` and ``evidence`` spans.

    The segments cover the whole range in order, without gaps, so a report can print them one
    after another and reproduce the text. Spans are clipped to the text; empty or inverted ones
    are ignored (a malformed analysis must still render). Indices refer to the input sequences.
    """
    starts: dict[int, list[tuple[int, int]]] = {}
    ends: dict[int, list[tuple[int, int]]] = {}
    for kind, spans in enumerate((findings, evidence)):
        for index, (start, end) in enumerate(spans):
            start, end = max(0, start), min(length, end)
            if start < end:
                starts.setdefault(start, []).append((kind, index))
                ends.setdefault(end, []).append((kind, index))
    bounds = sorted({0, length, *starts, *ends})
    active: set[tuple[int, int]] = set()
    out: list[Segment] = []
    for left, right in zip(bounds, bounds[1:], strict=False):
        active.difference_update(ends.get(left, ()))
        active.update(starts.get(left, ()))
        out.append(
            Segment(
                left,
                right,
                tuple(sorted(i for k, i in active if k == 0)),
                tuple(sorted(i for k, i in active if k == 1)),
            )
        )
    return out


def technique(name: str) -> Technique:
    """The taxonomy entry for ``name``, or a neutral stand-in for a name it does not know."""
    known = BY_NAME.get(name)
    if known is not None:
        return known
    return Technique(name, clean(name.replace("_", " ")), "Other", "", UNKNOWN_COLOUR)


def technique_counts(analysis: Analysis) -> list[tuple[Technique, int]]:
    """Techniques present, most frequent first, ties in taxonomy order.

    Counted from the findings themselves so counts always agree with what is highlighted.
    """
    counts = Counter(f.technique for f in analysis.techniques)
    order = {t.name: i for i, t in enumerate(TECHNIQUES)}
    names = sorted(counts, key=lambda n: (-counts[n], order.get(n, len(order)), n))
    return [(technique(n), counts[n]) for n in names]


def ranked(findings: Sequence[Finding]) -> list[tuple[int, Finding]]:
    """Findings with their index, highest score first, then in reading order."""
    return sorted(enumerate(findings), key=lambda p: (-p[1].score, p[1].start, p[1].end))


_SPACE = re.compile(r"\s+")


# Bidirectional embedding, override and isolate controls: they can visually reorder the
# rest of a line (the "Trojan Source" trick). Joiners, which scripts need, stay.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean(text: str) -> str:
    """Drop control characters (terminal escapes), bidi controls and lone surrogates but keep
    newlines and tabs: untrusted text must not be able to restyle or reorder a report."""
    return "".join(
        c
        for c in text
        if c in "\n\t" or (unicodedata.category(c) not in ("Cc", "Cs") and c not in _BIDI_CONTROLS)
    )


def snippet(text: str, limit: int = 160) -> str:
    """One line of at most ``limit`` characters: whitespace collapsed, cut with an ellipsis."""
    one_line = _SPACE.sub(" ", clean(text)).strip()
    if len(one_line) <= limit:
        return one_line
    return one_line[: limit - 1].rstrip() + "…"


def web_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL that is safe to put in a link, else None.

    Anything else (``javascript:``, ``data:``, relative paths, whitespace or control characters
    that browsers strip before parsing) is refused rather than repaired.
    """
    if not url or any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url
