"""The Ray path against the multiprocess path of `spinlens batch`, same corpus, same run.

Builds a corpus of HTML files from the PTC train/dev/test texts (../shared/data/ptc; each text
once, no duplicates), then runs, as separate `spinlens` processes one after the other:

- `spinlens batch --engine local --workers 2 --threads 1` (two worker processes);
- `spinlens batch --engine ray --workers 2 --threads 1` (a local Ray, two actors);

and reports wall time, articles/s, CPU cores used, peak RSS and the ratio. Each run's time
includes its start-up (worker processes loading the models; for Ray, starting the local
cluster too), since a user waits for it. Both runs must give the same article ids, or the
script fails.

Writes the "Ray engine overhead" section of docs/benchmarks.md with --write.

    .venv/bin/python benchmarks/ray_overhead.py --articles 300 --write
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from html import escape
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch_throughput import Measure, mb, measure  # noqa: E402
from docs_section import write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PTC = Path(os.environ.get("SPINLENS_PTC", REPO.parent / "shared" / "data" / "ptc"))
SECTION = "## Ray engine overhead (`spinlens batch --engine ray`)"


def build_corpus(folder: Path, n: int) -> int:
    """Up to ``n`` PTC articles as HTML files; returns how many were written."""
    paths = sorted(p for d in sorted(PTC.glob("*-articles")) for p in d.glob("*.txt"))
    if not paths:
        sys.exit(f"no PTC texts under {PTC}: this benchmark needs ../shared")
    folder.mkdir(parents=True)
    for path in paths[:n]:
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        title, body = lines[0], lines[1:]
        paragraphs = "".join(f"<p>{escape(line)}</p>" for line in body if line.strip())
        html = f"<html><head><title>{escape(title)}</title></head><body><article>"
        html += f"<h1>{escape(title)}</h1>{paragraphs}</article></body></html>"
        (folder / f"{path.stem}.html").write_text(html, encoding="utf-8")
    return min(n, len(paths))


def run(engine: str, corpus: Path, out: Path, model: str) -> tuple[Measure, list[str]]:
    command = [sys.executable, "-m", "spinlens", "batch", str(corpus), "--out", str(out),
               "--engine", engine, "--workers", "2", "--threads", "1",
               "--techniques-model", model]  # fmt: skip
    done = measure(command)
    if done.returncode not in (0, 2):
        sys.exit(f"{engine} run failed:\n{done.stderr[-2000:]}")
    ids = []
    for part in sorted((out / "articles").glob("part-*.parquet")):
        ids.extend(pq.read_table(part, columns=["article_id"]).column(0).to_pylist())
    return done, sorted(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = build_corpus(root / "corpus", args.articles)
        local, local_ids = run("local", root / "corpus", root / "local", args.model)
        ray, ray_ids = run("ray", root / "corpus", root / "ray", args.model)
    if local_ids != ray_ids:
        sys.exit(f"the engines disagree: {len(local_ids)} vs {len(ray_ids)} articles")
    local_rate, ray_rate = len(local_ids) / local.wall, len(ray_ids) / ray.wall
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    text = f"""{SECTION}

`benchmarks/ray_overhead.py --articles {args.articles}`: {n} PTC articles as HTML files,
the `{args.model}` technique model with narrative matching, on this {cores}-core machine
(1-minute load average {load:.1f} when it ended: other work shared the cores). Each time is
the whole command, start-up included; CPU is user + system time of every process below the
command (Ray's own services and actors included) over wall time; peak RSS is their largest sum,
which counts the pages of Ray's shared object store once per process that maps them.

| engine | articles | wall time | articles/s | CPU cores used | peak RSS |
|---|---:|---:|---:|---:|---:|
| multiprocess, 2 workers × 1 thread | {len(local_ids)} | {local.wall:.1f} s | {local_rate:.2f} \
| {local.cores:.2f} | {mb(local.peak_tree)} |
| local Ray, 2 actors × 1 thread | {len(ray_ids)} | {ray.wall:.1f} s | {ray_rate:.2f} \
| {ray.cores:.2f} | {mb(ray.peak_tree)} |

The Ray path reaches **{ray_rate / local_rate:.2f}×** the multiprocess path's throughput (target:
at least 0.8×); both wrote the same {len(ray_ids)} article ids.
"""
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
