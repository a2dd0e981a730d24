"""PTC corpus I/O and the SemEval-2020 Task 11 scorers, checked against hand-computed values."""

from __future__ import annotations

import pytest

from spinlens.errors import SpinlensError
from spinlens.techniques import ptc
from spinlens.techniques.ptc import Label, PTCFormatError

LL, NC, REP, DOUBT = "Loaded_Language", "Name_Calling,Labeling", "Repetition", "Doubt"


def si(article: str, start: int, end: int) -> Label:
    return Label(article, start, end)


def test_si_partial_overlap_counts_fractions() -> None:
    # |s∩t| = 5 of a 10-character prediction and a 10-character gold span.
    result = ptc.score_si([si("1", 0, 10)], [si("1", 5, 15)]).overall
    assert (result.precision, result.recall, result.f1) == pytest.approx((0.5, 0.5, 0.5))


def test_si_merges_overlapping_gold_spans_first() -> None:
    # Gold 0-10 and 5-20 become one span 0-20: P = 10/10, R = 10/20, F1 = 2/3.
    result = ptc.score_si([si("1", 0, 10), si("1", 5, 20)], [si("1", 0, 10)]).overall
    assert (result.precision, result.recall) == pytest.approx((1.0, 0.5))
    assert result.f1 == pytest.approx(2 / 3)


def test_si_touching_spans_stay_apart_and_each_pair_counts() -> None:
    # Gold 0-5 and 5-10 do not overlap; one prediction 0-10 covers both halves:
    # P = (5/10 + 5/10) / 1 = 1, R = (5/5 + 5/5) / 2 = 1.
    result = ptc.score_si([si("1", 0, 5), si("1", 5, 10)], [si("1", 0, 10)]).overall
    assert (result.precision, result.recall, result.f1) == pytest.approx((1.0, 1.0, 1.0))


def test_si_overlapping_predictions_are_merged_too() -> None:
    # Predictions 0-6 and 4-10 merge into 0-10, which matches gold 0-10 exactly.
    result = ptc.score_si([si("1", 0, 10)], [si("1", 0, 6), si("1", 4, 10)]).overall
    assert result.f1 == pytest.approx(1.0)


def test_si_spans_of_other_articles_never_match() -> None:
    result = ptc.score_si([si("1", 0, 10)], [si("2", 0, 10)]).overall
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)


def test_si_nothing_to_find_and_nothing_found_is_perfect() -> None:
    assert ptc.score_si([], []).overall.f1 == 1.0


def test_si_no_prediction_scores_zero() -> None:
    assert ptc.score_si([si("1", 0, 10)], []).overall.f1 == 0.0


def test_flc_only_same_technique_pairs_count() -> None:
    gold = [Label("1", 0, 10, LL), Label("1", 20, 30, NC)]
    pred = [Label("1", 20, 30, LL), Label("1", 20, 30, NC)]
    result = ptc.score_flc(gold, pred)
    # Only the Name_Calling pair matches: P = 1/2, R = 1/2.
    assert (result.overall.precision, result.overall.recall) == pytest.approx((0.5, 0.5))
    assert result.per_technique[NC].f1 == pytest.approx(1.0)
    assert result.per_technique[LL].f1 == 0.0
    # As in the published scorer, a technique absent from both sides scores 1.
    assert result.per_technique[REP].f1 == 1.0


def test_flc_merges_per_technique_only() -> None:
    # Two overlapping Loaded_Language gold spans merge (0-15); the Doubt span stays apart.
    gold = [Label("1", 0, 10, LL), Label("1", 5, 15, LL), Label("1", 0, 15, DOUBT)]
    pred = [Label("1", 0, 15, LL)]
    result = ptc.score_flc(gold, pred)
    assert result.per_technique[LL].f1 == pytest.approx(1.0)
    assert result.overall.precision == pytest.approx(1.0)
    assert result.overall.recall == pytest.approx(0.5)  # 1 of 2 merged gold spans found


