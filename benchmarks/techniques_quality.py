"""Technique detection quality and speed on PTC; writes the "## Technique detection" section of
docs/benchmarks.md.

Quality: the linear baseline is trained on the 80 % training part of the article-level split
(seed 13) and scored on the 20 % validation articles with the SemEval-2020 Task 11 metrics
(SI F1, TC micro-F1 labelling the gold spans, FLC F1, per-technique F1).
Speed: articles per second of ``detect`` on the 75 PTC dev-articles texts, median of 3 runs.

    .venv/bin/python benchmarks/techniques_quality.py [--data ../shared/data/ptc]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from spinlens.techniques import ptc
from spinlens.techniques.baseline import LinearDetector
from spinlens.techniques.taxonomy import NAMES
from spinlens.techniques.train_baseline import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Technique detection"
# SemEval-2020 Task 11 winners on the official test set (Da San Martino et al., 2020).
SEMEVAL_BEST = {"si": 0.51552, "tc": 0.62067}


def measure_speed(model: LinearDetector, articles_dir: Path, runs: int = 3) -> float:
    articles = [ptc.to_article(text) for text in ptc.read_articles(articles_dir).values()]
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        for article in articles:
            model.detect(article)
        timings.append(time.perf_counter() - started)
    return len(articles) / statistics.median(timings)


def render(meta: dict[str, Any], speed: float, n_dev: int) -> str:
    validation = meta["validation"]
    config = meta["config"]
    rows = "\n".join(
        f"| {name} | {validation['per_technique_f1'][name]['tc']:.3f} "
        f"| {validation['per_technique_f1'][name]['flc']:.3f} |"
        for name in NAMES
    )
    cpu = os.cpu_count()
    task_rows = "\n".join(
        f"| {title} | {validation[key]['precision']:.3f} | {validation[key]['recall']:.3f} "
        f"| **{validation[key]['f1']:.3f}** |"
        for key, title in (
            ("si", "SI (span identification)"),
            ("tc", "TC (technique of a given span)"),
            ("flc", "FLC (spans and techniques)"),
        )
    )
    return f"""{HEADING}

Model: `baseline-linear@1` (hashed-feature logistic regression token tagger + span classifier,
numpy inference; see `models/baseline-linear/MODEL_CARD.md`). Written by
`benchmarks/techniques_quality.py`.

**Method.** The 371 PTC v2 training articles are split by article with
`ptc.validation_split(share={config["validation_share"]}, seed={config["seed"]})`:
{meta["trained_articles"]} articles to train, {validation["articles"]} to validate. The model
is fitted on the training part; thresholds, gaps and the span classifier's regularisation are
chosen on the validation part, and the figures below are measured on that same validation part
(so they are slightly optimistic). Metrics are the SemEval-2020 Task 11 ones
(`spinlens.techniques.ptc`): SI and FLC use the partial-overlap span P/R/F1, TC is micro-F1
when labelling the gold spans of the validation articles.

| task | precision | recall | F1 |
|---|---|---|---|
{task_rows}

For context only: the best SemEval-2020 Task 11 systems (transformer ensembles) reached
SI F1 {SEMEVAL_BEST["si"]:.4f} and TC micro-F1 {SEMEVAL_BEST["tc"]:.4f} on the **official test
set**, not on this validation split, so the numbers are not directly comparable.

Per-technique F1 on the validation split:

| technique | TC F1 | FLC F1 |
|---|---|---|
{rows}

**Speed.** `LinearDetector.detect` on the {n_dev} PTC dev-articles texts (features, scoring and
decoding; loading excluded), median of 3 runs: **{speed:.1f} articles/second** on
{platform.machine()} with {cpu} CPU cores shared with other work (Python
{platform.python_version()}).
"""


def update_section(doc: Path, section: str) -> None:
    """Replace the "## Technique detection" section (up to the next "## ") or append it."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == HEADING), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptc")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        meta = train(args.data, folder, TrainConfig(seed=args.seed, retrain_on_all=False))
        model = LinearDetector.load(folder)
    dev = args.data / "dev-articles"
    speed = measure_speed(model, dev)
    n_dev = len(ptc.read_articles(dev))
    update_section(args.doc, render(meta, speed, n_dev))
    print(f"{speed:.1f} articles/second; wrote {args.doc}")


if __name__ == "__main__":
    main()
