"""Technique detection quality (and speed, from ``techniques_speed.py``) on PTC; writes the
"## Technique detection" section of docs/benchmarks.md.

Both detectors are measured on the same article-level validation split of the PTC training
articles (``ptc.validation_split(share=0.2, seed=13)``, 74 articles) with the SemEval-2020
Task 11 metrics: SI F1, TC micro-F1 labelling the gold spans, FLC F1 and per-technique F1.
The transformer is scored here, live, with its int8 graph (and its fp32 graph with ``--fp32``);
the baseline's figures are those recorded by its training on the same split before it was
refitted on all articles (scoring the refitted baseline on validation would count articles it
was trained on).

    .venv/bin/python benchmarks/techniques_quality.py --fp32 /tmp/minilm-ptc-fp32.onnx \\
        --speed /tmp/techniques_speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spinlens.techniques import ptc
from spinlens.techniques.baseline import ANY, Doc
from spinlens.techniques.sensitivity import cross_fitted_tc, fit_tc_context
from spinlens.techniques.taxonomy import NAMES
from spinlens.techniques.train_baseline import load_corpus
from spinlens.techniques.train_transformer import choose_transformer_decodings, evaluate
from spinlens.techniques.transformer import Encoded, TransformerDetector, encode_all, predict_si

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_section import reliability_rows, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Technique detection"
# SemEval-2020 Task 11 winners on the official test set (Da San Martino et al., 2020).
SEMEVAL_BEST = {"si": 0.51552, "tc": 0.62067}
TASKS = (
    ("si", "SI (span identification)"),
    ("tc", "TC (technique of a given span)"),
    ("flc", "FLC (spans and techniques)"),
)


def measure(folder: Path, data: Path, model_file: str | None) -> dict[str, Any]:
    corpus = load_corpus(data)
    _, val_ids = ptc.validation_split(corpus.articles, 0.2, 13)
    gold = ptc.restrict(corpus.labels, val_ids)
    kwargs = {"model_file": model_file} if model_file else {}
    detector = TransformerDetector(folder, **kwargs)
    docs = {i: Doc(ptc.to_article(corpus.articles[i])) for i in val_ids}
    encoded = encode_all(detector, docs)
    # TC with the article-context correction refitted on one half, scored on the other (the
    # shipped one was fitted on these very articles).
    _, tc = fit_tc_context(detector, encoded, gold)
    figures = cross_fitted_tc(evaluate(detector, encoded, gold), tc)
    figures["si_cross_fitted"] = cross_fitted_si(detector, encoded, gold)
    return figures


def cross_fitted_si(
    detector: TransformerDetector, encoded: dict[str, Encoded], gold: list[ptc.Label]
) -> dict[str, float]:
    """SI scored on each half of the validation articles with the decoding chosen on the other
    half: the SI figure without the optimism of choosing and scoring on the same articles."""
    ids = sorted(encoded)
    halves = [set(ids[0::2]), set(ids[1::2])]
    shipped = detector.decodings[ANY]
    predicted: list[ptc.Label] = []
    for chosen_on, scored_on in (halves, halves[::-1]):
        decoding = choose_transformer_decodings(
            detector.heads,
            {i: encoded[i] for i in chosen_on},
            [la for la in gold if la.article_id in chosen_on],
            only=[ANY],
        )
        detector.decodings[ANY] = decoding[ANY]
        predicted += predict_si(detector, {i: encoded[i] for i in scored_on})
    detector.decodings[ANY] = shipped
    prf = ptc.score_si(gold, predicted).overall
    return {"precision": prf.precision, "recall": prf.recall, "f1": prf.f1}


def _threshold(meta: dict[str, Any], name: str) -> str:
    decoding = meta["decodings"].get(name)
    return "off" if decoding is None else f"{decoding['threshold']:g}"


def _speed_rows(speed: dict[str, Any]) -> str:
    names = {
        "baseline": "baseline-linear (numpy)",
        "onnx-int8": "minilm-ptc, ONNX Runtime int8, windows batched across articles",
        "onnx-int8-one-by-one": "minilm-ptc, ONNX Runtime int8, one article per call",
        "onnx-fp32": "minilm-ptc, ONNX Runtime fp32, batched",
        "torch-eager-fp32": "same architecture, PyTorch eager fp32, batched (the naive path)",
    }
    return "\n".join(
        f"| {label} | **{speed[key]['articles_per_second']:.1f}** | {speed[key]['seconds']:.1f} |"
        for key, label in names.items()
        if key in speed
    )


def render(
    meta: dict[str, Any],
    base: dict[str, Any],
    int8: dict[str, Any],
    fp32: dict[str, Any] | None,
    speed: dict[str, Any] | None,
    size_mb: float,
) -> str:
    bval = base["validation"]
    fp32_head = " minilm-ptc fp32 |" if fp32 else ""
    fp32_rule = "---|" if fp32 else ""
    task_rows = "\n".join(
        f"| {title} | {bval[key]['f1']:.3f} | **{int8[key]['f1']:.3f}** "
        f"({int8[key]['precision']:.3f} / {int8[key]['recall']:.3f}) |"
        + (f" {fp32[key]['f1']:.3f} |" if fp32 else "")
        + (f" {SEMEVAL_BEST[key]:.4f} |" if key in SEMEVAL_BEST else " – |")
        for key, title in TASKS
    )
    per_technique = "\n".join(
        f"| {name} | {bval['per_technique_f1'][name]['tc']:.3f} "
        f"| {int8['per_technique_f1'][name]['tc']:.3f} "
        f"| {bval['per_technique_f1'][name]['flc']:.3f} "
        f"| {int8['per_technique_f1'][name]['flc']:.3f} "
        f"| {_threshold(meta, name)} |"
        for name in NAMES
    )
    reliability = reliability_rows(meta["reliability"])
    history = "\n".join(
        f"| {h['epoch']} | {h['token_loss']:.4f} | {h['span_loss']:.3f} "
        f"| {h['validation_si_f1']:.3f} | {h['validation_tc_f1']:.3f} | {h['train_seconds']} |"
        for h in meta["history"]
    )
    config = meta["config"]
    self_training = ""
    teachers = config.get("teachers") or []
    if len(teachers) > 1:
        names = ", ".join(f"`{Path(t).name}`" for t in teachers)
        self_training = (
            f"; distilled from {len(teachers)} teachers trained on the same split ({names}): "
            "the mean of their soft labels on the unlabelled PTC dev and test texts, learnt "
            "beside the gold ones (the model card has the details)"
        )
    elif teachers or config.get("teacher"):
        rounds, link = 1, meta  # model.json keeps each teacher's record inside its student's
        while "teacher" in link:
            rounds, link = rounds + 1, link["teacher"]
        self_training = (
            f"; self-trained ({rounds} round{'s' if rounds > 1 else ''}): a teacher trained on "
            "the same split labels the unlabelled PTC dev and test texts, whose soft labels the "
            "student learns beside the gold ones (the model card has the chain)"
        )
    if meta.get("passage_encoder"):
        self_training += (
            f"; a passage head learns the sentence vectors of `{meta['passage_encoder']}` "
            "from the same pass, so narrative matching reads few passages itself (held-out "
            f"cosine {meta['validation']['passage_cosine']:.3f})"
        )
    speed_text = "Not measured in this run."
    if speed:
        machine = speed["_machine"]
        speed_text = f"""Detection alone on the {machine["articles"]} PTC dev-articles