def test_tc_aligns_repeated_spans_and_reports_per_technique() -> None:
    gold = [
        Label("1", 0, 5, LL),
        Label("1", 10, 20, LL),
        Label("1", 10, 20, REP),
        Label("1", 30, 40, DOUBT),
    ]
    pred = [
        Label("1", 0, 5, DOUBT),
        Label("1", 10, 20, REP),
        Label("1", 10, 20, LL),  # any order matches
        Label("1", 30, 40, DOUBT),
    ]
    result = ptc.score_tc(gold, pred)
    assert result.overall.f1 == pytest.approx(0.75)  # 3 of 4 labels right
    assert result.per_technique[LL].precision == pytest.approx(1.0)
    assert result.per_technique[LL].recall == pytest.approx(0.5)
    assert result.per_technique[DOUBT].precision == pytest.approx(0.5)
    assert result.per_technique[DOUBT].f1 == pytest.approx(2 / 3)
    assert result.per_technique[REP].f1 == pytest.approx(1.0)


def test_tc_refuses_predictions_for_other_spans() -> None:
    with pytest.raises(PTCFormatError, match="1 gold label"):
        ptc.score_tc([Label("1", 0, 5, LL)], [Label("1", 0, 6, LL)])


def test_merge_overlapping() -> None:
    assert ptc.merge_overlapping([(5, 9), (0, 3), (2, 4), (9, 12)]) == [(0, 4), (5, 9), (9, 12)]


@pytest.mark.parametrize("task", ["si", "tc", "flc"])
def test_label_files_round_trip(tmp_path, task) -> None:
    technique = None if task == "si" else ("?" if task == "tc" else LL)
    labels = [Label("111", 0, 4, technique), Label("222", 7, 19, technique)]
    path = tmp_path / f"out.{task}.labels"
    ptc.write_labels(labels, task, path)
    assert ptc.read_labels(path, task) == labels
    columns = 3 if task == "si" else 4
    assert all(len(line.split("\t")) == columns for line in path.read_text().splitlines())


def test_si_reader_accepts_technique_files(tmp_path) -> None:
    path = tmp_path / "gold.labels"
    path.write_text(f"111\t{LL}\t0\t4\n", encoding="utf-8")
    assert ptc.read_labels(path, "si") == [Label("111", 0, 4)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("111\t0\t4", "expected ID<TAB>technique<TAB>start<TAB>end, found 3"),
        (f"111\t{LL}\tzero\t4", "offsets must be integers"),
        (f"111\t{LL}\t9\t4", "need 0 <= start < end"),
        ("111\tPropaganda\t0\t4", "unknown technique 'Propaganda'"),
        (f"article111\t{LL}\t0\t4", "article ID must be digits"),
    ],
)
def test_malformed_label_line_names_file_and_line(tmp_path, line, message) -> None:
    path = tmp_path / "bad.labels"
    path.write_text(f"111\t{LL}\t0\t4\n{line}\n", encoding="utf-8")
    with pytest.raises(PTCFormatError) as error:
        ptc.read_labels(path, "flc")
    assert f"bad.labels:2: {message}" in str(error.value)


def test_read_articles_keeps_text_exact(tmp_path) -> None:
    text = "Café “Title”\n\nThe élite — they say — are “traitors”.\r\nSecond line.\n"
    (tmp_path / "article123.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "notes.md").write_text("not an article")
    articles = ptc.read_articles(tmp_path)
    assert articles == {"123": text}
    start = text.index("traitors")
    assert articles["123"][start : start + 8] == "traitors"


def test_read_articles_errors(tmp_path) -> None:
    with pytest.raises(PTCFormatError, match="articles folder not found"):
        ptc.read_articles(tmp_path / "missing")
    with pytest.raises(PTCFormatError, match="no article<ID>.txt files"):
        ptc.read_articles(tmp_path)
    (tmp_path / "article1.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(PTCFormatError, match="not valid UTF-8"):
        ptc.read_articles(tmp_path)


def test_validation_split_is_reproducible_and_disjoint() -> None:
    ids = [str(100 + i) for i in range(50)]
    train, validation = ptc.validation_split(ids, 0.2, seed=13)
    assert (train, validation) == ptc.validation_split(reversed(ids), 0.2, seed=13)
    assert len(validation) == 10
    assert sorted(train + validation) == sorted(ids)
    assert ptc.validation_split(ids, 0.2, seed=14)[1] != validation
    with pytest.raises(SpinlensError):
        ptc.validation_split(ids, 1.5)


def test_to_article_uses_first_line_as_title() -> None:
    article = ptc.to_article("A headline\n\nFirst sentence. Second one.\n")
    assert article.title == "A headline"
    assert [article.text[s:e] for s, e in article.sentences] == [
        "A headline",
        "First sentence.",
        "Second one.",
    ]
