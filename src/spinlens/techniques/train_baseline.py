"""Train the linear baseline (``baseline.LinearDetector``) on the PTC training articles.

Needs the ``train`` extra (scikit-learn, scipy); the trained model runs on numpy alone.

Recipe (every number below is a default of :class:`TrainConfig`, measured on the split it makes):

1. Split the 371 training articles by article: 20 % validation, seed 13 (``ptc.validation_split``).
2. Fit the token tagger (15 logistic regressions by SGD: 14 techniques + "any") and the span
   classifier (multinomial logistic regression) on the other 80 %.
3. On validation: for every tagger head and sensitivity level pick the threshold, gap and
   smoothing (``sensitivity.choose_sensitivities``: balanced is the best FLC F1 that keeps
   ordinary news below a mean flagged share of 0.10, every technique reported; the figures
   recorded are cross-fitted); pick the span classifier's regularisation by TC accuracy.
4. Refit both models on all 371 articles with those choices and save the model files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.errors import SpinlensError
from spinlens.techniques import ptc
from spinlens.techniques.baseline import (
    MODEL_FILE,
    LinearDetector,
    hashed,
    sentence_features,
    span_features,
    token_features,
)
from spinlens.techniques.decoding import ANY, Doc
from spinlens.techniques.findings import TokenReading, predict_tc
from spinlens.techniques.sensitivity import (
    NEWS_FOLDER,
    choose_decodings,
    read_news,
    tune,
    write_levels,
)
from spinlens.techniques.taxonomy import NAMES

# ``choose_decodings`` moved to ``sensitivity``; the transformer trainer imports it from here.
__all__ = ["TrainConfig", "choose_decodings", "load_corpus", "recompute_sensitivities", "train"]

SPAN_C = (0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 13
    validation_share: float = 0.2
    tagger_bits: int = 17  # 2^17 hashed features x 15 heads in float16: about 4 MB
    span_bits: int = 16
    # SGD L2 strength of the "any" head: 2e-4 gave the best validation average precision
    # among 1e-5 .. 1e-3 (AUC 0.728 vs 0.697 at 1e-5) and the best SI F1 among 1e-4 .. 4e-4.
    tagger_alpha: float = 2e-4
    # Technique heads (rarer positives want less shrinkage): validation FLC F1 was 0.173 at
    # 5e-5, 0.165 at 1e-4, 0.152 at 2e-4, 0.144 at 4e-4.
    technique_alpha: float = 5e-5
    tagger_epochs: int = 10
    retrain_on_all: bool = True


@dataclass
class Corpus:
    articles: dict[str, str]
    labels: list[ptc.Label]


def load_corpus(data_dir: str | Path) -> Corpus:
    """PTC's ``train-articles/`` and ``train-task-flc-tc.labels`` from ``data_dir``."""
    root = Path(data_dir)
    if not root.is_dir():
        raise SpinlensError(f"PTC data folder not found: {root}")
    articles = ptc.read_articles(root / "train-articles")
    labels = ptc.read_labels(root / "train-task-flc-tc.labels", "flc")
    for label in labels:
        text = articles.get(label.article_id)
        if text is None or label.end > len(text):
            raise SpinlensError(
                f"label {label} does not fit an article in {root / 'train-articles'}"
            )
    return Corpus(articles, labels)


def _require_sklearn() -> None:
    try:
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise SpinlensError("training needs scikit-learn: pip install 'spinlens[train]'") from None


# --- design matrices ---------------------------------------------------------------------


def tagger_matrix(
    docs: Sequence[Doc], labels: Sequence[Sequence[ptc.Label]], heads: Sequence[str], bits: int
) -> tuple[Any, NDArray[np.bool_]]:
    """Token rows (hashed features, sentence features included) and per-head targets."""
    from scipy import sparse

    mask = (1 << bits) - 1
    column = {head: i for i, head in enumerate(heads)}
    indices: list[int] = []
    indptr = [0]
    targets: list[NDArray[np.bool_]] = []
    for doc, doc_labels in zip(docs, labels, strict=True):
        shared = [hashed(sentence_features(doc, s), mask) for s in range(len(doc.sentences))]
        y = np.zeros((len(doc.tokens), len(heads)), dtype=bool)
        starts = np.array([t.start for t in doc.tokens])
        ends = np.array([t.end for t in doc.tokens])
        for label in doc_labels:
            inside = (starts < label.end) & (ends > label.start)
            y[inside, column[label.technique or ANY]] = True
            y[inside, column[ANY]] = True
        for i, token in enumerate(doc.tokens):
            indices.extend(hashed(token_features(doc, i), mask))
            indices.extend(shared[token.sentence])
            indptr.append(len(indices))
        targets.append(y)
    matrix = sparse.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), np.array(indices), np.array(indptr)),
        shape=(len(indptr) - 1, 1 << bits),
    )
    matrix.sum_duplicates()
    return matrix, np.concatenate(targets)


