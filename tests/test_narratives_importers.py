from pathlib import Path

import pytest

from spinlens.narratives.catalogue import CatalogueError, CatalogueStore
from spinlens.narratives.importers import detect_format, import_file, read_claims

from .narrative_fixtures import FIXTURES, write_claimreview_feed

SEMICOLON = FIXTURES / "euvsdisinfo_disproofs.csv"
COMMA = FIXTURES / "euvsdisinfo_cases.csv"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "euvsdisinfo"


@pytest.fixture
def store(tmp_path: Path) -> CatalogueStore:
    return CatalogueStore(tmp_path / "c.sqlite3")


def test_semicolon_layout_reads_summaries_disproofs_and_reports_bad_dates() -> None:
    claims, bad = read_claims(SEMICOLON, "euvsdisinfo", "euvsdisinfo")
    assert [b.line for b in bad] == [6]
    assert "not DD.MM.YYYY" in bad[0].reason or "does not exist" in bad[0].reason
    riga = claims[0]
    assert riga.date == "2016-03-12" and riga.title.startswith("Foreign NGOs paid students")
    assert riga.summary and riga.summary.startswith("Students marching in Riga")
    assert (
        riga.disproof
        == "No evidence was offered. The student union organised the march\nover tuition fees."
    )
    assert riga.countries == ["Latvia"] and riga.keywords == ["Protest", "NGO"]
    gas = claims[-1]
    assert gas.countries == ["Moldova", "Romania"] and gas.outlets == ["Example Radio"]


def test_comma_layout_reads_case_pages_and_plus_joined_lists() -> None:
    claims, bad = read_claims(COMMA, "euvsdisinfo", "euvsdisinfo")
    assert [b.line for b in bad] == [5] and "not a case page" in bad[0].reason
    first = claims[0]
    assert first.id == "euvsdisinfo:foreign-ngos-paid-students-to-protest-in-riga"
    assert first.url and first.url.startswith("https://euvsdisinfo.example/report/")
    assert first.outlets == ["Example Daily", "Example TV"]


@pytest.mark.parametrize("order", [(SEMICOLON, COMMA), (COMMA, SEMICOLON)])
def test_both_layouts_deduplicate_into_one_claim_per_case(
    store: CatalogueStore, order: tuple[Path, Path]
) -> None:
    for path in order:
        import_file(store, path)
    claims = {c.id: c for c in store.claims()}
    # Riga (two pages: two languages), the Moon landing, Moldova's gas (no page).
    assert len(claims) == 4
    riga = claims["euvsdisinfo:foreign-ngos-paid-students-to-protest-in-riga"]
    assert riga.summary and riga.disproof and riga.url
    assert claims["euvsdisinfo:foreign-ngos-paid-students-to-protest-in-riga-2"].disproof
    version = store.version
    for path in order:  # importing again changes nothing
        report = import_file(store, path)
        assert report.added == report.updated == 0
    assert store.version == version


def test_claimreview_json_ld() -> None:
    claims, bad = read_claims(FIXTURES / "claimreview.jsonld", "claimreview", "claimreview")
    assert len(bad) == 1 and "without claimReviewed" in bad[0].reason
    (review,) = claims
    assert review.title.startswith("The city's water towers")
    assert review.disproof == "False (Example Fact Check)"
    assert review.url == "https://factcheck.example/reviews/water-towers"
    assert review.date == "2021-05-01" and review.outlets == ["A Blogger"]
    assert review.source == "https://blog.example/towers" and review.languages == ["en"]


def test_claimreview_json_lines_skip_a_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text(
        '{"@type": "ClaimReview", "claimReviewed": "Claim one", "url": "https://f.example/1",'
        ' "reviewRating": {"ratingValue": 2, "bestRating": 5}}\n'
        "{broken\n"
        '{"@type": "ClaimReview", "claimReviewed": "Claim two", "url": "https://f.example/2"}\n'
    )
    claims, bad = read_claims(path, "claimreview", "claimreview")
    assert [c.title for c in claims] == ["Claim one", "Claim two"]
    assert claims[0].disproof == "rated 2/5"
    assert [b.line for b in bad] == [2]


