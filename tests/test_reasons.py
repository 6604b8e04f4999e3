"""Reasons: the checks (grounding, inventions, format) and the choice between model and fallback reasons."""

from pathlib import Path

import pytest

from chatrec.catalog import Catalog, Item, load_catalog
from chatrec.reasons import (
    check_reason,
    facts_in,
    fallback_reason,
    finalize_reason,
    format_valid,
    reason_grounding,
    reason_inventions,
)

FIXTURES = Path(__file__).parent / "fixtures"
HEAT = Item("heat", "Heat", "A detective hunts a crew of bank robbers in Los Angeles.",
            {"year": 1995, "genres": ["Crime", "Thriller"], "director": ["Michael Mann"],
             "cast": ["Al Pacino", "Robert De Niro"], "keywords": ["heist", "los angeles"]})
ALIEN = Item("alien", "Alien", "A crew meets a creature.", {"year": 1979, "genres": ["Horror"], "director": ["Ridley Scott"], "cast": ["Sigourney Weaver"]})
CAT = Catalog([HEAT, ALIEN])


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(FIXTURES / "films_small.jsonl")


def test_fallback_reason_is_true_and_connects_to_the_request():
    r = fallback_reason(HEAT, "a crime thriller about a heist with Al Pacino")
    assert "Heat (1995)" in r and "Michael Mann" in r and "Al Pacino" in r and "heist" in r
    assert check_reason(r, HEAT, CAT) is None
    facts = facts_in(r, HEAT)
    assert "director: Michael Mann" in facts and "year: 1995" in facts


def test_fallback_mentions_a_liked_item():
    r = fallback_reason(HEAT, "more please", liked=[Item("x", "Collateral", "", {"director": ["Michael Mann"]})])
    assert "Collateral, which you liked" in r


def test_bad_model_reasons_fall_back():
    for bad in ["", "Film: Heat\nFacts: year", "A great film starring Sigourney Weaver.", "It is like Alien, a crime film.",
                '"I want a crime thriller about a heist."', "Crime thriller about a heist, please."]:
        reason, source, _ = finalize_reason(bad, HEAT, CAT, "I want a crime thriller about a heist, please")
        assert source == "fallback", bad
        assert check_reason(reason, HEAT, CAT) is None
    reason, source, facts = finalize_reason("A tense Michael Mann crime thriller.", HEAT, CAT, "crime")
    assert source == "model" and "director: Michael Mann" in facts


@pytest.mark.parametrize(
    "text, grounded",
    [
        ("A mind-bending ride.", True),  # keyword
        ("Keanu Reeves at his best.", True),  # cast
        ("Reeves is great in it.", True),  # surname
        ("A landmark of 1999.", True),  # year
        ("Peak nineties cool.", True),  # decade word
        ("A sci-fi classic.", True),  # genre synonym
        ("About a simulation run by machines.", True),  # description content words
        ("It's a great film you will love.", False),
        ("A heartwarming tale about toys.", False),
    ],
)
def test_reason_grounding(catalog, text, grounded):
    assert reason_grounding(text, catalog.get("the-matrix-1999")) is grounded


@pytest.mark.parametrize(
    "text, invented",
    [
        ("Keanu Reeves fights machines in this 1999 film.", []),
        ("The Matrix, directed by Lana Wachowski in the 1990s.", []),
        ("Like Alien, it stars Tom Hanks and came out in 1997.", ["Alien", "Tom Hanks", "1997"]),
        ("Starring Keanu Smith as a hacker.", ["Keanu Smith"]),  # made-up person with a catalog first name
        ("A 1980s gem.", ["1980s"]),
        ("Fans of Sigourney Weaver will love it.", ["Sigourney Weaver"]),
    ],
)
def test_reason_inventions(catalog, text, invented):
    assert reason_inventions(text, catalog.get("the-matrix-1999"), catalog) == invented


def test_reason_inventions_own_facts_are_not_inventions():
    films = Catalog(
        [
            Item("amy", "Amy", attributes={"year": 2015, "director": ["Asif Kapadia"]}),
            Item("eve", "All About Eve", attributes={"year": 1950, "director": ["Joseph L. Mankiewicz"]}),
            Item("mood", "In the Mood for Love", attributes={"year": 2000, "keywords": ["1960s"]}),
            Item("arrival", "Arrival", attributes={"year": 2016, "cast": ["Amy Adams"]}),
            Item("doubt", "Doubt", attributes={"year": 2008, "cast": ["Joseph Smith"]}),
        ]
    )
    arrival, eve, mood = films.get("arrival"), films.get("eve"), films.get("mood")
    # A catalog title inside the item's own person, an initial before a period, a decade keyword.
    assert reason_inventions("It features Amy Adams.", arrival, films) == []
    assert reason_inventions("Directed by Joseph L. Mankiewicz.", eve, films) == []
    assert reason_inventions("Set in Hong Kong in the 1960s.", mood, films) == []
    # The same words are still inventions for an item they are not facts of.
    assert reason_inventions("It features Amy Adams.", mood, films) == ["Amy", "Amy Adams"]
    assert reason_inventions("A 1960s story.", arrival, films) == ["1960s"]


@pytest.mark.parametrize(
    "text, ok",
    [
        ("A tense sci-fi thriller. You'll love it.", True),
        ("Dr. Strangelove fans will love this one.", True),  # an abbreviation is not a sentence end
        ("Great work by J. K. Simmons!", True),
        ("", False),
        ("   ", False),
        ("One. Two. Three.", False),
        (" ".join(["word"] * 61) + ".", False),
        ("<Candidate 3> is great.", False),
        ("### Reason: it is good.", False),
    ],
)
def test_format_valid(text, ok):
    assert format_valid(text) is ok
