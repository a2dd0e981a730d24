import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spinlens.narratives.cli import narratives_app

from .narrative_fixtures import FIXTURES

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINLENS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")


def test_import_reports_counts_and_bad_rows_with_line_numbers() -> None:
    result = runner.invoke(narratives_app, ["import", str(FIXTURES / "team.csv"), "--no-index"])
    assert result.exit_code == 0, result.output
    assert "2 added" in result.stdout and "1 bad rows skipped" in result.stdout
    assert "team.csv:3: skipped: no text" in result.stderr


def test_import_of_two_euvsdisinfo_layouts_then_list() -> None:
    for name in ("euvsdisinfo_disproofs.csv", "euvsdisinfo_cases.csv"):
        result = runner.invoke(narratives_app, ["import", str(FIXTURES / name), "--no-index"])
        assert result.exit_code == 0, result.output
    listing = runner.invoke(narratives_app, ["list"])
    assert "spinlens-starter" in listing.stdout
    assert "euvsdisinfo" in listing.stdout and " 4 " in listing.stdout
    claims = runner.invoke(narratives_app, ["list", "euvsdisinfo"])
    assert "Moon landing was filmed in Nevada" in claims.stdout


def test_list_of_an_unknown_catalogue_is_one_error_line() -> None:
    result = runner.invoke(narratives_app, ["list", "nope"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: no catalogue named 'nope' (there are: spinlens-starter)"
    ]


def test_import_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(narratives_app, ["import", str(tmp_path / "missing.csv")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no such file") and "Traceback" not in result.output
    result = runner.invoke(narratives_app, ["import", "x.csv", "--format", "xml"])
    assert result.exit_code == 1 and "unknown --format 'xml'" in result.stderr


def test_search_queries_file_as_jsonl(tmp_path: Path) -> None:
    runner.invoke(narratives_app, ["import", str(FIXTURES / "team.csv"), "--no-index"])
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"id": "a", "query": "hackers changed the vote totals in the voting machines"}\n'
        "Foreign foundations pay activists to stage protests\n"
    )
    result = runner.invoke(
        narratives_app, ["search", "--queries", str(queries), "--top", "3", "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == ["a", None]
    assert all(len(r["matches"]) == 3 for r in records)
    assert records[0]["matches"][0]["title"] == "The election was decided by hacked voting machines"
    assert records[1]["matches"][0]["family"] == "foreign-funded-agents"


def test_search_needs_exactly_one_kind_of_query(tmp_path: Path) -> None:
    result = runner.invoke(narratives_app, ["search"])
    assert result.exit_code == 1 and "give either a QUERY or --queries FILE" in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    result = runner.invoke(narratives_app, ["search", "--queries", str(empty)])
    assert result.exit_code == 1 and "holds no query" in result.stderr
