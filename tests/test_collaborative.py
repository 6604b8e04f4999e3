"""The collaborative signal: co-occurrence counts and their shrunk cosine by hand, the evidence-scaled channel,
cold start, live updates from feedback, a restart that rebuilds the same matrix, and untouched baselines."""

import json

import numpy as np
import pytest
from conftest import HashEmbedder

from chatrec.catalog import Catalog, Item
from chatrec.collaborative import CoOccurrence, dialogue_baskets, dialogue_file
from chatrec.config import CollaborativeConfig, ConfigError, RetrievalConfig, load_config
from chatrec.evaluation.replay import Kind
from chatrec.recommender import RETRIEVERS, UserInput
from chatrec.retrieval import Query, Retriever, embed_catalog
from chatrec.session import Session
from chatrec.store import SessionStore

ABCDE = Catalog([Item(i, i.upper()) for i in "abcde"])
HAND = [{"a", "b", "c"}, {"a", "b"}, {"b", "d"}, {"e"}]  # {"e"} alone co-occurs with nothing: left out


def dense(model: CoOccurrence) -> np.ndarray:
    return model.counts.toarray()


def test_counts_by_hand():
    got = dense(CoOccurrence(ABCDE, CollaborativeConfig(), HAND))
    #                 a  b  c  d  e      diagonal: baskets of 2+ items holding the item; off it: holding both
    want = np.array([[2, 2, 1, 0, 0],
                     [2, 3, 1, 1, 0],
                     [1, 1, 1, 0, 0],
                     [0, 1, 0, 1, 0],
                     [0, 0, 0, 0, 0]])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("shrink", [0.0, 2.0])
def test_similarity_is_a_shrunk_cosine_by_hand(shrink):
    s = CoOccurrence(ABCDE, CollaborativeConfig(shrink=shrink), HAND).similarity().toarray()
    f = lambda c: c / (c + shrink)  # noqa: E731
    assert s[0, 1] == pytest.approx(2 / np.sqrt(2 * 3) * f(2)) and s[1, 0] == pytest.approx(s[0, 1])
    assert s[0, 2] == pytest.approx(1 / np.sqrt(2 * 1) * f(1))
    assert s[1, 3] == pytest.approx(1 / np.sqrt(3 * 1) * f(1))
    assert s[0, 3] == 0 and not s.diagonal().any() and not s[4].any()


def test_shrinkage_makes_a_pair_seen_once_weigh_less_than_one_seen_often():
    # a-b seen together once, c-d four times: both cosines are 1, the evidence is not
    model = CoOccurrence(ABCDE, CollaborativeConfig(shrink=5.0), [{"a", "b"}] + [{"c", "d"}] * 4)
    s = model.similarity().toarray()
    assert s[0, 1] == pytest.approx(1 / 6) and s[2, 3] == pytest.approx(4 / 9)
    assert model.evidence(["a"]) == 1 and model.evidence(["c", "d", "zzz"]) == 8


def test_scores_ranking_and_evidence_weight():
    model = CoOccurrence(ABCDE, CollaborativeConfig(shrink=0.0, weight=0.5, evidence_full=4.0), HAND)
    s = model.scores(["a", "d"])
    sim = model.similarity().toarray()
    assert s == pytest.approx(sim[0] + sim[3])
    assert model.ranking(Query("", liked=("a",)), 10) == [1, 2]  # b: 2/sqrt(6) = 0.82, c: 1/sqrt(2) = 0.71
    assert model.ranking(Query("", liked=("a",), exclude=frozenset({"b"})), 10) == [2]  # excluded items left out
    assert model.ranking(Query("", liked=("a", "b")), 1) == [2]  # the liked items themselves never
    assert model.weight(Query("", liked=("a",))) == pytest.approx(0.5 * 2 / 4)
    assert model.weight(Query("", liked=("a", "b"))) == pytest.approx(0.5)  # 5 baskets: capped at full weight


