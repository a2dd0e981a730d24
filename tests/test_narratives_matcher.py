from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from spinlens.embed import Encoder, ModelUnavailableError, load_encoder
from spinlens.model import Article, Document, Source
from spinlens.narratives import matcher as matcher_module
from spinlens.narratives.catalogue import CatalogueStore
from spinlens.narratives.importers import import_file
from spinlens.narratives.index import CatalogueIndex, Item
from spinlens.narratives.matcher import EmbeddingMatcher
from spinlens.narratives.passages import passage_spans, plan_passages
from spinlens.pipeline import Pipeline
from spinlens.sentences import split_sentences

from .narrative_fixtures import FIXTURES

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "examples" / "000_7ae2a392a41f3264.txt"

ARTICLE = (
    "Riverton, Monday.\n"
    "The town council met on Monday to approve next year's budget for schools and roads. "
    "Several hundred residents gathered outside the town hall. "
    "According to the mayor, the crowd was led by activists of non-governmental groups that are "
    "financed by American and European foundations. "
    "Council members also discussed the repair of the old bridge, which will close in May. "
    "The weather stayed dry and the meeting ended before dark."
)


class CountingEncoder:
    """The real encoder, counting how many texts it is asked to embed."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.texts = 0

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.encode(texts, batch_size)


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINLENS_HOME", str(tmp_path / "home"))


def article(text: str, language: str | None = None) -> Article:
    return Article(text=text, sentences=split_sentences(text), language=language)


def test_passages_are_windows_of_sentences_with_exact_offsets() -> None:
    text = "One two three four five. Six seven eight nine ten. Short one.\nEleven twelve thirteen."
    spans = split_sentences(text)
    passages = passage_spans(text, spans)
    assert (spans[0][0], spans[0][1]) in passages
    assert (spans[0][0], spans[1][1]) in passages  # two sentences
    assert (spans[2][0], spans[2][1]) not in passages  # "Short one." is too short alone
    assert all(text[s:e] == text[s:e].strip() for s, e in passages)


def test_a_long_sentence_also_yields_its_clauses() -> None:
    text = "Officials said many things about the event yesterday: the riots were paid from abroad."
    clause = "the riots were paid from abroad."
    assert (text.index(clause), len(text)) in passage_spans(text, split_sentences(text))


def test_a_long_clause_also_yields_its_head() -> None:
    text = (
        "Then the experts drew their conclusion: the turmoil was in the interests of the West, "
        "including as yet another source of tension near the borders of the region."
    )
    head = "the turmoil was in the interests of the West"
    start = text.index(head)
    assert (start, start + len(head)) in passage_spans(text, split_sentences(text))
    short = "The riots, they said, were paid from abroad by foreign foundations."
    assert passage_spans(short, split_sentences(short)) == [(0, len(short))]


def test_an_item_loses_what_the_nearest_counterexample_beats_it_by() -> None:
    family = Item("spinlens-starter:f", "F", "spinlens-starter", "f")
    claim = Item("team:c", "C", "team")
    index = CatalogueIndex(
        [family, claim],
        np.array([[1, 0, 0], [0, 0, 1]], dtype=np.float32),
        np.array([0, 1]),
        counters=np.array([[0, 1, 0]], dtype=np.float32),
        counter_owners=np.array([0]),
    )
    queries = np.array([[0.6, 0.8, 0], [0.8, 0.6, 0], [0, 0.6, 0.8]], dtype=np.float32)
    # Nearer the counterexample (0.8) than the family (0.6): 0.6 - 0.2. Nearer the family: as
    # is. A claim is judged against every family's counterexamples: 0 - 0.8, 0 - 0.6, and the
    # third query, nearer the claim (0.8) than the counterexample (0.6), as is.
    assert np.allclose(index.scores(queries), [[0.4, -0.8], [0.8, -0.6], [-0.6, 0.8]])


def test_each_sentence_is_embedded_once_and_windows_reuse_it() -> None:
    matcher = EmbeddingMatcher()
    counting = CountingEncoder(matcher.encoder)  # type: ignore[arg-type]
    matcher.encoder = counting  # type: ignore[assignment]
    spans = split_sentences(ARTICLE)
    plan = plan_passages(ARTICLE, spans)
    matcher.match(article(ARTICLE))
    assert counting.texts == len(plan.units) <= len(spans)
    assert len(plan.spans) > len(plan.units)  # two-sentence windows cost no encoder work


def test_starter_catalogue_finds_foreign_funded_ngos_with_the_right_evidence() -> None:
    matcher = EmbeddingMatcher()
    matches = matcher.match(article(ARTICLE))
    top = {m.family for m in matches[:3]}
    assert "foreign-funded-agents" in top
    ngo = next(m for m in matches if m.family == "foreign-funded-agents")
    assert ngo.catalogue == "spinlens-starter"
    evidence = [ARTICLE[e.start : e.end] for e in ngo.evidence]
    assert any("financed by American and European foundations" in e for e in evidence)
    assert all("bridge" not in e and "weather" not in e for e in evidence)


def test_unrelated_text_matches_nothing() -> None:
    text = (
        "Preheat the oven to 200 degrees. Mix the flour, butter and sugar in a large bowl. "
        "Bake the biscuits for twelve minutes until golden, then let them cool on a rack."
    )
    assert EmbeddingMatcher().match(article(text)) == []


def test_empty_article_matches_nothing() -> None:
    assert EmbeddingMatcher().match(Article(text="")) == []


def test_imported_claims_match_with_their_disproof(tmp_path: Path) -> None:
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        import_file(store, FIXTURES / "team.csv", catalogue="team")
    text = (
        "The vote count was a fraud. The result of the election was decided by voting machines "
        "that had been hacked. Nobody has been punished for it."
    )
    matches = EmbeddingMatcher(store_path=store_path, catalogues=["team"]).match(article(text))
    assert matches and matches[0].catalogue == "team"
    assert matches[0].disproof == "False" and matches[0].url == "https://team.example/1"
    (evidence,) = matches[0].evidence
    assert "hacked" in text[evidence.start : evidence.end]


def test_a_family_match_lists_documented_cases_of_it_with_their_debunk(tmp_path: Path) -> None:
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        import_file(store, FIXTURES / "euvsdisinfo_disproofs.csv")
    matches = EmbeddingMatcher(store_path=store_path).match(article(ARTICLE))
    ngo = next(m for m in matches if m.family == "foreign-funded-agents")
    assert ngo.catalogue == "spinlens-starter"
    (riga,) = [p for p in ngo.precedents if "Riga" in p.title]
    assert riga.disproof and "student union" in riga.disproof
    assert riga.date == "2016-03-12" and riga.score > 0.45
    # The gas case belongs to another family: never a precedent of this one.
    assert all("gas" not in p.title for m in matches for p in m.precedents)


def test_many_close_cases_do_not_push_the_family_off_the_report(tmp_path: Path) -> None:
    crowd = "the crowd outside the town hall was led by activists of NGOs financed from America"
    rows = [f"{crowd} and Europe (desk note {n}),False," for n in range(6)]
    team = tmp_path / "crowd.csv"
    team.write_text("text,verdict,url\n" + "\n".join(rows) + "\n", encoding="utf-8")
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        import_file(store, team, catalogue="team")
    matches = EmbeddingMatcher(store_path=store_path, top=3).match(article(ARTICLE))
    cases = [m for m in matches if m.catalogue == "team"]
    families = [m for m in matches if m.catalogue == "spinlens-starter"]
    # Three cases outscore the family, and each kind keeps its own three places.
    assert len(cases) == 3 and min(c.score for c in cases) > families[0].score
    assert families[0].family == "foreign-funded-agents"


def russian_desk_and_english_team(tmp_path: Path) -> EmbeddingMatcher:
    """A desk's list in Russian with one claim, and the English team list that has it too."""
    desk = tmp_path / "desk.csv"
    desk.write_text(
        "text,verdict,url\n"
        "Исход выборов решили взломанные машины для голосования,Ложь,https://desk.example/1\n",
        encoding="utf-8",
    )
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        import_file(store, desk, catalogue="desk")
        import_file(store, FIXTURES / "team.csv", catalogue="team")
    return EmbeddingMatcher(store_path=store_path, catalogues=["desk", "team"])