def test_team_csv_skips_a_bad_row_and_keeps_the_rest(store: CatalogueStore) -> None:
    report = import_file(store, FIXTURES / "team.csv")
    assert report.catalogue == "team" and report.format == "csv"
    assert report.added == 2
    assert [str(b) for b in report.bad_rows] == ["line 3: no text"]
    hacked = next(c for c in store.claims() if "voting machines" in c.title)
    assert hacked.disproof == "False" and hacked.url == "https://team.example/1"


def test_import_keeps_earlier_catalogues(store: CatalogueStore) -> None:
    import_file(store, FIXTURES / "team.csv")
    import_file(store, FIXTURES / "claimreview.jsonld")
    assert store.counts() == {"claimreview": 1, "team": 2}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("euvsdisinfo_disproofs.csv", "euvsdisinfo"),
        ("euvsdisinfo_cases.csv", "euvsdisinfo"),
        ("claimreview.jsonld", "claimreview"),
        ("team.csv", "csv"),
    ],
)
def test_format_is_detected(name: str, expected: str) -> None:
    assert detect_format(FIXTURES / name) == expected


def test_unreadable_inputs_are_one_clear_error(tmp_path: Path, store: CatalogueStore) -> None:
    with pytest.raises(CatalogueError, match="no such file"):
        import_file(store, tmp_path / "missing.csv")
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(CatalogueError, match="cannot tell the catalogue format"):
        import_file(store, odd)
    with pytest.raises(CatalogueError, match="not an EUvsDisinfo export"):
        import_file(store, odd, format="euvsdisinfo")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"text\n\xff\xfe\n")
    with pytest.raises(CatalogueError, match="not UTF-8"):
        import_file(store, binary)
    assert store.counts() == {}


@pytest.mark.shared
def test_real_euvsdisinfo_exports_give_one_claim_per_case(store: CatalogueStore) -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared/data/euvsdisinfo is not available")
    reports = [
        import_file(store, SHARED / "cases-with-disproofs-2015-2017.csv"),
        import_file(store, SHARED / "cases-2015-2021.csv"),
    ]
    assert all(not r.bad_rows for r in reports)
    claims = store.claims()
    assert 13_000 <= len(claims) <= 13_200
    # Cases of 2015-2017 found in both files carry the case page and the disproof.
    assert sum(1 for c in claims if c.url and c.disproof) > 450


def test_a_team_csv_row_with_an_unterminated_quote_is_reported_not_merged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "team.csv"
    path.write_text(
        "text,verdict,url\n"
        '"The vote was rigged,False,https://team.example/1\n'
        'Sanctions made the economy stronger",Misleading,\n'
        "Vaccines contain microchips,False,\n"
    )
    claims, bad = read_claims(path, "csv", "team")
    # The quote opened on line 2 does not swallow line 3: each line is its own row.
    assert [str(b) for b in bad] == ["line 2: unterminated quote"]
    assert [c.title.rstrip('"') for c in claims] == [
        "Sanctions made the economy stronger",
        "Vaccines contain microchips",
    ]
    assert claims[0].disproof == "Misleading"


def test_an_import_stops_adding_at_the_claims_limit_and_says_so(
    tmp_path: Path, store: CatalogueStore
) -> None:
    feed = tmp_path / "feed.json"
    write_claimreview_feed(feed, 30)
    report = import_file(store, feed, max_claims=20)
    assert report.read == 30 and report.added == 20 and report.over_limit == 10
    assert store.counts() == {"claimreview": 20}
    # Claims already in the catalogue still merge; new ones still do not fit.
    report = import_file(store, feed, max_claims=20)
    assert report.unchanged == 20 and report.added == 0 and report.over_limit == 10


def test_import_reports_its_progress_through_the_file(
    tmp_path: Path, store: CatalogueStore
) -> None:
    feed = tmp_path / "feed.json"
    write_claimreview_feed(feed, 3000)
    seen: list[tuple[int, int]] = []
    import_file(store, feed, progress=lambda done, total: seen.append((done, total)))
    size = feed.stat().st_size
    assert len(seen) > 2 and all(total == size for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (size, size)