def test_no_liked_items_or_no_evidence_means_no_ranking():
    model = CoOccurrence(ABCDE, CollaborativeConfig(), HAND)
    assert model.ranking(Query("anything"), 10) == []
    assert model.ranking(Query("", liked=("e",)), 10) == [] and model.weight(Query("", liked=("e",))) == 0
    assert model.ranking(Query("", liked=("not-in-the-catalog",)), 10) == []
    assert not dense(CoOccurrence(ABCDE, CollaborativeConfig())).any()  # no baskets at all


# ---- dialogue files ---------------------------------------------------------------------------------


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_training_dialogue_is_a_basket_of_its_targets_and_likes(tmp_path):
    rows = [{"id": "1", "split": "train", "turns": [
        {"role": "user", "text": "I loved A, not C", "liked": ["a"], "rejected": ["c"]},
        {"role": "assistant", "text": "B?", "targets": ["b", "c", "elsewhere-1999"]}]}]
    assert dialogue_baskets(_write(tmp_path / "d.jsonl", rows), ABCDE) == [frozenset({"a", "b"})]


@pytest.mark.parametrize("split", ["val", "test", None])
def test_validation_and_test_dialogues_are_refused(tmp_path, split):
    path = _write(tmp_path / "d.jsonl", [{"id": "1", "split": split, "turns": []}])
    with pytest.raises(ValueError, match="training dialogues only"):
        CoOccurrence.build(ABCDE, CollaborativeConfig(dialogue_files=(str(path),)))
    with pytest.raises(ValueError, match="not found"):
        dialogue_file("human_nothing")


def test_the_default_files_are_the_packaged_training_splits(small_catalog):
    cfg = CollaborativeConfig()
    assert cfg.dialogue_files == ("human_train", "train")
    assert [dialogue_file(f).name for f in cfg.dialogue_files] == ["human_train.jsonl", "train.jsonl"]
    model = CoOccurrence.build(small_catalog, cfg)
    assert model.evidence(["the-matrix-1999"]) > 0


def test_config_checks_its_values():
    assert load_config(None, ["collaborative.enabled=false"]).collaborative.enabled is False
    with pytest.raises(ConfigError, match="collaborative"):
        load_config(None, ["collaborative.weight=-1"])
    with pytest.raises(ConfigError, match="unknown"):
        load_config(None, ["collaborative.wieght=1"])


# ---- people's baskets ------------------------------------------------------------------------------------


def _liked(owner, *items, rejected=(), use_profile=True) -> Session:
    s = Session(owner=owner, use_profile=use_profile)
    for i in items:
        s.like(i)
    for i in rejected:
        s.reject(i)
    return s


def test_one_basket_per_person_across_sessions_the_later_word_winning():
    model = CoOccurrence(ABCDE, CollaborativeConfig())
    model.update(_liked("ann", "a", "b"))
    model.update(_liked("ann", "c"))
    assert dense(model)[0, 2] == 1  # a and c: one person, two sessions
    model.update(_liked("ann", rejected=("a",)))  # a later session turns a down
    assert dense(model)[0].sum() == 0 and dense(model)[1, 2] == 1
    model.update(_liked("bob", "d", "e", use_profile=False))  # the profile switch is off: not counted
    assert dense(model)[3, 4] == 0


