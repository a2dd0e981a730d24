"""Analyses as pandas DataFrames, for notebooks: ``spinlens.to_frames(analyses)``.

pandas is an optional extra (``pip install 'spinlens[frames]'``): nothing else needs it, so it
is imported only when frames are asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from spinlens.errors import SpinlensError
from spinlens.model import Analysis, Failure

if TYPE_CHECKING:
    import pandas as pd


class Frames(NamedTuple):
    """One row per article, per finding, per narrative match and per failure; findings and
    narratives join articles on ``analysis_id``."""

    articles: pd.DataFrame
    findings: pd.DataFrame
    narratives: pd.DataFrame
    failures: pd.DataFrame


ARTICLE_COLUMNS = (
    "analysis_id",
    "location",
    "source_kind",
    "title",
    "author",
    "date",
    "site",
    "url",
    "language",
    "characters",
    "techniques",
    "narratives",
    "flagged_share",
    "techniques_model",
    "narratives_model",
    "warnings",
)
FINDING_COLUMNS = ("analysis_id", "start", "end", "technique", "score", "text")
NARRATIVE_COLUMNS = (
    "analysis_id",
    "claim_id",
    "title",
    "catalogue",
    "family",
    "score",
    "evidence_start",
    "evidence_end",
    "url",
    "disproof",
)
FAILURE_COLUMNS = ("location", "reason")


def to_frames(results: Iterable[Analysis | Failure]) -> Frames:
    """DataFrames of analyses (and of the failures ``analyze_many`` yields beside them).

    ``evidence_start``/``evidence_end`` are the first evidence passage's offsets into the
    article's text (None when a match has none)."""
    try:
        import pandas as pd
    except ImportError:
        raise SpinlensError(
            "spinlens.to_frames needs pandas: pip install 'spinlens[frames]'"
        ) from None
    articles: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    narratives: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, Failure):
            failures.append({"location": result.location, "reason": result.reason})
            continue
        article = result.article
        articles.append(
            {
                "analysis_id": result.id,
                "location": result.source.location,
                "source_kind": result.source.kind,
                "title": article.title,
                "author": article.author,
                "date": article.date,
                "site": article.site,
                "url": article.url,
                "language": article.language,
                "characters": len(article.text),
                "techniques": len(result.techniques),
                "narratives": len(result.narratives),
                "flagged_share": result.summary.flagged_share,
                "techniques_model": result.models.get("techniques"),
                "narratives_model": result.models.get("narratives"),
                "warnings": "; ".join(result.warnings),
            }
        )
        findings.extend(
            {"analysis_id": result.id, **finding.model_dump()} for finding in result.techniques
        )
        for match in result.narratives:
            first = match.evidence[0] if match.evidence else None
            narratives.append(
                {
                    "analysis_id": result.id,
                    "claim_id": match.claim_id,
                    "title": match.title,
                    "catalogue": match.catalogue,
                    "family": match.family,
                    "score": match.score,
                    "evidence_start": first.start if first else None,
                    "evidence_end": first.end if first else None,
                    "url": match.url,
                    "disproof": match.disproof,
                }
            )
    return Frames(
        articles=pd.DataFrame(articles, columns=list(ARTICLE_COLUMNS)),
        findings=pd.DataFrame(findings, columns=list(FINDING_COLUMNS)),
        narratives=pd.DataFrame(narratives, columns=list(NARRATIVE_COLUMNS)),
        failures=pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)),
    )
