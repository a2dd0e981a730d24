"""Documented claims and narrative families, and the local SQLite store that keeps them.

A *claim* is one documented statement (an EUvsDisinfo case, a fact-check, a line of a team's
own list). A *family* is a recurring narrative that many claims instantiate ("protests are a
Western-orchestrated colour revolution"); spinlens ships its own families (the starter
catalogue, package data) and imported claims are grouped under them by the matcher.

The store is one SQLite file (default ``home()/catalogue.sqlite3``). Its ``version`` changes on
every import that changes anything, so caches built from the catalogue know when to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from spinlens.config import home
from spinlens.errors import SpinlensError

SCHEMA_VERSION = 1
STARTER_CATALOGUE = "spinlens-starter"
_LIST_FIELDS = ("countries", "keywords", "languages", "outlets")
_TEXT_FIELDS = ("title", "summary", "disproof", "date", "url", "source", "family")


class CatalogueError(SpinlensError):
    """A catalogue file or store cannot be read or written."""


class Claim(BaseModel):
    """One documented claim: what was said, where, and the debunk when one is known."""

    id: str
    catalogue: str
    title: str  # the claim in one line
    summary: str | None = None  # what the disinformation said, at more length
    disproof: str | None = None
    date: str | None = None  # YYYY-MM-DD
    countries: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    outlets: list[str] = Field(default_factory=list)
    url: str | None = None  # the case or fact-check page
    source: str | None = None  # where the claim itself was published, when known
    family: str | None = None

    def dedup_key(self) -> str:
        """Claims with the same key in one catalogue are one claim seen twice."""
        return f"{normalize_title(self.title)}|{self.date or ''}"


class FamilyText(BaseModel):
    """A family's texts in another language."""

    title: str
    description: str
    phrasings: list[str] = Field(min_length=1)
    counterexamples: list[str] = Field(default_factory=list)


class Family(BaseModel):
    """A recurring narrative: a description and typical phrasings of it, in our own words."""

    id: str
    title: str
    description: str
    phrasings: list[str] = Field(min_length=1)
    # Plain statements on the family's topic that do not tell its narrative ("protests broke
    # out over fuel prices" for the colour revolution): a passage that reads more like these
    # than like the family is reporting, not the narrative; nor, when it reads more like any
    # family's counterexample than like a claim, that claim (matcher.CatalogueIndex.scores).
    counterexamples: list[str] = Field(default_factory=list)
    # The same texts in other languages (ISO 639-1 code -> texts), our translations. The
    # multilingual encoder matches an article against the family in its own language as well as
    # in English: USE puts a Russian sentence nearer a Russian paraphrase than an English one
    # (docs/benchmarks.md, "Narrative matching across languages").
    translations: dict[str, FamilyText] = Field(default_factory=dict)

    def in_every_language(self) -> Family:
        """This family with its translations' texts as further phrasings and counterexamples."""
        other = self.translations.values()
        return self.model_copy(
            update={
                "phrasings": [
                    *self.phrasings,
                    *(text for t in other for text in (t.title, t.description, *t.phrasings)),
                ],
                "counterexamples": [
                    *self.counterexamples,
                    *(text for t in other for text in t.counterexamples),
                ],
                "translations": {},
            }
        )


def normalize_title(text: str) -> str:
    """Case, punctuation and spacing never make two claims different."""
    return re.sub(r"\W+", " ", text.casefold()).strip()


def slugify(text: str, limit: int = 80) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")[:limit].rstrip("-")


@lru_cache(maxsize=1)
def starter_families() -> tuple[Family, ...]:
    """The narrative families shipped in src/spinlens/data/starter_narratives.json."""
    raw = resources.files("spinlens").joinpath("data/starter_narratives.json").read_text("utf-8")
    try:
        return tuple(Family.model_validate(f) for f in json.loads(raw)["families"])
    except (ValueError, KeyError, ValidationError) as exc:
        raise CatalogueError(f"the shipped starter catalogue is invalid: {exc}") from exc