texts (already read and sentence-split; model loading excluded), one process,
{machine["threads"]} threads, median of {machine["runs"]} runs after a warm-up, on
{machine["cpu"]} with {machine["cores"]} CPU cores shared with other work (Python
{machine["python"]}), written by `benchmarks/techniques_speed.py`:

| detector | articles/s | seconds for all |
|---|---|---|
{_speed_rows(speed)}"""
    return f"""{HEADING}

Models: `{meta["name"]}` (the `fast` tier, which beats the baseline on SI, TC and FLC below;
see `models/minilm-ptc/MODEL_CARD.md`; the default `accurate` tier is compared with it,
cross-fitted, in "Technique sensitivity") and the first detector, `baseline-linear@1`, kept
as a named baseline (`--model baseline`, `--techniques-model baseline`). Written by
`benchmarks/techniques_quality.py`.

**Method.** The 371 PTC v2 training articles are split by article with
`ptc.validation_split(share=0.2, seed=13)`: 297 articles to train, 74 to validate; both models
use this split. `{meta["name"]}` fine-tunes all-MiniLM-L6-v2 on the 297 articles
({config["epochs"]} epochs planned, best epoch kept; windows of {config["window"]} word pieces,
whole articles, 15 sigmoid token heads for the 14 techniques and "any", per-head positive
weights for the class imbalance, a TC span head on the same encoder){self_training}, then
chooses on validation each head's threshold, gap and smoothing, the TC softmax temperature and
the calibration of span scores. As for the baseline, those choices are made on the
validation articles the figures below are measured on, so the figures are slightly optimistic;
except TC, whose correction for article context (`techniques.tc_context`: a span whose phrase
the article already used leans to Repetition) is fitted on one half and scored on the other.
Metrics are the
SemEval-2020 Task 11 ones (`spinlens.techniques.ptc`): SI and FLC use the partial-overlap span
P/R/F1, TC is micro-F1 labelling the gold spans of the validation articles. The SemEval column
is the best system of the task on the **official test set** (SI: an ensemble; TC: a RoBERTa-large
ensemble with self-training), for context only: a different set of articles.

