"""What narrative matching adds to ``analyze``: the same articles analysed with and without it.

    .venv/bin/python benchmarks/narratives_cost.py --home DIR --articles PTC/dev-articles

``--home``: a SPINLENS_HOME with the catalogues to match against (both EUvsDisinfo exports
imported, as benchmarks/narratives_retrieval.py leaves it: "the full catalogue"). Each article is
analysed by the full pipeline (extraction, techniques, narratives) and by the same pipeline without
matchers, alternately, in one process with 2 threads; medians over articles and rounds. Writes
the "Narrative matching cost" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from docs_section import write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Narrative matching cost"
# The rejected alternatives were measured once by hand (scripts not kept).
NOTES = [
    "Both models run with ONNX Runtime's thread spinning off (`spinlens.onnx_session`): with it",
    "on, the idle threads of one model kept the cores from the other and from numpy, and the same",
    "benchmark measured 165 ms without and 306 ms with matching (86%); the detector alone runs",
    "as fast either way (6.8 articles/s one at a time).",
    "",
    "Matching the encoder's way costs one MiniLM pass over the article's sentences, the same",
    "order of work as the technique detector's pass over its windows. The shipped way avoids",
    "most of it: the detector (minilm-ptc@3) was trained with the sentence encoder's vectors as",
    "a second target (its passage head, held-out cosine 0.80), and the encoder reads only the",
    "passages whose rough vectors come within `selection.SHORTLIST_MARGIN` (0.12) of a threshold.",
    "A fixed share of the passages instead (the best 20% by rough score, at least 8) added 45%",
    "and lost a match that the margin keeps; the margin was chosen on 40 PTC dev articles and 30",
    "articles with a pasted case summary and checked on 50 PTC test articles and 40 other",
    "summaries (all 150 matches kept; see the constant's comment).",
    "",
    "Before the passage head, three ways to avoid the encoder's pass were tried and rejected:",
    "",
    "- passage vectors from the detector's own hidden states (mean and max pooled per sentence,",
    "  an MLP trained on 14k sentences to reproduce the sentence encoder's vectors): held-out",
    "  cosine 0.72 to the encoder, too far to search 13k claims with;",
    "- trained static word vectors (model2vec-like, initialised from MiniLM's input embeddings)",
    "  as a prefilter choosing which sentences the encoder reads: cosine 0.79, and only 78% of the",
    "  encoder's three best passages per article fell in the prefilter's top quarter;",
    "- one transformer layer (initialised from all-MiniLM-L6-v2's next layer) over the",
    "  detector's own token states of a sentence, in the windows the detector reads, trained on",
    "  6,382 sentences of 160 PTC training articles to reproduce the sentence encoder's vectors",
    "  (1,300 held out): held-out cosine 0.74 on the states after the detector's third layer, 0.77",
    "  after its fourth (an MLP on their mean: 0.67). The bridge from USE (then at 0.72; now",
    '  0.76) shares about half of the top-10 claims of English sentences ("Narrative matching',
    '  across languages"): too blurred for English articles.',
    "",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument(
        "--articles", type=Path, default=ROOT.parent / "shared/data/ptc/dev-articles"
    )
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    os.environ["SPINLENS_HOME"] = str(args.home)

    from spinlens.model import Document, Source
    from spinlens.narratives.passages import plan_passages
    from spinlens.narratives.selection import select
    from spinlens.pipeline import Pipeline, default_pipeline

    full = default_pipeline()
    without = Pipeline(detector=full.detector, matchers=[])
    # The detector's pass not shared: the encoder reads every passage of the article.
    alone = Pipeline(detector=full.detector, matchers=full.matchers, share_passages=False)
    shares = full.shared_passage_space() is not None
    paths = sorted(args.articles.glob("*.txt"))[: args.n]
    documents = [
        Document(
            source=Source(kind="file", location=str(p)),
            body=p.read_text(encoding="utf-8"),
            media_type="text/plain",
        )
        for p in paths
    ]
    full.analyze(documents[0])  # load models and catalogue vectors before timing
    timings: dict[str, list[float]] = {"with": [], "without": [], "alone": []}
    runs = [("without", without), ("with", full), *([("alone", alone)] if shares else [])]
    for _ in range(args.rounds):
        for document in documents:
            for label, pipeline in runs:
                started = time.perf_counter()
                pipeline.analyze(document)
                timings[label].append(time.perf_counter() - started)
    # What the shortlist changes: the shipped path's matches against those of the encoder
    # reading every passage, on the same articles.
    kept = total = same = 0
    if shares:
        for document in documents:
            shortlisted = {m.claim_id for m in full.analyze(document).narratives}
            every = {m.claim_id for m in alone.analyze(document).narratives}
            kept += len(shortlisted & every)
            total += len(every)
            same += shortlisted == every
    # Where matching's time goes, on the articles as analyze extracts them.
    matcher = full.matchers[0]
    parts: dict[str, list[float]] = {"embed": [], "search": [], "select": []}
    articles = [without.analyze(d).article for d in documents]
    for _ in range(args.rounds):
        for article in articles:
            started = time.perf_counter()
            plan = plan_passages(article.text, article.sentences)
            vectors = plan.vectors(matcher.encoder, article.text)  # type: ignore[attr-defined]
            embedded = time.perf_counter()
            scores = matcher.index.scores(vectors)  # type: ignore[attr-defined]
            searched = time.perf_counter()
            select(matcher.index, plan.spans, scores, 0.6, 0.7)  # type: ignore[attr-defined]
            parts["embed"].append(embedded - started)
            parts["search"].append(searched - embedded)
            parts["select"].append(time.perf_counter() - searched)
    part = {label: statistics.median(values) * 1e3 for label, values in parts.items()}
    med = {label: statistics.median(values) * 1e3 for label, values in timings.items() if values}
    mean = {label: statistics.mean(values) * 1e3 for label, values in timings.items() if values}
    added = med["with"] - med["without"]
    detector_name = getattr(full.detector, "name", "?")
    shared_rows = (
        [
            f"| analyze with matching, the encoder reading every passage | {med['alone']:.0f} ms |",
            f"| ... added by matching that way | {med['alone'] - med['without']:.0f} ms "
            f"({(med['alone'] - med['without']) / med['without']:.0%}) |",
            f"| matches of that way also made through the shortlist | {kept} of {total} |",
            f"| articles with exactly the same matches both ways | {same} of {len(documents)} |",
        ]
        if shares
        else []
    )
    how = (
        f"the detector ({detector_name}) shares its pass: its passage head shortlists "
        "the passages the encoder reads"
        if shares
        else "the encoder reads every passage (the detector has no passage head)"
    )
    n_vectors = len(full.matchers[0].index.vectors)  # type: ignore[attr-defined]
    lines = [
        SECTION,
        "",
        f"Measured by `benchmarks/narratives_cost.py`: {len(documents)} PTC dev articles, "
        f"{args.rounds} rounds, one process, 2 threads; the catalogue is the starter families plus",
        f"both EUvsDisinfo exports ({n_vectors:,} vectors), encoder "
        f"`{full.matchers[0].name.split('+')[0]}`.",
        "",
        "| measure | median per article |",
        "| --- | --- |",
        f"| analyze without matching (extraction + techniques) | {med['without']:.0f} ms |",
        f"| analyze with narrative matching (shipped: {how}) | {med['with']:.0f} ms |",
        f"| added by matching | {added:.0f} ms ({added / med['without']:.0%}; target ≤ 30%) |",
        f"| ... in the mean over articles (a few articles near many claims cost more) | "
        f"{mean['with'] - mean['without']:.0f} ms "
        f"({(mean['with'] - mean['without']) / mean['without']:.0%}) |",
        *shared_rows,
        "",
        "The encoder's path, step by step, timed separately on the same articles (median ms,",
        "share):",
        "",
        "| step | median per article | share |",
        "| --- | --- | --- |",
        *(
            f"| {label} | {part[key]:.0f} ms | {part[key] / sum(part.values()):.0%} |"
            for key, label in (
                ("embed", "embedding the passages (MiniLM over sentences and clauses)"),
                ("search", "scoring them against every catalogue vector (numpy)"),
                ("select", "choosing matches, evidence and precedents"),
            )
        ),
        "",
        *NOTES,
    ]
    print("\n".join(lines))
    write_section("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
