"""`spinlens batch`: the Parquet tables, resume after SIGKILL, dedup, bounded streaming, the CLI.

Runs use the baseline detector and small corpora written here, so each takes seconds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spinlens.batch import local
from spinlens.batch.local import BatchSettings, run_batch
from spinlens.batch.shards import MANIFEST, ShardWriter, committed_parts
from spinlens.batch.tables import SCHEMAS
from spinlens.model import Document, Source
from spinlens.pipeline import default_pipeline

REPO = Path(__file__).resolve().parents[1]

OPENINGS = [
    "The corrupt elites in the capital have betrayed every honest family again.",
    "Officials confirmed on Monday that the bridge will reopen after repairs.",
    "Only a traitor would believe the lies that the media spreads every day.",
    "The council published its budget, with small increases for schools and roads.",
    "Our great nation will never bow to the globalist puppets and their masters.",
]
MIDDLES = [
    "Everyone knows the truth, and the so-called experts are hiding it from you.",
    "The report, written by independent auditors, lists forty recommendations.",
    "They want to destroy our way of life, and they will stop at nothing.",
    "Residents can comment on the plan until the end of the month.",
    "Wake up before it is too late for our children and our country!",
]


def corpus_texts(n: int) -> list[str]:
    """``n`` distinct short articles, some manipulative and some plain."""
    texts = []
    for i in range(n):
        title = f"Report number {i} on the state of the region"
        body = " ".join(
            [OPENINGS[i % 5], MIDDLES[(i * 3) % 5], OPENINGS[(i + 2) % 5], MIDDLES[(i + 1) % 5]]
        )
        texts.append(f"{title}\n\n{body} This is article {i}, filed from district {i * 7}.")
    return texts


def write_corpus(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    texts = corpus_texts(n)
    for i, text in enumerate(texts):
        (folder / f"doc{i:03d}.txt").write_text(text, encoding="utf-8")
    return texts


def settings(**overrides: Any) -> BatchSettings:
    base: dict[str, Any] = {
        "workers": 2,
        "techniques_model": "baseline",
        "narratives": False,
        "shard_documents": 4,
    }
    return BatchSettings(**{**base, **overrides})


def read_table(out: Path, table: str) -> pa.Table:
    parts = committed_parts(out, table)
    return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else pa.table({})


def rows(out: Path, table: str, key: str) -> list[dict[str, Any]]:
    return sorted(read_table(out, table).to_pylist(), key=lambda r: tuple(str(r[k]) for k in key))


# --- the tables ----------------------------------------------------------------------------


def test_a_batch_writes_the_four_tables_with_the_analyses_rows(tmp_path: Path) -> None:
    texts = write_corpus(tmp_path / "in", 6)
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(
        json.dumps({"url": "https://news.example/a", "text": texts[0] + " Updated."})
        + "\n{broken\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = run_batch(
        [str(tmp_path / "in"), str(jsonl)], out, settings(narratives=True, shard_documents=3)
    )
    assert (result.analysed, result.failed, result.duplicates) == (7, 1, 0)

    manifest = json.loads((out / MANIFEST).read_text("utf-8"))
    assert manifest["format"] == "spinlens.batch/1"
    assert len(manifest["shards"]) >= 2  # 8 documents, shards of about 3
    for table, schema in SCHEMAS.items():
        for part in committed_parts(out, table):
            assert pq.read_schema(part).equals(schema, check_metadata=False), (table, part)

    # Each article row says what the pipeline says about that document.
    pipeline = default_pipeline("baseline")
    articles = {r["source_location"]: r for r in read_table(out, "articles").to_pylist()}
    findings = read_table(out, "findings").to_pylist()
    narratives = read_table(out, "narratives").to_pylist()
    for i in (0, 3):
        location = str(tmp_path / "in" / f"doc{i:03d}.txt")
        document = Document(
            source=Source(kind="file", location=location), body=texts[i], media_type="text/plain"
        )
        analysis = pipeline.analyze(document)
        row = articles[location]
        assert row["article_id"] == analysis.id
        assert row["source_key"] == location and row["source_kind"] == "file"
        assert row["title"] == analysis.article.title
        assert row["language"] == "en"
        assert row["chars"] == len(analysis.article.text)
        assert row["n_findings"] == len(analysis.techniques)
        assert json.loads(row["technique_counts"]) == analysis.summary.technique_counts
        assert row["techniques_model"] == analysis.models["techniques"]
        assert row["narratives_model"] == analysis.models["narratives"]
        assert row["top_narratives"] == [m.title for m in analysis.narratives[:5]]
        mine = [
            (f["start"], f["end"], f["technique"], f["text"])
            for f in findings
            if f["article_id"] == analysis.id
        ]
        assert mine == [(f.start, f.end, f.technique, f.text) for f in analysis.techniques]
        matched = [n["claim_id"] for n in narratives if n["article_id"] == analysis.id]
        assert matched == [m.claim_id for m in analysis.narratives]
    assert sum(r["n_findings"] for r in articles.values()) == len(findings) > 0
    jsonl_row = articles[f"{jsonl}#L1"]
    assert jsonl_row["url"] == "https://news.example/a" and jsonl_row["source_kind"] == "jsonl"
    failures = read_table(out, "failures").to_pylist()
    assert failures == [
        {
            "source_key": f"{jsonl}#L2",
            "source_location": f"{jsonl}#L2",
            "reason": failures[0]["reason"],
        }
    ]
    assert "not valid JSON" in failures[0]["reason"]


# --- resume --------------------------------------------------------------------------------

RUN_SCRIPT = """
import sys
from pathlib import Path
from spinlens.batch.local import BatchSettings, run_batch
run_batch([sys.argv[1]], Path(sys.argv[2]), BatchSettings(
    workers=2, techniques_model="baseline", narratives=False, shard_documents=2))
