import math

from chatrec.catalog import Catalog, Item
from chatrec.ranking import check_reason, combine, facts_in, fallback_reason, finalize_reason
from chatrec.retrieval import Candidate

HEAT = Item("heat", "Heat", "A detective hunts a crew of bank robbers in Los Angeles.",
            {"year": 1995, "genres": ["Crime", "Thriller"], "director": ["Michael Mann"],
             "cast": ["Al Pacino", "Robert De Niro"], "keywords": ["heist", "los angeles"]})
ALIEN = Item("alien", "Alien", "A crew meets a creature.", {"year": 1979, "genres": ["Horror"], "director": ["Ridley Scott"], "cast": ["Sigourney Weaver"]})
CAT = Catalog([HEAT, ALIEN])


def test_combine_by_hand():
    cands = [Candidate(HEAT, 0.03, {}), Candidate(ALIEN, 0.01, {})]
    # prior: log(.75), log(.25); llm: log(.2), log(.8)  -> heat: log(.15), alien: log(.2)
    out = combine(cands, [math.log(0.2), math.log(0.8)], 1.0, 1.0)
    assert [c.item.id for c, _, _ in out] == ["alien", "heat"]
    assert math.isclose(out[0][1], math.log(0.2)) and math.isclose(out[1][1], math.log(0.15))
    assert [c.item.id for c, _, _ in combine(cands, None, 1.0, 1.0)] == ["heat", "alien"]


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
