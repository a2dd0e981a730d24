"""The one core object: :class:`Spinlens`.

Like datasette's ``Datasette``, it is built once from one :class:`~spinlens.config.Settings` and
owns everything an analysis needs: the pipeline (models loaded lazily, once), the store of
analyses and the catalogues of known claims. The CLI, the web UI, the REST API, the batch
engines and notebooks are thin faces of it::

    from spinlens import Spinlens

    sl = Spinlens(narratives=False)            # settings as keyword arguments
    analysis = sl.analyze("https://example.com/news/1")
    print(analysis.summary)
    analysis.to_html()

What ``analyze(source)`` reads (``kind="auto"``, the default):

- a :class:`pathlib.Path`: that file;
- a string that is one http(s) URL (one line, no spaces): that page, fetched;
- a string of one line that names an existing file: that file;
- any other string: the text itself. A one-line string ending in a document's extension
  (``notes.txt``) that names no file is refused rather than analysed as two words.

``kind="text"`` (or ``analyze_text``), ``"html"``, ``"url"`` (``analyze_url``) and ``"file"``
(``analyze_file``) say it outright. Bad input raises :class:`~spinlens.errors.SpinlensError`
(or a subclass) whose message is the one line the CLI prints.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import spinlens.model as model
from spinlens.config import Settings
from spinlens.errors import IngestError, SpinlensError, UsageError
from spinlens.ingest import document_of, fetch_url, iter_documents
from spinlens.ingest.submission import SubmissionKind
from spinlens.model import Document, Failure, NarrativeMatch
from spinlens.narratives import CatalogueStore, EmbeddingMatcher, starter_families
from spinlens.narratives.catalogue import STARTER_CATALOGUE, remove_catalogue
from spinlens.narratives.importers import ImportReport, import_file
from spinlens.pipeline import NarrativeMatcher, Pipeline
from spinlens.report import render
from spinlens.store import HistoryPage, HistoryQuery, Store, input_hash
from spinlens.techniques.detectors import load_detector

SourceKind = Literal["auto", "url", "html", "text", "file"]

_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
# A one-line string ending like a document's name: a path, most likely mistyped.
_DOCUMENT_NAME = re.compile(r"^\S+\.(txt|html?|xhtml|jsonl|warc|warc\.gz)$", re.IGNORECASE)
# Longer than any path a system accepts: surely text.
_MAX_PATH = 4096


class Analysis(model.Analysis):
    """One analysis (the ``spinlens.analysis/v1`` data) with its reports.

    Every report is a pure function of the analysis: the same analysis renders byte for byte the
    same, whenever and wherever it is rendered.
    """

    @classmethod
    def of(cls, analysis: model.Analysis) -> Analysis:
        """The same analysis, with the report methods (no copy of its data is validated again)."""
        if isinstance(analysis, cls):
            return analysis
        return cls.model_construct(analysis.model_fields_set, **dict(analysis))

    def to_json(self) -> str:
        """The ``spinlens.analysis/v1`` JSON document."""
        return render(self, "json")

    def to_html(self) -> str:
        """A self-contained HTML page: the article with its passages highlighted."""
        return render(self, "html")

    def to_markdown(self) -> str:
        return render(self, "md")

    def to_text(self, *, color: bool = False, width: int = 100) -> str:
        """The report the terminal shows."""
        return render(self, "text", color=color, width=width)


@dataclass(frozen=True)
class Submission:
    """What a user handed in: a URL, pasted text or HTML, or a file's bytes and name."""

    kind: SubmissionKind
    content: str | bytes
    name: str | None = None  # a file's name
    content_type: str | None = None  # what the sender said the bytes are, when it said

    @property
    def digest(self) -> str:
        """SHA-256 of what was given, kept with the analysis in the store."""
        return input_hash(self.kind, self.content)


class NarrativeSearch(Protocol):
    """What searching the catalogue needs of a matcher (EmbeddingMatcher is one)."""

    def search(self, queries: list[str], top: int = 10) -> list[list[NarrativeMatch]]: ...


