"""The accurate tier: a weighted blend of fine-tuned encoders (``mpnet-ptc`` with ``minilm-ptc``).

Each member reads an article as it would alone (its windows, its sentence head); the blend
averages the members' word probabilities per head, which the decodings then read, and their TC
distributions, with the same weights. Blending two encoders of different sizes and
pre-training labels techniques better than either alone (TC, FLC); see docs/benchmarks.md.

A member's own decodings and calibration do not carry over to the blend: the blend's folder
holds only a ``model.json`` with the members (their folders, names and weights) and the
blend's own decodings per sensitivity level, calibration and validation figures, all chosen by
:func:`tune_blend` on the members' shared validation split. Loading checks that the members
are still the models the blend was tuned with. Narrative matching reuses the pass of the member
that has a passage head.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.config import Settings
from spinlens.errors import SpinlensError
from spinlens.model import Article, Finding
from spinlens.techniques import SpanVectors, ptc
from spinlens.techniques.decoding import (
    ANY,
    DEFAULT_SENSITIVITY,
    Doc,
    decodings_to_json,
    sensitivities_from_json,
)
from spinlens.techniques.findings import CalibratedTagger
from spinlens.techniques.transformer import (
    META_FILE,
    THREADS,
    Encoded,
    ModelFileError,
    TransformerDetector,
    read_thresholds,
)

FORMAT = "spinlens.ensemble-ptc/1"
# Weights of the first member tried by :func:`tune_blend` (the second member gets the rest).
WEIGHTS = (0.5, 0.6, 0.7, 0.8, 1.0)


def is_ensemble(folder: str | Path) -> bool:
    """Whether ``folder`` holds a blend (its model.json says so)."""
    try:
        meta = json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


@dataclass
class BlendReading:
    """One article as the blend read it: the blended word probabilities, and each member's
    own reading (for TC and the passage vectors)."""

    doc: Doc
    word_probs: NDArray[np.float32]  # doc tokens x heads
    parts: list[Encoded]


def blend(parts: Sequence[Encoded], weights: Sequence[float]) -> NDArray[np.float32]:
    """The members' word probabilities, averaged with ``weights`` (which sum to 1)."""
    out = np.zeros_like(parts[0].word_probs)
    for weight, part in zip(weights, parts, strict=True):
        out += np.float32(weight) * part.word_probs
    return out