def test_a_claim_listed_in_russian_matches_an_english_article_and_a_russian_query(
    tmp_path: Path,
) -> None:
    matcher = russian_desk_and_english_team(tmp_path)
    text = (
        "The vote count was a fraud. The result of the election was decided by voting machines "
        "that had been hacked. Nobody has been punished for it."
    )
    found = {m.catalogue: m for m in matcher.match(article(text, language="en"))}
    # Read by MiniLM, which knows no Russian, the Russian claim scored 0.13 against its own
    # English translation; through USE and the bridge it lands in the same space.
    assert found["desk"].url == "https://desk.example/1"
    assert "hacked" in text[found["desk"].evidence[0].start : found["desk"].evidence[0].end]
    (results,) = matcher.search(["Выборы решили взломанные машины для голосования"], top=2)
    assert {r.catalogue for r in results} == {"desk", "team"}  # both lists' version of it
    assert results[1].score > 0.5


def test_without_use_a_russian_claim_does_not_stop_english_matching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise ModelUnavailableError("USE cannot load")

    monkeypatch.setattr(matcher_module, "load_multilingual_encoder", broken)
    matcher = russian_desk_and_english_team(tmp_path)
    text = "The result of the election was decided by voting machines that had been hacked."
    assert matcher.match(article(text, language="en"))[0].catalogue == "team"
    # Vectors made without USE are not kept: the next start, with USE working, reads it right.
    assert not list((tmp_path / "home" / "cache").glob("narratives-*.npy"))