def test_incremental_updates_equal_a_rebuild(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite")
    live = CoOccurrence(ABCDE, CollaborativeConfig(), HAND)
    saved = [store.save(_liked("ann", "a", "e")), store.save(_liked(None, "b", "c", "d")), store.save(_liked("ann", "d"))]
    for s in saved:
        live.update(s)
    again = saved[1].copy()
    again.reject("c")
    live.update(store.save(again, base=saved[1]))
    rebuilt = CoOccurrence(ABCDE, CollaborativeConfig(), HAND)
    rebuilt.add_sessions(store.sessions_of("ann") + store.sessions_of(None))
    assert np.array_equal(dense(live), dense(rebuilt))
    assert dense(live)[1, 3] == 1 + 1  # b-d: a dialogue and the terminal's user
    assert dense(live)[1, 2] == 1  # b-c: the dialogue only, since that user turned c down
    live.forget(None)
    assert dense(live)[1, 3] == 1 and live.similarity()[1, 3] > 0


# ---- in the pipeline ----------------------------------------------------------------------------------


X, Y = "the-matrix-1999", "amelie-2001"  # liked together by one person; nothing alike in their words


@pytest.fixture
def rec(tiny_recommender):
    """The tiny recommender with a co-occurrence model of the store's sessions only (no dialogue files)."""
    tiny_recommender.retriever.collab = CoOccurrence.build(tiny_recommender.catalog,
                                                           CollaborativeConfig(dialogue_files=()), tiny_recommender.store)
    return tiny_recommender


def _ids(rec, session, retrievers=RETRIEVERS) -> list[str]:
    """Every item of the catalog in the order ``rec`` ranks them for the same message."""
    return rec.rank(session, UserInput("a film for tonight"), retrievers=retrievers, use_llm=False,
                    depth=len(rec.catalog)).ids()


def test_a_like_in_one_session_changes_the_next_answer_of_another_person_at_once(rec):
    bob = rec.feedback(rec.store.save(Session(owner="bob")), X, liked=True)
    before = _ids(rec, bob).index(Y)
    ann = rec.feedback(rec.store.save(Session(owner="ann")), X, liked=True)
    assert _ids(rec, bob).index(Y) == before  # one liked item co-occurs with nothing yet
    rec.feedback(ann, Y, liked=True)
    after = rec.rank(bob, UserInput("a film for tonight"), use_llm=False, depth=len(rec.catalog))  # no rebuild
    assert after.ids().index(Y) < before
    sources = {c.item.id: c.sources for c in [s.candidate for s in after.ordered] + after.tail}
    assert "collab" in sources[Y]  # found through Ann, who liked both


def test_likes_read_from_text_count_too_and_a_restart_rebuilds_the_same_matrix(rec):
    rec.respond(rec.store.save(Session(owner="ann")), "I loved The Matrix and Amelie")
    model = rec.retriever.collab
    assert model.counts[rec.catalog.position(X), rec.catalog.position(Y)] == 1
    restarted = CoOccurrence.build(rec.catalog, model.cfg, SessionStore(rec.store.path))
    assert (restarted.counts != model.counts).nnz == 0


def test_the_dense_bm25_and_fused_baselines_never_use_the_channel(rec, monkeypatch):
    ann = rec.feedback(rec.store.save(Session(owner="ann")), X, liked=True)
    rec.feedback(ann, Y, liked=True)
    bob = rec.feedback(rec.store.save(Session(owner="bob")), X, liked=True)
    with_channel = {k: _ids(rec, bob, k.retrievers) for k in Kind}
    monkeypatch.setattr(rec.retriever, "collab", None)
    without = {k: _ids(rec, bob, k.retrievers) for k in Kind}
    for kind in (Kind.DENSE, Kind.BM25, Kind.FUSED, Kind.LINKED):
        assert with_channel[kind] == without[kind], kind
    assert with_channel[Kind.LLM] != without[Kind.LLM]  # the main system does use it


def test_cold_start_items_stay_reachable_and_no_evidence_adds_nothing(small_catalog, tmp_path):
    new = Item("new-1", "Glacier Drift", "Two penguins sail an iceberg to find a lost volcano.", {"year": 2025})
    catalog = Catalog([*small_catalog, new])
    emb = HashEmbedder()
    collab = CoOccurrence(catalog, CollaborativeConfig(), [{X, Y}, {X, "heat-1995"}] * 5)
    r = Retriever(catalog, emb, embed_catalog(catalog, emb, "hash", tmp_path, progress=False), RetrievalConfig(), collab)
    text = "penguins on an iceberg looking for a volcano"
    for liked in ((), ("alien-1979",)):  # no liked item, or one without co-occurrence: identical to dense + BM25
        q = Query(text, liked=liked)
        assert r.retrieve(q, 10, use=RETRIEVERS) == r.retrieve(q, 10, use=("dense", "bm25"))
    got = r.retrieve(Query(text, liked=(X,)), 10, use=RETRIEVERS)  # with evidence the channel joins ...
    assert got[0].item.id == "new-1"  # ... and the item nobody liked yet is still found by its content
    assert any("collab" in c.sources for c in got)
