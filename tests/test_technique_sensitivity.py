"""What a user sees of the technique tiers and sensitivity levels: all 14 techniques can be
reported, levels flag more text from precise to thorough, ordinary news stays almost unflagged,
and ``ptc predict`` works the same through every tier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.model import Article
from spinlens.pipeline import summarize
from spinlens.techniques import ptc, sensitivity
from spinlens.techniques.cli import ptc_app
from spinlens.techniques.decoding import ANY, SENSITIVITIES, Decoding, Doc, decode_runs
from spinlens.techniques.detectors import load_detector, load_transformer
from spinlens.techniques.findings import TokenReading
from spinlens.techniques.sensitivity import (
    NEWS_CAP,
    NEWS_FOLDER,
    choose_sensitivities,
    choose_variant,
)
from spinlens.techniques.taxonomy import NAMES

from .conftest import CANONICAL_EXAMPLE, EXAMPLES, REPO, accurate_installed

FIXTURES = REPO / "tests" / "fixtures"
EXAMPLES_BY_TECHNIQUE: dict[str, str] = json.loads(
    (FIXTURES / "technique_examples.json").read_text(encoding="utf-8")
)
# Ordinary news the levels were not chosen on, and the news they were chosen on.
HELD_OUT_NEWS = sorted((FIXTURES / "ordinary_news").glob("*.txt"))
TUNING_NEWS = sorted(NEWS_FOLDER.glob("*.txt"))


SHIPPED = (
    "fast",
    "baseline",
    pytest.param(
        "accurate",
        marks=pytest.mark.skipif(
            not accurate_installed(),
            reason="the accurate tier's base weights are not installed (make test installs them)",
        ),
    ),
)


def _flagged_share(tier: str, level: str, text: str) -> float:
    article = ptc.to_article(text)
    return summarize(article, load_detector(tier, level).detect(article)).flagged_share


def test_the_examples_cover_every_technique() -> None:
    assert sorted(EXAMPLES_BY_TECHNIQUE) == sorted(NAMES)
    assert len(HELD_OUT_NEWS) >= 8 and len(TUNING_NEWS) >= 20


@pytest.mark.parametrize("tier", SHIPPED)
def test_no_technique_is_switched_off_and_each_has_its_reliability(tier: str) -> None:
    for level in SENSITIVITIES:
        detector = load_detector(tier, level)
        assert detector.sensitivity == level
        off = [t for t in NAMES if detector.decodings.get(t) is None]
        assert off == [], f"{tier} {level} never reports {off}"
        reliability = detector.technique_reliability
        assert sorted(reliability) == sorted(NAMES)
        assert all(0.0 <= f1 <= 1.0 for f1 in reliability.values())


def _found_on_examples(tier: str, level: str) -> set[str]:
    """The techniques a tier reports on the example written to show each one."""
    detector = load_detector(tier, level)
    return {
        t
        for t in NAMES
        if t in {f.technique for f in detector.detect(ptc.to_article(EXAMPLES_BY_TECHNIQUE[t]))}
    }


def test_thorough_finds_every_technique_balanced_finds_in_their_examples() -> None:
    """In the examples written to show each technique, thorough finds all balanced finds. A
    technique it misses is one whose decodings were never right one time in ten on validation
    (so thorough kept balanced's): the legend shows it as weak."""
    thorough, balanced = (
        _found_on_examples("fast", "thorough"),
        _found_on_examples("fast", "balanced"),
    )
    assert len(balanced) >= 9, sorted(balanced)
    assert balanced <= thorough
    reliability = load_detector("fast", "thorough").technique_reliability
    missed = set(NAMES) - thorough
    assert len(missed) <= 5, sorted(missed)
    assert all(reliability[t] < 0.1 for t in missed), {t: reliability[t] for t in missed}


@pytest.mark.parametrize("tier", SHIPPED)
def test_levels_flag_more_text_from_precise_to_thorough(tier: str) -> None:
    texts = [(EXAMPLES / "site-builder-blog.txt").read_text(encoding="utf-8")]
    if CANONICAL_EXAMPLE.is_file():
        texts.append(CANONICAL_EXAMPLE.read_text(encoding="utf-8"))
    texts += EXAMPLES_BY_TECHNIQUE.values()
    for text in texts:
        shares = [_flagged_share(tier, level, text) for level in SENSITIVITIES]
        assert shares == sorted(shares), shares
    everything = "\n\n".join(texts)
    shares = [_flagged_share(tier, level, everything) for level in SENSITIVITIES]
    assert shares[0] < shares[2]  # the levels differ, not only never cross


@pytest.mark.parametrize("tier", SHIPPED)
def test_ordinary_news_stays_almost_unflagged_at_balanced(tier: str) -> None:
    for news in (HELD_OUT_NEWS, TUNING_NEWS):
        shares = [_flagged_share(tier, "balanced", p.read_text(encoding="utf-8")) for p in news]
        assert np.mean(shares) < NEWS_CAP, dict(zip([p.name for p in news], shares, strict=True))


@pytest.mark.skipif(
    not accurate_installed(),
    reason="the accurate tier's base weights are not installed (make test installs them)",
)
def test_the_default_technique_model_is_the_accurate_blend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPINLENS_TECHNIQUES_MODEL")  # conftest pins the fast tier elsewhere
    from spinlens import Spinlens

    text = (EXAMPLES / "site-builder-blog.txt").read_text(encoding="utf-8")
    analysis = Spinlens(narratives=False).analyze_text(text)
    assert analysis.models["techniques"].startswith("mpnet-minilm-ptc@")  # named with its release
    assert analysis.techniques, "the blog's loaded language is found"
    # Every technique carries its validation F1 at the default level, the blend's own.
    assert sorted(analysis.model_scores.technique_f1) == sorted(NAMES)


def test_unknown_sensitivity_and_tier_are_one_clear_error() -> None:
    with pytest.raises(SpinlensError, match="unknown sensitivity 'loud'"):
        load_detector("fast", "loud")
    with pytest.raises(SpinlensError, match="unknown technique model 'bert'; choose one of"):
        load_detector("bert")


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        ("mpnet-minilm-ptc", "technique model 'accurate' not found at"),
        ("mpnet-ptc", "technique model mpnet-minilm-ptc needs"),
    ],
)
def test_the_accurate_tier_gives_one_line_when_it_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str, says: str
) -> None:
    # A models folder holding every shipped model but the blend, or but one of its members.
    models = tmp_path / "models"
    models.mkdir()
    for shipped in models_dir().iterdir():
        if shipped.name != missing:
            (models / shipped.name).symlink_to(shipped)
    monkeypatch.setenv("SPINLENS_MODELS", str(models))
    load_transformer.cache_clear()  # an accurate model loaded by an earlier test is forgotten
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "article1.txt").write_text("Title\n\nSome text.\n", encoding="utf-8")
    result = CliRunner().invoke(
        ptc_app, ["predict", "--task", "si", "--articles", str(folder), "--model", "accurate"]
    )
    load_transformer.cache_clear()  # nothing loaded from the scratch folder outlives the test
    assert result.exit_code == 1
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_ptc_predict_works_the_same_through_every_tier(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    texts = {"1": EXAMPLES_BY_TECHNIQUE["Loaded_Language"], "2": HELD_OUT_NEWS[0].read_text()}
    for article_id, text in texts.items():
        (folder / f"article{article_id}.txt").write_text(text, encoding="utf-8")
    start = texts["1"].index("vile and disgusting")
    template = tmp_path / "template.labels"
    template.write_text(f"1\t?\t{start}\t{start + 19}\n", encoding="utf-8")
    tiers = [t for t in ("accurate", "fast", "baseline") if t != "accurate" or _installed(t)]
    runner = CliRunner()
    outputs: dict[tuple[str, str], str] = {}
    for tier in [*tiers, "minilm-ptc"]:
        for task in ("si", "tc", "flc"):
            args = ["predict", "--task", task, "--articles", str(folder), "--model", tier]
            if task == "tc":
                args += ["--template", str(template)]
            result = runner.invoke(ptc_app, args)
            assert result.exit_code == 0, result.output
            out = tmp_path / f"{tier}.{task}"
            out.write_text(result.stdout, encoding="utf-8")
            labels = ptc.read_labels(out, task)
            assert all(la.end <= len(texts[la.article_id]) for la in labels)
            if task == "flc":
                assert any(la.article_id == "1" for la in labels), tier
                assert {la.technique for la in labels} <= set(NAMES)
            if task == "tc":
                assert len(labels) == 1 and labels[0].technique in NAMES
            outputs[(tier, task)] = result.stdout
    # The old model name is the fast tier.
    assert all(outputs[("minilm-ptc", t)] == outputs[("fast", t)] for t in ("si", "tc", "flc"))


def _installed(tier: str) -> bool:
    try:
        load_detector(tier)
    except SpinlensError:
        return False
    return True


def test_ptc_predict_sensitivity_changes_how_much_is_flagged(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    text = (EXAMPLES / "site-builder-blog.txt").read_text(encoding="utf-8")
    (folder / "article1.txt").write_text(text, encoding="utf-8")
    covered = {}
    for level in SENSITIVITIES:
        args = ["predict", "--task", "flc", "--articles", str(folder), "--sensitivity", level]
        result = CliRunner().invoke(ptc_app, args)
        assert result.exit_code == 0, result.output
        spans = [line.split("\t") for line in result.stdout.splitlines()]
        mask = np.zeros(len(text), dtype=bool)
        for _, _, start, end in spans:
            mask[int(start) : int(end)] = True
        covered[level] = mask
    assert not (covered["precise"] & ~covered["balanced"]).any()
    assert not (covered["balanced"] & ~covered["thorough"]).any()


# --- the chooser, on probabilities made up for the purpose -------------------------------


def _reading(text: str, probs: dict[str, list[float]], heads: list[str]) -> TokenReading:
    doc = Doc(Article(text=text, language="en"))
    table = np.zeros((len(doc.tokens), len(heads)), np.float32)
    for head, values in probs.items():
        table[:, heads.index(head)] = values
    return TokenReading(doc, table)


def test_the_chooser_keeps_news_under_the_cap_and_orders_the_levels() -> None:
    heads = ["Loaded_Language", "Doubt", ANY]
    text = "They are lying greedy thieves and they know it"  # 9 words
    gold_probs = [0.1, 0.2, 0.9, 0.6, 0.8, 0.2, 0.1, 0.1, 0.1]
    readings = {}
    gold = []
    for i in range(8):
        readings[f"a{i}"] = _reading(
            text, {"Loaded_Language": gold_probs, "Doubt": gold_probs, ANY: gold_probs}, heads
        )
        start = text.index("lying")
        gold += [
            ptc.Label(f"a{i}", start, text.index(" and"), "Loaded_Language"),
            ptc.Label(f"a{i}", start, text.index(" and"), "Doubt"),
        ]
    # On news, Loaded_Language is eager (0.5 everywhere) and Doubt is quiet; a threshold at
    # 0.5 or below would flag all of each news text.
    news = {
        f"n{i}": _reading(
            "The council met on Tuesday to approve the budget",
            {"Loaded_Language": [0.5] * 9, "Doubt": [0.05] * 9},
            heads,
        )
        for i in range(4)
    }
    choice = choose_sensitivities(heads, readings, gold, news)
    balanced = choice.levels["balanced"]
    loaded = balanced["Loaded_Language"]
    assert isinstance(loaded, Decoding) and loaded.threshold > 0.5  # the news cap binds
    assert choice.cross_fitted["balanced"]["news_flagged_share"] <= NEWS_CAP
    for head in heads:
        precise, mid, thorough = (choice.levels[level][head] for level in SENSITIVITIES)
        assert precise is not None and mid is not None and thorough is not None
        assert precise.threshold >= mid.threshold >= thorough.threshold
        assert precise.gap <= mid.gap <= thorough.gap
        assert precise.smooth == mid.smooth == thorough.smooth
    for level in SENSITIVITIES:
        figures = choice.cross_fitted[level]
        assert figures["articles"] == 8 and figures["news_texts"] == 4
        assert set(figures["per_technique_f1"]) == set(NAMES)


def test_cross_fitting_scores_each_half_with_choices_made_on_the_other() -> None:
    """On half the articles Doubt's words score 0.9 amid others at 0.5, on the other half 0.3
    amid 0.0: no threshold fits both halves, so levels chosen on one half do badly on the other,
    and the cross-fitted F1 must show it, far below the in-sample F1 of the shipped choice."""
    heads = ["Doubt", ANY]
    text = "Can we trust anything this man tells us today"  # 9 words, gold: the first 5
    readings, gold = {}, []
    for i in range(8):
        inside, outside = (0.9, 0.5) if i % 2 == 0 else (0.3, 0.0)
        values = [inside] * 5 + [outside] * 4
        readings[f"a{i}"] = _reading(text, {"Doubt": values, ANY: values}, heads)
        gold.append(ptc.Label(f"a{i}", 0, text.index(" tells"), "Doubt"))
    choice = choose_sensitivities(heads, readings, gold, {})
    shipped = choice.levels["balanced"]["Doubt"]
    assert shipped is not None
    predicted = [
        ptc.Label(i, r.doc.tokens[a].start, r.doc.tokens[b].end, "Doubt")
        for i, r in readings.items()
        for a, b, _ in decode_runs(r.doc, r.word_probs[:, 0], shipped)
    ]
    in_sample = ptc.score_flc(gold, predicted).overall.f1
    cross_fitted = choice.cross_fitted["balanced"]["flc"]["f1"]
    assert in_sample > 0.8
    assert cross_fitted < in_sample - 0.2


def test_thorough_favours_recall_but_keeps_news_under_the_cap_too() -> None:
    heads = ["Loaded_Language", ANY]
    text = "They are lying greedy thieves and they know it"
    # "greedy" (0.6) is gold but weaker than anything the model says of news (0.65): the best
    # F2 alone would take it at a threshold that flags every news text whole.
    probs = [0.1, 0.2, 0.9, 0.6, 0.8, 0.2, 0.1, 0.1, 0.1]
    readings = {
        f"a{i}": _reading(text, {"Loaded_Language": probs, ANY: probs}, heads) for i in range(8)
    }
    start, end = text.index("lying"), text.index(" and")
    gold = [ptc.Label(f"a{i}", start, end, "Loaded_Language") for i in range(8)]
    news = {
        f"n{i}": _reading(
            "The council met on Tuesday to approve the budget",
            {"Loaded_Language": [0.65] * 9},
            heads,
        )
        for i in range(4)
    }
    choice = choose_sensitivities(heads, readings, gold, news)
    thorough = choice.levels["thorough"]["Loaded_Language"]
    assert thorough is not None and thorough.threshold > 0.65
    assert choice.cross_fitted["thorough"]["news_flagged_share"] <= NEWS_CAP


def test_thorough_never_widens_a_head_to_decodings_mostly_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One article has four one-word Doubt spans (the model sure of one, 0.35 on the others);
    ten have none, yet the model says 0.35 on four of their words. Widening to 0.35 finds every
    gold span (the best F2) but only 4 of its 44 findings are right: thorough keeps balanced's
    decoding, and does widen once the precision floor is lifted."""
    heads = ["Doubt", ANY]
    text = "alpha bravo charlie delta echo foxtrot golf hotel"
    words = text.split()
    sure = [0.9, 0.0, 0.35, 0.0, 0.35, 0.0, 0.35, 0.0]
    unsure = [0.35, 0.0, 0.35, 0.0, 0.35, 0.0, 0.35, 0.0]
    readings = {"gold": _reading(text, {"Doubt": sure, ANY: sure}, heads)}
    readings |= {f"n{i}": _reading(text, {"Doubt": unsure, ANY: unsure}, heads) for i in range(10)}
    gold = [ptc.Label("gold", text.index(w), text.index(w) + len(w), "Doubt") for w in words[0:8:2]]

    def levels() -> tuple[Decoding, Decoding]:
        chosen = choose_sensitivities(heads, readings, gold, {}).levels
        balanced, thorough = chosen["balanced"]["Doubt"], chosen["thorough"]["Doubt"]
        assert balanced is not None and thorough is not None
        return balanced, thorough

    balanced, thorough = levels()
    assert balanced.threshold > 0.35
    assert thorough == balanced
    monkeypatch.setattr(sensitivity, "THOROUGH_MIN_PRECISION", 0.0)
    balanced, thorough = levels()
    assert thorough.threshold <= 0.35


def test_choosing_a_variant_picks_the_informative_readings_on_every_fold() -> None:
    """Two readings of the same articles (as an ensemble's blend weights give): one whose
    probabilities follow the gold spans, one that is noise. The chooser ships the first, each
    fold picks it on the other fold, and the cross-fitted figures are those of the first."""
    heads = ["Doubt", ANY]
    text = "Can we trust anything this man tells us today"  # gold: the first 5 words
    rng = np.random.default_rng(7)
    good, noise, gold = {}, {}, []
    for i in range(8):
        values = [0.9] * 5 + [0.1] * 4
        good[f"a{i}"] = _reading(text, {"Doubt": values, ANY: values}, heads)
        random_values = list(rng.uniform(0.0, 1.0, 9))
        noise[f"a{i}"] = _reading(text, {"Doubt": random_values, ANY: random_values}, heads)
        gold.append(ptc.Label(f"a{i}", 0, text.index(" tells"), "Doubt"))
    choice = choose_variant(heads, {"noise": (noise, {}), "good": (good, {})}, gold)
    assert choice.variant == "good"
    assert choice.fold_variants == ["good", "good"]
    assert choice.cross_fitted["balanced"]["flc"]["f1"] > 0.95
    assert choice.cross_fitted["balanced"]["si"]["f1"] > 0.95
