"""The analyses store: round trips, the history search, migrations, and concurrent writers.

Every test runs on SQLite and on PostgreSQL: SPINLENS_TEST_POSTGRES_URL names a server to use,
else a throw-away cluster is started when Debian's PostgreSQL (``/usr/lib/postgresql``) and
psycopg are installed; without either the PostgreSQL half is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from spinlens.model import Analysis, Article, Finding, NarrativeMatch, Source, Span
from spinlens.store import (
    MIGRATIONS,
    HistoryQuery,
    Store,
    StoreError,
    input_hash,
    parse_when,
    schema_version,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def make_analysis(
    body: str,
    *,
    title: str | None = None,
    site: str | None = None,
    techniques: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
) -> Analysis:
    """An analysis whose findings are the given phrases and whose narratives the given claims."""
    findings = []
    for phrase, name in (techniques or {}).items():
        start = body.index(phrase)
        findings.append(
            Finding(start=start, end=start + len(phrase), technique=name, score=0.8, text=phrase)
        )
    matches = [
        NarrativeMatch(
            claim_id=claim_id,
            title=claim_title,
            catalogue="test",
            score=0.7,
            evidence=[Span(start=0, end=min(5, len(body)))],
        )
        for claim_id, claim_title in (claims or {}).items()
    ]
    return Analysis(
        id=input_hash("text", body),
        source=Source(kind="text", location="pasted text"),
        article=Article(title=title, site=site, language="en", text=body),
        techniques=findings,
        narratives=matches,
    )


# -- PostgreSQL ---------------------------------------------------------------------------

_PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def _as_postgres_user(args: list[str]) -> list[str]:
    # initdb refuses to run as root; Debian's package creates the "postgres" account.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if url := os.environ.get("SPINLENS_TEST_POSTGRES_URL"):
        yield url
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed, so PostgreSQL is not tested")
    if not _PG_BIN or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip(
            "no PostgreSQL server here (apt-get install postgresql, or set "
            "SPINLENS_TEST_POSTGRES_URL)"
        )
    bin_dir = _PG_BIN[-1]
    root = Path(tempfile.mkdtemp(prefix="spinlens-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    run = {"check": True, "capture_output": True, "timeout": 60}
    subprocess.run(
        _as_postgres_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "spinlens",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        **run,
    )
    # Unix socket only: nothing listens on the network while the tests run.
    options = f"-k {sock} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        _as_postgres_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(root / "log"),
                "start",
            ]
        ),
        **run,
    )
    try:
        yield f"postgresql+psycopg://spinlens@/postgres?host={sock}"
    finally:
        subprocess.run(
            _as_postgres_user(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    # Each test starts from an empty database, like each SQLite test's fresh file.
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in ("analysis_techniques", "analysis_narratives", "analyses", "schema_version"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.close()


# -- Tests --------------------------------------------------------------------------------


def test_an_analysis_comes_back_exactly_as_saved(store: Store):
    analysis = make_analysis(
        "Évidemment, the « shameful » regime lies. 🙂",
        title="Les <b>mensonges</b>",
        site="Example.ORG",
        techniques={"shameful": "Loaded_Language", "regime": "Name_Calling,Labeling"},
        claims={"claim-1": "The regime is illegitimate"},
    )
    store.save(analysis, input_hash("text", "raw input"), now=T0)
    assert store.get(analysis.id) == analysis
    assert store.get("no-such-id") is None
    (item,) = store.search(HistoryQuery()).items
    assert item.title == "Les <b>mensonges</b>"
    assert item.site == "example.org"  # sites are matched case-insensitively
    assert item.input_hash == input_hash("text", "raw input")
    assert item.technique_counts == {"Loaded_Language": 1, "Name_Calling,Labeling": 1}
    assert item.narratives == 1
    assert item.created_at == T0


def test_analysing_the_same_article_again_replaces_it(store: Store):
    first = make_analysis("Same text.", techniques={"Same": "Doubt"})
    store.save(first, input_hash("text", "Same text."), now=T0)
    again = first.model_copy(update={"techniques": []})
    store.save(again, input_hash("html", "<p>Same text.</p>"), now=T0 + timedelta(hours=1))
    page = store.search(HistoryQuery())
    assert page.total == 1
    assert page.items[0].technique_counts == {}
    assert page.items[0].input_hash == input_hash("html", "<p>Same text.</p>")
    assert store.search(HistoryQuery(technique="Doubt")).total == 0


def _fill(store: Store) -> None:
    store.save(
        make_analysis(
            "Protests were financed from abroad, the minister said.",
            title="Riots in the capital",
            site="news.example",
            techniques={"financed from abroad": "Causal_Oversimplification"},
            claims={"ngo-foreign": "NGOs are foreign agents"},
        ),
        "h1",
        now=T0,
    )
    store.save(
        make_analysis(
            "A calm report on 100% renewable energy.",
            title="Energy",
            site="blog.example",
        ),
        "h2",
        now=T0 + timedelta(days=1),
    )
    store.save(
        make_analysis(
            "The traitors and their shameful lies about the harvest.",
            title="Harvest",
            site="news.example",
            techniques={"traitors": "Name_Calling,Labeling", "shameful": "Loaded_Language"},
            claims={"harvest-lie": "The harvest failure is invented"},
        ),
        "h3",
        now=T0 + timedelta(days=2),
    )


def _titles(store: Store, **filters: object) -> list[str | None]:
    return [i.title for i in store.search(HistoryQuery(**filters)).items]  # type: ignore[arg-type]


def test_history_filters(store: Store):
    _fill(store)
    assert _titles(store) == ["Harvest", "Energy", "Riots in the capital"]  # newest first
    assert _titles(store, q="FINANCED abroad") == ["Riots in the capital"]
    assert _titles(store, q="harvest lies") == ["Harvest"]  # title or text, every word
    assert _titles(store, q="100%") == ["Energy"]  # % is a character, not a wildcard
    assert _titles(store, q="_") == []
    assert _titles(store, technique="Loaded_Language") == ["Harvest"]
    assert _titles(store, narrative="ngo-foreign") == ["Riots in the capital"]
    assert _titles(store, narrative="foreign AGENTS") == ["Riots in the capital"]
    assert _titles(store, site="NEWS.example") == ["Harvest", "Riots in the capital"]
    assert _titles(store, since=T0 + timedelta(days=1)) == ["Harvest", "Energy"]
    assert _titles(store, until=T0 + timedelta(days=1)) == ["Riots in the capital"]
    assert _titles(store, site="news.example", technique="Loaded_Language") == ["Harvest"]
    assert store.sites() == ["blog.example", "news.example"]


def test_history_pages(store: Store):
    _fill(store)
    first = store.search(HistoryQuery(limit=2))
    second = store.search(HistoryQuery(limit=2, offset=2))
    assert (first.total, second.total) == (3, 3)
    assert [i.title for i in first.items + second.items] == [
        "Harvest",
        "Energy",
        "Riots in the capital",
    ]


def test_dates_and_days():
    assert parse_when("2024-03-01") == T0 - timedelta(hours=12)
    # A bare "until" day includes that whole day.
    assert parse_when("2024-03-01", end_of_day=True) == datetime(2024, 3, 2, tzinfo=UTC)
    assert parse_when("2024-03-01T12:00:00+02:00") == T0 - timedelta(hours=2)
    with pytest.raises(StoreError, match="not a date"):
        parse_when("yesterday")


def test_migrations_run_once_and_a_newer_schema_is_refused(store_url: str):
    store = Store(store_url)
    assert store.version() == len(MIGRATIONS)
    store.save(make_analysis("Kept across restarts."), "h")
    store.close()
    reopened = Store(store_url)  # a second start applies nothing and keeps the data
    with reopened.engine.connect() as conn:
        rows = conn.execute(text("SELECT version FROM schema_version")).all()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    assert reopened.search(HistoryQuery()).total == 1
    with reopened.engine.begin() as conn:
        conn.execute(insert(schema_version).values(version=len(MIGRATIONS) + 1, applied_at="2099"))
    reopened.close()
    with pytest.raises(StoreError, match="newer than this spinlens understands"):
        Store(store_url)


def test_concurrent_writers_lose_nothing(store: Store):
    def write(worker: int) -> None:
        for n in range(10):
            store.save(make_analysis(f"Article {worker}-{n}.", site=f"s{worker}.example"), "h")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.search(HistoryQuery()).total == 60
    assert store.search(HistoryQuery(site="s3.example")).total == 10


def test_an_unusable_database_is_one_clear_error(tmp_path: Path):
    with pytest.raises(StoreError, match="cannot open the store"):
        Store("nosuchdb://x")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError):
        Store(f"sqlite:///{blocker / 'store.db'}")


def test_the_default_store_lives_in_spinlens_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SPINLENS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SPINLENS_DATABASE_URL", raising=False)
    store = Store()
    store.save(make_analysis("Stored by default."), "h")
    store.close()
    assert (tmp_path / "home" / "spinlens.db").is_file()
