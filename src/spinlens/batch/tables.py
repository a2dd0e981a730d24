"""The four tables of a batch run (articles, findings, narratives, failures): their Parquet
schemas, and the functions that turn an Analysis or a Failure into their rows.

Column names are fixed: the corpus dashboard, DuckDB queries and the Ray engine read them.
``article_id`` joins the tables; ``source_key`` is what a resumed run skips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from spinlens.model import Analysis, Document, Failure

# The best narrative matches an article row names (all of them are in the narratives table).
TOP_NARRATIVES = 5

ARTICLES = pa.schema(
    [
        ("article_id", pa.string()),  # sha256 of the extracted text: the analysis id
        ("source_key", pa.string()),  # stable id of the source document (resume skips it)
        ("source_kind", pa.string()),
        ("source_location", pa.string()),
        ("url", pa.string()),
        ("site", pa.string()),
        ("title", pa.string()),
        ("author", pa.string()),
        ("published", pa.date32()),  # the article's own date
        ("crawled", pa.timestamp("us", tz="UTC")),  # when it was fetched or crawled
        ("language", pa.string()),
        ("chars", pa.int64()),
        ("words", pa.int64()),
        ("flagged_share", pa.float64()),
        ("n_findings", pa.int32()),
        ("technique_counts", pa.string()),  # JSON object: technique -> count
        ("top_narratives", pa.list_(pa.string())),  # titles, best first
        ("techniques_model", pa.string()),
        ("narratives_model", pa.string()),
        ("warnings", pa.list_(pa.string())),
    ]
)
FINDINGS = pa.schema(
    [
        ("article_id", pa.string()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("technique", pa.string()),
        ("score", pa.float32()),
        ("text", pa.string()),
    ]
)
NARRATIVES = pa.schema(
    [
        ("article_id", pa.string()),
        ("claim_id", pa.string()),
        ("title", pa.string()),
        ("catalogue", pa.string()),
        ("score", pa.float32()),
        # The best passage supporting the match (offsets into the article text).
        ("evidence_start", pa.int32()),
        ("evidence_end", pa.int32()),
        ("evidence_text", pa.string()),
        ("url", pa.string()),
        ("disproof", pa.string()),
    ]
)
FAILURES = pa.schema(
    [
        ("source_key", pa.string()),
        ("source_location", pa.string()),
        ("reason", pa.string()),
    ]
)
# Table name -> schema; the name is also the folder of its shards.
SCHEMAS: dict[str, pa.Schema] = {
    "articles": ARTICLES,
    "findings": FINDINGS,
    "narratives": NARRATIVES,
    "failures": FAILURES,
}

Row = dict[str, Any]


@dataclass
class Rows:
    """Rows for the four tables, as plain dicts (cheap to pickle between processes)."""

    articles: list[Row] = field(default_factory=list)
    findings: list[Row] = field(default_factory=list)
    narratives: list[Row] = field(default_factory=list)
    failures: list[Row] = field(default_factory=list)

    def extend(self, other: Rows) -> None:
        self.articles.extend(other.articles)
        self.findings.extend(other.findings)
        self.narratives.extend(other.narratives)
        self.failures.extend(other.failures)

    @property
    def documents(self) -> int:
        """Source documents these rows account for: one article or one failure each."""
        return len(self.articles) + len(self.failures)

    def table(self, name: str) -> pa.Table:
        rows: list[Row] = getattr(self, name)
        return pa.Table.from_pylist(rows, schema=SCHEMAS[name])


def source_key(item: Document | Failure) -> str:
    """The stable id of a source document: its location (a path, ``path#L12`` in a JSONL file,
    ``path#offset`` in a WARC file, a URL). The same command run again yields the same keys."""
    return item.source.location if isinstance(item, Document) else item.location


def analysis_rows(analysis: Analysis, key: str) -> Rows:
    """The article row, one findings row per span and one narratives row per match."""
    article = analysis.article
    text = article.text
    article_row: Row = {
        "article_id": analysis.id,
        "source_key": key,
        "source_kind": analysis.source.kind,
        "source_location": analysis.source.location,
        "url": article.url,
        "site": article.site,
        "title": article.title,
        "author": article.author,
        "published": _date(article.date),
        "crawled": _utc(analysis.source.fetched_at),
        "language": article.language,
        "chars": len(text),
        "words": len(text.split()),
        "flagged_share": float(analysis.summary.flagged_share),
        "n_findings": len(analysis.techniques),
        "technique_counts": json.dumps(analysis.summary.technique_counts, sort_keys=True),
        "top_narratives": [m.title for m in analysis.narratives[:TOP_NARRATIVES]],
        "techniques_model": analysis.models.get("techniques", ""),
        "narratives_model": analysis.models.get("narratives"),
        "warnings": list(analysis.warnings),
    }
    findings = [
        {
            "article_id": analysis.id,
            "start": f.start,
            "end": f.end,
            "technique": f.technique,
            "score": f.score,
            "text": f.text,
        }
        for f in analysis.techniques
    ]
    narratives = []
    for match in analysis.narratives:
        evidence = match.evidence[0] if match.evidence else None
        narratives.append(
            {
                "article_id": analysis.id,
                "claim_id": match.claim_id,
                "title": match.title,
                "catalogue": match.catalogue,
                "score": match.score,
                "evidence_start": evidence.start if evidence else None,
                "evidence_end": evidence.end if evidence else None,
                "evidence_text": text[evidence.start : evidence.end] if evidence else None,
                "url": match.url,
                "disproof": match.disproof,
            }
        )
    return Rows(articles=[article_row], findings=findings, narratives=narratives)


def failure_rows(failure: Failure, key: str | None = None) -> Rows:
    """One failures row: the source, and the one-line reason a user reads."""
    row = {
        "source_key": key if key is not None else source_key(failure),
        "source_location": failure.location,
        "reason": failure.reason,
    }
    return Rows(failures=[row])


def _date(value: str | None) -> date | None:
    # Extraction gives YYYY-MM-DD when it found a date; anything else is no date.
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # A crawl date without a zone (a WARC-Date lacking its "Z") is taken as UTC, as WARC says.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
