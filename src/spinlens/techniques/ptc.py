"""The Propaganda Techniques Corpus (PTC, SemEval-2020 Task 11): corpus I/O and the scorers.

Files: ``article<ID>.txt`` (title, blank line, text; offsets index the file read as UTF-8) and
tab-separated label files: ``ID start end`` (task SI), ``ID technique start end`` (TC and FLC;
a TC template has ``?`` as technique). Article IDs are kept without the ``article`` prefix.

The scorers follow the published task scorers (Da San Martino et al., 2019/2020):

* SI: spans of an article are merged where they overlap, in the gold and in the prediction;
  precision = sum over predicted spans s and gold spans t of |s∩t|/|s|, divided by the number
  of predicted spans; recall = the same sum with |s∩t|/|t|, divided by the number of gold spans.
* FLC: as SI, but merging happens per technique and only pairs of the same technique count;
  per-technique figures use that technique's spans as denominators.
* TC: predictions label exactly the gold spans; where one span carries several gold techniques,
  labels are paired to maximise matches; micro-averaged P/R/F1 (equal to accuracy), plus
  per-technique P/R/F1.

As in the published scorers, P/R/F1 of a class with no gold and no predicted span is 1.0 for the
span scorers; for TC a technique that never occurs gets 0.0 (scikit-learn's convention).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from spinlens.errors import SpinlensError
from spinlens.model import Article
from spinlens.sentences import split_sentences
from spinlens.techniques.taxonomy import NAMES

Task = Literal["si", "tc", "flc"]
TASKS: tuple[Task, ...] = ("si", "tc", "flc")
UNKNOWN_TECHNIQUE = "?"  # the technique column of a TC template

_ARTICLE_FILE = re.compile(r"^article(\d+)\.txt$")


class PTCFormatError(SpinlensError):
    """A PTC article folder or label file is missing or malformed."""


@dataclass(frozen=True, order=True)
class Label:
    """One annotated span: ``technique`` is None for SI and ``?`` in a TC template."""

    article_id: str
    start: int
    end: int
    technique: str | None = None


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float

    def rounded(self) -> dict[str, float]:
        """As model cards and benchmarks record it: four decimals."""
        return {k: round(v, 4) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Score:
    """Overall P/R/F1 and, for TC and FLC, the same per technique."""

    task: Task
    overall: PRF
    per_technique: dict[str, PRF] = field(default_factory=dict)


# --- articles ----------------------------------------------------------------------------


def read_articles(directory: str | Path) -> dict[str, str]:
    """Read ``article<ID>.txt`` files into {ID: text}; the text is the file decoded as UTF-8."""
    folder = Path(directory)
    if not folder.is_dir():
        raise PTCFormatError(f"articles folder not found: {folder}")
    articles: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        match = _ARTICLE_FILE.match(path.name)
        if not match:
            continue
        try:
            # newline="" keeps "\r\n" as two code points: offsets index the raw file text.
            with path.open(encoding="utf-8", newline="") as handle:
                articles[match.group(1)] = handle.read()
        except UnicodeDecodeError as error:
            raise PTCFormatError(f"{path}: not valid UTF-8 ({error.reason})") from None
    if not articles:
        raise PTCFormatError(f"no article<ID>.txt files in {folder}")
    return articles


def to_article(text: str) -> Article:
    """A PTC text as an Article: the first line is the title; sentences are split as elsewhere."""
    first_line = text.split("\n", 1)[0].strip()
    return Article(
        title=first_line or None, language="en", text=text, sentences=split_sentences(text)
    )


# --- label files -------------------------------------------------------------------------


def read_labels(path: str | Path, task: Task) -> list[Label]:
    """Read a label file. For ``si`` a technique column, if present, is ignored."""
    source = Path(path)
    if not source.is_file():
        raise PTCFormatError(f"label file not found: {source}")
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise PTCFormatError(f"{source}: not valid UTF-8 ({error.reason})") from None
    return [label for label in _parse_lines(lines, task, str(source)) if label is not None]


def _parse_lines(lines: Iterable[str], task: Task, name: str) -> Iterator[Label | None]:
    expected = "ID<TAB>start<TAB>end" if task == "si" else "ID<TAB>technique<TAB>start<TAB>end"
    for number, line in enumerate(lines, 1):
        if not line.strip():
            yield None
            continue
        fields = line.rstrip("\r\n").split("\t")
        technique: str | None
        if task == "si" and len(fields) == 3:
            article_id, start_text, end_text = fields
            technique = None
        elif len(fields) == 4:
            article_id, technique, start_text, end_text = fields
            if task == "si":
                technique = None
            elif technique != UNKNOWN_TECHNIQUE and technique not in NAMES:
                raise PTCFormatError(f"{name}:{number}: unknown technique {technique!r}")
        else:
            raise PTCFormatError(
                f"{name}:{number}: expected {expected}, found {len(fields)} field(s)"
            )
        try:
            start, end = int(start_text), int(end_text)
        except ValueError:
            raise PTCFormatError(f"{name}:{number}: offsets must be integers") from None
        if not article_id.strip().isdigit():
            raise PTCFormatError(f"{name}:{number}: article ID must be digits: {article_id!r}")
        if start < 0 or end <= start:
            raise PTCFormatError(f"{name}:{number}: need 0 <= start < end, got {start}, {end}")
        yield Label(article_id.strip(), start, end, technique)


def format_labels(labels: Iterable[Label], task: Task) -> str:
    """Labels as the text of a SemEval file (SI: 3 columns; TC and FLC: 4 columns)."""
    out: list[str] = []
    for label in labels:
        if task == "si":
            out.append(f"{label.article_id}\t{label.start}\t{label.end}\n")
        else:
            technique = label.technique or UNKNOWN_TECHNIQUE
            out.append(f"{label.article_id}\t{technique}\t{label.start}\t{label.end}\n")
    return "".join(out)


def write_labels(labels: Iterable[Label], task: Task, target: str | Path | TextIO) -> None:
    text = format_labels(labels, task)
    if isinstance(target, (str, Path)):
        Path(target).write_text(text, encoding="utf-8")
    else:
        target.write(text)


def validation_split(
    article_ids: Iterable[str], share: float = 0.2, seed: int = 13
) -> tuple[list[str], list[str]]:
    """Split article IDs into (train, validation), reproducibly: sort, shuffle with ``seed``."""
    if not 0.0 < share < 1.0:
        raise SpinlensError(f"validation share must be between 0 and 1, got {share}")
    ids = sorted(set(article_ids))
    random.Random(seed).shuffle(ids)
    n_validation = max(1, round(len(ids) * share))
    return sorted(ids[n_validation:]), sorted(ids[:n_validation])


# --- scorers -----------------------------------------------------------------------------


def merge_overlapping(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge spans that share at least one character (touching spans stay apart)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def _prf(prec_sum: float, n_pred: int, rec_sum: float, n_gold: int) -> PRF:
    precision = prec_sum / n_pred if n_pred else 0.0
    recall = rec_sum / n_gold if n_gold else 0.0
    if n_pred == 0 and n_gold == 0:
        return PRF(1.0, 1.0, 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision > 0 and recall > 0 else 0.0
    return PRF(precision, recall, f1)


def _group(
    labels: Iterable[Label], by_technique: bool
) -> dict[tuple[str, str], list[tuple[int, int]]]:
    groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for label in labels:
        key = (label.technique or "") if by_technique else ""
        groups[(label.article_id, key)].append((label.start, label.end))
    return {key: merge_overlapping(spans) for key, spans in groups.items()}


@dataclass(frozen=True)
class SpanSums:
    """The parts of the span P/R of one technique: precision = prec_sum / n_pred and
    recall = rec_sum / n_gold, counting merged spans."""

    prec_sum: float
    n_pred: int
    rec_sum: float
    n_gold: int

    def prf(self) -> PRF:
        return _prf(self.prec_sum, self.n_pred, self.rec_sum, self.n_gold)


def _span_sums(
    gold: dict[tuple[str, str], list[tuple[int, int]]],
    pred: dict[tuple[str, str], list[tuple[int, int]]],
) -> dict[str, SpanSums]:
    """Per technique key: sums of |s∩t|/|s| and |s∩t|/|t| over pairs in the same group."""
    prec: dict[str, float] = defaultdict(float)
    rec: dict[str, float] = defaultdict(float)
    n_pred: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    for (_, technique), spans in gold.items():
        n_gold[technique] += len(spans)
    for key, pred_spans in pred.items():
        technique = key[1]
        n_pred[technique] += len(pred_spans)
        for s in pred_spans:
            for t in gold.get(key, []):
                inter = _overlap(s, t)
                if inter:
                    prec[technique] += inter / (s[1] - s[0])
                    rec[technique] += inter / (t[1] - t[0])
    return {
        technique: SpanSums(prec[technique], n_pred[technique], rec[technique], n_gold[technique])
        for technique in n_gold.keys() | n_pred.keys()
    }


def _total(sums: Iterable[SpanSums]) -> SpanSums:
    parts = list(sums)
    return SpanSums(
        sum(p.prec_sum for p in parts),
        sum(p.n_pred for p in parts),
        sum(p.rec_sum for p in parts),
        sum(p.n_gold for p in parts),
    )


def score_si(gold: Iterable[Label], pred: Iterable[Label]) -> Score:
    """Task SI: propaganda spans, techniques ignored."""
    sums = _span_sums(_group(gold, False), _group(pred, False))
    return Score("si", _total(sums.values()).prf())


def flc_sums(gold: Iterable[Label], pred: Iterable[Label]) -> dict[str, SpanSums]:
    """Task FLC's per-technique sums (what :func:`score_flc` reports, before dividing)."""
    return _span_sums(_group(gold, True), _group(pred, True))


