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
from itertools import islice
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from spinlens.config import home
from spinlens.errors import SpinlensError
from spinlens.narratives.vector_cache import (
    VectorCache,
    catalogue_slot,
    default_cache_dir,
    store_slot,
)

SCHEMA_VERSION = 1
STARTER_CATALOGUE = "spinlens-starter"
_LIST_FIELDS = ("countries", "keywords", "languages", "outlets")
_TEXT_FIELDS = ("title", "summary", "disproof", "date", "url", "source", "family")
# Claims merged and written per step of an import: whatever the file's size, an import holds
# about this many claims in memory (a few MB), not the whole file.
UPSERT_CHUNK = 2000


class CatalogueError(SpinlensError):
    """A catalogue file or store cannot be read or written."""


class UnknownCatalogue(CatalogueError):
    """No catalogue of that name is in the store."""


class ShippedCatalogue(CatalogueError):
    """The starter catalogue ships with spinlens: it is package data, not in the store."""


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
    over_limit: int = 0  # new claims left out: their catalogue held its limit of claims


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

    def upsert(self, claims: Iterable[Claim], limit: int | None = None) -> UpsertResult:
        """Add claims, merging each into the claim it duplicates; never drops stored content.

        Two claims of one catalogue are the same when their ids are equal, or when their
        normalised titles and dates are equal and at most one of them has a case page (``url``).
        Merged, a claim keeps its stored fields, gains the ones it lacked and the union of its
        lists. ``limit``: the most claims a catalogue may hold; a claim that would add one more
        is left out and counted (``over_limit``), while claims that merge go on merging.

        ``claims`` is read UPSERT_CHUNK at a time, each chunk merged and written before the
        next is read, so an import of any size holds little in memory; one transaction holds
        the whole import (all of it or none, an error of the reader included).
        """
        run = _Upsert(self, limit)
        try:
            with self._db:
                for chunk in _chunks(claims, UPSERT_CHUNK):
                    run.merge(chunk)
                if run.wrote:
                    revision = int(self._meta("revision") or 0) + 1
                    self._set_meta("revision", str(revision))
        except sqlite3.Error as exc:
            raise CatalogueError(f"cannot write catalogue store {self.path}: {exc}") from exc
        return run.result()

    def remove(self, catalogue: str) -> int:
        """Delete every claim of ``catalogue``; how many there were."""
        try:
            with self._db:
                deleted = self._db.execute("DELETE FROM claims WHERE catalogue = ?", (catalogue,))
                if deleted.rowcount:
                    revision = int(self._meta("revision") or 0) + 1
                    self._set_meta("revision", str(revision))
        except sqlite3.Error as exc:
            raise CatalogueError(f"cannot write catalogue store {self.path}: {exc}") from exc
        return max(deleted.rowcount, 0)

    def _count(self, catalogue: str) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM claims WHERE catalogue = ?", (catalogue,))
        return int(row.fetchone()[0])

    def _write(self, claims: list[Claim], removed: set[str]) -> None:
        """Within the caller's transaction."""
        insert = (
            f"INSERT OR REPLACE INTO claims ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
        )
        self._db.executemany("DELETE FROM claims WHERE id = ?", [(i,) for i in removed])
        self._db.executemany(insert, [_row(c) for c in claims])

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