class Spinlens:
    """The core: settings, pipeline, store and catalogues; see the module's docstring.

    ``Spinlens(**settings)`` takes any :class:`~spinlens.config.Settings` field as a keyword
    (flags > ``SPINLENS_*`` variables > defaults); ``Spinlens(settings)`` takes them whole.
    ``pipeline``, ``store`` and ``fetch`` replace what would be built from the settings (tests,
    benchmarks, a server that loads them before binding its port); ``catalogue_path`` is
    another catalogue store than the settings' (``spinlens narratives ... --store``).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        /,
        *,
        pipeline: Pipeline | None = None,
        store: Store | None = None,
        fetch: Callable[..., Document] = fetch_url,
        catalogue_path: Path | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = Settings.from_env(**overrides)
        elif overrides:
            settings = settings.replace(**overrides)
        self.settings = settings
        self.catalogue_path = catalogue_path or settings.catalogue_path
        self._fetch = fetch
        self._store = store
        self._owns_store = store is None
        self._lock = threading.RLock()
        self._matchers: list[NarrativeMatcher] | None = None
        self._searcher: NarrativeSearch | None = None
        # Pipelines by (techniques model, sensitivity); all share the matchers.
        self._pipelines: dict[tuple[str | None, str | None], Pipeline] = {}
        if pipeline is not None:
            self._pipelines[self._default_key()] = pipeline
            self._matchers = pipeline.matchers

    def __enter__(self) -> Spinlens:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store this object opened (one given to it stays open)."""
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None

    # -- what is loaded, once --------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store of analyses (opened, and migrated, on first use)."""
        with self._lock:
            if self._store is None:
                self._store = Store(self.settings.store_url)
            return self._store

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline of the settings' models (loaded on first use)."""
        return self.pipeline_for()

    def pipeline_for(
        self, techniques_model: str | None = None, sensitivity: str | None = None
    ) -> Pipeline:
        """The pipeline with this technique model and sensitivity (default: the settings'),
        loaded once; every pipeline shares the narrative matchers."""
        model_name = techniques_model or self.settings.techniques_model
        level = sensitivity or self.settings.sensitivity
        with self._lock:
            pipeline = self._pipelines.get((model_name, level))
            if pipeline is None:
                detector = load_detector(model_name, level) if level else load_detector(model_name)
                pipeline = Pipeline(detector=detector, matchers=self._matcher_list())
                self._pipelines[(model_name, level)] = pipeline
            return pipeline

    def load(self) -> None:
        """Open the store and load the default models now: a server does this before it binds
        its port, so a broken model or database fails with one line instead of later."""
        self.store.ping()
        self.pipeline  # noqa: B018 - loads the models

    def _default_key(self) -> tuple[str | None, str | None]:
        return (self.settings.techniques_model, self.settings.sensitivity)

    def _matcher_list(self) -> list[NarrativeMatcher]:
        with self._lock:
            if self._matchers is None:
                self._matchers = [self._new_matcher()] if self.settings.narratives else []
            return self._matchers

    def _new_matcher(self) -> EmbeddingMatcher:
        return EmbeddingMatcher(
            store_path=self.catalogue_path,
            catalogues=self.settings.catalogues,
            cache_dir=self.settings.cache_dir,
        )

    def models(self) -> dict[str, str]:
        """The models analyses are made with, by role, named exactly as an analysis of an
        English article records them (its ``models``): /healthz and ``spinlens version`` show
        this."""
        return self.pipeline.models_for("en")

    # -- analysing -------------------------------------------------------------------------

    def analyze(self, source: str | Path | bytes, *, kind: SourceKind = "auto") -> Analysis:
        """One document: a URL, a path or text (see the module's docstring for the rule)."""
        resolved = kind
        try:
            resolved = kind if kind != "auto" else _kind_of(source)
            items = iter(self._documents_of(source, resolved))
        except SpinlensError as error:
            # A file or a page is named in the line, as the CLI names it; a paste is not.
            if resolved in ("file", "url", "auto"):
                raise _with_location(error, _location(source)) from None
            raise
        first = next(items, None)
        if first is None:
            raise IngestError(f"{_location(source)}: no document to analyse")
        if next(items, None) is not None:
            raise UsageError(f"{_location(source)} holds several documents: use analyze_many")
        if isinstance(first, Failure):
            raise IngestError(f"{first.location}: {first.reason}")
        try:
            return self.analyze_document(first)
        except SpinlensError as error:
            # The line the CLI prints: where, then why.
            raise _with_location(error, first.source.location) from None

    def analyze_text(self, text: str) -> Analysis:
        """Article text, e.g. a page's visible text copied and pasted."""
        return self.analyze(text, kind="text")

    def analyze_html(self, html: str) -> Analysis:
        return self.analyze(html, kind="html")

    def analyze_url(self, url: str) -> Analysis:
        """A web page, fetched (public addresses only unless ``allow_private``)."""
        return self.analyze(url, kind="url")

    def analyze_file(self, path: str | Path) -> Analysis:
        return self.analyze(Path(path), kind="file")

    def analyze_many(
        self, sources: Iterable[str | Path | bytes], *, kind: SourceKind = "auto"
    ) -> Iterator[Analysis | Failure]:
        """Each source's documents analysed, lazily, in order: a directory, a .jsonl or a WARC
        file gives one per document. A source that cannot be read or analysed becomes a
        :class:`~spinlens.model.Failure` with the CLI's one-line reason; the rest go on."""
        for source in sources:
            try:
                items = self._documents_of(source, kind)
            except SpinlensError as error:
                yield Failure(location=_location(source), reason=str(error))
                continue
            yield from self.analyze_documents(items)

    def documents(
        self, locations: Iterable[str], *, stdin: BinaryIO | None = None
    ) -> Iterator[Document | Failure]:
        """What the command line names (URLs, files, directories, .jsonl, WARC, ``-``), read
        with the settings' limits; one Failure per source or record that cannot be read."""
        return iter_documents(
            list(locations),
            allow_private=self.settings.allow_private,
            max_bytes=self.settings.max_bytes,
            stdin=stdin,
        )

    def analyze_documents(
        self, items: Iterable[Document | Failure]
    ) -> Iterator[Analysis | Failure]:
        """Each document analysed; one that fails becomes a Failure and the rest go on."""
        for item in items:
            if isinstance(item, Failure):
                yield item
                continue
            try:
                yield self.analyze_document(item)
            except SpinlensError as error:
                yield Failure(location=item.source.location, reason=str(error))
            except Exception as error:  # noqa: BLE001 - one bad document must not stop a batch
                yield Failure(
                    location=item.source.location,
                    reason=f"internal error ({type(error).__name__}: {error}); please report it",
                )

    def analyze_document(
        self,
        document: Document,
        *,
        techniques_model: str | None = None,
        sensitivity: str | None = None,
    ) -> Analysis:
        """One ingested document through the pipeline; raises SpinlensError."""
        pipeline = self.pipeline_for(techniques_model, sensitivity)
        return Analysis.of(pipeline.analyze(document))

    def analyze_submission(
        self,
        submission: Submission,
        *,
        save: bool = False,
        techniques_model: str | None = None,
        sensitivity: str | None = None,
    ) -> Analysis:
        """What a user handed the web UI or the API; ``save`` keeps it in the store."""
        analysis = self.analyze_document(
            self.document(submission), techniques_model=techniques_model, sensitivity=sensitivity
        )
        if save:
            self.store.save(analysis, submission.digest)
        return analysis

    def document(self, submission: Submission) -> Document:
        """The Document for a submission, read as every face reads it (``ingest.document_of``);
        URLs only through the SSRF-guarded fetcher."""
        settings = self.settings
        return document_of(
            submission.kind,
            submission.content,
            name=submission.name,
            content_type=submission.content_type,
            allow_private=settings.allow_private,
            max_bytes=settings.max_bytes,
            timeout=settings.fetch_timeout,
            fetch=self._fetch,
        )

    def _documents_of(
        self, source: str | Path | bytes, kind: SourceKind
    ) -> Iterable[Document | Failure]:
        resolved = kind if kind != "auto" else _kind_of(source)
        if resolved == "file" and not isinstance(source, bytes):
            return self.documents([str(source)])
        if isinstance(source, bytes):
            return [self.document(Submission("file", source, name="bytes"))]
        return [self.document(Submission(resolved, str(source)))]

    # -- the catalogues --------------------------------------------------------------------

    def import_catalogue(
        self,
        source: str | Path | bytes,
        *,
        name: str | None = None,
        format: str | None = None,
        catalogue: str | None = None,
    ) -> ImportReport:
        """Merge a catalogue file (a path, or its bytes and ``name``) into the catalogue store;
        analyses and searches from now on match its claims, with every setting kept."""
        if isinstance(source, bytes):
            report = self._import_bytes(source, name or "catalogue.csv", format, catalogue)
        else:
            with CatalogueStore(self.catalogue_path) as catalogues:
                report = import_file(catalogues, Path(source), format, catalogue)
        if report.added or report.updated:
            self._reload_catalogues()
        return report

    def _import_bytes(
        self, data: bytes, name: str, format: str | None, catalogue: str | None
    ) -> ImportReport:
        with tempfile.TemporaryDirectory(prefix="spinlens-import-") as folder:
            # The file keeps its name: a CSV's catalogue is named after it by default.
            path = Path(folder) / name
            path.write_bytes(data)
            try:
                with CatalogueStore(self.catalogue_path) as catalogues:
                    return import_file(catalogues, path, format, catalogue)
            except SpinlensError as error:
                # Name the file as the user did, not our temporary copy.
                raise type(error)(str(error).replace(str(path), name)) from None

    def catalogues(self) -> dict[str, int]:
        """The catalogues matched against, with their sizes: the shipped starter catalogue
        (:data:`STARTER_CATALOGUE`, its narrative families) first, then each imported one
        (its claims), by name."""
        imported: dict[str, int] = {}
        if self.catalogue_path.exists():  # reading never creates a store
            with CatalogueStore(self.catalogue_path) as catalogues:
                imported = catalogues.counts()
        return {STARTER_CATALOGUE: len(starter_families()), **imported}

    def remove_catalogue(self, name: str) -> int:
        """Remove an imported catalogue (its claims and cached vectors); how many claims it
        held. Analyses and searches from now on no longer match it. An unknown name raises
        :class:`~spinlens.narratives.catalogue.UnknownCatalogue`; the shipped starter catalogue
        cannot be removed (:class:`~spinlens.narratives.catalogue.ShippedCatalogue`: leave it
        out of matching with the ``catalogues`` setting instead)."""
        with self._lock:
            removed = remove_catalogue(name, self.catalogue_path, self.settings.cache_dir)
            self._reload_catalogues()
        return removed

    def _reload_catalogues(self) -> None:
        """Matchers and the search read the catalogue store again, keeping their settings (the
        thresholds, the chosen catalogues, the store, the loaded encoders)."""
        with self._lock:
            if self._matchers is not None:
                self._matchers = [_reloaded(m) for m in self._matchers]
                for pipeline in self._pipelines.values():
                    pipeline.matchers = list(self._matchers)
            if self._searcher is not None:
                self._searcher = _reloaded(self._searcher)

    def search(self, query: str, top: int = 10) -> list[NarrativeMatch]:
        """The ``top`` documented claims and narrative families closest in meaning to
        ``query``, best first."""
        (matches,) = self._search_matcher().search([query], top)
        return matches

    def _search_matcher(self) -> NarrativeSearch:
        """The pipeline's matcher when it can search (one encoder in memory), else one built
        from the settings on first use."""
        with self._lock:
            for matcher in self._matchers or ():
                if hasattr(matcher, "search"):
                    searcher: NarrativeSearch = matcher  # type: ignore[assignment]
                    return searcher
            if self._searcher is None:
                self._searcher = self._new_matcher()
            return self._searcher

    # -- the stored analyses ---------------------------------------------------------------

    def history(self, query: HistoryQuery | None = None, **filters: Any) -> HistoryPage:
        """Stored analyses, newest first: ``history(technique="Doubt", site="example.com")``
        (filters: q, technique, narrative, site, since, until, limit, offset)."""
        return self.store.search(query if query is not None else HistoryQuery(**filters))

    def get(self, analysis_id: str) -> Analysis | None:
        """A stored analysis by its id, or None."""
        found = self.store.get(analysis_id)
        return Analysis.of(found) if found is not None else None

    def sites(self) -> list[str]:
        """The sites of the stored analyses (for the history's filter)."""
        return self.store.sites()


