"""Reasons: the fallback (true by construction, in the catalog's noun) and the choice between model and fallback."""

from pathlib import Path

import pytest

from chatrec.catalog import Catalog, Item, Schema, load_catalog
from chatrec.claims import check
from chatrec.reasons import facts_in, fallback_reason, finalize_reason, find_hooks, reason_grounding

FIXTURES = Path(__file__).parent / "fixtures"
HEAT = Item("heat", "Heat", "A detective hunts a crew of bank robbers in Los Angeles.",
            {"year": 1995, "genres": ["Crime", "Thriller"], "director": ["Michael Mann"],
             "cast": ["Al Pacino", "Robert De Niro"], "keywords": ["heist", "los angeles"]})
ALIEN = Item("alien", "Alien", "A crew meets a creature.", {"year": 1979, "genres": ["Horror"], "director": ["Ridley Scott"],
                                                            "cast": ["Sigourney Weaver"]})
OVE = Item("ove", "A Man Called Ove", "A grumpy widower's plans are upset by his new neighbours.",
           {"year": 2012, "genres": ["Literary Fiction", "Humor"], "author": ["Fredrik Backman"], "keywords": ["grief"]})
DUNE = Item("dune", "Dune", "A noble heir is sent to a desert planet.", {"year": 1965, "genres": ["Science Fiction"],
                                                                       "author": ["Frank Herbert"]})
CAT = Catalog([HEAT, ALIEN])
BOOKS = Catalog([OVE, DUNE])


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(FIXTURES / "films_small.jsonl")


@pytest.mark.parametrize("user, liked", [
    ("a crime thriller about a heist with Al Pacino", ()),
    ("something by Michael Mann", ()),
    ("more please", (Item("x", "Collateral", "", {"director": ["Michael Mann"], "genres": ["Crime"]}),)),
    ("anything", ()),
    ("a war film", ()),
])
def test_fallback_is_true_complete_and_uses_roles(user, liked):
    r = fallback_reason(HEAT, user, liked)
    v = check(r, HEAT, CAT, user, liked)
    assert v.ok, (r, v.false)
    assert "Michael Mann" in r and "Al Pacino" in r and "a crime and thriller film" in r
    assert r.count("Michael Mann") == 1 and r.endswith(".")


def test_fallback_connects_to_the_user_only_truthfully():
    r = fallback_reason(HEAT, "with Al Pacino")
    assert "ou mentioned Al Pacino, who stars in it" in r and r.count("Al Pacino") == 1
    r = fallback_reason(HEAT, "a tense thriller")
    assert "ou asked for thriller" in r and "a thriller and crime film" in r  # the asked genre named first
    liked = [Item("x", "Collateral", "", {"director": ["Michael Mann"]})]
    assert "you liked Collateral, and Michael Mann made both" in fallback_reason(HEAT, "more", liked)
    assert "you" not in fallback_reason(HEAT, "a war film").lower()  # nothing true to say about this user


def test_fallback_on_a_book_catalog_says_book_and_author():
    r = fallback_reason(OVE, "something about grief", schema=BOOKS.schema)
    assert "a literary fiction and humor book written by Fredrik Backman" in r and "film" not in r
    assert check(r, OVE, BOOKS, "something about grief").ok
    assert BOOKS.schema == Schema("book", "books", (("genres", 3), ("author", 2), ("keywords", 5)))


def test_bad_model_reasons_fall_back():
    user = "I want a crime thriller about a heist, please"
    for bad in ["", "Film: Heat\nFacts: year", "A great film starring Sigourney Weaver.", "It is like Alien, a crime film.",
                '"I want a crime thriller about a heist."', "Heat is a crime film by Michael Mann; it features Michael",
                "Heat is a film by Heat is a film by Heat is a film by Michael Mann."]:
        r = finalize_reason(bad, HEAT, CAT, user)
        assert r.source == "fallback", bad
        assert check(r.text, HEAT, CAT, user).ok
    r = finalize_reason("A tense Michael Mann crime thriller.", HEAT, CAT, "crime")
    assert r.source == "model" and "director: Michael Mann" in r.facts_used and r.verdict.ok


def test_a_cut_off_second_sentence_is_dropped():
    r = finalize_reason("A tense Michael Mann crime thriller. It also stars Al", HEAT, CAT, "crime")
    assert r.source == "model" and r.text == "A tense Michael Mann crime thriller."


@pytest.mark.parametrize(
    "text, grounded",
    [
        ("A mind-bending ride.", True),  # keyword
        ("Keanu Reeves at his best.", True),  # cast
        ("A landmark of 1999.", True),  # year
        ("About a simulation run by machines.", True),  # description content words
        ("It's a great film you will love.", False),
        ("A heartwarming tale about toys.", False),
    ],
)
def test_reason_grounding(catalog, text, grounded):
    assert reason_grounding(text, catalog.get("the-matrix-1999")) is grounded


def test_facts_in():
    assert facts_in("Michael Mann's 1995 heist film with Al Pacino", HEAT) == (
        "year: 1995", "director: Michael Mann", "cast: Al Pacino", "keywords: heist")


