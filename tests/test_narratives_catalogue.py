import re
import sqlite3
from pathlib import Path

import pytest

from spinlens.narratives.catalogue import (
    CatalogueError,
    CatalogueStore,
    Claim,
    default_store_path,
    starter_families,
)


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINLENS_HOME", str(tmp_path / "home"))


def claim(**fields: object) -> Claim:
    base: dict[str, object] = {"id": "t:1", "catalogue": "t", "title": "A claim"}
    return Claim.model_validate({**base, **fields})


def test_store_lives_in_spinlens_home(tmp_path: Path) -> None:
    with CatalogueStore() as store:
        store.upsert([claim()])
    assert default_store_path() == tmp_path / "home" / "catalogue.sqlite3"
    assert default_store_path().is_file()


def test_claims_round_trip_with_all_fields(tmp_path: Path) -> None:
    full = claim(
        summary="Longer text.",
        disproof="It is false.",
        date="2020-01-02",
        countries=["Latvia", "Estonia"],
        keywords=["NGO"],
        languages=["Russian"],
        outlets=["Example TV"],
        url="https://example.org/case",
        source="https://example.org/source",
        family="foreign-funded-agents",
    )
    with CatalogueStore(tmp_path / "c.sqlite3") as store:
        store.upsert([full])
    with CatalogueStore(tmp_path / "c.sqlite3") as store:
        assert store.claims() == [full]
        assert store.counts() == {"t": 1}


def test_version_changes_only_when_content_does(tmp_path: Path) -> None:
    with CatalogueStore(tmp_path / "c.sqlite3") as store:
        v0 = store.version
        store.upsert([claim()])
        v1 = store.version
        store.upsert([claim()])
        assert store.version == v1 != v0
        store.upsert([claim(summary="new detail")])
        assert store.version != v1
    # Two stores never share a version, so their caches never mix.
    with CatalogueStore(tmp_path / "other.sqlite3") as other:
        assert other.version != v0


def test_merge_fills_gaps_and_never_loses_content(tmp_path: Path) -> None:
    with CatalogueStore(tmp_path / "c.sqlite3") as store:
        store.upsert([claim(summary="first", keywords=["a"])])
        result = store.upsert([claim(summary="second", disproof="debunk", keywords=["b"])])
        (merged,) = store.claims()
    assert (result.added, result.updated) == (0, 1)
    assert merged.summary == "first" and merged.disproof == "debunk"
    assert merged.keywords == ["a", "b"]


def test_case_without_page_joins_the_case_with_its_page(tmp_path: Path) -> None:
    pageless = claim(id="t:x", title="Same Claim!", date="2020-01-01", summary="what was said")
    paged = claim(id="t:y", title="same claim", date="2020-01-01", url="https://e.org/y")
    for order in ([pageless, paged], [paged, pageless]):
        with CatalogueStore(tmp_path / f"{order[0].id}.sqlite3") as store:
            store.upsert(order[:1])
            store.upsert(order[1:])
            (only,) = store.claims()
        assert only.id == "t:y" and only.url and only.summary == "what was said"


def test_different_dates_stay_different_claims(tmp_path: Path) -> None:
    with CatalogueStore(tmp_path / "c.sqlite3") as store:
        result = store.upsert(
            [claim(id="t:1", date="2020-01-01"), claim(id="t:2", date="2021-01-01")]
        )
        assert result.added == 2 and len(store.claims()) == 2


def test_foreign_schema_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    CatalogueStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(CatalogueError, match="schema 99"):
        CatalogueStore(path)


def test_unwritable_store_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CatalogueError, match="cannot open catalogue store"):
        CatalogueStore(blocker / "c.sqlite3")


def test_starter_catalogue_has_30_to_60_distinct_families() -> None:
    families = starter_families()
    assert 30 <= len(families) <= 60
    assert len({f.id for f in families}) == len(families)
    ids = {f.id for f in families}
    assert {"colour-revolution", "foreign-funded-agents", "foreign-militants"} <= ids
    assert all(len(f.phrasings) >= 3 and f.description for f in families)


def test_every_starter_family_is_written_in_russian_too() -> None:
    cyrillic = re.compile(r"[а-яё]", re.IGNORECASE)
    for family in starter_families():
        russian = family.translations["ru"]
        # One translation per English text, so a Russian article meets the whole family.
        assert len(russian.phrasings) == len(family.phrasings), family.id
        assert len(russian.counterexamples) == len(family.counterexamples), family.id
        texts = [russian.title, russian.description, *russian.phrasings, *russian.counterexamples]
        assert all(cyrillic.search(text) for text in texts), family.id
        both = family.in_every_language()
        assert len(both.phrasings) == 2 * len(family.phrasings) + 2
        assert both.translations == {}