class _Upsert:
    """One import's merging, chunk by chunk: what it added, updated and left out so far."""

    def __init__(self, store: CatalogueStore, limit: int | None) -> None:
        self.store = store
        self.limit = limit
        self.new_ids: set[str] = set()  # claims this import added (and did not merge away)
        self.updated_ids: set[str] = set()  # claims stored before this import, changed by it
        self.absorbed_stored = 0  # claims stored before, merged into a case page's claim
        self.unchanged = 0
        self.over_limit = 0
        # Claims without their page merged into a page's claim: merged into the catalogue's
        # other pages of the case too (EUvsDisinfo gives one case in several languages several
        # pages), in later chunks as well.
        self.absorbed: dict[tuple[str, str], list[Claim]] = {}
        self.sizes: dict[str, int] = {}  # claims per catalogue, as this import leaves them
        self.wrote = False

    def merge(self, claims: list[Claim]) -> None:
        store = self.store
        by_id: dict[str, Claim] = {}
        by_key: dict[tuple[str, str], list[str]] = {}
        stored: set[str] = set()  # ids that were in the store before this chunk
        changed: set[str] = set()
        removed: set[str] = set()

        def remember(found: list[Claim]) -> None:
            for claim in found:
                if claim.id not in by_id:
                    by_id[claim.id] = claim
                    stored.add(claim.id)

        for claim in claims:
            key = (claim.catalogue, claim.dedup_key())
            if key not in by_key:
                found = store._query("catalogue = ? AND dedup_key = ?", key)
                remember(found)
                by_key[key] = [c.id for c in found]
            if claim.id not in by_id:
                remember(store._query("id = ?", (claim.id,)))
            siblings = [i for i in by_key[key] if i not in removed]
            grows = True  # whether the claim would add one to its catalogue
            if claim.id in by_id:
                targets = [claim.id]
            elif claim.url is None:
                targets = siblings  # a case without its page: the same as every page of it
            else:
                # Cases seen before without their page become this case (and every other page
                # of it).
                pageless = [s for s in siblings if by_id[s].url is None]
                grows = not pageless
                if pageless:
                    self.absorbed.setdefault(key, []).extend(by_id[s] for s in pageless)
                removed.update(pageless)
                self._resize(claim.catalogue, -len(pageless))
                for old in self.absorbed.get(key, []):
                    claim = merge(old, claim).model_copy(update={"id": claim.id})
                targets = []
            if not targets:
                if grows and self._full(claim.catalogue):
                    self.over_limit += 1
                    continue
                self._resize(claim.catalogue, 1)
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
            self.unchanged += len(changed) == before
        written = changed - removed
        deleted = removed & stored
        if written or deleted:
            store._write([by_id[i] for i in written], deleted)
            self.wrote = True
        for i in deleted:
            if i in self.new_ids:
                self.new_ids.discard(i)  # added by an earlier chunk: as if never added
            else:
                self.absorbed_stored += 1
                self.updated_ids.discard(i)
        for i in written:
            if i not in stored:
                self.new_ids.add(i)
            elif i not in self.new_ids:
                self.updated_ids.add(i)

    def _full(self, catalogue: str) -> bool:
        return self.limit is not None and self._size(catalogue) >= self.limit

    def _size(self, catalogue: str) -> int:
        if catalogue not in self.sizes:
            self.sizes[catalogue] = self.store._count(catalogue)
        return self.sizes[catalogue]

    def _resize(self, catalogue: str, change: int) -> None:
        self.sizes[catalogue] = self._size(catalogue) + change

    def result(self) -> UpsertResult:
        return UpsertResult(
            added=len(self.new_ids) - self.absorbed_stored,
            updated=len(self.updated_ids) + self.absorbed_stored,
            unchanged=self.unchanged,
            over_limit=self.over_limit,
        )


def _chunks(items: Iterable[Claim], size: int) -> Iterator[list[Claim]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


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


def remove_catalogue(
    name: str, store_path: Path | None = None, cache_dir: Path | None = None
) -> int:
    """Delete catalogue ``name`` from the store at ``store_path`` (default: the user's) and its
    vectors from ``cache_dir`` (default: ``home()/cache``); how many claims it held.

    Matchers built before keep matching it until they are built again (the ``Spinlens`` core
    rebuilds its own). A name the store does not hold is an UnknownCatalogue that says what
    there is; the shipped starter catalogue is a ShippedCatalogue (both CatalogueErrors).
    """
    if name == STARTER_CATALOGUE:
        # Its families are package data (the matcher groups imported claims under them), not
        # rows of the store; leaving it out of matching is the catalogues setting's job.
        raise ShippedCatalogue(
            f"{STARTER_CATALOGUE} is shipped with spinlens and cannot be removed; to match "
            "without it, set the catalogues setting to the catalogues to match"
        )
    path = store_path if store_path is not None else default_store_path()
    counts: dict[str, int] = {}
    if path.exists():
        with CatalogueStore(path) as store:
            counts = store.counts()
            if name in counts:
                store.remove(name)
    if name not in counts:
        known = ", ".join(counts) or "none"
        raise UnknownCatalogue(f"no catalogue named {name!r} (there are: {known})")
    cache = VectorCache(cache_dir if cache_dir is not None else default_cache_dir())
    cache.drop(catalogue_slot(store_slot(path), name))
    return counts[name]