def test_catalogue_embeddings_are_cached_until_the_catalogue_changes(
    tmp_path: Path,
) -> None:
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        import_file(store, FIXTURES / "team.csv")
    encoder = CountingEncoder(load_encoder())
    EmbeddingMatcher(store_path=store_path, encoder=encoder)  # type: ignore[arg-type]
    first = encoder.texts
    assert first > 100
    EmbeddingMatcher(store_path=store_path, encoder=encoder)  # type: ignore[arg-type]
    assert encoder.texts == first  # second start: vectors come from the cache
    with CatalogueStore(store_path) as store:
        import_file(store, FIXTURES / "claimreview.jsonld")
    matcher = EmbeddingMatcher(store_path=store_path, encoder=encoder)  # type: ignore[arg-type]
    # Each catalogue is cached apart: only the new catalogue's one claim is embedded.
    assert encoder.texts == first + 1
    assert any(i.catalogue == "claimreview" for i in matcher.index.items)
    # One file each for the starter families, team and claimreview.
    assert len(list((tmp_path / "home" / "cache").glob("narratives-*.npy"))) == 3
    # Searching one catalogue reuses its vectors, and leaves the others' in place.
    EmbeddingMatcher(store_path=store_path, encoder=encoder, catalogues=["team"])  # type: ignore[arg-type]
    EmbeddingMatcher(store_path=store_path, encoder=encoder)  # type: ignore[arg-type]
    assert encoder.texts == first + 1


def test_plain_reporting_of_price_protests_is_not_a_colour_revolution() -> None:
    text = (
        "Thousands of people rallied in the west of the country against the sharp rise in gas "
        "prices. The government reacted by bringing prices back to their previous level."
    )
    matcher = EmbeddingMatcher(catalogues=["spinlens-starter"], use_cache=False)
    assert matcher.match(article(text, language="en")) == []


def test_search_ranks_the_paraphrased_claim_first(tmp_path: Path) -> None:
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        import_file(store, FIXTURES / "euvsdisinfo_disproofs.csv")
    matcher = EmbeddingMatcher(store_path=store_path)
    (results,) = matcher.search(["Western foundations hired students to march in Riga"], top=3)
    assert results[0].title == "Foreign NGOs paid students to protest in Riga"
    assert results[0].family == "foreign-funded-agents"  # grouped under the starter family
    assert results[0].score >= results[1].score >= results[2].score


def test_search_lists_a_claim_catalogued_twice_once(tmp_path: Path) -> None:
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        for name in ("desk-a", "desk-b"):  # two newsrooms' lists share one claim
            import_file(store, FIXTURES / "team.csv", catalogue=name)
    matcher = EmbeddingMatcher(store_path=store_path, catalogues=["desk-a", "desk-b"])
    (results,) = matcher.search(["Hacked voting machines decided the election"], top=3)
    titles = [r.title for r in results]
    assert titles[0] == "The election was decided by hacked voting machines"
    # Four items (two claims, each in both lists) but only two distinct claims to show.
    assert len(matcher.index.items) == 4
    assert len(titles) == len(set(titles)) == 2


def test_search_fills_top_with_distinct_claims_past_many_copies_of_one(tmp_path: Path) -> None:
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        # One claim on 12 desks' lists outnumbers the candidates first looked at (4 x top).
        for n in range(12):
            import_file(store, FIXTURES / "team.csv", catalogue=f"desk-{n}")
    matcher = EmbeddingMatcher(store_path=store_path, catalogues=[f"desk-{n}" for n in range(12)])
    (results,) = matcher.search(["Hacked voting machines decided the election"], top=2)
    assert len({r.title for r in results}) == 2


