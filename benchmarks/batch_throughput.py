"""Throughput, CPU use, memory and resume correctness of `spinlens batch` (issue 17).

Builds a corpus in a temporary folder from the PTC train/dev/test texts (../shared/data/ptc)
and the repository's example pages, wrapped three ways (HTML files, JSON Lines, a .warc.gz),
and measures, each as a separate `spinlens` process:

- articles/s, mean CPU cores used and peak RSS (the whole process tree) for `batch` with
  1 worker × 2 threads, 2 workers × 1 thread and a local Ray with 2 actors × 1 thread, and for
  plain `analyze` (the fast model);
- peak RSS of the batch parent and of the whole tree at two corpus sizes (short texts with a
  varying first line, so that dedup skips none; the baseline model, to keep it short);
- resume correctness: the run SIGKILLed at random moments and resumed each time, then compared
  with an uninterrupted run (article ids, duplicates, findings).

Writes the "Corpus runs (`spinlens batch`)" section of docs/benchmarks.md with --write.
The corpus is never kept: it lives in a temporary folder.

    .venv/bin/python benchmarks/batch_throughput.py --articles 2000 --write
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

REPO = Path(__file__).resolve().parents[1]
PTC = Path(os.environ.get("SPINLENS_PTC", REPO.parent / "shared" / "data" / "ptc"))
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"
SECTION = "## Corpus runs (`spinlens batch`)"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the corpus ----------------------------------------------------------------------------


def base_texts() -> list[tuple[str, str]]:
    """(title, body) of every PTC article and example page: the texts we may use."""
    texts = []
    for folder in sorted(PTC.glob("*-articles")):
        for path in sorted(folder.glob("*.txt")):
            lines = path.read_text(encoding="utf-8").strip().splitlines()
            if lines:
                texts.append((lines[0].strip(), "\n".join(lines[1:]).strip()))
    for path in sorted((REPO / "examples").glob("*.txt")):
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        texts.append((lines[0].strip(), "\n".join(lines[1:]).strip()))
    if not texts:
        sys.exit(f"no PTC texts under {PTC}: this benchmark needs ../shared")
    return texts


def article_html(title: str, body: str) -> str:
    paragraphs = "".join(f"<p>{escape(p)}</p>\n" for p in body.split("\n") if p.strip())
    return (
        f"<html><head><title>{escape(title)}</title></head><body>"
        f"<article><h1>{escape(title)}</h1>\n{paragraphs}</article></body></html>"
    )


def build_corpus(root: Path, n: int, *, chars: int | None = None) -> list[str]:
    """``n`` distinct articles (texts repeat with an edition note in their first line, which
    extraction keeps, so dedup skips none), one third each as HTML files, JSON Lines and WARC
    records; returns the sources to pass."""
    texts = base_texts()
    html_dir = root / "html"
    html_dir.mkdir(parents=True)
    jsonl = root / "corpus.jsonl"
    warc = root / "corpus.warc.gz"
    with jsonl.open("w", encoding="utf-8") as lines, warc.open("wb") as archive:
        writer = WARCWriter(archive, gzip=True)
        for i in range(n):
            title, body = texts[i % len(texts)]
            if chars is not None:
                body = body[:chars]
            body = f"(Edition {i // len(texts) + 1}, item {i}.) {body}"
            url = f"https://news.example/{i}"
            if i % 3 == 0:
                (html_dir / f"{i:06d}.html").write_text(article_html(title, body), "utf-8")
            elif i % 3 == 1:
                lines.write(json.dumps({"url": url, "text": f"{title}\n\n{body}"}) + "\n")
            else:
                headers = StatusAndHeaders(
                    "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
                )
                payload = io.BytesIO(article_html(title, body).encode("utf-8"))
                record = writer.create_warc_record(
                    url, "response", payload=payload, http_headers=headers
                )
                writer.write_record(record)
    return [str(html_dir), str(jsonl), str(warc)]


# --- measuring a process tree --------------------------------------------------------------


@dataclass
class Measure:
    wall: float
    cpu: float  # user + system seconds of the process and its reaped children
    peak_tree: int  # bytes: the largest sum of RSS over the process group
    peak_parent: int  # bytes: the largest RSS of the command's own process
    returncode: int
    stderr: str

    @property
    def cores(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


def tree_usage(pgid: int) -> dict[int, tuple[int, float]]:
    """Per process in group ``pgid`` or below one of its members (Ray's workers are the raylet's
    children in groups of their own): RSS in bytes and user + system seconds so far, from /proc.
    """
    stats: dict[int, list[bytes]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry.name}/stat", "rb") as f:
                stats[int(entry.name)] = f.read().rsplit(b")", 1)[1].split()
    # fields after "pid (comm)": state ppid pgrp ... utime (11) stime (12)
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    members = [pid for pid, fields in stats.items() if int(fields[2]) == pgid]
    usage: dict[int, tuple[int, float]] = {}
    while members:
        pid = members.pop()
        if pid in usage:
            continue
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                rss = int(f.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        fields = stats[pid]
        usage[pid] = (rss, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
        members += children.get(pid, [])
    return usage


def measure(command: list[str], *, kill_when: Callable[[], bool] | None = None) -> Measure:
    """Run ``command`` in its own process group, sampling its memory every 0.1 s; SIGKILL the
    group once ``kill_when()`` says so."""
    with tempfile.TemporaryFile() as stderr_file:
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr_file, start_new_session=True, cwd=REPO
        )
        peak_tree = peak_parent = 0
        # CPU seen per process: a Ray run's workers are the raylet's children, whose time
        # need not reach the command's own rusage.
        cpu_seen: dict[int, float] = {}
        while True:
            done, status, usage = os.wait4(process.pid, os.WNOHANG)
            if done:
                break
            usage_now = tree_usage(process.pid)
            peak_tree = max(peak_tree, sum(rss for rss, _ in usage_now.values()))
            peak_parent = max(peak_parent, usage_now.get(process.pid, (0, 0.0))[0])
            cpu_seen.update((pid, cpu) for pid, (_, cpu) in usage_now.items())
            if kill_when is not None and kill_when():
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.05)
        wall = time.monotonic() - started
        if kill_when is not None:
            with contextlib.suppress(ProcessLookupError):  # workers orphaned by the kill
                os.killpg(process.pid, signal.SIGKILL)
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr_file.seek(0)
        stderr = stderr_file.read().decode("utf-8", "replace")
    return Measure(
        wall=wall,
        cpu=max(usage.ru_utime + usage.ru_stime, sum(cpu_seen.values())),
        peak_tree=peak_tree,
        peak_parent=peak_parent,
        returncode=process.returncode,
        stderr=stderr,
    )


def spinlens(*args: str) -> list[str]:
    return [sys.executable, "-m", "spinlens", *args]


def check(m: Measure, what: str) -> Measure:
    if m.returncode not in (0, 2):
        sys.exit(f"{what} failed ({m.returncode}):\n{m.stderr[-3000:]}")
    return m


def mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


# --- reading the tables --------------------------------------------------------------------


def table(out: Path, name: str) -> pa.Table:
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    parts = [out / name / f"part-{s['part']:05d}.parquet" for s in manifest["shards"]]
    return pa.concat_tables([pq.read_table(p) for p in parts])


def sorted_rows(out: Path, name: str) -> list[tuple]:
    rows = table(out, name).to_pylist()
    return sorted(tuple(str(v) for v in row.values()) for row in rows)


def committed_articles(out: Path) -> int:
    try:
        manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return 0
    return sum(s["articles"] for s in manifest["shards"])


# --- the measurements ----------------------------------------------------------------------


def throughput(root: Path, n: int, model: str) -> list[tuple[str, int, Measure]]:
    sources = build_corpus(root / "corpus", n)
    rows = []
    for label, engine, workers, threads in [
        ("batch, 1 worker × 2 threads", "local", 1, 2),
        ("batch, 2 workers × 1 thread", "local", 2, 1),
        ("batch --engine ray, local Ray, 2 actors × 1 thread", "ray", 2, 1),
    ]:
        out = root / f"out-{engine}-{workers}x{threads}"
        command = spinlens("batch", *sources, "--out", str(out), "--workers", str(workers))
        command += ["--threads", str(threads), "--techniques-model", model, "--engine", engine]
        m = check(measure(command), label)
        rows.append((label, committed_articles(out), m))
        print(f"{label}: {n / m.wall:.2f} articles/s, {m.cores:.2f} cores", flush=True)
    command = spinlens("analyze", *sources, "--format", "json", "--techniques-model", model)
    m = check(measure(command), "analyze")
    rows.append(("plain `analyze` (one process)", n, m))
    print(f"analyze: {n / m.wall:.2f} articles/s, {m.cores:.2f} cores", flush=True)
    return rows


def memory(root: Path, sizes: list[int], chars: int) -> list[tuple[int, int, Measure]]:
    rows = []
    for n in sizes:
        sources = build_corpus(root / f"memory-{n}", n, chars=chars)
        out = root / f"memory-out-{n}"
        command = spinlens("batch", *sources, "--out", str(out), "--workers", "2")
        command += ["--threads", "1", "--techniques-model", "baseline", "--no-narratives"]
        m = check(measure(command), f"memory run of {n}")
        rows.append((n, committed_articles(out), m))
        print(f"{n}: parent {mb(m.peak_parent)}, tree {mb(m.peak_tree)}", flush=True)
    return rows


def kill_moment(out: Path, target: int, delay: float) -> Callable[[], bool]:
    """Due ``delay`` s after ``target`` articles are committed (target 0: 3 × delay s after
    the start, i.e. during start-up)."""
    start = time.monotonic()
    reached: list[float] = []

    def due() -> bool:
        if target == 0:
            return time.monotonic() - start >= delay * 3
        if not reached and committed_articles(out) >= target:
            reached.append(time.monotonic())
        return bool(reached) and time.monotonic() - reached[0] >= delay

    return due


def resume(root: Path, n: int, kills: int, model: str) -> dict[str, object]:
    sources = build_corpus(root / "resume-corpus", n)
    base = ["--workers", "2", "--threads", "1", "--techniques-model", model, "--no-narratives"]
    base += ["--shard-size", "10"]  # many commit points for the kills to fall between
    reference = root / "resume-reference"
    whole = check(measure(spinlens("batch", *sources, "--out", str(reference), *base)), "ref")
    out = root / "resume-killed"
    rng = random.Random(11)
    at_kills = []
    # Kill moments: the first during start-up, the others a random moment (up to 2 s) after a
    # random number of further articles was committed, so they fall all along the run.
    targets = sorted(rng.sample(range(1, n), kills - 1))
    for target in [0, *targets]:
        due = kill_moment(out, target, rng.uniform(0.0, 2.0))
        measure(spinlens("batch", *sources, "--out", str(out), *base), kill_when=due)
        at_kills.append(committed_articles(out))
        print(f"killed: {at_kills[-1]} articles committed", flush=True)
    final = check(measure(spinlens("batch", *sources, "--out", str(out), *base)), "resume")
    ids = table(out, "articles").column("article_id").to_pylist()
    same = {
        name: sorted_rows(out, name) == sorted_rows(reference, name)
        for name in ("articles", "findings", "narratives", "failures")
    }
    stray = [
        p.name
        for name in ("articles", "findings", "narratives", "failures")
        for p in (out / name).iterdir()
        if not re.fullmatch(r"part-\d{5}\.parquet", p.name)
    ]
    return {
        "articles": len(ids),
        "reference_articles": table(reference, "articles").num_rows,
        "duplicate_ids": len(ids) - len(set(ids)),
        "same_rows": same,
        "committed_at_kills": at_kills,
        "stray_files": stray,
        "reference_wall": whole.wall,
        "final_wall": final.wall,
    }


# --- the report ----------------------------------------------------------------------------


def report(args: argparse.Namespace, results: dict[str, object], others: str) -> str:
    lines = [SECTION, ""]
    lines.append(
        f"Measured {time.strftime('%Y-%m-%d')} by `benchmarks/batch_throughput.py` on this "
        f"{os.cpu_count()}-core machine. Each row is one `spinlens` process tree; wall time "
        "includes start-up and model loading; CPU is user + system time of the tree over wall "
        "time; peak RSS is the largest sum over the tree, sampled every 0.1 s (a Ray run's "
        "sum counts the pages of its shared object store once per process that maps them). "
        f"Also running meanwhile: {others}."
    )
    lines.append("")
    tp = results.get("throughput")
    if tp:
        n = args.articles
        lines += [
            f"**Throughput**, the `{args.model}` technique model with narrative matching, "
            f"{n} documents (PTC texts and examples, a third each as HTML files, JSON "
            "Lines and a .warc.gz; the articles column counts the rows written, after dedup "
            "of texts that extraction made identical and failures):",
            "",
            "| setup | articles | wall | documents/s | CPU cores used | peak RSS |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for label, written, m in tp:  # type: ignore[attr-defined]
            lines.append(
                f"| {label} | {written} | {m.wall:.0f} s | {n / m.wall:.2f} | {m.cores:.2f} "
                f"| {mb(m.peak_tree)} |"
            )
        lines.append("")
    mem = results.get("memory")
    if mem:
        lines += [
            f"**Memory against corpus size**: `batch --workers 2 --threads 1`, baseline model, "
            f"no narratives, texts cut to {args.memory_chars} characters:",
            "",
            "| documents | articles | wall | peak RSS, batch parent | peak RSS, whole tree |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for documents, written, m in mem:  # type: ignore[attr-defined]
            lines.append(
                f"| {documents:,} | {written:,} | {m.wall:.0f} s | {mb(m.peak_parent)} "
                f"| {mb(m.peak_tree)} |"
            )
        lines.append("")
    res = results.get("resume")
    if isinstance(res, dict):
        same = res["same_rows"]
        lines += [
            f"**Resume**: {args.resume_articles} articles, `--workers 2`, the `{args.resume_model}`"
            f" model without narratives; SIGKILL to the whole process group at {args.kills} "
            "random moments, the same command run again after each, then once to the end, "
            "compared with an uninterrupted run:",
            "",
            f"- articles committed at each kill: {res['committed_at_kills']}",
            f"- articles: {res['articles']} (uninterrupted: {res['reference_articles']}); "
            f"duplicate ids: {res['duplicate_ids']}; stray files left: {len(res['stray_files'])}",
            "- identical rows to the uninterrupted run: "
            + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()),
            "",
        ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    current = BENCHMARKS_MD.read_text("utf-8") if BENCHMARKS_MD.exists() else ""
    if SECTION in current:
        start = current.index(SECTION)
        following = current.find("\n## ", start + len(SECTION))
        end = len(current) if following < 0 else following + 1
        current = current[:start] + text.rstrip("\n") + "\n\n" + current[end:].lstrip("\n")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    BENCHMARKS_MD.write_text(current.rstrip("\n") + "\n", "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=2000, help="throughput corpus size")
    parser.add_argument("--model", default="fast", help="technique model of the throughput rows")
    parser.add_argument("--memory-sizes", default="1000,10000")
    parser.add_argument("--memory-chars", type=int, default=600)
    parser.add_argument("--resume-articles", type=int, default=536)
    parser.add_argument("--resume-model", default="baseline")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--skip", default="", help="comma list: throughput,memory,resume")
    parser.add_argument("--others", default="nothing else", help="what else ran meanwhile")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="spinlens-batch-bench-") as tmp:
        root = Path(tmp)
        if "throughput" not in skip:
            results["throughput"] = throughput(root, args.articles, args.model)
        if "memory" not in skip:
            sizes = [int(s) for s in args.memory_sizes.split(",")]
            results["memory"] = memory(root, sizes, args.memory_chars)
        if "resume" not in skip:
            results["resume"] = resume(root, args.resume_articles, args.kills, args.resume_model)
            print(json.dumps(results["resume"], indent=1), flush=True)
    text = report(args, results, args.others)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