class EnsembleDetector(CalibratedTagger[BlendReading]):
    """Technique spans, propaganda spans (SI) and span labels (TC) from a weighted blend of
    transformer detectors. Load a blend's folder with :meth:`load`."""

    def __init__(
        self,
        meta: Mapping[str, Any],
        members: Sequence[TransformerDetector],
        *,
        thresholds: Mapping[str, float | None] | None = None,
        sensitivity: str = DEFAULT_SENSITIVITY,
    ) -> None:
        """``meta``: the blend's model.json; ``members``: the loaded detectors, in the order
        it lists them."""
        self.meta: dict[str, Any] = dict(meta)
        self.name: str = str(meta.get("name", "technique ensemble"))
        try:
            listed = meta["members"]
            weights = [float(m["weight"]) for m in listed]
            names = [str(m["name"]) for m in listed]
            self.calibration = {
                h: (float(a), float(b)) for h, (a, b) in meta["calibration"].items()
            }
            levels = sensitivities_from_json(meta)
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{self.name}: malformed ensemble metadata ({error!r})") from None
        found = [m.name for m in members]
        if found != names:
            raise ModelFileError(
                f"{self.name} was tuned with {', '.join(names)} but found {', '.join(found)}: "
                "tune it again (spinlens train ensemble)"
            )
        if any(m.techniques != members[0].techniques for m in members):
            raise ModelFileError(f"{self.name}: its members detect different techniques")
        if not members or min(weights) < 0 or sum(weights) <= 0:
            raise ModelFileError(f"{self.name}: the member weights must be positive")
        self.members = list(members)
        self.weights = [w / sum(weights) for w in weights]
        self.techniques = list(members[0].techniques)
        self.heads = [*self.techniques, ANY]
        try:
            self._use_tc_context()  # releases 1 and 2 have none
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{self.name}: malformed ensemble metadata ({error!r})") from None
        # Narrative matching reuses the pass of the first member with a passage head.
        self._passage_member = next(
            (i for i, m in enumerate(members) if m.passage_head is not None), None
        )
        self.passage_encoder = (
            None if self._passage_member is None else members[self._passage_member].passage_encoder
        )
        self._use_levels(levels, sensitivity)
        configured = Settings.from_env().technique_thresholds
        if thresholds is None and configured is not None:
            thresholds = read_thresholds(configured)
        self.set_thresholds(thresholds or {})

    @classmethod
    def load(cls, folder: str | Path, threads: int = THREADS, **kwargs: Any) -> EnsembleDetector:
        """A blend's folder; its members are loaded from the folders model.json names, beside
        it (adapters are assembled onto their base on the first load, see ``assemble``)."""
        folder = Path(folder)
        path = folder / META_FILE
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ModelFileError(f"{path}: not a {FORMAT} model")
            paths = [folder.parent / str(m["folder"]) for m in meta["members"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelFileError(f"cannot read ensemble model in {folder}: {error}") from None
        for path in paths:
            if not path.is_dir():
                raise ModelFileError(
                    f"technique model {folder.name} needs {path}, which is missing"
                )
        members = [TransformerDetector.load(p, threads=threads) for p in paths]
        return cls(meta, members, **kwargs)

    # --- reading -------------------------------------------------------------------------

    def read_docs(self, docs: Sequence[Doc]) -> list[BlendReading]:
        per_member = [m.encode_docs(docs) for m in self.members]
        return [
            BlendReading(doc, blend(parts, self.weights), list(parts))
            for doc, *parts in zip(docs, *per_member, strict=True)
        ]

    def tc_distributions(
        self, reading: BlendReading, spans: Sequence[tuple[int, int]]
    ) -> NDArray[np.float64]:
        """The members' span distributions (each before any correction of its own), averaged
        with the weights."""
        rows = np.zeros((len(spans), len(self.techniques)))
        for member, weight, part in zip(self.members, self.weights, reading.parts, strict=True):
            rows += weight * member.tc_distributions(part, spans)
        return rows

    def read(self, article: Article) -> tuple[list[Finding], SpanVectors]:
        """Findings, and the passage vectors of any spans from the passage member's pass."""
        if self._passage_member is None:
            raise ModelFileError(f"technique model {self.name} has no passage head")
        reading = self.read_docs([Doc(article)])[0]
        member = self.members[self._passage_member]
        part = reading.parts[self._passage_member]
        return self.findings(reading), lambda spans: member.passage_vectors(part, spans)


# --- tuning (training side) ------------------------------------------------------------------


def tune_blend(
    out: str | Path,
    members: Sequence[str | Path],
    data: str | Path,
    news_docs: Mapping[str, Doc],
    release: int = 1,
    weights: Sequence[float] = WEIGHTS,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Write the blend of two member folders (trained on the same split of the PTC training
    articles in ``data``) to ``out``/model.json: the first member's weight (among ``weights``)
    with the sensitivity levels, by cross-fitting (``sensitivity.choose_variant``), then the
    calibration of the balanced level's spans and the TC correction for article context
    (``tc_context``; its TC figures are cross-fitted). Returns the model.json written."""
    from spinlens.techniques.sensitivity import (
        choose_variant,
        cross_fitted_tc,
        evaluate,
        fit_tc_context,
        with_tc,
    )
    from spinlens.techniques.train_baseline import load_corpus
    from spinlens.techniques.train_transformer import (
        calibration_data,
        fit_calibration,
        reliability,
    )

    if len(members) != 2:
        raise SpinlensError("a blend has two members (their weight is what is tuned)")
    out = Path(out)
    loaded = [TransformerDetector.load(m, threads=1) for m in members]
    val_ids = _shared_split(loaded)
    corpus = load_corpus(Path(data))
    missing = [i for i in val_ids if i not in corpus.articles]
    if missing:
        raise ModelFileError(f"{data}: the members' validation articles are missing ({missing[0]})")
    gold = ptc.restrict(corpus.labels, val_ids)
    docs = {i: Doc(ptc.to_article(corpus.articles[i])) for i in val_ids}
    val_parts = [m.read_all(docs) for m in loaded]
    news_parts = [m.read_all(news_docs) for m in loaded]
    log(f"members read {len(docs)} validation articles and {len(news_docs)} news texts")

    def readings(
        parts: Sequence[Mapping[str, Encoded]], pair: Sequence[float]
    ) -> dict[str, BlendReading]:
        return {
            i: BlendReading(
                parts[0][i].doc, blend([p[i] for p in parts], pair), [p[i] for p in parts]
            )
            for i in parts[0]
        }

    def pair(first: float) -> tuple[float, float]:
        return first, round(1 - first, 6)  # 0.3, not 0.30000000000000004, in model.json

    variants = {
        str(w): (readings(val_parts, pair(w)), readings(news_parts, pair(w))) for w in weights
    }
    choice = choose_variant(loaded[0].heads, variants, gold, log=log)
    first = float(choice.variant)
    log(f"weight of {loaded[0].name}: {first} (folds chose {', '.join(choice.fold_variants)})")
    meta: dict[str, Any] = {
        "format": FORMAT,
        "name": f"{out.name}@{release}",
        "members": [
            {"folder": Path(m).name, "name": d.name, "weight": w}
            for m, d, w in zip(members, loaded, pair(first), strict=True)
        ],
        "techniques": loaded[0].techniques,
        "calibration": {},
        "sensitivities": {level: decodings_to_json(d) for level, d in choice.levels.items()},
    }
    detector = EnsembleDetector(meta, loaded, thresholds={})
    chosen = variants[choice.variant][0]
    spans = calibration_data(detector, chosen, gold)
    detector.calibration = fit_calibration(spans)
    meta["calibration"] = {h: list(ab) for h, ab in detector.calibration.items()}
    meta["reliability"] = reliability(spans, list(val_ids))  # cross-fitted bins
    meta["tc_context"], tc = fit_tc_context(detector, chosen, gold, log)
    metrics = cross_fitted_tc(evaluate(detector, chosen, gold), tc)
    meta["decodings"] = decodings_to_json(choice.levels["balanced"])
    meta["sensitivity_validation"] = with_tc(choice, metrics)
    meta["validation"] = {
        "articles": len(val_ids),
        "ids": list(val_ids),
        "weights_tried": list(weights),
        "fold_weights": [float(v) for v in choice.fold_variants],
        **metrics,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).write_text(
        json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return meta


def _shared_split(members: Sequence[TransformerDetector]) -> list[str]:
    """The validation article IDs every member was trained without (the same for all)."""
    splits = [sorted(m.meta.get("validation", {}).get("ids") or []) for m in members]
    if not splits[0] or any(s != splits[0] for s in splits):
        raise ModelFileError(
            "the members were not trained on one recorded split: "
            + ", ".join(m.name for m in members)
        )
    return splits[0]