| task | baseline F1 | minilm-ptc int8 F1 (P / R) |{fp32_head} SemEval-2020 best (test) |
|---|---|---|{fp32_rule}---|
{task_rows}

Choosing the SI decoding (threshold, gap, smoothing) on half of the validation articles and
scoring the other half, both ways round, gives SI F1 **{int8["si_cross_fitted"]["f1"]:.3f}**
(P {int8["si_cross_fitted"]["precision"]:.3f} / R {int8["si_cross_fitted"]["recall"]:.3f}):
the figure without that optimism.

Per technique on the validation split (thresholds are of mean word probability; "off": the
technique is never reported, because reporting it at any threshold lowered overall FLC F1 on
validation. Users can turn them on with `SPINLENS_TECHNIQUE_THRESHOLDS`, see the model card):

| technique | TC F1 baseline | TC F1 minilm-ptc | FLC F1 baseline | FLC F1 minilm-ptc | threshold |
|---|---|---|---|---|---|
{per_technique}

**Calibration.** A finding's score is the mean token probability of its span mapped by a Platt
scale per technique (pooled for techniques with fewer than 30 validation spans) to the
probability that at least half of the span lies in a gold span of that technique. Reliability
on validation, 2-fold cross-fitted (each half of the validation articles is scored with the
scales fitted on the other half):

| spans | predicted bin | spans | mean predicted | observed correct |
|---|---|---|---|---|
{reliability}

**Training** (2 CPU threads, torch {meta.get("torch", "?")}): {meta["train_minutes"]} minutes of
fine-tuning, {meta["total_minutes"]} minutes in all with export and the choices on validation.

| epoch | token loss | span loss | validation SI F1 | validation TC micro-F1 | seconds |
|---|---|---|---|---|---|
{history}

**Size.** `models/minilm-ptc/model.onnx` (int8, per-channel weights) {size_mb:.1f} MB; the
fp32 graph is about 4x larger and is not shipped.

**Speed.** {speed_text}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptc")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "minilm-ptc")
    parser.add_argument("--baseline", type=Path, default=ROOT / "models" / "baseline-linear")
    parser.add_argument("--fp32", type=Path, help="the fp32 ONNX graph of the same model")
    parser.add_argument("--speed", type=Path, help="JSON written by techniques_speed.py")
    args = parser.parse_args()
    meta = json.loads((args.model / "model.json").read_text("utf-8"))
    base = json.loads((args.baseline / "model.json").read_text("utf-8"))
    int8 = measure(args.model, args.data, None)
    fp32 = measure(args.model, args.data, str(args.fp32.resolve())) if args.fp32 else None
    for label, figures in (("int8", int8), ("fp32", fp32)):
        if figures:
            print(
                f"{label}: SI F1 {figures['si']['f1']:.4f}, TC micro-F1 {figures['tc']['f1']:.4f}, "
                f"FLC F1 {figures['flc']['f1']:.4f}"
            )
    speed = json.loads(args.speed.read_text("utf-8")) if args.speed else None
    size_mb = (args.model / "model.onnx").stat().st_size / 1e6
    write_section(render(meta, base, int8, fp32, speed, size_mb), args.doc)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