def test_no_hook_on_what_the_user_avoids():
    assert "you asked for" not in fallback_reason(HEAT, "no thrillers please, something calm").lower()
    assert "you asked for" not in fallback_reason(HEAT, "thrillers give me nightmares").lower()
    assert "heist" not in fallback_reason(HEAT, "I hate heist movies").split(":")[0].lower()
    assert "ou asked for thriller" in fallback_reason(HEAT, "a tense thriller, not a comedy")


PREMISE_ONLY = "A detective hunts a crew of bank robbers across Los Angeles."  # true, but nothing about the user


@pytest.mark.parametrize("user, liked, lead", [
    ("a tense thriller please", (), "You asked for thriller: "),
    ("anything with Robert De Niro", (), "You mentioned Robert De Niro: "),
    ("something by Michael Mann", (), "From Michael Mann, whom you mentioned: "),
    ("more please", (Item("x", "Collateral", "", {"director": ["Michael Mann"]}),),
     "You liked Collateral, and Michael Mann made this one too: "),
    ("more please", (Item("y", "Se7en", "", {"genres": ["Crime"]}),), "Like Se7en, which you liked, this is a crime film: "),
])
def test_a_model_reason_that_ignores_the_user_is_led_by_a_true_hook(user, liked, lead):
    plain = finalize_reason(PREMISE_ONLY, HEAT, CAT, user, liked, lead_with_hook=False)
    assert plain.source == "model" and plain.text == PREMISE_ONLY and not plain.verdict.about_user
    led = finalize_reason(PREMISE_ONLY, HEAT, CAT, user, liked)
    assert led.source == "model" and led.hooked and led.text == lead + PREMISE_ONLY
    assert check(led.text, HEAT, CAT, user, liked).about_user and led.verdict.ok


def test_no_hook_when_the_model_already_speaks_to_the_user_or_nothing_true_links_them():
    about = "You asked for a thriller, and Heat is a long duel between a detective and a thief in Los Angeles."
    r = finalize_reason(about, HEAT, CAT, "a tense thriller please")
    assert r.text == about and not r.hooked
    r = finalize_reason(PREMISE_ONLY, HEAT, CAT, "a war film")  # nothing of Heat's is in "a war film"
    assert r.text == PREMISE_ONLY and not r.hooked
    r = finalize_reason(PREMISE_ONLY, HEAT, CAT, "no thrillers please, they stress me")  # avoided, not asked for
    assert not r.hooked


def test_a_liked_films_genre_hook_does_not_repeat_the_description_as_a_loop():
    liked = [Item("y", "Se7en", "", {"genres": ["Crime"]})]
    for user in ("more please", "anything else", "something for tonight"):
        r = fallback_reason(HEAT, user, liked)
        assert "which you liked, it is crime too" in r, r
        assert check(r, HEAT, CAT, user, liked).ok, r  # "is a crime ..." twice was read as a loop


@pytest.mark.parametrize("user", [
    "I like science fiction, but nothing with wall-to-wall action please.",
    "Could you suggest one that's emotional rather than slapstick?",
    "I'm a huge Stephen King reader but horror films give me nightmares.",
    "The 9 year old has announced cartoons are babyish now. Help.",
    "something instead of a thriller",
])
def test_no_hook_from_what_a_reader_found_the_user_turning_down(user):
    # From the second hand audit: each of these had been led by "You asked for <the genre they turned down>".
    item = Item("x", "X", "A story.", {"genres": ["Action", "Comedy", "Horror", "Animation", "Thriller"],
                                       "keywords": ["slapstick"]})
    assert not [h for h in find_hooks(item, user) if h.lead.startswith(("You asked for", "You mentioned"))], user


def test_each_hook_lead_opens_at_most_one_reason_of_a_list():
    """The second audit's five-answer read: "You asked for horror:" opened three reasons of one list."""
    used: set[str] = set()
    first = finalize_reason(PREMISE_ONLY, HEAT, CAT, "a tense thriller by Michael Mann", used_leads=used)
    assert first.hooked and first.text.startswith("From Michael Mann, whom you mentioned: ")
    second = finalize_reason(PREMISE_ONLY, HEAT, CAT, "a tense thriller by Michael Mann", used_leads=used)
    assert second.hooked and second.text.startswith("You asked for thriller: ")  # the next hook, not the same one
    third = finalize_reason(PREMISE_ONLY, HEAT, CAT, "a tense thriller by Michael Mann", used_leads=used)
    # Every lead used: the strongest hook ends the text instead, so it still speaks to this user.
    assert third.hooked and third.text == PREMISE_ONLY[:-1] + "; you mentioned Michael Mann, who directed it."
    assert third.verdict.ok and third.verdict.about_user
    # A fallback whose lead is taken keeps the hook at its end, so it is still about the user.
    leads = {"You asked for thriller"}
    for request in (f"a tense thriller {i}" for i in range(8)):  # the hash picks lead or end; a used lead: end
        text = fallback_reason(HEAT, request, used_leads=leads)
        assert not text.startswith("You asked for thriller") and text.endswith("you asked for thriller.")