@pytest.mark.shared
def test_example_article_shows_the_documented_narratives_with_evidence() -> None:
    if not EXAMPLE.is_file():
        pytest.skip("../shared/examples is not available")
    text = EXAMPLE.read_text(encoding="utf-8")
    matches = EmbeddingMatcher().match(article(text))
    families = [m.family for m in matches[:6]]
    assert "foreign-funded-agents" in families
    assert {"colour-revolution", "west-provokes-at-russian-borders"} & set(families)
    ngo = next(m for m in matches if m.family == "foreign-funded-agents")
    assert any("financed from abroad" in text[e.start : e.end] for e in ngo.evidence)
    west = next(m for m in matches if m.family == "west-provokes-at-russian-borders")
    assert any("in the interests of the West" in text[e.start : e.end] for e in west.evidence)
    # The colour revolution on the article's claim, not on its reporting of price protests.
    revolution = next(m for m in matches if m.family == "colour-revolution")
    evidence = [text[e.start : e.end] for e in revolution.evidence]
    assert any("in the interests of the West" in e for e in evidence)
    assert not any("gas prices" in text[e.start : e.end] for m in matches for e in m.evidence)


def test_russian_article_matches_the_english_catalogue_cross_lingually() -> None:
    text = (FIXTURES / "short_ru.txt").read_text(encoding="utf-8")
    # Its one claim is mild, and attributed: in English it scores 0.61, just above THRESHOLD,
    # and its translation 0.56, under MULTILINGUAL_THRESHOLD (0.58, for a mean translation loss
    # of 0.03). What this checks is the ranking and the evidence, at a lower threshold.
    matches = EmbeddingMatcher(threshold=0.5).match(article(text, language="ru"))
    assert matches and matches[0].family == "foreign-funded-agents"
    evidence = [text[e.start : e.end] for e in matches[0].evidence]
    assert any("финансируются американскими" in e for e in evidence)
    assert all("моста" not in e and "Погода" not in e for e in evidence)


def test_the_russian_example_finds_its_narratives_on_the_passages_english_finds_them() -> None:
    """Our Russian translation of the example article: the foreign-funded NGOs and the colour
    revolution, each on the passage that carries it in English, at the shipped thresholds."""
    text = (FIXTURES / "example_article_ru.txt").read_text(encoding="utf-8")
    matches = {m.family: m for m in EmbeddingMatcher().match(article(text, language="ru"))}
    assert {"foreign-funded-agents", "colour-revolution"} <= matches.keys()

    def evidence(family: str) -> list[str]:
        return [text[e.start : e.end] for e in matches[family].evidence]

    assert any("неправительственных организаций" in e for e in evidence("foreign-funded-agents"))
    assert any("в интересах Запада" in e for e in evidence("colour-revolution"))


def test_unrelated_russian_text_matches_nothing() -> None:
    text = (
        "Разогрейте духовку до 200 градусов. Смешайте муку, масло и сахар в большой миске. "
        "Выпекайте печенье двенадцать минут до золотистого цвета, затем дайте ему остыть."
    )
    assert EmbeddingMatcher().match(article(text, language="ru")) == []


def test_a_russian_claim_meets_the_family_in_russian_and_plain_reporting_does_not() -> None:
    # Against the English texts alone this sentence matched no family: USE puts it nearer the
    # family's Russian phrasings than its English ones.
    staged = (
        "Отравление Скрипалей было инсценировкой британских спецслужб, чтобы обвинить Россию "
        "и ввести новые санкции."
    )
    plain = (
        "Следователи продолжают выяснять обстоятельства отравления, результаты экспертизы "
        "пока не опубликованы."
    )
    matcher = EmbeddingMatcher(catalogues=["spinlens-starter"])
    (found,) = matcher.match(Article(text=staged, sentences=[(0, len(staged))], language="ru"))
    assert found.family == "staged-poisonings"
    assert matcher.match(Article(text=plain, sentences=[(0, len(plain))], language="ru")) == []


