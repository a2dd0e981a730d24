"""Technique detection speed on the 75 PTC dev-articles texts: articles per second of detection
alone (articles already read and sentence-split; model loading excluded), and word pieces per
second, one process, 2 threads, median of several runs.

Compares the linear baseline, the transformer detector with its int8 ONNX graph, the same with
the fp32 graph (``--fp32``, kept by ``spinlens train techniques --keep-fp32``), and the same
architecture in PyTorch eager mode (``--torch``; needs torch and transformers, so run this
script from the training virtualenv). The eager path times the same computation: the model's
base encoder (``--weights``: MiniLM-L6 by default, the MPNet folder for ``accurate``) with
freshly initialised heads, run through the detector's own windowing, batching and decoding; the
weights' values do not change its speed. ``--name`` labels the rows (e.g. ``accurate``). Writes
a JSON file that ``benchmarks/techniques_quality.py --speed`` puts into docs/benchmarks.md.

    .venv/bin/python benchmarks/techniques_speed.py --fp32 /tmp/minilm-ptc-fp32.onnx
    .venv-train/bin/python benchmarks/techniques_speed.py --torch --out /tmp/speed-torch.json
    .venv/bin/python benchmarks/techniques_speed.py --model models/mpnet-ptc --name accurate \
        --fp32 /tmp/mpnet-ptc-fp32.onnx
    .venv/bin/python benchmarks/techniques_speed.py --model models/mpnet-minilm-ptc --name blend

A blend (``ensemble``) runs every member over each article; its pieces are its first member's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spinlens.model import Article
from spinlens.techniques import ptc
from spinlens.techniques.detectors import load_linear
from spinlens.techniques.ensemble import EnsembleDetector, is_ensemble
from spinlens.techniques.findings import TokenTagger
from spinlens.techniques.transformer import TransformerDetector, encode_text

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2


def median_rate(
    run: Callable[[], object], n_articles: int, runs: int, pieces: int = 0
) -> dict[str, float]:
    run()  # warm-up: first-call allocations are not what a batch of articles pays
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    seconds = statistics.median(timings)
    rates = {"articles_per_second": round(n_articles / seconds, 2), "seconds": round(seconds, 2)}
    if pieces:
        rates["pieces_per_second"] = round(pieces / seconds)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptc")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "minilm-ptc")
    parser.add_argument("--fp32", type=Path, help="the fp32 ONNX graph of the same model")
    parser.add_argument("--torch", action="store_true", help="time PyTorch eager instead")
    parser.add_argument("--weights", type=Path, help="base encoder folder for --torch")
    parser.add_argument("--name", default="", help="prefix of the result rows (e.g. accurate)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/techniques_speed.json"))
    args = parser.parse_args()

    texts = ptc.read_articles(args.data / "dev-articles")
    articles: Sequence[Article] = [ptc.to_article(text) for text in texts.values()]
    n = len(articles)
    results: dict[str, dict[str, float]] = {}
    prefix = f"{args.name}-" if args.name else ""
    probe: TokenTagger[Any]
    if is_ensemble(args.model):
        probe = EnsembleDetector.load(args.model, threads=THREADS)
        tokenizer = probe.members[0]._tokenizer
    else:
        probe = TransformerDetector.load(args.model, threads=THREADS)
        tokenizer = probe._tokenizer
    # Word pieces the encoder reads (without the windows' overlap): tokens per second.
    pieces = sum(len(encode_text(tokenizer, a.text)[0]) for a in articles)
    if args.torch:
        import torch

        from spinlens.techniques.train_transformer import (
            TorchSession,
            build_model,
            default_weights,
        )

        torch.set_num_threads(THREADS)
        weights = args.weights or default_weights()
        model = build_model(weights, len(probe.heads), len(probe.techniques)).eval()
        eager = TransformerDetector(args.model, session=TorchSession(model))
        results[f"{prefix}torch-eager-fp32"] = median_rate(
            lambda: eager.detect_many(articles), n, args.runs, pieces
        )
    else:
        if not args.name:
            baseline = load_linear("baseline")
            results["baseline"] = median_rate(
                lambda: [baseline.detect(a) for a in articles], n, args.runs
            )
        results[f"{prefix}onnx-int8"] = median_rate(
            lambda: probe.detect_many(articles), n, args.runs, pieces
        )
        if not args.name:
            results["onnx-int8-one-by-one"] = median_rate(
                lambda: [probe.detect(a) for a in articles], n, args.runs, pieces
            )
        if args.fp32 is not None:
            fp32 = TransformerDetector(
                args.model, model_file=str(args.fp32.resolve()), threads=THREADS
            )
            results[f"{prefix}onnx-fp32"] = median_rate(
                lambda: fp32.detect_many(articles), n, args.runs, pieces
            )
    for name, figures in results.items():
        per_piece = (
            f", {figures['pieces_per_second']:.0f} pieces/s"
            if "pieces_per_second" in figures
            else ""
        )
        print(
            f"{name}: {figures['articles_per_second']:.2f} articles/s{per_piece} "
            f"({figures['seconds']} s)"
        )
    previous = json.loads(args.out.read_text("utf-8")) if args.out.exists() else {}
    previous.update(results)
    previous["_machine"] = {
        "cpu": platform.machine(),
        "cores": os.cpu_count(),
        "threads": THREADS,
        "runs": args.runs,
        "articles": n,
        "python": platform.python_version(),
    }
    args.out.write_text(json.dumps(previous, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
