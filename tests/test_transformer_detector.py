"""The fine-tuned transformer detector (models/minilm-ptc) through ONNX Runtime, no torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.model import Analysis, ModelScores, Source, Summary
from spinlens.report.html import render_html
from spinlens.techniques import ptc
from spinlens.techniques.baseline import ANY, Doc
from spinlens.techniques.cli import ptc_app
from spinlens.techniques.detectors import load_detector, validation_f1
from spinlens.techniques.taxonomy import NAMES
from spinlens.techniques.transformer import (
    THRESHOLDS_ENV,
    TransformerDetector,
    window_starts,
)

MODEL = models_dir() / "minilm-ptc"
needs_model = pytest.mark.skipif(
    not (MODEL / "model.onnx").is_file(), reason=f"transformer model not present at {MODEL}"
)

TEXT = (
    "Traitors Sell Out Our Great Nation\n\n"
    "The corrupt elites have betrayed every decent, hard-working American. "
    "These radical thugs want to destroy our country and everything we love. "
    "Make America great again! Make America great again! "
    "Either you stand with us or you stand with the terrorists. "
    "Experts agree that this disastrous policy is the worst catastrophe in history, "
    "and only a fool would believe the lying media.\n"
)


@pytest.fixture(scope="module")
def detector() -> TransformerDetector:
    return TransformerDetector(MODEL)


def test_windows_cover_every_piece_with_overlap() -> None:
    for n in (1, 10, 254, 255, 600, 1000):
        starts = window_starts(n, 254, 192)
        covered = np.zeros(n, dtype=int)
        for s in starts:
            covered[s : min(n, s + 254)] += 1
        assert covered.min() >= 1, n
        assert starts[-1] + 254 >= n
        if n > 254:
            assert covered.max() >= 2  # neighbouring windows overlap
    assert window_starts(0, 254, 192) == []


@needs_model
def test_findings_are_spans_of_the_text_with_calibrated_scores(
    detector: TransformerDetector,
) -> None:
    article = ptc.to_article(TEXT)
    findings = detector.detect(article)
    assert findings, "an article full of loaded language should have findings"
    for f in findings:
        assert f.technique in NAMES
        assert 0 <= f.start < f.end <= len(TEXT)
        assert f.text == TEXT[f.start : f.end]
        assert f.text[0] not in ".,;: " and f.text[-1] not in ".,;: "
        assert 0.0 < f.score < 1.0


@needs_model
def test_long_articles_are_read_to_the_end(detector: TransformerDetector) -> None:
    # About ten windows of word pieces: the last paragraph must be scored like the first.
    text = "Long read\n\n" + " ".join([TEXT.split("\n\n", 1)[1].strip()] * 25)
    encoded = detector.encode_docs([Doc(ptc.to_article(text))])[0]
    assert len(encoded.offsets) > 5 * detector.window
    assert np.all(np.abs(encoded.hidden).sum(axis=1) > 0)  # every piece went through a window
    findings = detector.findings(encoded)
    assert max(f.end for f in findings) > len(text) * 0.9


@needs_model
def test_batching_across_articles_keeps_results(detector: TransformerDetector) -> None:
    other = "Weather\n\nIt rained in the morning and the afternoon was mild and dry.\n"
    alone = detector.encode_docs([Doc(ptc.to_article(TEXT))])[0]
    together = detector.encode_docs([Doc(ptc.to_article(other)), Doc(ptc.to_article(TEXT))])[1]
    # Activations are quantised per batch, so batching moves probabilities a little (minilm-ptc@3
    # here: mean 0.027, 99th percentile 0.11, one piece 0.22); windows put back one piece off
    # would move them far more (mean 0.14, 99th percentile 0.64).
    difference = np.abs(alone.piece_probs - together.piece_probs)
    assert difference.mean() < 0.03 and np.percentile(difference, 99) < 0.15


@needs_model
def test_classify_span_gives_a_distribution_over_the_techniques(
    detector: TransformerDetector,
) -> None:
    article = ptc.to_article(TEXT)
    start = TEXT.index("Make America great again!")
    probabilities = detector.classify_span(article, start, start + len("Make America great again"))
    assert set(probabilities) == set(NAMES)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    values = list(probabilities.values())
    assert values == sorted(values, reverse=True)
    with pytest.raises(SpinlensError):
        detector.classify_span(article, 10, len(TEXT) + 5)


@needs_model
def test_the_passage_head_reads_sentences_close_to_the_sentence_encoder(
    detector: TransformerDetector,
) -> None:
    from spinlens.embed import load_encoder
    from spinlens.sentences import split_sentences

    encoder = load_encoder()
    assert detector.passage_encoder == encoder.name
    findings, span_vectors = detector.read(ptc.to_article(TEXT))
    assert findings == detector.detect(ptc.to_article(TEXT))
    sentences = split_sentences(TEXT)[1:]
    rough = span_vectors(sentences)
    exact = encoder.encode([TEXT[s:e] for s, e in sentences])
    assert np.allclose(np.linalg.norm(rough, axis=1), 1.0, atol=1e-4)
    cosines = (rough * exact).sum(axis=1)
    # Each sentence is as close to its own encoder vector as to any other sentence's (the
    # slogan is there twice).
    assert (cosines > 0.5).all()
    assert (cosines >= (rough @ exact.T).max(axis=1) - 1e-6).all()


@needs_model
def test_thresholds_can_be_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detector: TransformerDetector
) -> None:
    article = ptc.to_article(TEXT)
    found = {f.technique for f in detector.detect(article)}
    assert found
    off = dict.fromkeys(found)
    quiet = TransformerDetector(MODEL, thresholds=off)
    assert not {f.technique for f in quiet.detect(article)} & found

    eager = dict.fromkeys(NAMES, 0.01)
    config = tmp_path / "thresholds.json"
    config.write_text(json.dumps(eager), encoding="utf-8")
    monkeypatch.setenv(THRESHOLDS_ENV, str(config))
    assert len(TransformerDetector(MODEL).detect(article)) > len(detector.detect(article))

    config.write_text('{"Not_A_Technique": 0.3}', encoding="utf-8")
    with pytest.raises(SpinlensError, match="unknown technique 'Not_A_Technique'"):
        TransformerDetector(MODEL)
    config.write_text("[0.3", encoding="utf-8")
    with pytest.raises(SpinlensError, match="not JSON"):
        TransformerDetector(MODEL)
    with pytest.raises(SpinlensError, match="between 0 and 1"):
        TransformerDetector(MODEL, thresholds={ANY: 1.5})


def test_missing_model_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpinlensError, match="technique model file missing"):
        TransformerDetector(tmp_path)


@needs_model
def test_ptc_predict_serves_si_tc_and_flc(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "article1.txt").write_text(TEXT, encoding="utf-8")
    (folder / "article2.txt").write_text(TEXT.upper(), encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "pred.labels"
    for task in ("si", "flc"):
        args = ["predict", "--task", task, "--articles", str(folder), "--model", "minilm-ptc"]
        result = runner.invoke(ptc_app, [*args, "--output", str(out)])
        assert result.exit_code == 0, result.output
        labels = ptc.read_labels(out, task)
        assert labels and {la.article_id for la in labels} <= {"1", "2"}
        assert all(la.end <= len(TEXT) for la in labels)
    template = tmp_path / "template.labels"
    start = TEXT.index("radical thugs")
    template.write_text(
        f"1\t?\t{start}\t{start + 13}\n1\t?\t{start}\t{start + 13}\n2\t?\t5\t20\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        ptc_app,
        [
            "predict",
            "--task",
            "tc",
            "--articles",
            str(folder),
            "--template",
            str(template),
            "--model",
            "minilm-ptc",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(f[0], f[2], f[3]) for f in lines] == [
        ("1", str(start), str(start + 13)),
        ("1", str(start), str(start + 13)),
        ("2", "5", "20"),
    ]
    # The same span listed twice gets two different techniques (its two likeliest).
    assert lines[0][1] != lines[1][1] and {f[1] for f in lines} <= set(NAMES)


@needs_model
def test_registry_and_report_legend_show_validation_f1() -> None:
    detector = load_detector("minilm-ptc")
    assert detector.name.startswith("minilm-ptc@")
    scores = validation_f1(detector.name)
    assert set(scores) == set(NAMES)
    assert validation_f1("no-such-model@9") == {}
    article = ptc.to_article(TEXT)
    findings = detector.detect(article)
    analysis = Analysis(
        id="x" * 64,
        source=Source(kind="file", location="a.txt"),
        article=article,
        techniques=findings,
        narratives=[],
        summary=Summary(technique_counts={}, flagged_share=0.0),
        models={"techniques": detector.name},
        model_scores=ModelScores(technique_f1=detector.technique_reliability),
        warnings=[],
    )
    page = render_html(analysis)
    assert "validation F1" in page
    assert f"validation F1 {scores[findings[0].technique]:.2f}" in page
    # The report shows what the analysis recorded, never what the model files say now.
    unrecorded = render_html(analysis.model_copy(update={"model_scores": ModelScores()}))
    assert "validation F1" not in unrecorded


def _with_sentence_head(folder: Path, bias: dict[str, float], **meta: object) -> Path:
    """A copy of minilm-ptc in ``folder`` whose sentence head ignores the text: each technique's
    sentence probability is sigmoid(its bias)."""
    folder.mkdir()
    for item in MODEL.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "heads.npz").unlink()
    with np.load(MODEL / "heads.npz") as arrays:
        heads = dict(arrays)
    hidden = json.loads((MODEL / "model.json").read_text(encoding="utf-8"))["hidden_size"]
    heads["sentence_weights"] = np.zeros((hidden, len(NAMES)), np.float32)
    heads["sentence_bias"] = np.array([bias.get(t, -10.0) for t in NAMES], np.float32)
    np.savez(folder / "heads.npz", **heads)
    if meta:
        (folder / "model.json").unlink()
        record = json.loads((MODEL / "model.json").read_text(encoding="utf-8"))
        (folder / "model.json").write_text(json.dumps({**record, **meta}), encoding="utf-8")
    return folder


def _word_probs(folder: Path, text: str) -> np.ndarray:
    return TransformerDetector(folder).encode_docs([Doc(ptc.to_article(text))])[0].word_probs


@needs_model
def test_a_sentence_head_lifts_its_techniques_to_whole_sentences(tmp_path: Path) -> None:
    # The words' own probabilities: the same model with its sentence head turned off.
    plain = _word_probs(_with_sentence_head(tmp_path / "off", {}, sentence_techniques=[]), TEXT)
    causal, loaded = NAMES.index("Causal_Oversimplification"), NAMES.index("Loaded_Language")
    lifted_folder = _with_sentence_head(
        tmp_path / "lifted", {"Causal_Oversimplification": 5.0, "Loaded_Language": 5.0}
    )
    lifted = _word_probs(lifted_folder, TEXT)
    # Every word of every sentence reaches the sentence's probability for a sentence technique,
    # and no word goes down.
    assert lifted[:, causal].min() >= 0.99
    assert np.all(lifted >= plain - 1e-6)
    # Loaded language is a word-level technique: the sentence head leaves it alone.
    assert np.allclose(lifted[:, loaded], plain[:, loaded])
    # The findings show it: causal oversimplification covering whole sentences.
    detector = TransformerDetector(lifted_folder)
    spans = [f for f in detector.detect(ptc.to_article(TEXT)) if f.technique == NAMES[causal]]
    assert any(len(f.text.split()) >= 8 for f in spans)


@needs_model
def test_model_json_can_turn_the_sentence_head_off(tmp_path: Path) -> None:
    """With no sentence techniques listed, what the sentence head says changes nothing."""
    sure = {"Causal_Oversimplification": 5.0}
    off_sure = _word_probs(_with_sentence_head(tmp_path / "a", sure, sentence_techniques=[]), TEXT)
    off_unsure = _word_probs(_with_sentence_head(tmp_path / "b", {}, sentence_techniques=[]), TEXT)
    on_sure = _word_probs(_with_sentence_head(tmp_path / "c", sure), TEXT)
    assert np.allclose(off_sure, off_unsure)
    assert not np.allclose(on_sure, off_sure)