def fit_tagger(
    matrix: Any, targets: NDArray[np.bool_], config: TrainConfig
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    from sklearn.linear_model import SGDClassifier

    n_heads = targets.shape[1]
    weights = np.zeros((matrix.shape[1], n_heads), dtype=np.float32)
    bias = np.zeros(n_heads, dtype=np.float32)
    for head in range(n_heads):
        # The last head is ANY (see LinearDetector.heads).
        alpha = config.tagger_alpha if head == n_heads - 1 else config.technique_alpha
        if targets[:, head].all() or not targets[:, head].any():
            # A tiny corpus may lack a technique: a constant head, never firing on its own.
            bias[head] = 10.0 if targets[:, head].all() else -10.0
            continue
        model = SGDClassifier(
            loss="log_loss",
            alpha=alpha,
            max_iter=config.tagger_epochs,
            tol=None,
            random_state=config.seed,
        )
        model.fit(matrix, targets[:, head])
        weights[:, head] = model.coef_[0]
        bias[head] = model.intercept_[0]
    return weights, bias


def span_matrix(
    docs: Mapping[str, Doc], labels: Sequence[ptc.Label], bits: int
) -> tuple[Any, NDArray[np.int64]]:
    from scipy import sparse

    mask = (1 << bits) - 1
    column = {name: i for i, name in enumerate(NAMES)}
    indices: list[int] = []
    indptr = [0]
    for label in labels:
        indices.extend(hashed(span_features(docs[label.article_id], label.start, label.end), mask))
        indptr.append(len(indices))
    matrix = sparse.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), np.array(indices), np.array(indptr)),
        shape=(len(labels), 1 << bits),
    )
    matrix.sum_duplicates()
    return matrix, np.array([column[label.technique or ""] for label in labels])


