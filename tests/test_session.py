import pytest

from chatrec.session import InputError, Session, TurnRecord, interpret, replay
from chatrec.store import SessionStore


def shown(s: Session, ids):
    s.turns.append(TurnRecord("assistant", "here", items=list(ids)))
    return s


@pytest.fixture
def listed(small_catalog):
    return shown(Session(), [it.id for it in list(small_catalog)[:5]])


def test_not_that_one_rejects_the_top_item(listed, small_catalog):
    s = interpret(listed, "not that one", small_catalog)
    assert s.rejected == [listed.last_items[0]]
    assert listed.rejected == []  # the input session is untouched


@pytest.mark.parametrize("text, rank", [("more like #2", 2), ("more like the second one", 2), ("I loved number 3", 3), ("more like the last one", 5)])
def test_more_like_likes_the_referenced_item(listed, small_catalog, text, rank):
    s = interpret(listed, text, small_catalog)
    assert s.liked == [listed.last_items[rank - 1 if rank > 0 else -1]]


def test_negative_reference(listed, small_catalog):
    s = interpret(listed, "not #4, seen it", small_catalog)
    assert listed.last_items[3] in s.rejected


def test_reference_out_of_range_is_an_error(listed, small_catalog):
    with pytest.raises(InputError, match="items 1 to 5, not 9"):
        interpret(listed, "more like #9", small_catalog)
    assert interpret(Session(), "more like #1", small_catalog).liked == []  # no list: ordinary text


@pytest.mark.parametrize("text", ["I loved the last Avengers movie", "I really liked the first one I saw as a kid",
                                  "the second film in a trilogy is usually the best"])
def test_ordinals_that_do_not_point_at_the_list_are_ordinary_text(listed, small_catalog, text):
    s = interpret(listed, text, small_catalog)
    assert s.liked == listed.liked and s.rejected == listed.rejected


def test_references_need_a_list(small_catalog):
    for text in ("I really liked the first one", "not that one", "the last one was boring"):
        s = interpret(Session(), text, small_catalog)
        assert s.liked == [] and s.rejected == []


def test_seen_both_rejects_the_whole_list_and_seen_titles_are_not_recommended(listed, small_catalog):
    assert interpret(listed, "seen both, sorry", small_catalog).rejected == listed.last_items
    s = interpret(Session(), "I've seen Jaws, and I loved Heat", small_catalog)
    assert s.rejected == ["jaws-1975"] and s.liked == ["heat-1995"]


def test_genres_and_negation(small_catalog):
    s = interpret(Session(), "a funny sci-fi film please, but no horror", small_catalog)
    assert set(s.include_genres) == {"Comedy", "Science Fiction"} and s.exclude_genres == ["Horror"]
    assert s.constraints().allows(small_catalog.get("the-matrix-1999"))
    assert not s.constraints().allows(small_catalog.get("alien-1979"))


@pytest.mark.parametrize("text, lo, hi", [("something from the 80s", 1980, 1989), ("a 1990s thriller", 1990, 1999),
                                          ("made before 1970", None, 1969), ("released after 2010", 2011, None)])
def test_years(small_catalog, text, lo, hi):
    s = interpret(Session(), text, small_catalog)
    assert (s.year_min, s.year_max) == (lo, hi)


def test_time_words_are_wishes_relative_to_the_last_list(listed, small_catalog):
    oldest = min(small_catalog.get(i).year for i in listed.last_items)
    s = interpret(listed, "something older", small_catalog)
    assert s.prefer_year_max == oldest - 1 and (s.year_min, s.year_max) == (None, None)  # a boost, not a filter
    c = s.constraints()
    assert all(c.allows(it) for it in small_catalog)
    assert c.preferred_era(small_catalog.get("casablanca-1942")) and not c.preferred_era(small_catalog.get("amelie-2001"))
    assert interpret(Session(), "the latest thing", small_catalog).prefer_year_min == 2010


def test_people_named_become_wishes(small_catalog):
    s = interpret(Session(), "anything with Al Pacino, but not Kubrick", small_catalog)
    assert s.people == ["Al Pacino"] and s.constraints().people == frozenset({"Al Pacino"})


def test_titles_named_are_mentioned_and_liked_or_rejected(small_catalog):
    s = interpret(Session(), "I loved The Matrix but I hate Alien", small_catalog)
    assert {"the-matrix-1999", "alien-1979"} <= set(s.mentioned)
    assert s.liked == ["the-matrix-1999"] and s.rejected == ["alien-1979"]
    assert {"the-matrix-1999", "alien-1979"} <= s.excluded()


def test_session_json_and_store_roundtrip(tmp_path, listed):
    listed.liked.append("x")
    store = SessionStore(tmp_path / "s.sqlite")
    store.save(listed)
    again = SessionStore(tmp_path / "s.sqlite").load(listed.id)  # a new process would do this
    assert again.to_dict() == listed.to_dict()
    assert store.latest().id == listed.id
    with pytest.raises(KeyError, match="no saved session"):
        store.load("nope")


def test_feedback_phrases_stay_out_of_the_request_text():
    from chatrec.session import strip_feedback

    assert strip_feedback("not #1") == ""
    assert strip_feedback("more like the second one, but funnier") == "but funnier"
    s = Session(turns=[TurnRecord("user", "a space thriller"), TurnRecord("user", "not that one")])
    assert s.user_text() == "a space thriller"


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_human_dialogue_replays_without_a_refused_turn(split):
    """People's sentences never make the interpreter raise: every team-written dialogue replays whole."""
    from chatrec.catalog import load_demo_catalog
    from chatrec.evaluation.dialogues import load_dialogues
    from chatrec.evaluation.replay import DATA

    catalog = load_demo_catalog()
    loaded = load_dialogues(DATA / f"human_{split}.jsonl", catalog)
    assert loaded.dialogues and not loaded.skipped
    for d in loaded.dialogues:
        s = replay(d.turns, catalog)  # InputError (a refused turn) fails the test
        assert len(s.turns) == len(d.turns)


def test_saw_it_already_is_seen_not_liked(small_catalog):
    s = interpret(Session(), "saw Heat already. something with al pacino?", small_catalog)
    assert s.rejected == ["heat-1995"] and s.liked == [] and s.people == ["Al Pacino"]
    assert interpret(Session(), "I saw Heat and loved it", small_catalog).liked == ["heat-1995"]


def test_something_older_than_a_list_is_not_that_list_again(listed, small_catalog):
    s = interpret(listed, "hmm, something older", small_catalog)
    assert set(listed.last_items) <= set(s.rejected) and s.year_max is None
