"""Search latency over a large synthetic catalogue: exact numpy top-10 against an HNSW index.

    .venv/bin/pip install usearch   # only for this benchmark; spinlens does not need it
    .venv/bin/python benchmarks/narratives_scale.py --vectors 1000000

The vectors stand in for claim embeddings (384-d, unit length, like all-MiniLM-L6-v2's). Pure
random directions are the worst case for any index (every point is nearly equidistant from every
other), which real claims are not: they cluster by topic. So the catalogue is drawn as topics
(random centres) with claims scattered around them, and each query is a perturbed claim, as a
passage that restates a documented claim is. Recall@10 is the ANN's top 10 against the exact
top 10. Prints a markdown table; paste it under "Search at scale" in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

DIM = 384
TOP = 10


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(n: int, topics: int, rng: np.random.Generator) -> np.ndarray:
    centres = unit(rng.standard_normal((topics, DIM), dtype=np.float32))
    out = np.empty((n, DIM), dtype=np.float32)
    for first in range(0, n, 100_000):  # in chunks: a 1M float32 temporary per step is enough
        rows = min(100_000, n - first)
        noise = rng.standard_normal((rows, DIM), dtype=np.float32) * np.float32(0.06)
        out[first : first + rows] = unit(centres[rng.integers(0, topics, rows)] + noise)
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, block: int = 200_000) -> np.ndarray:
    """Exact top-k by inner product, scanning the catalogue in blocks to bound memory."""
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best_scores = np.zeros((len(queries), 0), dtype=np.float32)
    for first in range(0, len(vectors), block):
        sims = queries @ vectors[first : first + block].T
        part = np.argpartition(-sims, TOP, axis=1)[:, :TOP]
        ids = np.concatenate([best_ids, part + first], axis=1)
        scores = np.concatenate([best_scores, np.take_along_axis(sims, part, axis=1)], axis=1)
        keep = np.argpartition(-scores, TOP - 1, axis=1)[:, :TOP]
        best_ids = np.take_along_axis(ids, keep, axis=1)
        best_scores = np.take_along_axis(scores, keep, axis=1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtypes", default="f16", help="usearch storage types, comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--expansion-add", type=int, default=128, help="HNSW build beam (lower: faster build)"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from threadpoolctl import threadpool_limits
    from usearch.index import Index

    rng = np.random.default_rng(args.seed)
    vectors = synthetic(args.vectors, max(1, args.vectors // 100), rng)
    picked = rng.integers(0, args.vectors, args.queries)
    noise = rng.standard_normal((args.queries, DIM), dtype=np.float32) * np.float32(0.04)
    queries = unit(vectors[picked] + noise)
    size = f"{args.vectors:,} vectors × {DIM} (float32, {vectors.nbytes / 2**30:.2f} GiB)"
    rows: list[tuple[str, str]] = [("catalogue", size)]

    with threadpool_limits(args.threads):
        started = time.perf_counter()
        truth = exact_top(vectors, queries)
        batched = (time.perf_counter() - started) / args.queries * 1e3
        started = time.perf_counter()
        for q in queries[:20]:
            exact_top(vectors, q[None, :])
        single = (time.perf_counter() - started) / 20 * 1e3
    rows.append((f"exact numpy top-{TOP}, {args.queries} queries batched", f"{batched:.1f} ms/q"))
    rows.append((f"exact numpy top-{TOP}, one query at a time", f"{single:.0f} ms/q"))

    for dtype in args.dtypes.split(","):
        index = Index(
            ndim=DIM, metric="ip", dtype=dtype, connectivity=16, expansion_add=args.expansion_add
        )
        started = time.perf_counter()
        index.add(np.arange(args.vectors), vectors, threads=args.threads)
        build = time.perf_counter() - started
        started = time.perf_counter()
        found = index.search(queries, TOP, threads=args.threads).keys
        ann_batched = (time.perf_counter() - started) / args.queries * 1e3
        started = time.perf_counter()
        for q in queries[:50]:
            index.search(q, TOP, threads=1)
        ann_single = (time.perf_counter() - started) / 50 * 1e3
        recall = np.mean([len(set(a) & set(t)) / TOP for a, t in zip(found, truth, strict=True)])
        label = f"usearch HNSW ({dtype}, M=16, ef_add={args.expansion_add})"
        rows.append((f"{label}: build, {args.threads} threads", f"{build:.0f} s"))
        rows.append((f"{label}: memory", f"{index.memory_usage / 2**30:.2f} GiB"))
        rows.append((f"{label}: top-{TOP} batched", f"{ann_batched:.2f} ms/q"))
        rows.append((f"{label}: top-{TOP} one query at a time", f"{ann_single:.2f} ms/q"))
        rows.append((f"{label}: recall@{TOP} against exact", f"{recall:.3f}"))
        del index

    print("| measure | value |")
    print("| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