def _kind_of(source: str | Path | bytes) -> SubmissionKind:
    """The rule of ``analyze(source)`` for ``kind="auto"`` (see the module's docstring)."""
    if isinstance(source, Path | bytes):
        return "file"
    line = source.strip()
    if _URL.match(line):
        return "url"
    if "\n" not in line and 0 < len(line) < _MAX_PATH:
        path = Path(line)
        try:
            if path.exists():
                return "file"
        except OSError:  # a name too long for this system: text
            return "text"
        if _DOCUMENT_NAME.match(line):
            raise IngestError(
                "no such file (to analyse these words, use analyze_text or kind='text')"
            )
    return "text"


def _location(source: str | Path | bytes) -> str:
    if isinstance(source, bytes):
        return "bytes"
    text = str(source)
    return text if len(text) <= 80 and "\n" not in text else "pasted text"


def _with_location(error: SpinlensError, location: str) -> SpinlensError:
    try:
        return type(error)(f"{location}: {error}")
    except TypeError:  # a subclass with another constructor
        return SpinlensError(f"{location}: {error}")


def _reloaded(matcher: Any) -> Any:
    """A matcher over the catalogue store as it is now; a matcher that reads no store stays."""
    reloaded = getattr(matcher, "reloaded", None)
    return reloaded() if callable(reloaded) else matcher
