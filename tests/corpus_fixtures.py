"""A small batch folder written through the real ShardWriter, with rows chosen by hand so the
dashboard's numbers can be checked, and hostile text where a page renders it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from spinlens.batch.shards import ShardWriter
from spinlens.batch.tables import Rows

HOSTILE_TITLE = '<script>alert("x")</script> & "quotes"'
HOSTILE_SITE = "<img src=x onerror=alert(1)>.example"


def article(
    n: int,
    site: str | None,
    *,
    published: date | None,
    crawled: datetime | None = None,
    findings: list[str] = (),  # type: ignore[assignment]
    narratives: list[tuple[str, str]] = (),  # type: ignore[assignment]
    flagged: float = 0.1,
    title: str | None = None,
    url: str | None = None,
) -> Rows:
    article_id = f"{n:064x}"
    counts: dict[str, int] = {}
    for technique in findings:
        counts[technique] = counts.get(technique, 0) + 1
    row: dict[str, Any] = {
        "article_id": article_id,
        "source_key": f"/corpus/{n}.html",
        "source_kind": "file",
        "source_location": f"/corpus/{n}.html",
        "url": url if url is not None else f"https://{site or 'nosite.example'}/news/{n}",
        "site": site,
        "title": title or f"Article {n}",
        "author": None,
        "published": published,
        "crawled": crawled,
        "language": "en",
        "chars": 1000,
        "words": 180,
        "flagged_share": flagged,
        "n_findings": len(findings),
        "technique_counts": json.dumps(counts, sort_keys=True),
        "top_narratives": [title for _, title in narratives],
        "techniques_model": "baseline@test",
        "narratives_model": "matcher@test",
        "warnings": [],
    }
    return Rows(
        articles=[row],
        findings=[
            {
                "article_id": article_id,
                "start": 10 * k,
                "end": 10 * k + 8,
                "technique": t,
                "score": 0.9,
                "text": "x" * 8,
            }
            for k, t in enumerate(findings)
        ],
        narratives=[
            {
                "article_id": article_id,
                "claim_id": claim_id,
                "title": claim_title,
                "catalogue": "starter",
                "score": 0.8,
                "evidence_start": 0,
                "evidence_end": 20,
                "evidence_text": "evidence",
                "url": None,
                "disproof": None,
            }
            for claim_id, claim_title in narratives
        ],
    )


BIOLABS = ("biolabs", "Secret biolabs <b>everywhere</b>")
ELECTION = ("rigged-election", "The election was rigged")


def write_corpus(out: Path) -> Path:
    """Six articles over three sites and two months, in two shards, plus one failure, and an
    uncommitted shard that must never be read."""
    first = Rows()
    for rows in (
        article(1, "a.example", published=date(2026, 1, 5),
                findings=["Loaded_Language", "Loaded_Language", "Doubt"],
                narratives=[BIOLABS], flagged=0.40, title=HOSTILE_TITLE),
        article(2, "a.example", published=date(2026, 1, 20), findings=["Loaded_Language"],
                flagged=0.05),
        article(3, "b.example", published=None, crawled=datetime(2026, 2, 3, 12, tzinfo=UTC),
                findings=["Flag-Waving"], narratives=[BIOLABS, ELECTION], flagged=0.25),
    ):  # fmt: skip
        first.extend(rows)
    first.failures.append(
        {"source_key": "/corpus/bad.html", "source_location": "/corpus/bad.html", "reason": "empty"}
    )
    second = Rows()
    for rows in (
        article(4, HOSTILE_SITE, published=date(2026, 2, 14), findings=["Doubt"],
                narratives=[ELECTION], flagged=0.30, url="javascript:alert(1)"),
        article(5, None, published=None, crawled=None, findings=["Name_Calling,Labeling"],
                flagged=0.60),
        article(6, "b.example", published=date(2026, 2, 28), flagged=0.0),
    ):  # fmt: skip
        second.extend(rows)
    with ShardWriter(out) as writer:
        writer.write(first)
        writer.write(second)
    # A shard a killed run wrote but never committed: a reader of the folder must ignore it.
    ghost = article(99, "ghost.example", published=date(2026, 1, 1), findings=["Doubt"] * 50)
    for table in ("articles", "findings", "narratives", "failures"):
        import pyarrow.parquet as pq

        pq.write_table(ghost.table(table), out / table / "part-00002.parquet")
    return out