def score_flc(gold: Iterable[Label], pred: Iterable[Label]) -> Score:
    """Task FLC: spans and techniques; only spans of the same technique match."""
    sums = flc_sums(gold, pred)
    empty = SpanSums(0.0, 0, 0.0, 0)
    per_technique = {name: sums.get(name, empty).prf() for name in NAMES}
    return Score("flc", _total(sums.values()).prf(), per_technique)


def score_tc(gold: Sequence[Label], pred: Sequence[Label]) -> Score:
    """Task TC: the prediction must label exactly the gold spans (the template's)."""
    gold_by_span = _techniques_by_span(gold)
    pred_by_span = _techniques_by_span(pred)
    # In span order, so the error names the same (first) mismatch on every run.
    for key in sorted(gold_by_span.keys() | pred_by_span.keys()):
        n_gold, n_pred = len(gold_by_span.get(key, [])), len(pred_by_span.get(key, []))
        if n_gold != n_pred:
            article_id, start, end = key
            raise PTCFormatError(
                f"article {article_id} span {start}-{end}: {n_gold} gold label(s) but "
                f"{n_pred} predicted; a TC prediction must label exactly the template's spans"
            )
    pairs: list[tuple[str, str]] = []
    for key, gold_techniques in gold_by_span.items():
        pairs.extend(_align(gold_techniques, pred_by_span[key]))
    total = len(pairs)
    correct = sum(g == p for g, p in pairs)
    accuracy = correct / total if total else 0.0
    per_technique: dict[str, PRF] = {}
    for name in NAMES:
        tp = sum(g == p == name for g, p in pairs)
        n_pred = sum(p == name for _, p in pairs)
        n_gold = sum(g == name for g, _ in pairs)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_technique[name] = PRF(precision, recall, f1)
    return Score("tc", PRF(accuracy, accuracy, accuracy), per_technique)


