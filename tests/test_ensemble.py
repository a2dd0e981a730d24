"""The blend behind the accurate tier (``techniques.ensemble``): what its members say, averaged,
decoded at the blend's own levels, and one clear line when its members are not the models it
was tuned with. Built here from two copies of the fast model, so no base weights are needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.techniques import ptc
from spinlens.techniques.decoding import Doc
from spinlens.techniques.ensemble import FORMAT, EnsembleDetector, tune_blend
from spinlens.techniques.sensitivity import NEWS_CAP, read_news
from spinlens.techniques.transformer import TransformerDetector

from .conftest import REPO, SHARED, need_shared

EXAMPLES_BY_TECHNIQUE: dict[str, str] = json.loads(
    (REPO / "tests" / "fixtures" / "technique_examples.json").read_text(encoding="utf-8")
)


def _blend_of_twins(tmp_path: Path, weights: tuple[float, float] = (0.7, 0.3)) -> Path:
    """models/{one,two} (both the fast model) and models/blend, which holds the fast model's
    own levels, calibration and TC correction: the blend of twins must then read exactly as the
    fast model."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("one", "two"):
        (models / name).symlink_to(models_dir() / "minilm-ptc")
    fast = json.loads((models_dir() / "minilm-ptc" / "model.json").read_text("utf-8"))
    blend = models / "blend"
    blend.mkdir()
    meta = {
        "format": FORMAT,
        "name": "blend@1",
        "members": [
            {"folder": "one", "name": fast["name"], "weight": weights[0]},
            {"folder": "two", "name": fast["name"], "weight": weights[1]},
        ],
        "techniques": fast["techniques"],
        "calibration": fast["calibration"],
        "sensitivities": fast["sensitivities"],
        "sensitivity_validation": fast["sensitivity_validation"],
        "tc_context": fast["tc_context"],
    }
    (blend / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    return blend


def test_a_blend_of_twins_reads_as_its_member(tmp_path: Path) -> None:
    blend = EnsembleDetector.load(_blend_of_twins(tmp_path), threads=1, thresholds={})
    fast = TransformerDetector.load(models_dir() / "minilm-ptc", threads=1, thresholds={})
    text = "\n\n".join(EXAMPLES_BY_TECHNIQUE.values())
    article = ptc.to_article(text)
    findings = blend.detect(article)
    assert findings, "the examples of every technique give findings"
    assert [(f.start, f.end, f.technique) for f in findings] == [
        (f.start, f.end, f.technique) for f in fast.detect(article)
    ]
    for ours, theirs in zip(findings, fast.detect(article), strict=True):
        assert ours.score == pytest.approx(theirs.score, abs=1e-3)
    start = text.index("vile and disgusting")
    ours_tc = blend.classify_span(article, start, start + 19)
    theirs_tc = fast.classify_span(article, start, start + 19)
    assert list(ours_tc) == list(theirs_tc)
    assert ours_tc[next(iter(ours_tc))] == pytest.approx(theirs_tc[next(iter(theirs_tc))])
    # Narrative matching reuses the pass of the member with a passage head.
    assert blend.passage_encoder == fast.passage_encoder
    _, vectors = blend.read(article)
    assert vectors([(0, 40)]).shape == (1, fast.passage_head[1].shape[0])  # type: ignore[index]


def test_blending_averages_the_members_word_probabilities(tmp_path: Path) -> None:
    blend = EnsembleDetector.load(_blend_of_twins(tmp_path), threads=1)
    doc = Doc(ptc.to_article(EXAMPLES_BY_TECHNIQUE["Doubt"]))
    reading = blend.read_docs([doc])[0]
    first, second = (part.word_probs for part in reading.parts)
    assert reading.word_probs == pytest.approx(0.7 * first + 0.3 * second, abs=1e-6)
    assert blend.weights == pytest.approx([0.7, 0.3])


def test_a_blend_whose_members_changed_says_to_tune_it_again(tmp_path: Path) -> None:
    folder = _blend_of_twins(tmp_path)
    meta = json.loads((folder / "model.json").read_text("utf-8"))
    meta["members"][1]["name"] = "minilm-ptc@2"
    (folder / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(SpinlensError, match=r"was tuned with .*minilm-ptc@2.* tune it again"):
        EnsembleDetector.load(folder, threads=1)


def test_a_blend_without_its_member_folder_is_one_clear_error(tmp_path: Path) -> None:
    folder = _blend_of_twins(tmp_path)
    (folder.parent / "two").unlink()
    with pytest.raises(SpinlensError, match=r"needs .*two, which is missing"):
        EnsembleDetector.load(folder, threads=1)


def test_tuning_a_blend_writes_a_model_that_loads_with_honest_figures(tmp_path: Path) -> None:
    """``tune_blend`` (what ``spinlens train ensemble`` runs) on the PTC validation split: the
    blend it writes loads, records the weight it chose and cross-fitted figures per level that
    keep ordinary news under the cap; a blend of twins labels spans exactly as its member until
    its TC correction for article context, whose figure is cross-fitted."""
    data = need_shared(SHARED / "data" / "ptc")
    blend = _blend_of_twins(tmp_path)
    news = {i: Doc(a) for i, a in read_news().items()}
    meta = tune_blend(
        blend,
        [blend.parent / "one", blend.parent / "two"],
        data,
        news,
        release=2,
        weights=(0.5, 1.0),
    )
    loaded = EnsembleDetector.load(blend, threads=1)
    assert loaded.name == "blend@2"
    assert loaded.tc_context is not None
    assert meta["members"][0]["weight"] in (0.5, 1.0)
    assert len(meta["validation"]["fold_weights"]) == 2
    fast = json.loads((models_dir() / "minilm-ptc" / "model.json").read_text("utf-8"))
    # The blend of twins labels spans as its member, before and after the article-context
    # correction fitted the same way.
    context = meta["tc_context"]["validation"]
    assert context == pytest.approx(fast["tc_context"]["validation"], abs=1e-4)
    for level in ("precise", "balanced", "thorough"):
        figures = meta["sensitivity_validation"][level]
        assert figures["news_flagged_share"] <= NEWS_CAP
        # The TC reported is the corrected one, cross-fitted (never fitted on what it scores).
        assert figures["tc"]["f1"] == context["tc_cross_fitted"]
    assert sorted(loaded.technique_reliability) == sorted(fast["techniques"])
    # Calibrated scores come with their cross-fitted reliability bins.
    bins = meta["reliability"]["techniques"]
    assert bins and all(0.0 <= b["observed"] <= 1.0 for b in bins)