def starter_digest() -> str:
    """Changes whenever the shipped families do (part of the embeddings cache key)."""
    payload = json.dumps([f.model_dump() for f in starter_families()], sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


@dataclass
class UpsertResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY,
    catalogue TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT, disproof TEXT, date TEXT, url TEXT, source TEXT, family TEXT,
    countries TEXT NOT NULL, keywords TEXT NOT NULL, languages TEXT NOT NULL,
    outlets TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_dedup ON claims (catalogue, dedup_key);
"""
_COLUMNS = ("id", "catalogue", "dedup_key", *_TEXT_FIELDS, *_LIST_FIELDS)


def default_store_path() -> Path:
    return home() / "catalogue.sqlite3"


class CatalogueStore:
    """Imported claims, kept in one SQLite file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_store_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
            schema = self._meta("schema_version")
            if schema is None:
                with self._db:
                    self._set_meta("schema_version", str(SCHEMA_VERSION))
                    self._set_meta("store_id", uuid.uuid4().hex)
                    self._set_meta("revision", "0")
            elif schema != str(SCHEMA_VERSION):
                raise CatalogueError(
                    f"{self.path} has catalogue schema {schema}; this spinlens reads "
                    f"{SCHEMA_VERSION}: import again into a new store"
                )
        except (sqlite3.Error, OSError) as exc:
            raise CatalogueError(f"cannot open catalogue store {self.path}: {exc}") from exc

    def __enter__(self) -> CatalogueStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @property
    def version(self) -> str:
        """Unique to this store and its content: a new value after every change."""
        return f"{self._meta('store_id')}.{self._meta('revision')}"

    def counts(self) -> dict[str, int]:
        """Number of claims per catalogue."""
        rows = self._db.execute(
            "SELECT catalogue, COUNT(*) FROM claims GROUP BY catalogue ORDER BY catalogue"
        )
        return {name: n for name, n in rows}

    def claims(self, catalogue: str | None = None) -> list[Claim]:
        return list(self._iter_claims(catalogue))

    def upsert(self, claims: Iterable[Claim]) -> UpsertResult:
        """Add claims, merging each into the claim it duplicates; never drops stored content.

        Two claims of one catalogue are the same when their ids are equal, or when their
        normalised titles and dates are equal and at most one of them has a case page (``url``).
        Merged, a claim keeps its stored fields, gains the ones it lacked and the union of its
        lists.
        """
        by_id: dict[str, Claim] = {}
        by_key: dict[tuple[str, str], list[str]] = {}
        stored: set[str] = set()  # ids that were in the store before this import
        changed: set[str] = set()
        removed: set[str] = set()
        absorbed: dict[tuple[str, str], list[Claim]] = {}
        unchanged = 0

        def remember(found: list[Claim]) -> None:
            for claim in found:
                if claim.id not in by_id:
                    by_id[claim.id] = claim
                    stored.add(claim.id)

        for claim in claims:
            key = (claim.catalogue, claim.dedup_key())
            if key not in by_key:
                found = self._query("catalogue = ? AND dedup_key = ?", key)
                remember(found)
                by_key[key] = [c.id for c in found]
            if claim.id not in by_id:
                remember(self._query("id = ?", (claim.id,)))
            siblings = [i for i in by_key[key] if i not in removed]
            if claim.id in by_id:
                targets = [claim.id]
            elif claim.url is None:
                targets = siblings  # a case without its page: the same as every page of it
            else:
                # Cases seen before without their page become this case (and every other page
                # of it: EUvsDisinfo gives one case in several languages several pages).
                pageless = [s for s in siblings if by_id[s].url is None]
                absorbed.setdefault(key, []).extend(by_id[s] for s in pageless)
                removed.update(pageless)
                for old in absorbed.get(key, []):
                    claim = merge(old, claim).model_copy(update={"id": claim.id})
                targets = []
            if not targets:
                by_id[claim.id] = claim
                by_key[key].append(claim.id)
                changed.add(claim.id)
                continue
            before = len(changed)
            for target in targets:
                merged = merge(by_id[target], claim)
                if merged != by_id[target]:
                    by_id[target] = merged
                    changed.add(target)
            unchanged += len(changed) == before
        self._write([by_id[i] for i in changed - removed], removed & stored)
        n_absorbed = len(removed & stored)
        return UpsertResult(
            added=len(changed - removed - stored) - n_absorbed,
            updated=len((changed & stored) - removed) + n_absorbed,
            unchanged=unchanged,
        )

    def _write(self, claims: list[Claim], removed: set[str]) -> None:
        if not claims and not removed:
            return
        rows = [_row(c) for c in claims]
        insert = (
            f"INSERT OR REPLACE INTO claims ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
        )
        try:
            with self._db:  # one transaction: all of an import or none of it
                self._db.executemany("DELETE FROM claims WHERE id = ?", [(i,) for i in removed])
                self._db.executemany(insert, rows)
                revision = int(self._meta("revision") or 0) + 1
                self._set_meta("revision", str(revision))
        except sqlite3.Error as exc:
            raise CatalogueError(f"cannot write catalogue store {self.path}: {exc}") from exc

    def _query(self, where: str, args: tuple[str, ...]) -> list[Claim]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM claims WHERE {where}"
        return [_claim(r) for r in self._db.execute(sql, args)]

    def _iter_claims(self, catalogue: str | None) -> Iterator[Claim]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM claims"
        args: tuple[str, ...] = ()
        if catalogue is not None:
            sql += " WHERE catalogue = ?"
            args = (catalogue,)
        for row in self._db.execute(sql + " ORDER BY catalogue, date DESC, id", args):
            yield _claim(row)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def merge(old: Claim, new: Claim) -> Claim:
    """``old`` with its empty fields filled from ``new`` and the union of both lists.

    Stored values win so that importing the two EUvsDisinfo layouts again, in any order, changes
    nothing (their titles differ in typography) and caches stay valid.
    """
    data = old.model_dump()
    for name in _TEXT_FIELDS:
        if not data[name]:
            data[name] = getattr(new, name)
    for name in _LIST_FIELDS:
        data[name] = list(dict.fromkeys([*getattr(old, name), *getattr(new, name)]))
    return Claim.model_validate(data)


def _row(claim: Claim) -> tuple[str | None, ...]:
    return (
        claim.id,
        claim.catalogue,
        claim.dedup_key(),
        *(getattr(claim, name) for name in _TEXT_FIELDS),
        *(json.dumps(getattr(claim, name), ensure_ascii=False) for name in _LIST_FIELDS),
    )


def _claim(row: tuple[str | None, ...]) -> Claim:
    data = dict(zip(_COLUMNS, row, strict=True))
    data.pop("dedup_key")
    for name in _LIST_FIELDS:
        data[name] = json.loads(data[name] or "[]")
    return Claim.model_validate(data)