def _techniques_by_span(labels: Iterable[Label]) -> dict[tuple[str, int, int], list[str]]:
    spans: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for label in labels:
        spans[(label.article_id, label.start, label.end)].append(label.technique or "")
    return spans


def _align(gold: list[str], pred: list[str]) -> list[tuple[str, str]]:
    """Pair the labels of one span so that as many pairs as possible agree."""
    remaining = Counter(pred)
    pairs: list[tuple[str, str]] = []
    unmatched_gold: list[str] = []
    for technique in gold:
        if remaining[technique] > 0:
            remaining[technique] -= 1
            pairs.append((technique, technique))
        else:
            unmatched_gold.append(technique)
    unmatched_pred = sorted(remaining.elements())
    pairs.extend(zip(unmatched_gold, unmatched_pred, strict=True))
    return pairs


def score(task: Task, gold: Sequence[Label], pred: Sequence[Label]) -> Score:
    if task == "si":
        return score_si(gold, pred)
    if task == "flc":
        return score_flc(gold, pred)
    return score_tc(gold, pred)


def restrict(labels: Iterable[Label], article_ids: Iterable[str]) -> list[Label]:
    """The labels of the given articles only (to score on a subset such as a validation split)."""
    keep = set(article_ids)
    return [label for label in labels if label.article_id in keep]


def spans_by_article(labels: Iterable[Label]) -> Mapping[str, list[Label]]:
    grouped: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        grouped[label.article_id].append(label)
    return grouped


def tc_template(gold: Sequence[Label]) -> list[Label]:
    """The TC task's input: the gold spans with their techniques hidden."""
    return [Label(la.article_id, la.start, la.end, UNKNOWN_TECHNIQUE) for la in gold]


def validation_figures(
    gold: Sequence[Label], si: Sequence[Label], tc: Sequence[Label], flc: Sequence[Label]
) -> dict[str, Any]:
    """A model's figures as model cards and benchmarks record them: SI, TC (labelling the gold
    spans), FLC, and per technique."""
    si_score, tc_score, flc_score = score_si(gold, si), score_tc(gold, tc), score_flc(gold, flc)
    return {
        "si": si_score.overall.rounded(),
        "tc": tc_score.overall.rounded(),
        "flc": flc_score.overall.rounded(),
        "per_technique_f1": {
            name: {
                "tc": round(tc_score.per_technique[name].f1, 4),
                "flc": round(flc_score.per_technique[name].f1, 4),
            }
            for name in NAMES
        },
    }


def label_template(
    template: Sequence[Label],
    known_articles: Collection[str],
    rank: Callable[[str, list[tuple[int, int]]], list[list[str]]],
) -> list[Label]:
    """Task TC: label every template span with ``rank(article_id, spans)``, which returns each
    span's techniques, likeliest first. A span listed n times gets its n likeliest techniques
    (the scorer pairs repeated spans with their gold labels in any order)."""
    by_article: dict[str, list[tuple[int, int]]] = {}
    for article_id, start, end in Counter((la.article_id, la.start, la.end) for la in template):
        if article_id not in known_articles:
            raise SpinlensError(f"template names article {article_id}, which is not given")
        by_article.setdefault(article_id, []).append((start, end))
    ranking: dict[tuple[str, int, int], list[str]] = {}
    for article_id, spans in by_article.items():
        for (start, end), techniques in zip(spans, rank(article_id, spans), strict=True):
            ranking[(article_id, start, end)] = techniques
    out: list[Label] = []
    used: Counter[tuple[str, int, int]] = Counter()
    for la in template:
        key = (la.article_id, la.start, la.end)
        out.append(Label(la.article_id, la.start, la.end, ranking[key][used[key]]))
        used[key] += 1
    return out
