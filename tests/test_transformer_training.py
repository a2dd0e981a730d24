"""Self-training data for the transformer detector: unlabelled articles labelled by a teacher
(ONNX Runtime only, so no torch needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer
from typer.testing import CliRunner

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.techniques.cli import train_app
from spinlens.techniques.taxonomy import NAMES
from spinlens.techniques.train_transformer import (
    add_passage_targets,
    fit_platt,
    make_train_doc,
    passage_units,
    pseudo_labelled_docs,
)
from spinlens.techniques.transformer import TransformerDetector

MODEL = models_dir() / "minilm-ptc"
pytestmark = pytest.mark.skipif(
    not (MODEL / "model.onnx").is_file(), reason=f"transformer model not present at {MODEL}"
)

ARTICLES = {
    "900001": "Traitors Sell Out Our Nation\n\nThe corrupt elites betrayed every decent worker. "
    "These radical thugs want to destroy our country.\n",
    "900002": "Council Approves Budget\n\nThe council approved the budget on Tuesday after "
    "a two-hour meeting.\n",
}


def _folder(root: Path, articles: dict[str, str]) -> Path:
    folder = root / "unlabelled"
    folder.mkdir()
    for article_id, text in articles.items():
        (folder / f"article{article_id}.txt").write_text(text, encoding="utf-8")
    return folder


def _validation_ids() -> list[str]:
    return json.loads((MODEL / "model.json").read_text(encoding="utf-8"))["validation"]["ids"]


def _tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def test_unlabelled_articles_get_the_teachers_probabilities_as_soft_targets(
    tmp_path: Path,
) -> None:
    folder = _folder(tmp_path, ARTICLES)
    docs = pseudo_labelled_docs([MODEL], [folder], _tokenizer(), _validation_ids(), 0.5, 2)
    assert [d.text for d in docs] == [ARTICLES["900001"], ARTICLES["900002"]]
    teacher = TransformerDetector(MODEL)
    for doc in docs:
        assert doc.spans == []  # no gold spans: token loss only
        assert doc.weight == 0.5
        assert doc.targets.shape == (len(doc.ids), len(teacher.heads))
        assert doc.targets.min() >= 0.0 and doc.targets.max() <= 1.0
    # Soft, not rounded: the loaded headline is more "propaganda" than the council minutes.
    loaded, plain = (float(d.targets[:, -1].mean()) for d in docs)
    assert loaded > plain
    assert not np.isin(docs[0].targets, [0.0, 1.0]).all()


def test_an_ensemble_of_teachers_gives_their_mean_probabilities(tmp_path: Path) -> None:
    folder = _folder(tmp_path, ARTICLES)
    one = pseudo_labelled_docs([MODEL], [folder], _tokenizer(), _validation_ids(), 1.0, 2)
    two = pseudo_labelled_docs([MODEL, MODEL], [folder], _tokenizer(), _validation_ids(), 1.0, 2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a.targets, b.targets, atol=1e-6)


def test_a_teacher_from_another_split_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path, ARTICLES)
    with pytest.raises(SpinlensError, match="not validated on this split"):
        pseudo_labelled_docs([MODEL], [folder], _tokenizer(), _validation_ids()[:-1], 1.0, 2)


def test_a_validation_article_cannot_be_pseudo_labelled(tmp_path: Path) -> None:
    validation = _validation_ids()
    folder = _folder(tmp_path, {validation[0]: "A title\n\nSome text.\n"})
    with pytest.raises(SpinlensError, match="is a validation article"):
        pseudo_labelled_docs([MODEL], [folder], _tokenizer(), validation, 1.0, 2)


def test_a_teacher_with_another_tokenizer_teaches_through_characters(tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(MODEL, teacher)
    other = json.loads((teacher / "tokenizer.json").read_text(encoding="utf-8"))
    other["normalizer"] = None  # cased: "Traitors" is cut into other pieces
    (teacher / "tokenizer.json").write_text(json.dumps(other), encoding="utf-8")
    folder = _folder(tmp_path, ARTICLES)
    [cased, plain] = pseudo_labelled_docs(
        [teacher], [folder], _tokenizer(), _validation_ids(), 1.0, 2
    )
    [same, _] = pseudo_labelled_docs([MODEL], [folder], _tokenizer(), _validation_ids(), 1.0, 2)
    assert cased.targets.shape == same.targets.shape  # the student's pieces, whatever the teacher
    # The loaded first article is flagged by both teachers; the council's budget is not.
    assert (
        cased.targets[:, -1].max() > 0.5 and plain.targets[:, -1].max() < cased.targets[:, -1].max()
    )


def test_probabilities_carried_over_by_characters_keep_each_characters_value() -> None:
    from spinlens.techniques.train_transformer import project_probabilities

    # "corrupt elites": the teacher cuts "corrupt" in two, the student keeps it whole.
    source = np.array([[0, 3], [3, 7], [8, 14]])
    probs = np.array([[0.9], [0.5], [0.2]], np.float32)
    target = np.array([[0, 7], [8, 14], [14, 14]])
    projected = project_probabilities(source, probs, target)
    np.testing.assert_allclose(projected[:, 0], [(3 * 0.9 + 4 * 0.5) / 7, 0.2, 0.0], rtol=1e-6)
    # The same pieces give back the same probabilities.
    np.testing.assert_allclose(project_probabilities(source, probs, source), probs, rtol=1e-6)


def test_train_command_wants_teacher_and_unlabelled_together(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        train_app,
        ["techniques", "--data", str(tmp_path), "--out", str(tmp_path / "m"), "--teacher", "t"],
    )
    assert result.exit_code == 1
    assert "needs both --teacher and --unlabelled" in result.output


def test_passage_targets_are_the_encoders_vectors_of_the_matchers_units() -> None:
    from spinlens.embed import load_encoder

    encoder = load_encoder()
    text = ARTICLES["900001"]
    doc = make_train_doc(_tokenizer(), text, [], list(NAMES))
    assert add_passage_targets([doc], encoder) == len(doc.units) > 0
    spans = passage_units(text)
    assert doc.unit_vectors is not None
    assert np.allclose(doc.unit_vectors, encoder.encode([text[s:e] for s, e in spans]), atol=1e-5)
    for (first, last), (start, end) in zip(doc.units, spans, strict=True):
        # The pieces of a unit cover its text and no more.
        assert doc.offsets[first][0] <= start < doc.offsets[first][1]
        assert doc.offsets[last - 1][0] < end <= doc.offsets[last - 1][1]


def test_platt_scales_of_a_narrow_band_of_probabilities_give_the_observed_rate() -> None:
    # A head reported only above 0.9, right 36% of the time whatever its probability: once
    # Newton's full steps swung between b = 18 and b = -32 here and scored every span 1.00.
    raw = [0.90 + 0.07 * i / 49 for i in range(50)]
    correct = [int(i % 25 < 9) for i in range(50)]
    a, b = fit_platt(raw, correct)
    calibrated = [1 / (1 + np.exp(-(a * np.log(p / (1 - p)) + b))) for p in raw]
    assert 0.0 <= a <= 3.0
    assert abs(float(np.mean(calibrated)) - 0.36) < 0.05


def test_platt_scales_never_rank_less_probable_spans_higher() -> None:
    raw = [0.3 + 0.01 * i for i in range(40)]
    correct = [int(i < 20) for i in range(40)]  # the less probable half is the right half
    a, b = fit_platt(raw, correct)
    assert a == 0.0 and abs(1 / (1 + np.exp(-b)) - 0.5) < 0.05


def test_sentences_are_labelled_with_the_techniques_covering_most_of_them() -> None:
    from spinlens.techniques import ptc
    from spinlens.techniques.train_transformer import sentence_targets

    text = (
        "Title\n\nIf we let them in, crime will explode and our towns will die. "
        "The thugs met at noon in a hall near the station."
    )
    causal = text.index("If we")
    thugs = text.index("thugs")
    labels = [
        ptc.Label("1", causal, text.index(" The thugs"), "Causal_Oversimplification"),
        ptc.Label("1", thugs, thugs + 5, "Name_Calling,Labeling"),
    ]
    offsets = np.asarray(_tokenizer().encode(text, add_special_tokens=False).offsets, np.int64)
    ranges, targets = sentence_targets(text, offsets, labels, list(NAMES))
    causal_column = list(NAMES).index("Causal_Oversimplification")
    name_column = list(NAMES).index("Name_Calling,Labeling")
    assert len(ranges) == len(targets) >= 2
    assert targets[:, causal_column].tolist().count(1.0) == 1  # the whole causal sentence
    assert targets[:, name_column].sum() == 0  # one word does not label its sentence