"""


def start_run(source: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, str(source), str(out)],
        start_new_session=True,  # its own process group: the kill takes the workers too
        stderr=subprocess.PIPE,
    )


def committed_articles(out: Path) -> int:
    try:
        manifest = json.loads((out / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return 0
    return sum(s["articles"] for s in manifest["shards"])


def kill_at_random_moments(source: Path, out: Path, kills: int, total: int) -> list[int]:
    """Start the run and SIGKILL it ``kills`` times; returns the articles committed at each kill.
    The first kill falls at a random moment of start-up; the others at a random moment after
    a random number of committed articles (so they land mid-run, between and inside commits)."""
    rng = random.Random(17)
    seen = []
    for attempt in range(kills):
        process = start_run(source, out)
        if attempt == 0:
            time.sleep(rng.uniform(0.2, 2.0))
        else:
            before = committed_articles(out)
            target = min(total - 1, before + rng.randint(1, 4))
            deadline = time.monotonic() + 60
            while committed_articles(out) < target and time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.01)
            # Soon after: the baseline analyses these short articles at a few hundred a second,
            # so a longer wait let a run finish all 30 before its kill when the machine was
            # busy at start-up (kills at [0, 30, 30, 30]: none mid-run).
            time.sleep(rng.uniform(0.0, 0.03))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        seen.append(committed_articles(out))
    return seen


def finish(source: Path, out: Path) -> None:
    process = start_run(source, out)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()


def test_killed_at_random_moments_and_resumed_gives_the_rows_of_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    n = 30
    write_corpus(tmp_path / "in", n)
    reference = tmp_path / "reference"
    finish(tmp_path / "in", reference)
    resumed = tmp_path / "resumed"
    committed_at_kills = kill_at_random_moments(tmp_path / "in", resumed, kills=4, total=n)
    finish(tmp_path / "in", resumed)

    # At least one kill fell mid-run (some shards committed, not all): the test means something.
    assert any(0 < c < n for c in committed_at_kills), committed_at_kills
    ids = read_table(resumed, "articles").column("article_id").to_pylist()
    assert len(ids) == len(set(ids)) == n
    keys = read_table(resumed, "articles").column("source_key").to_pylist()
    assert len(set(keys)) == n
    for table, key in [
        ("articles", ("article_id",)),
        ("findings", ("article_id", "start", "end", "technique")),
        ("narratives", ("article_id", "claim_id")),
        ("failures", ("source_key",)),
    ]:
        assert rows(resumed, table, key) == rows(reference, table, key), table
    # No stray part of a killed run is left beside the committed ones.
    for table in SCHEMAS:
        names = sorted(p.name for p in (resumed / table).iterdir())
        assert names == sorted(p.name for p in committed_parts(resumed, table))


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def test_workers_leave_when_the_parent_alone_is_killed(tmp_path: Path) -> None:
    write_corpus(tmp_path / "in", 200)
    process = start_run(tmp_path / "in", tmp_path / "out")
    deadline = time.monotonic() + 120
    while committed_articles(tmp_path / "out") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = children_of(process.pid)
    assert workers, "the run had no worker processes"
    process.kill()  # SIGKILL to the parent only, as a crash or the OOM killer would
    process.wait()
    deadline = time.monotonic() + 20
    while any(is_running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(is_running(w) for w in workers), "orphaned workers kept running"


def test_uncommitted_parts_of_a_killed_run_are_removed_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_corpus(tmp_path / "in", 3)
    run_batch([str(tmp_path / "in")], out, settings())
    # What a kill between the table files and the manifest leaves: parts no manifest lists.
    for table in SCHEMAS:
        (out / table / "part-00007.parquet").write_bytes(b"half a file")
        (out / table / ".part-00008.parquet.tmp").write_bytes(b"")
    result = run_batch([str(tmp_path / "in")], out, settings())
    assert (result.analysed, result.already_done) == (0, 3)
    for table in SCHEMAS:
        assert sorted(p.name for p in (out / table).iterdir()) == ["part-00000.parquet"]


def test_a_second_writer_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    from spinlens.errors import UsageError

    out = tmp_path / "out"
    with ShardWriter(out), pytest.raises(UsageError, match="another spinlens batch"):
        ShardWriter(out).open()


# --- dedup ---------------------------------------------------------------------------------


def test_the_same_text_is_analysed_once_and_gets_one_row(tmp_path: Path) -> None:
    texts = write_corpus(tmp_path / "in", 4)
    (tmp_path / "in" / "copy.txt").write_text(texts[1], encoding="utf-8")  # same bytes
    # Same text, other wrapping: found to be the same once extracted.
    (tmp_path / "in" / "spaced.txt").write_text(f"\n\n{texts[2]}\n\n\n", encoding="utf-8")
    jsonl = tmp_path / "feed.jsonl"
    jsonl.write_text(json.dumps({"text": texts[3]}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run_batch([str(tmp_path / "in"), str(jsonl)], out, settings())
    assert (result.analysed, result.duplicates) == (4, 3)
    ids = read_table(out, "articles").column("article_id").to_pylist()
    assert len(ids) == len(set(ids)) == 4
    # The first copy in source order (paths sorted) keeps the row.
    keys = set(read_table(out, "articles").column("source_key").to_pylist())
    assert str(tmp_path / "in" / "copy.txt") in keys
    assert str(tmp_path / "in" / "doc001.txt") not in keys
    assert str(tmp_path / "in" / "doc003.txt") in keys and f"{jsonl}#L1" not in keys

    # Across runs of the same folder too: a new source holding a known text adds no row.
    more = tmp_path / "more"
    more.mkdir()
    (more / "again.txt").write_text(texts[0], encoding="utf-8")
    (more / "new.txt").write_text(corpus_texts(5)[4], encoding="utf-8")
    again = run_batch([str(tmp_path / "in"), str(more)], out, settings())
    # Done: the four rows and spaced.txt (a duplicate found once analysed, so listed in the
    # manifest); doc001.txt and again.txt are known bodies; only new.txt is analysed.
    assert (again.analysed, again.already_done, again.duplicates) == (1, 5, 2)
    assert read_table(out, "articles").num_rows == 5


# --- bounded memory ------------------------------------------------------------------------


def test_documents_are_streamed_a_bounded_number_ahead_of_what_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n, workers, shard = 60, 2, 5
    texts = corpus_texts(n)
    pulled = 0
    ahead: list[int] = []  # documents read but not yet written, at each commit

    def sources(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        nonlocal pulled
        for i, text in enumerate(texts):
            pulled += 1
            yield Document(
                source=Source(kind="text", location=f"doc-{i}"), body=text, media_type="text/plain"
            )

    real_write = ShardWriter.write
    written = 0

    def write(self: ShardWriter, batch, duplicates=()):  # type: ignore[no-untyped-def]
        nonlocal written
        written += batch.documents
        ahead.append(pulled - written)
        return real_write(self, batch, duplicates)

    monkeypatch.setattr(local, "iter_sources", sources)
    monkeypatch.setattr(ShardWriter, "write", write)
    result = run_batch(["ignored"], tmp_path / "out", settings(shard_documents=shard))
    assert result.analysed == n and written == n
    bound = workers * local.IN_FLIGHT_PER_WORKER + shard
    assert max(ahead) <= bound, ahead
    assert len(ahead) >= n // (bound + shard)  # written as it goes, not all at the end


# --- the command ---------------------------------------------------------------------------


def spinlens(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "spinlens", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_the_batch_command_end_to_end(tmp_path: Path) -> None:
    write_corpus(tmp_path / "in", 5)
    os.mkfifo(tmp_path / "in" / "pipe.html")
    out = tmp_path / "out"
    command = ["batch", str(tmp_path / "in"), "--out", str(out), "--workers", "2"]
    command += ["--threads", "1", "--techniques-model", "baseline", "--no-narratives"]
    first = spinlens(*command)
    assert first.returncode == 2, first.stderr
    assert f"error: {tmp_path / 'in' / 'pipe.html'}: skipped: a named pipe" in first.stderr
    assert "5 article(s) analysed, 1 failed" in first.stderr
    assert read_table(out, "articles").num_rows == 5
    assert read_table(out, "failures").column("reason").to_pylist() == [
        "skipped: a named pipe (FIFO), not a regular file"
    ]

    again = spinlens(*command)
    assert again.returncode == 2, again.stderr  # the corpus still has a failed source
    assert "0 article(s) analysed, 6 already done" in again.stderr
    assert read_table(out, "articles").num_rows == 5

    clean = tmp_path / "clean"
    write_corpus(clean, 2)
    ok = spinlens("batch", str(clean), "--out", str(tmp_path / "ok"), *command[4:])
    assert ok.returncode == 0, ok.stderr

    bad = spinlens("batch", str(clean), "--out", str(tmp_path / "x"), "--techniques-model", "nope")
    assert bad.returncode == 1 and "unknown technique model 'nope'" in bad.stderr