def fit_span_classifier(
    matrix: Any, targets: NDArray[np.int64], c: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    from sklearn.linear_model import LogisticRegression

    # Classes absent from the training part keep zero weights and a very low bias.
    weights = np.zeros((matrix.shape[1], len(NAMES)), dtype=np.float32)
    bias = np.full(len(NAMES), -30.0, dtype=np.float32)
    if len(set(targets.tolist())) < 2:
        bias[targets[:1]] = 0.0
        return weights, bias
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(matrix, targets)
    for row, cls in enumerate(model.classes_):
        weights[:, cls] = model.coef_[row]
        bias[cls] = model.intercept_[row]
    return weights, bias


# --- fitting and choosing ----------------------------------------------------------------


def _fit(
    docs: Mapping[str, Doc],
    corpus: Corpus,
    ids: Sequence[str],
    config: TrainConfig,
    c: float,
    log: Callable[[str], None],
) -> LinearDetector:
    heads = [*NAMES, ANY]
    by_article = ptc.spans_by_article(corpus.labels)
    started = time.perf_counter()
    matrix, targets = tagger_matrix(
        [docs[i] for i in ids], [by_article.get(i, []) for i in ids], heads, config.tagger_bits
    )
    log(
        f"  token matrix {matrix.shape[0]} x {matrix.shape[1]}, {matrix.nnz} non-zeros "
        f"({time.perf_counter() - started:.0f} s)"
    )
    tagger_w, tagger_b = fit_tagger(matrix, targets, config)
    log(f"  tagger fitted ({time.perf_counter() - started:.0f} s)")
    labels = ptc.restrict(corpus.labels, ids)
    span_x, span_y = span_matrix(docs, labels, config.span_bits)
    span_w, span_b = fit_span_classifier(span_x, span_y, c)
    log(f"  span classifier fitted on {len(labels)} spans ({time.perf_counter() - started:.0f} s)")
    return LinearDetector(
        techniques=NAMES,
        tagger_weights=tagger_w,
        tagger_bias=tagger_b,
        tagger_bits=config.tagger_bits,
        decodings={},
        span_weights=span_w,
        span_bias=span_b,
        span_bits=config.span_bits,
    )


def _choose_span_c(
    docs: Mapping[str, Doc],
    corpus: Corpus,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    config: TrainConfig,
    log: Callable[[str], None],
) -> tuple[float, float]:
    train_labels = ptc.restrict(corpus.labels, train_ids)
    val_labels = ptc.restrict(corpus.labels, val_ids)
    x, y = span_matrix(docs, train_labels, config.span_bits)
    template = [ptc.Label(la.article_id, la.start, la.end, "?") for la in val_labels]
    # The span classifier reads words only: no tagger pass is needed to label spans.
    readings = {
        i: TokenReading(docs[i], np.zeros((0, len(NAMES) + 1), np.float32)) for i in val_ids
    }
    best = (0.0, SPAN_C[0])
    for c in SPAN_C:
        w, b = fit_span_classifier(x, y, c)
        model = LinearDetector(
            techniques=NAMES,
            tagger_weights=np.zeros((1 << config.tagger_bits, len(NAMES) + 1), dtype=np.float32),
            tagger_bias=np.zeros(len(NAMES) + 1, dtype=np.float32),
            tagger_bits=config.tagger_bits,
            decodings={},
            span_weights=w,
            span_bias=b,
            span_bits=config.span_bits,
        )
        accuracy = ptc.score_tc(val_labels, predict_tc(model, readings, template)).overall.f1
        log(f"  span classifier C={c}: validation TC micro-F1 {accuracy:.4f}")
        best = max(best, (accuracy, c))
    return best[1], best[0]


def choose_levels(
    model: LinearDetector,
    val_docs: Mapping[str, Doc],
    val_gold: Sequence[ptc.Label],
    news_folder: str | Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``sensitivity.tune`` with the news of ``news_folder``."""
    news = {i: Doc(a) for i, a in read_news(news_folder).items()}
    return tune(model, val_docs, val_gold, news, log)


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    log: Callable[[str], None] = print,
    news_folder: str | Path = NEWS_FOLDER,
) -> dict[str, Any]:
    """Train, choose on validation, refit (see the module doc) and save to ``out_dir``.

    Returns the model's metadata, validation figures included.
    """
    _require_sklearn()
    config = config or TrainConfig()
    corpus = load_corpus(data_dir)
    docs = {i: Doc(ptc.to_article(text)) for i, text in corpus.articles.items()}
    train_ids, val_ids = ptc.validation_split(corpus.articles, config.validation_share, config.seed)
    val_gold = ptc.restrict(corpus.labels, val_ids)
    log(f"{len(train_ids)} training and {len(val_ids)} validation articles (seed {config.seed})")
    span_c, _ = _choose_span_c(docs, corpus, train_ids, val_ids, config, log)
    model = _fit(docs, corpus, train_ids, config, span_c, log)
    val_docs = {i: docs[i] for i in val_ids}
    record = choose_levels(model, val_docs, val_gold, news_folder, log)
    metrics = record["in_sample"]
    log(
        f"validation (balanced, in-sample): SI F1 {metrics['si']['f1']:.4f}, TC micro-F1 "
        f"{metrics['tc']['f1']:.4f}, FLC F1 {metrics['flc']['f1']:.4f}"
    )
    if config.retrain_on_all:
        log("refitting on all articles")
        final = _fit(docs, corpus, sorted(corpus.articles), config, span_c, log)
        final.sensitivities, final.decodings = model.sensitivities, model.decodings
        model = final
    model.meta = {
        "trained_on": "PTC v2 train-articles (SemEval-2020 Task 11)",
        "trained_articles": len(corpus.articles) if config.retrain_on_all else len(train_ids),
        "config": asdict(config),
        "span_classifier_c": span_c,
        "validation": {
            "articles": len(val_ids),
            "seed": config.seed,
            "share": config.validation_share,
            "ids": val_ids,
            **metrics,
        },
        "sensitivity_validation": record["cross_fitted"],
    }
    model.save(out_dir)
    log(f"saved to {out_dir}")
    return model.meta


def recompute_sensitivities(
    data_dir: str | Path,
    model_dir: str | Path,
    news_folder: str | Path = NEWS_FOLDER,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Choose the sensitivity levels of a trained baseline again, without changing its weights:
    the model fitted on the training part of its split (refitted exactly as ``train`` did) reads
    the validation articles, since the shipped one has seen them. Updates its model.json."""
    _require_sklearn()
    shipped = LinearDetector.load(model_dir)
    config = TrainConfig(**shipped.meta["config"])
    corpus = load_corpus(data_dir)
    docs = {i: Doc(ptc.to_article(text)) for i, text in corpus.articles.items()}
    train_ids, val_ids = ptc.validation_split(corpus.articles, config.validation_share, config.seed)
    log(f"refitting on the {len(train_ids)} training articles of the split")
    model = _fit(docs, corpus, train_ids, config, float(shipped.meta["span_classifier_c"]), log)
    val_gold = ptc.restrict(corpus.labels, val_ids)
    record = choose_levels(model, {i: docs[i] for i in val_ids}, val_gold, news_folder, log)
    write_levels(Path(model_dir) / MODEL_FILE, model, record)
    return record
