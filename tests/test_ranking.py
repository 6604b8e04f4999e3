import math

from chatrec.catalog import Catalog, Item
from chatrec.ranking import Ranking, combine
from chatrec.retrieval import Candidate
from chatrec.session import Session

HEAT = Item("heat", "Heat", "A detective hunts a crew of bank robbers in Los Angeles.",
            {"year": 1995, "genres": ["Crime", "Thriller"], "director": ["Michael Mann"],
             "cast": ["Al Pacino", "Robert De Niro"], "keywords": ["heist", "los angeles"]})
ALIEN = Item("alien", "Alien", "A crew meets a creature.", {"year": 1979, "genres": ["Horror"], "director": ["Ridley Scott"], "cast": ["Sigourney Weaver"]})
CAT = Catalog([HEAT, ALIEN])


def test_combine_by_hand():
    cands = [Candidate(HEAT, 0.03, {}), Candidate(ALIEN, 0.01, {})]
    # prior: log(.75), log(.25); llm: log(.2), log(.8)  -> heat: log(.15), alien: log(.2)
    out = combine(cands, [math.log(0.2), math.log(0.8)], 1.0, 1.0)
    assert [s.candidate.item.id for s in out] == ["alien", "heat"]
    assert math.isclose(out[0].score, math.log(0.2)) and math.isclose(out[1].score, math.log(0.15))
    assert [s.candidate.item.id for s in combine(cands, None, 1.0, 1.0)] == ["heat", "alien"]


def test_ranking_lists_candidates_then_tail_and_tops_without_reasons():
    cands = [Candidate(HEAT, 0.03, {}), Candidate(ALIEN, 0.01, {})]
    ranking = Ranking(Session(), combine(cands[:1], [0.0], 1.0, 1.0), cands[1:])
    assert ranking.ids() == ["heat", "alien"]
    (top,) = ranking.top(5)
    assert (top.item_id, top.rank, top.year, top.reason) == ("heat", 1, 1995, "")
    assert top.retrieval_score == 0.03 and top.llm_logprob == 0.0