def test_a_language_no_encoder_knows_gets_a_warning_not_guesses() -> None:
    text = (
        "Serikali ya nchi hiyo imesema kwamba mashirika yasiyo ya kiserikali yanafadhiliwa na "
        "nchi za Magharibi ili kuchochea maandamano katika miji mikubwa. Wananchi wengi "
        "walikusanyika mbele ya ofisi za serikali wakidai mabadiliko ya haraka."
    )
    document = Document(
        source=Source(kind="file", location="sw.txt"), body=text, media_type="text/plain"
    )
    analysis = Pipeline(matchers=[EmbeddingMatcher()]).analyze(document)
    assert analysis.article.language == "sw"
    assert analysis.narratives == []
    assert "narratives are not available for language 'sw'" in analysis.warnings


def test_russian_sentences_find_the_claims_their_english_originals_find(tmp_path: Path) -> None:
    """The bridge carries Russian into the English encoder's space: the same catalogue claim
    comes first for a statement and its translation (our own sentence pairs)."""
    store_path = tmp_path / "c.sqlite3"
    with CatalogueStore(store_path) as store:
        import_file(store, FIXTURES / "euvsdisinfo_disproofs.csv")
    matcher = EmbeddingMatcher(store_path=store_path, threshold=-1.0, claim_threshold=-1.0)
    english = "Western foundations paid students to march through the streets of Riga."
    russian = "Западные фонды заплатили студентам, чтобы те прошли маршем по улицам Риги."
    for text, language in ((english, "en"), (russian, "ru")):
        claims = [
            m for m in matcher.match(article(text, language)) if m.catalogue != "spinlens-starter"
        ]
        assert claims[0].title == "Foreign NGOs paid students to protest in Riga", language


def test_reports_name_the_encoder_that_matched_the_article() -> None:
    matcher = EmbeddingMatcher()
    russian = (FIXTURES / "short_ru.txt").read_text(encoding="utf-8")
    document = Document(
        source=Source(kind="file", location="ru.txt"), body=russian, media_type="text/plain"
    )
    analysis = Pipeline(matchers=[matcher]).analyze(document)
    assert analysis.article.language == "ru"
    assert analysis.models["narratives"].startswith("use-multilingual-v3@")
    assert "+use-bridge@" in analysis.models["narratives"]
    assert matcher.name_for("en") == matcher.name and "use-multilingual" not in matcher.name


def test_a_subset_plan_keeps_only_its_passages_and_their_units() -> None:
    text = "One two three four five. Six seven eight nine ten. Eleven twelve thirteen fourteen."
    plan = plan_passages(text, split_sentences(text))
    last = len(plan.spans) - 1
    subset = plan.subset([0, last])
    assert subset.spans == [plan.spans[0], plan.spans[last]]
    assert [[subset.units[u] for u in parts] for parts in subset.parts] == [
        [plan.units[u] for u in plan.parts[p]] for p in (0, last)
    ]
    assert len(subset.units) == len({u for p in (0, last) for u in plan.parts[p]})


def _long_article() -> str:
    filler = [
        f"The council of district {n} met on Tuesday and approved the budget for road repairs."
        for n in range(40)
    ]
    claim = "The protesters are paid agents of Western foundations and foreign governments."
    return "\n".join([*filler[:25], claim, *filler[25:]])


def test_analyze_shares_the_detector_pass_and_the_encoder_reads_a_shortlist() -> None:
    from spinlens.techniques.detectors import load_detector

    detector = load_detector()
    encoder = CountingEncoder(load_encoder())
    matcher = EmbeddingMatcher(encoder=encoder)  # type: ignore[arg-type]
    assert getattr(detector, "passage_encoder", None) == matcher.passage_space
    text = _long_article()
    document = Document(
        source=Source(kind="file", location="a.txt"), body=text, media_type="text/plain"
    )
    encoder.texts = 0  # the catalogue is embedded by now
    analysis = Pipeline(detector, [matcher]).analyze(document)
    shared = encoder.texts
    article = analysis.article  # the first line became the title
    units = len(plan_passages(article.text, article.sentences).units)
    assert 0 < shared < units / 4  # the encoder read a shortlist only
    assert analysis.models["narratives"] == f"{detector.name}-shortlist+{matcher.name}"
    ngo = next(m for m in analysis.narratives if m.family == "foreign-funded-agents")
    assert "paid agents" in article.text[ngo.evidence[0].start : ngo.evidence[0].end]

    encoder.texts = 0
    alone = Pipeline(detector, [matcher], share_passages=False).analyze(document)
    assert encoder.texts == units  # every unit, as without a passage head
    assert alone.models["narratives"] == matcher.name
    assert [m.claim_id for m in alone.narratives] == [m.claim_id for m in analysis.narratives]
