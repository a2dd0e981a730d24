"""The one data model every stage takes and returns.

Offsets are Unicode code-point offsets into ``Article.text``, end exclusive (the PTC
convention), so a span found by any stage can be highlighted by any report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "spinlens.analysis/v1"

SourceKind = Literal["url", "file", "text", "jsonl", "warc", "feed"]
MediaType = Literal["text/html", "text/plain"]


class Source(BaseModel):
    """Where a document came from."""

    kind: SourceKind
    location: str
    fetched_at: datetime | None = None


class Document(BaseModel):
    """A page as ingested: decoded text (HTML or plain) and where it came from."""

    model_config = ConfigDict(frozen=True)

    source: Source
    body: str
    media_type: MediaType
    url: str | None = None


class Failure(BaseModel):
    """A source that could not be ingested or analysed, and why (one line for the user)."""

    location: str
    reason: str


class Article(BaseModel):
    """The clean article: metadata, text and sentence boundaries (offsets into ``text``)."""

    title: str | None = None
    author: str | None = None
    date: str | None = None  # YYYY-MM-DD when known
    site: str | None = None
    url: str | None = None
    language: str | None = None
    text: str
    sentences: list[tuple[int, int]] = Field(default_factory=list)

    def sentence_texts(self) -> list[str]:
        return [self.text[s:e] for s, e in self.sentences]


class Finding(BaseModel):
    """A persuasion technique found on one span of ``Article.text``."""

    start: int
    end: int
    technique: str
    score: float
    text: str


class Span(BaseModel):
    start: int
    end: int


class Precedent(BaseModel):
    """A documented case of the narrative a family match names: where it was told before, and
    the debunk when one is known."""

    claim_id: str
    title: str
    catalogue: str
    # Half its best cosine to the article's passages that lean towards the family (scoring
    # within 0.1 of the threshold), half its cosine to the family.
    score: float
    date: str | None = None
    url: str | None = None
    disproof: str | None = None


class NarrativeMatch(BaseModel):
    """A documented claim the article repeats, with the passages that support the match."""

    claim_id: str
    title: str
    catalogue: str
    score: float
    evidence: list[Span] = Field(default_factory=list)
    family: str | None = None
    date: str | None = None
    url: str | None = None
    disproof: str | None = None
    # For a narrative family: its documented cases closest to this article (imported catalogues).
    precedents: list[Precedent] = Field(default_factory=list)


class Summary(BaseModel):
    technique_counts: dict[str, int] = Field(default_factory=dict)
    # Share of the article's characters covered by at least one finding.
    flagged_share: float = 0.0


class ModelScores(BaseModel):
    """What the models named in ``models`` scored on held-out data, recorded when the analysis
    ran: a stored analysis reports them the same forever, whatever models are installed later."""

    technique_f1: dict[str, float] = Field(
        default_factory=dict,
        description="Validation F1 per technique (task FLC: span and technique right) of the "
        "techniques model; empty when it has no recorded validation.",
    )


class Analysis(BaseModel):
    """Everything spinlens says about one document: the ``spinlens.analysis/v1`` JSON."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    id: str
    source: Source
    article: Article
    techniques: list[Finding] = Field(default_factory=list)
    narratives: list[NarrativeMatch] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    models: dict[str, str] = Field(default_factory=dict)
    model_scores: ModelScores = Field(default_factory=ModelScores)
    warnings: list[str] = Field(default_factory=list)

    model_config = ConfigDict(populate_by_name=True)

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)
