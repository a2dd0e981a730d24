"""The shipped linear baseline detector, its registry, and the `ptc`/`train` commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.model import Article
from spinlens.techniques import ptc
from spinlens.techniques.baseline import Decoding, Doc, LinearDetector, decode_runs, smoothed
from spinlens.techniques.cli import ptc_app, train_app
from spinlens.techniques.detectors import load_detector, load_linear
from spinlens.techniques.taxonomy import NAMES

PTC = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptc"
needs_ptc = pytest.mark.skipif(
    not (PTC / "train-articles").is_dir(), reason=f"PTC corpus not found at {PTC}"
)

LOADED = (
    "Traitors Flood The Capital\n\n"
    "The corrupt, treasonous traitors in the deep state are destroying our great nation with "
    "their evil, disgusting lies! These radical leftist thugs hate America.\n"
)
NEUTRAL = (
    "Council Approves Budget\n\n"
    "The city council met on Tuesday to review the annual budget. "
    "The report will be published next month.\n"
)


def test_shipped_model_finds_loaded_language_and_name_calling() -> None:
    detector = load_detector("baseline")
    assert detector.name == "baseline-linear@1"
    article = ptc.to_article(LOADED)
    findings = detector.detect(article)
    techniques = {f.technique for f in findings}
    assert techniques & {"Loaded_Language", "Name_Calling,Labeling"}
    for finding in findings:
        assert 0 <= finding.start < finding.end <= len(article.text)
        assert finding.text == article.text[finding.start : finding.end]
        assert 0.0 <= finding.score <= 1.0
        assert finding.technique in NAMES
    thugs = LOADED.index("thugs")
    assert any(
        f.start <= thugs < f.end and f.technique == "Name_Calling,Labeling" for f in findings
    )


def test_neutral_and_empty_texts_get_few_findings() -> None:
    detector = load_detector("baseline")
    assert len(detector.detect(ptc.to_article(NEUTRAL))) <= 1
    assert detector.detect(ptc.to_article("")) == []


def test_classify_span_ranks_techniques_with_probabilities() -> None:
    detector = load_linear()
    article = ptc.to_article(LOADED)
    start = LOADED.index("radical leftist thugs")
    ranking = detector.classify_span(article, start, start + len("radical leftist thugs"))
    assert set(ranking) == set(NAMES)
    assert sum(ranking.values()) == pytest.approx(1.0, abs=1e-4)
    assert next(iter(ranking)) in {"Name_Calling,Labeling", "Loaded_Language"}
    assert list(ranking.values()) == sorted(ranking.values(), reverse=True)
    with pytest.raises(SpinlensError, match="outside the article"):
        detector.classify_span(article, 10, len(LOADED) + 5)


def test_missing_model_files_give_one_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPINLENS_MODELS", str(tmp_path))
    load_linear.cache_clear()
    try:
        with pytest.raises(SpinlensError, match="not found at"):
            load_detector("baseline")
        (tmp_path / "baseline-linear").mkdir()
        with pytest.raises(SpinlensError, match="model file missing"):
            load_detector("baseline")
        with pytest.raises(SpinlensError, match="unknown technique model 'bert'"):
            load_detector("bert")
    finally:
        load_linear.cache_clear()


def test_cli_errors_are_one_line_with_exit_code_1(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(ptc_app, ["predict", "--task", "si", "--articles", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "articles folder not found" in result.output
    assert "Traceback" not in result.output
    bad = tmp_path / "bad.labels"
    bad.write_text("111\t0\t4\n111\t0\n", encoding="utf-8")
    result = runner.invoke(ptc_app, ["score", "--task", "si", str(bad), str(bad)])
    assert result.exit_code == 1
    assert "bad.labels:2:" in result.output


@pytest.fixture(scope="module")
def few_articles(tmp_path_factory) -> tuple[Path, Path]:
    """Six training articles and their gold FLC labels, copied to a temporary folder."""
    if not (PTC / "train-articles").is_dir():
        pytest.skip(f"PTC corpus not found at {PTC}")
    root = tmp_path_factory.mktemp("ptc")
    folder = root / "train-articles"
    folder.mkdir()
    ids = sorted(ptc.read_articles(PTC / "train-articles"))[:6]
    for article_id in ids:
        shutil.copy(PTC / "train-articles" / f"article{article_id}.txt", folder)
    gold = ptc.restrict(ptc.read_labels(PTC / "train-task-flc-tc.labels", "flc"), ids)
    ptc.write_labels(gold, "flc", root / "train-task-flc-tc.labels")
    return folder, root / "train-task-flc-tc.labels"


@needs_ptc
@pytest.mark.shared
@pytest.mark.parametrize("task", ["si", "tc", "flc"])
def test_ptc_predict_and_score(few_articles, tmp_path, task) -> None:
    folder, gold_file = few_articles
    runner = CliRunner()
    args = ["predict", "--task", task, "--articles", str(folder), "-o", str(tmp_path / "p")]
    if task == "tc":
        template = [
            ptc.Label(la.article_id, la.start, la.end, "?")
            for la in ptc.read_labels(gold_file, "tc")
        ]
        ptc.write_labels(template, "tc", tmp_path / "template")
        args += ["--template", str(tmp_path / "template")]
    result = runner.invoke(ptc_app, args)
    assert result.exit_code == 0, result.output
    predicted = ptc.read_labels(tmp_path / "p", task)  # parses: the format is right
    texts = ptc.read_articles(folder)
    assert predicted
    assert all(p.article_id in texts and p.end <= len(texts[p.article_id]) for p in predicted)
    columns = 3 if task == "si" else 4
    lines = (tmp_path / "p").read_text(encoding="utf-8").splitlines()
    assert all(len(line.split("\t")) == columns for line in lines)
    if task == "tc":
        assert len(predicted) == len(template)

    perfect = runner.invoke(ptc_app, ["score", "--task", task, str(gold_file), str(gold_file)])
    assert perfect.exit_code == 0, perfect.output
    assert "F1 1.0000" in perfect.output
    scored = runner.invoke(ptc_app, ["score", "--task", task, str(gold_file), str(tmp_path / "p")])
    assert scored.exit_code == 0, scored.output
    if task != "si":
        assert "Loaded_Language" in scored.output


@needs_ptc
@pytest.mark.shared
def test_smoke_training_writes_a_loadable_model(few_articles, tmp_path) -> None:
    from spinlens.techniques.baseline import LinearDetector
    from spinlens.techniques.train_baseline import TrainConfig, train

    folder, _ = few_articles
    out = tmp_path / "model"
    # Small hash spaces keep this smoke run to seconds; the shipped model uses the defaults.
    config = TrainConfig(validation_share=0.34, tagger_bits=12, span_bits=12)
    meta = train(folder.parent, out, config, log=lambda line: None)
    assert meta["validation"]["articles"] == 2
    model = LinearDetector.load(out)
    assert model.meta["trained_articles"] == 6
    findings = model.detect(ptc.to_article(LOADED))
    assert all(f.text == LOADED[f.start : f.end] and 0 <= f.score <= 1 for f in findings)


def test_a_saved_model_keeps_every_part_of_its_decodings(tmp_path) -> None:
    """Smoothing and peak are chosen on validation like threshold and gap: a saved and
    reloaded model must decode as the one that was measured."""
    detector = LinearDetector.load(models_dir() / "baseline-linear")  # not the cached one
    chosen = Decoding(threshold=0.3, gap=2, smooth=3, peak=0.6)
    detector.decodings = {**detector.decodings, "ANY": chosen, "Doubt": None}
    detector.save(tmp_path / "model")
    reloaded = LinearDetector.load(tmp_path / "model")
    assert reloaded.decodings == detector.decodings
    assert reloaded.decodings["ANY"] == chosen and reloaded.decodings["Doubt"] is None


def test_train_command_reports_a_missing_data_folder(tmp_path) -> None:
    result = CliRunner().invoke(
        train_app, ["baseline", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 1
    assert "PTC data folder not found" in result.output


def test_smoothing_carries_a_weak_word_between_confident_ones() -> None:
    doc = Doc(Article(text="They are lying greedy thieves and they know it", language="en"))
    probs = np.array([0.1, 0.3, 0.9, 0.4, 0.9, 0.2, 0.1, 0.1, 0.1], dtype=np.float32)
    plain = decode_runs(doc, probs, Decoding(0.5, 0))
    assert [(a, b) for a, b, _ in plain] == [(2, 2), (4, 4)]  # "lying", "thieves" apart
    joined = decode_runs(doc, probs, Decoding(0.5, 0, smooth=3))
    assert [(a, b) for a, b, _ in joined] == [(2, 4)]  # "lying greedy thieves": one span
    np.testing.assert_allclose(smoothed(probs, 3)[0], 0.2, rtol=1e-6)  # the ends average two
    assert smoothed(probs, 1) is probs


def test_a_peak_keeps_confident_runs_whole_and_drops_weak_ones() -> None:
    doc = Doc(Article(text="They are lying greedy thieves and they know lies", language="en"))
    # "lying greedy thieves" has a confident core; "know lies" only hovers over the threshold.
    probs = np.array([0.1, 0.1, 0.5, 0.45, 0.9, 0.1, 0.1, 0.45, 0.45], dtype=np.float32)
    runs = decode_runs(doc, probs, Decoding(0.4, 0))
    assert [(a, b) for a, b, _ in runs] == [(2, 4), (7, 8)]
    kept = decode_runs(doc, probs, Decoding(0.4, 0, peak=0.7))
    assert [(a, b) for a, b, _ in kept] == [(2, 4)]  # the whole run, weak words included


def test_a_run_of_function_words_alone_is_no_finding() -> None:
    doc = Doc(Article(text="They want to go to the chaos of war", language="en"))
    # "to ... the" is confident on its own; "the chaos" carries a content word.
    lone = np.array([0.1, 0.1, 0.9, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1], dtype=np.float32)
    assert decode_runs(doc, lone, Decoding(0.5, 0)) == []
    carried = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1], dtype=np.float32)
    assert [(a, b) for a, b, _ in decode_runs(doc, carried, Decoding(0.5, 0))] == [(5, 6)]


def test_a_span_ends_its_phrase_rather_than_on_a_function_word() -> None:
    def spans(text: str, confident: set[str]) -> list[str]:
        doc = Doc(Article(text=text, language="en"))
        probs = np.array([0.9 if t.text in confident else 0.1 for t in doc.tokens], np.float32)
        runs = decode_runs(doc, probs, Decoding(0.5, 0))
        return [text[doc.tokens[a].start : doc.tokens[b].end] for a, b, _ in runs]

    text = "The country could plunge into chaos, he said of the “hotheads” of."
    # "into" runs on to the word that completes it; "said of" cannot reach one over function
    # words alone and is cut back; "of" before the stop is cut back to the closing quote.
    assert spans(text, {"could", "plunge", "into", "said", "of", "hotheads", "”"}) == [
        "could plunge into chaos",
        "said",
        "hotheads”",
    ]
    # A completed phrase that reaches the next run joins it.
    assert spans("They plunge into the abyss again.", {"plunge", "into", "abyss"}) == [
        "plunge into the abyss"
    ]
