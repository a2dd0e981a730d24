"""Persistence of analyses: every analysis kept with a hash of its input, searchable history.

SQLAlchemy Core, so the same statements run on the embedded SQLite file (the default, under
SPINLENS_HOME) and on PostgreSQL given a URL. The schema evolves through ``MIGRATIONS``, a
numbered list applied in order and recorded in ``schema_version``; a database written by a
newer spinlens is refused rather than misread.

An analysis is keyed by its ``id`` (the hash of the extracted text): analysing the same article
again replaces the stored row, so ``GET /analyses/{id}`` always answers with the newest one.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from spinlens.config import Settings
from spinlens.errors import SpinlensError
from spinlens.model import Analysis

MAX_PAGE = 100


class StoreError(SpinlensError):
    """The store cannot be opened or used (bad URL, unreachable server, newer schema...)."""


def default_url() -> str:
    """The settings' store: SPINLENS_DATABASE_URL, else an SQLite file in SPINLENS_HOME."""
    return Settings.from_env().store_url


def input_hash(kind: str, content: str | bytes) -> str:
    """SHA-256 of what the user gave (a URL, pasted text, an uploaded page), with its kind."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(kind.encode("ascii") + b"\0" + data).hexdigest()


# The tables as the latest migration leaves them; queries are written against these.
metadata = MetaData()
analyses = Table(
    "analyses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("input_hash", String(64), nullable=False),
    # ISO-8601 UTC with a fixed width, so string order is time order on every backend.
    Column("created_at", String(32), nullable=False),
    Column("source_kind", String(16), nullable=False),
    Column("location", Text, nullable=False),
    Column("title", Text),
    Column("site", String(255)),
    Column("url", Text),
    Column("language", String(16)),
    Column("technique_count", Integer, nullable=False),
    Column("narrative_count", Integer, nullable=False),
    Column("flagged_share", Float, nullable=False),
    Column("article_text", Text, nullable=False),
    Column("document", Text, nullable=False),  # the spinlens.analysis/v1 JSON
)
analysis_techniques = Table(
    "analysis_techniques",
    metadata,
    Column("analysis_id", String(64), primary_key=True),
    Column("technique", String(64), primary_key=True),
    Column("count", Integer, nullable=False),
)
analysis_narratives = Table(
    "analysis_narratives",
    metadata,
    Column("analysis_id", String(64), primary_key=True),
    Column("catalogue", String(64), primary_key=True),
    Column("claim_id", String(255), primary_key=True),
    Column("title", Text, nullable=False),
    Column("score", Float, nullable=False),
)
schema_version = Table(
    "schema_version",
    MetaData(),
    Column("version", Integer, nullable=False),
    Column("applied_at", String(32), nullable=False),
)


def _migration_1(conn: Connection) -> None:
    """Analyses with searchable columns, plus techniques and narratives per analysis."""
    # Defined here, not taken from ``metadata``: a migration must keep creating what it
    # created when it was written, whatever the tables above become later.
    m = MetaData()
    Table(
        "analyses",
        m,
        Column("id", String(64), primary_key=True),
        Column("input_hash", String(64), nullable=False),
        Column("created_at", String(32), nullable=False),
        Column("source_kind", String(16), nullable=False),
        Column("location", Text, nullable=False),
        Column("title", Text),
        Column("site", String(255)),
        Column("url", Text),
        Column("language", String(16)),
        Column("technique_count", Integer, nullable=False),
        Column("narrative_count", Integer, nullable=False),
        Column("flagged_share", Float, nullable=False),
        Column("article_text", Text, nullable=False),
        Column("document", Text, nullable=False),
        Index("ix_analyses_created_at", "created_at"),
        Index("ix_analyses_site", "site"),
        Index("ix_analyses_input_hash", "input_hash"),
    )
    Table(
        "analysis_techniques",
        m,
        Column("analysis_id", String(64), primary_key=True),
        Column("technique", String(64), primary_key=True),
        Column("count", Integer, nullable=False),
        Index("ix_analysis_techniques_technique", "technique"),
    )
    Table(
        "analysis_narratives",
        m,
        Column("analysis_id", String(64), primary_key=True),
        Column("catalogue", String(64), primary_key=True),
        Column("claim_id", String(255), primary_key=True),
        Column("title", Text, nullable=False),
        Column("score", Float, nullable=False),
        Index("ix_analysis_narratives_claim_id", "claim_id"),
    )
    m.create_all(conn)


# Append only: never edit or reorder a migration that has shipped.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migration_1,)


class StoredSource(BaseModel):
    kind: str
    location: str


class HistoryItem(BaseModel):
    """One stored analysis as the history lists it."""

    id: str
    created_at: datetime
    title: str | None
    site: str | None
    url: str | None
    language: str | None
    source: StoredSource
    input_hash: str
    technique_counts: dict[str, int]
    narratives: int
    flagged_share: float


class HistoryPage(BaseModel):
    """A page of history, newest first; ``total`` counts every match, not just this page."""

    items: list[HistoryItem]
    total: int
    limit: int
    offset: int


class HistoryQuery(BaseModel):
    """Filters for the history; every filter given must hold."""

    q: str | None = Field(default=None, description="Words in the title or the article text.")
    technique: str | None = Field(default=None, description="A technique name, e.g. Doubt.")
    narrative: str | None = Field(
        default=None, description="A claim id, or words in a matched claim's title."
    )
    site: str | None = Field(default=None, description="The article's site, e.g. example.com.")
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0)


def parse_when(value: str, *, end_of_day: bool = False) -> datetime:
    """``2024-01-31`` or a full ISO-8601 time; a bare ``until`` date covers that whole day."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            when = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return when + timedelta(days=1) if end_of_day else when
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise StoreError(f"not a date or time: {value!r} (use YYYY-MM-DD or ISO-8601)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """The analyses database. Thread-safe: the server's workers share one instance."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine = _engine(self.url)
        self._lock = threading.Lock()  # SQLite takes one writer at a time anyway
        self.migrate()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> int:
        """Apply the migrations this database lacks; return its schema version."""
        try:
            with self.engine.begin() as conn:
                schema_version.create(conn, checkfirst=True)
                current = conn.scalar(select(func.max(schema_version.c.version))) or 0
                if current > len(MIGRATIONS):
                    raise StoreError(
                        f"the database at {self._where()} has schema version {current}, newer "
                        f"than this spinlens understands ({len(MIGRATIONS)}); upgrade spinlens"
                    )
                for number, migration in enumerate(MIGRATIONS, start=1):
                    if number > current:
                        migration(conn)
                        conn.execute(
                            insert(schema_version).values(
                                version=number, applied_at=_stamp(datetime.now(UTC))
                            )
                        )
                return len(MIGRATIONS)
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot open the store at {self._where()}: {_reason(error)}"
            ) from None

    def version(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.max(schema_version.c.version))) or 0

    def save(self, analysis: Analysis, input_digest: str, *, now: datetime | None = None) -> None:
        """Keep ``analysis`` (replacing an earlier analysis of the same article)."""
        article = analysis.article
        created = _stamp(now or datetime.now(UTC))
        narratives: dict[tuple[str, str], tuple[str, float]] = {}
        for match in analysis.narratives:
            key = (match.catalogue, match.claim_id)
            if key not in narratives or narratives[key][1] < match.score:
                narratives[key] = (match.title, match.score)
        with self._lock, self.engine.begin() as conn:
            for table in (analysis_techniques, analysis_narratives):
                conn.execute(delete(table).where(table.c.analysis_id == analysis.id))
            conn.execute(delete(analyses).where(analyses.c.id == analysis.id))
            conn.execute(
                insert(analyses).values(
                    id=analysis.id,
                    input_hash=input_digest,
                    created_at=created,
                    source_kind=analysis.source.kind,
                    location=analysis.source.location,
                    title=article.title,
                    site=article.site.lower() if article.site else None,
                    url=article.url,
                    language=article.language,
                    technique_count=len(analysis.techniques),
                    narrative_count=len(analysis.narratives),
                    flagged_share=analysis.summary.flagged_share,
                    article_text=article.text,
                    document=json.dumps(analysis.to_json_dict(), ensure_ascii=False),
                )
            )
            counts: dict[str, int] = {}
            for finding in analysis.techniques:
                counts[finding.technique] = counts.get(finding.technique, 0) + 1
            if counts:
                conn.execute(
                    insert(analysis_techniques),
                    [
                        {"analysis_id": analysis.id, "technique": name, "count": n}
                        for name, n in counts.items()
                    ],
                )
            if narratives:
                conn.execute(
                    insert(analysis_narratives),
                    [
                        {
                            "analysis_id": analysis.id,
                            "catalogue": catalogue,
                            "claim_id": claim_id,
                            "title": title,
                            "score": score,
                        }
                        for (catalogue, claim_id), (title, score) in narratives.items()
                    ],
                )

    def get(self, analysis_id: str) -> Analysis | None:
        with self.engine.connect() as conn:
            document = conn.scalar(select(analyses.c.document).where(analyses.c.id == analysis_id))
        return None if document is None else Analysis.model_validate(json.loads(document))

    def search(self, query: HistoryQuery) -> HistoryPage:
        conditions = []
        if query.q:
            words = query.q.lower().split()
            conditions += [
                or_(
                    func.lower(analyses.c.title).contains(word, autoescape=True),
                    func.lower(analyses.c.article_text).contains(word, autoescape=True),
                )
                for word in words
            ]
        if query.technique:
            t = analysis_techniques
            conditions.append(
                exists().where(
                    and_(t.c.analysis_id == analyses.c.id, t.c.technique == query.technique)
                )
            )
        if query.narrative:
            n = analysis_narratives
            conditions.append(
                exists().where(
                    and_(
                        n.c.analysis_id == analyses.c.id,
                        or_(
                            n.c.claim_id == query.narrative,
                            func.lower(n.c.title).contains(
                                query.narrative.lower(), autoescape=True
                            ),
                        ),
                    )
                )
            )
        if query.site:
            conditions.append(analyses.c.site == query.site.strip().lower())
        if query.since:
            conditions.append(analyses.c.created_at >= _stamp(query.since))
        if query.until:
            conditions.append(analyses.c.created_at < _stamp(query.until))
        where = and_(*conditions) if conditions else None
        columns = [c for c in analyses.c if c.name not in ("article_text", "document")]
        rows_query = select(*columns).order_by(analyses.c.created_at.desc(), analyses.c.id)
        count_query = select(func.count()).select_from(analyses)
        if where is not None:
            rows_query = rows_query.where(where)
            count_query = count_query.where(where)
        with self.engine.connect() as conn:
            total = conn.scalar(count_query) or 0
            rows = conn.execute(rows_query.limit(query.limit).offset(query.offset)).all()
            ids = [row.id for row in rows]
            technique_rows = (
                conn.execute(
                    select(analysis_techniques).where(analysis_techniques.c.analysis_id.in_(ids))
                ).all()
                if ids
                else []
            )
        counts: dict[str, dict[str, int]] = {i: {} for i in ids}
        for row in technique_rows:
            counts[row.analysis_id][row.technique] = row._mapping["count"]
        items = [
            HistoryItem(
                id=row.id,
                created_at=datetime.fromisoformat(row.created_at),
                title=row.title,
                site=row.site,
                url=row.url,
                language=row.language,
                source=StoredSource(kind=row.source_kind, location=row.location),
                input_hash=row.input_hash,
                technique_counts=dict(sorted(counts[row.id].items(), key=lambda kv: -kv[1])),
                narratives=row.narrative_count,
                flagged_share=row.flagged_share,
            )
            for row in rows
        ]
        return HistoryPage(items=items, total=total, limit=query.limit, offset=query.offset)

    def sites(self) -> list[str]:
        """Every site in the store, for the history's filter list."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(analyses.c.site).where(analyses.c.site.is_not(None)).distinct()
            ).all()
        return sorted(row.site for row in rows)

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.scalar(select(1))
        except SQLAlchemyError:
            return False
        return True

    def close(self) -> None:
        self.engine.dispose()

    def _where(self) -> str:
        # Never print a password from the URL.
        return self.engine.url.render_as_string(hide_password=True)


def _engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise StoreError(
            f"cannot open the store {url.split('@')[-1]!r}: {_reason(error)}"
        ) from None
    except OSError as error:
        raise StoreError(f"cannot create the store directory: {error.strerror}") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the history be read while an analysis is being written.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _reason(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__
