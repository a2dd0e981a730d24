"""The narrative encoder's training data and its retrieval measure (no torch needed)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from spinlens.errors import SpinlensError
from spinlens.narratives.catalogue import Claim
from spinlens.narratives.train_bridge import collect_sentences, read_pairs, train_bridge
from spinlens.narratives.train_encoder import (
    EmbeddedCatalogue,
    TrainConfig,
    anchor_sentences,
    make_pairs,
    mine_confusers,
    retrieval,
    split_by_date,
)


def claim(n: int, date: str, disproof: str | None = "No evidence.", summary: str | None = None):
    return Claim(
        id=f"c{n}",
        catalogue="euvsdisinfo",
        title=f"Claim number {n}",
        date=date,
        disproof=disproof,
        summary=summary,
    )


def test_cases_after_the_cut_off_never_train() -> None:
    claims = [claim(i, f"2016-{1 + i % 12:02d}-10") for i in range(20)]
    claims += [claim(100 + i, "2017-03-01") for i in range(5)]
    claims.append(claim(200, "2016-05-05", disproof=None))  # nothing to query with

    split = split_by_date(claims, TrainConfig(until="2016-12-31", validation_share=0.25))

    assert {c.id for c in split.test} == {f"c{100 + i}" for i in range(5)}
    assert len(split.train) == 15 and len(split.validation) == 5
    # Validation is the latest of the training period, so it also looks forward in time.
    assert max(c.date or "" for c in split.train) <= min(c.date or "" for c in split.validation)
    assert all(c.disproof for c in [*split.train, *split.validation, *split.test])


def test_pairs_relate_each_debunk_and_summary_to_its_own_claim() -> None:
    claims = [
        claim(1, "2016-01-01", disproof="Debunk one says the claim is false.", summary="Sum one."),
        claim(2, "2016-01-02", disproof="Debunk two: see http://example.org/x for the facts."),
        claim(3, "2016-01-03", disproof="No evidence given."),  # boilerplate: no pair
    ]
    pairs = make_pairs(claims, random.Random(0), TrainConfig(min_query_words=5, summary_pairs=True))

    assert sorted(p.query for p in pairs) == [
        "Debunk one says the claim is false.",
        "Debunk two: see for the facts.",  # links are noise to the encoder
        "Sum one.",
    ]
    for pair in pairs:
        number = "1" if "one" in pair.query.lower() else "2"
        assert pair.target.startswith(f"Claim number {number}")
        assert pair.key == f"claim number {number}"
    # By default summaries are not queries: they teach "this event's context means the claim".
    default = make_pairs(claims, random.Random(0), TrainConfig(min_query_words=5))
    assert "Sum one." not in [p.query for p in default]


def test_hard_negatives_are_other_claims_the_debunk_resembles() -> None:
    catalogue_claims = [
        Claim(id="own", catalogue="x", title="Protests were staged by foreign agents"),
        Claim(id="near", catalogue="x", title="Foreign agents staged the riots"),
        Claim(id="far", catalogue="x", title="The vaccine alters human genes"),
    ]
    query = claim(9, "2016-01-01", disproof="No, foreign agents did not stage the protests.")
    query = query.model_copy(update={"title": catalogue_claims[0].title})
    embedded = EmbeddedCatalogue.build(_bag_of_words, catalogue_claims)

    confusers = mine_confusers(embedded, _bag_of_words([query.disproof or ""]), [query], top=1)

    assert [c.id for c in confusers[query.id]] == ["near"]


def _bag_of_words(texts: list[str]) -> np.ndarray:
    """A stand-in encoder: hashed word counts, normalised."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            out[row, sum(map(ord, word)) % 64] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_retrieval_ranks_each_query_against_the_whole_catalogue() -> None:
    catalogue = [
        Claim(id="a", catalogue="x", title="Protests were staged by foreign agents"),
        Claim(id="b", catalogue="x", title="The vaccine alters human genes"),
        Claim(id="c", catalogue="x", title="Sanctions hurt only Europe"),
    ]
    queries = [
        Claim(id="a", catalogue="x", title=catalogue[0].title, disproof="foreign agents staged"),
        Claim(id="b", catalogue="x", title=catalogue[1].title, disproof="unrelated words here"),
    ]
    embedded = EmbeddedCatalogue.build(_bag_of_words, catalogue)

    figures = retrieval(_bag_of_words, queries, embedded)

    assert figures["queries"] == 2
    assert figures["recall@1"] == 0.5  # the first query finds its claim first, the second not
    assert figures["recall@10"] == 1.0  # three claims: everything is in the top 10


def test_anchor_sentences_are_whole_news_sentences(tmp_path) -> None:
    (tmp_path / "a.txt").write_text(
        "Title\n\nThe council approved the budget on Monday evening. Short one.\n"
        "Residents   gathered outside the town hall in the rain.\n",
        encoding="utf-8",
    )
    (tmp_path / "notes.md").write_text("Not an article, and not read at all.", encoding="utf-8")

    sentences = anchor_sentences(tmp_path, 10, random.Random(0))

    assert sorted(sentences) == [
        "Residents gathered outside the town hall in the rain.",
        "The council approved the budget on Monday evening.",
    ]


def test_bridge_sentences_are_distinct_whole_sentences_of_articles_and_cases(tmp_path) -> None:
    (tmp_path / "a.txt").write_text(
        "Crowds gathered in the main square today.  Police   watched them closely.\n\nOk.\n",
        encoding="utf-8",
    )
    (tmp_path / "b.txt").write_text("Crowds gathered in the main square today.", encoding="utf-8")
    (tmp_path / "notes.md").write_text("Not an article at all, so never read.", encoding="utf-8")
    cases = ["The West paid the protesters in the square. Short one."]

    sentences = collect_sentences([tmp_path], cases)

    assert sentences == [
        "Crowds gathered in the main square today.",
        "Police watched them closely.",
        "The West paid the protesters in the square.",
    ]


def test_bridge_training_refuses_a_missing_folder_and_too_little_text(tmp_path) -> None:
    with pytest.raises(SpinlensError, match="not a folder of articles"):
        collect_sentences([tmp_path / "missing"], [])
    with pytest.raises(SpinlensError, match="too few"):
        train_bridge(["One sentence of text here."], tmp_path / "out")


def test_bridge_training_refuses_to_train_on_a_sentence_it_measures_on(tmp_path) -> None:
    measured = [("The West paid the protesters.", "Запад заплатил протестующим.")]
    for overlapping in (
        measured[0],
        ("Western money paid the protesters.", "Запад заплатил протестующим."),  # Russian only
    ):
        with pytest.raises(SpinlensError, match="also one to measure on"):
            train_bridge(["A sentence."] * 200, tmp_path, pairs=measured, parallel=[overlapping])


def test_translated_pairs_are_read_by_column_name_and_bad_files_are_refused(tmp_path) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "kind\tenglish\trussian\n"
        "narrative\tThe West paid the protesters.\tЗапад заплатил протестующим.\n"
        "neutral\tIt rained.\t\n",  # no translation: skipped
        encoding="utf-8",
    )
    assert read_pairs(pairs) == [("The West paid the protesters.", "Запад заплатил протестующим.")]
    (tmp_path / "bad.tsv").write_text("kind\tenglish\nneutral\tIt rained.\n", encoding="utf-8")
    with pytest.raises(SpinlensError, match="needs a header"):
        read_pairs(tmp_path / "bad.tsv")
    with pytest.raises(SpinlensError, match="cannot read pairs"):
        read_pairs(tmp_path / "missing.tsv")
