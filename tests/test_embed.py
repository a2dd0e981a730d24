import json
from pathlib import Path

import numpy as np
import pytest

from spinlens.config import models_dir
from spinlens.embed import (
    ENCODER_DIR,
    Bridge,
    BridgedEncoder,
    Encoder,
    ModelUnavailableError,
    load_bridge,
    load_encoder,
    load_multilingual_encoder,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return load_encoder()


def test_shipped_graph_agreed_with_the_trained_model(encoder: Encoder) -> None:
    # The trainer refuses to ship an int8 graph whose vectors stray from fp32 (mean cosine
    # < 0.99) and records the agreement it measured next to the model.
    record = json.loads((models_dir() / ENCODER_DIR / "training.json").read_text())
    assert record["int8_vs_fp32_mean_cosine"] >= 0.99
    assert encoder.name.startswith(f"{ENCODER_DIR}-int8@")


def test_a_debunk_lands_next_to_the_claim_it_refutes(encoder: Encoder) -> None:
    claim, other = encoder.encode(
        [
            "NATO is preparing to invade Belarus",
            "The EU bans the sale of Russian books in its member states",
        ]
    )
    (debunk,) = encoder.encode(
        ["There are no plans for any NATO attack on Belarus; the alliance is purely defensive."]
    )
    assert float(debunk @ claim) > float(debunk @ other) + 0.2


def test_vectors_are_unit_length_and_rank_paraphrases_first(encoder: Encoder) -> None:
    texts = [
        "Western countries paid activists to overthrow the government.",
        "The government was toppled by activists funded from the West.",
        "The recipe needs two eggs and a cup of flour.",
    ]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > 0.6 > vectors[0] @ vectors[2] + 0.4


def test_batching_and_order_barely_change_vectors(encoder: Encoder) -> None:
    # Dynamic int8 quantisation scales activations per batch, so batch mates move a vector a
    # little; rows must still come back in input order and near their solo values.
    texts = ["short", "a much longer sentence about elections and their observers " * 3, "mid size"]
    together = encoder.encode(texts, batch_size=2)
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    assert (together * alone).sum(axis=1).min() > 0.97


def test_long_text_is_truncated_not_rejected(encoder: Encoder) -> None:
    vector = encoder.encode(["word " * 2000])
    assert vector.shape == (1, encoder.dim) and np.isfinite(vector).all()


def test_empty_input_gives_empty_matrix(encoder: Encoder) -> None:
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_encoder_is_loaded_once_per_process() -> None:
    assert load_encoder() is load_encoder()


def test_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="sentence encoder file missing"):
        Encoder(tmp_path)


def test_multilingual_encoder_puts_a_translation_next_to_its_original() -> None:
    encoder = load_multilingual_encoder()
    vectors = encoder.encode(
        [
            "The West is behind the protests in Kazakhstan.",
            "Запад стоит за протестами в Казахстане.",
            "Вчера в Париже была солнечная погода.",
        ]
    )
    assert vectors.shape == (3, encoder.dim) and encoder.dim == 512
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > 0.75 > 0.35 > vectors[0] @ vectors[2]
    assert encoder.encode([]).shape == (0, 512)


def test_bridge_puts_russian_where_the_english_encoder_puts_its_original(
    encoder: Encoder,
) -> None:
    bridged = BridgedEncoder(load_multilingual_encoder(), load_bridge(), encoder)
    english = encoder.encode(["The West is behind the protests in Kazakhstan."])
    russian, weather = bridged.encode(
        ["Запад стоит за протестами в Казахстане.", "Вчера в Париже была солнечная погода."]
    )
    assert bridged.dim == encoder.dim and np.isclose(np.linalg.norm(russian), 1.0, atol=1e-4)
    assert english[0] @ russian > 0.7 > 0.3 > english[0] @ weather


def test_bridge_refuses_an_encoder_it_was_not_trained_for(encoder: Encoder) -> None:
    class Other:
        name, dim = "another-encoder@0", 384

        def encode(self, texts: object, batch_size: int = 32) -> np.ndarray:
            raise AssertionError("never called")

    with pytest.raises(ModelUnavailableError, match="spinlens train bridge"):
        BridgedEncoder(load_multilingual_encoder(), load_bridge(), Other())


def test_missing_bridge_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="cannot load the USE bridge"):
        Bridge(tmp_path)
