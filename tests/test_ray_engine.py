"""``spinlens batch --engine ray`` on a local Ray (2 CPUs): the same rows as the multiprocess
engine, and the same resume through the same manifest.

Small on purpose: a few documents and the baseline detector.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
pq = pytest.importorskip("pyarrow.parquet")

from spinlens.batch.local import BatchSettings, run_batch  # noqa: E402
from spinlens.batch.ray_engine import RaySettings, run_ray_batch  # noqa: E402
from spinlens.batch.shards import MANIFEST, TABLES, committed_parts  # noqa: E402

from .feed_fixtures import Site, serve  # noqa: E402

TOPICS = [
    ("bridge", "The corrupt council rammed through a disgraceful plan to rebuild the bridge."),
    ("budget", "Every true patriot knows this budget is a betrayal of our great nation."),
    ("school", "The school board met on Monday and agreed a new timetable for spring."),
    ("river", "Shocking! Only a fool would believe the lies they tell about the river."),
    ("market", "The market reopened after repairs; traders said business was steady."),
    # A starter narrative (colour-revolution), so the narratives table has rows to compare.
    (
        "protests",
        "The street protests were a colour revolution staged by the West to overthrow the "
        "government. Western intelligence services organised the unrest and directed the crowds.",
    ),
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for n, (name, sentence) in enumerate(TOPICS):
        text = " ".join([sentence] * 3) + f" Reported by desk {n}."
        (folder / f"{n}-{name}.txt").write_text(text, encoding="utf-8")
    # The same text under another name: analysed once, one row.
    (folder / "8-copy.txt").write_text((folder / "1-budget.txt").read_text(), encoding="utf-8")
    (folder / "9-empty.txt").write_text("", encoding="utf-8")  # a failure row
    jsonl = folder.parent / f"{folder.name}-more.jsonl"
    lines = [{"text": f"Crooked officials lied again about the dam, report {n}."} for n in (1, 2)]
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    yield from serve(Site(items=[("/news/1", "Bridge vote"), ("/news/2", "Budget row")]))


@pytest.fixture(scope="module")
def sources(corpus: Path, site: Site) -> list[str]:
    """A folder, a feed of two articles on 127.0.0.1, and a JSON Lines file."""
    return [str(corpus), f"{site.base}/feed.xml", str(corpus.parent / f"{corpus.name}-more.jsonl")]


SETTINGS = BatchSettings(
    workers=2, techniques_model="baseline", allow_private=True, shard_documents=3
)


def table_rows(out: Path, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in committed_parts(out, table):
        rows.extend(pq.read_table(part).to_pylist())
    for row in rows:
        if row.get("source_kind") == "feed":
            row["crawled"] = row["crawled"] is not None  # fetched at another moment by each run
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def all_rows(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {table: table_rows(out, table) for table in TABLES}


@pytest.fixture(scope="module")
def multiprocess_rows(sources: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("local") / "out"
    run_batch(sources, out, SETTINGS)
    return all_rows(out)


def test_ray_gives_the_rows_of_the_multiprocess_engine(
    local_ray: None, sources: list[str], multiprocess_rows: dict, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    result = run_ray_batch(sources, out, SETTINGS, RaySettings(actors=2))
    rows = all_rows(out)
    assert rows == multiprocess_rows
    # 6 texts, 2 feed items, 2 JSONL lines; the copy has no row.
    assert len(rows["articles"]) == 10
    assert len(rows["failures"]) == 1
    assert rows["findings"], "the baseline finds techniques in these texts"
    assert rows["narratives"], "the starter narratives match the corpus's claims"
    assert (result.analysed, result.failed, result.duplicates) == (10, 1, 1)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format"] == "spinlens.batch/1"
    assert sum(s["articles"] + s["failures"] for s in manifest["shards"]) == 11


def test_ray_resumes_a_killed_run_through_the_manifest(
    local_ray: None, sources: list[str], multiprocess_rows: dict, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    run_ray_batch(sources, out, SETTINGS, RaySettings(actors=2))
    # A run killed after its first shard: the manifest lists one shard, and a later shard was
    # written but never committed.
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["shards"] = manifest["shards"][:1]
    (out / MANIFEST).write_text(json.dumps(manifest))
    result = run_ray_batch(sources, out, SETTINGS, RaySettings(actors=2))
    assert result.already_done == manifest["shards"][0]["articles"] + manifest["shards"][0][
        "failures"
    ] + len(manifest["shards"][0].get("duplicates", []))
    assert all_rows(out) == multiprocess_rows


def test_a_model_that_cannot_load_is_one_clear_error(
    local_ray: None, corpus: Path, tmp_path: Path
) -> None:
    from spinlens.errors import SpinlensError

    settings = BatchSettings(techniques_model="no-such-model", narratives=False)
    with pytest.raises(SpinlensError, match="no-such-model"):
        run_ray_batch([str(corpus)], tmp_path / "out", settings, RaySettings(actors=1))


def test_batch_command_with_engine_ray(corpus: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "out"
    command = [sys.executable, "-m", "spinlens", "batch", str(corpus), "--out", str(out),
               "--engine", "ray", "--workers", "1", "--techniques-model", "baseline",
               "--no-narratives"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr  # the empty file is a failure
    assert "6 article(s) analysed, 1 failed, 1 duplicate(s) skipped" in run.stderr
    assert len(table_rows(out, "articles")) == 6
