import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spinlens.narratives.cli import narratives_app

from .narrative_fixtures import FIXTURES, write_claimreview_feed

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


def test_import_names_the_line_of_an_unterminated_quote(tmp_path: Path) -> None:
    path = tmp_path / "team.csv"
    path.write_text(
        'text,verdict\n"The vote was rigged,False\nSanctions made us stronger,Misleading\n'
    )
    result = runner.invoke(narratives_app, ["import", str(path), "--no-index"])
    assert result.exit_code == 0, result.output
    assert f"{path}:2: skipped: unterminated quote" in result.stderr
    assert "1 added" in result.stdout and "1 bad rows skipped" in result.stdout


def test_remove_drops_a_catalogue_and_its_cached_vectors(tmp_path: Path) -> None:
    result = runner.invoke(narratives_app, ["import", str(FIXTURES / "team.csv")])
    assert result.exit_code == 0, result.output
    cache = tmp_path / "home" / "cache"
    assert len(list(cache.glob("narratives-*.npy"))) == 2  # the starter families', team's
    result = runner.invoke(narratives_app, ["remove", "team"])
    assert result.exit_code == 0, result.output
    assert "removed catalogue 'team' (2 claims)" in result.stdout
    assert len(list(cache.glob("narratives-*.npy"))) == 1
    assert "team" not in runner.invoke(narratives_app, ["list"]).stdout
    found = runner.invoke(
        narratives_app, ["search", "hacked voting machines", "--format", "jsonl", "--top", "3"]
    )
    assert all(m["catalogue"] != "team" for m in json.loads(found.stdout)["matches"])
    again = runner.invoke(narratives_app, ["remove", "team"])
    assert again.exit_code == 1
    assert again.stderr.strip() == "error: no catalogue named 'team' (there are: none)"
    shipped = runner.invoke(narratives_app, ["remove", "spinlens-starter"])
    assert shipped.exit_code == 1 and "shipped" in shipped.stderr


def test_a_large_claimreview_feed_imports_in_bounded_memory_with_progress(
    tmp_path: Path,
) -> None:
    """200,000 reviews (a 100 MB feed on one line): before streaming, the import held the
    whole document and every claim at once (1.06 GB of RSS, 43 s on the 2-core dev box)."""
    feed = tmp_path / "feed.json"
    write_claimreview_feed(feed, 200_000)
    # The import runs as a child of this small script, which reports the child's peak RSS.
    measure = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "print('peak-rss-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(code)\n"
    )
    command = [sys.executable, "-m", "spinlens", "narratives", "import", str(feed)]
    result = subprocess.run(
        [sys.executable, "-c", measure, *command, "--no-index", "--max-claims", "250000"],
        capture_output=True,
        text=True,
        env={**os.environ, "SPINLENS_HOME": str(tmp_path / "home")},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "200000 claims read" in result.stdout and "200000 added" in result.stdout
    # Progress through the file, in plain lines when stderr is not a terminal.
    assert "reading feed.json: 50%" in result.stderr
    assert "reading feed.json: 100%" in result.stderr
    peak_mb = int(result.stdout.split("peak-rss-kb")[1].split()[0]) / 1024
    assert peak_mb < 250, f"peak RSS {peak_mb:.0f} MB"
