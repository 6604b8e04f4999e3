import numpy as np
import pytest

from chatrec.config import load_config
from chatrec.evaluation.dialogues import load_dialogues
from chatrec.evaluation.replay import DATA, Counts, build_systems, replay_dialogues
from chatrec.evaluation.tune import _cases, score, tune_retrieval
from chatrec.recommender import Recommender


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    cfg = load_config(overrides=["ranking.use_llm=false", "generation.reasons=false",
                                 f"data_dir={tmp_path_factory.mktemp('home')}"])
    return Recommender.from_config(cfg, load_llm_model=False, progress=False)


@pytest.fixture(scope="module")
def val(rec):
    return load_dialogues(DATA / "human_val.jsonl", rec.catalog).dialogues[:25]


def test_score_is_what_evaluation_measures_for_fused(rec, val):
    runs = replay_dialogues(build_systems(rec, ["fused"], val)[1:], val, reasons=False, counts=Counts(), progress=False)
    ranks = np.asarray(runs["fused"].ranks)
    k = rec.cfg.retrieval.n_candidates
    assert score(rec, _cases(rec, val), rec.cfg.retrieval)[0] == pytest.approx(float(np.mean(ranks <= k)))


def test_tuning_never_ends_worse_and_restores_the_retriever(rec, val):
    before_cfg, before_embed = rec.retriever.cfg, rec.retriever.embed_query
    grid = {"dense_weight": (0.0, 0.5, 2.0), "bm25_weight": (0.0, 1.0)}
    result = tune_retrieval(rec, val, sweeps=1, grid=grid, progress=False)
    assert result.score >= result.start and result.turns > 20
    assert (result.best.dense_weight, result.best.bm25_weight) != (0.0, 0.0)
    assert len(result.trials) >= 4  # the start plus each changed value
    tried = {tuple(t[0].items()) for t in result.trials}
    assert (("dense_weight", 0.0),) in tried
    assert rec.retriever.cfg is before_cfg and rec.retriever.embed_query == before_embed


def test_combination_weights_recombine_the_same_llm_scores(tiny_recommender):
    from chatrec.evaluation.dialogues import Dialogue, Turn
    from chatrec.evaluation.tune import tune_combination

    rec = tiny_recommender
    asks = [("Any scary horror films by Stanley Kubrick?", "the-shining-1980"), ("Something animated for my kids", "toy-story-1995"),
            ("A classic war romance", "casablanca-1942"), ("a heist thriller with Al Pacino", "heat-1995")]
    dialogues = [Dialogue(f"d{i}", "test", "val", (Turn("user", text), Turn("assistant", "Try this.", targets=(t,))))
                 for i, (text, t) in enumerate(asks)]
    result = tune_combination(rec, dialogues, weights=(0.0, 1.0, 1000.0), progress=False)
    assert result.turns == 4 and [w for w, *_ in result.table] == [0.0, 1.0, 1000.0]
    assert result.best == max(result.table, key=lambda r: (r[3], r[1]))[0]
    # with an overwhelming retrieval weight the order is retrieval's own: the same as ranking without the LLM
    r1_fused = np.mean([rec.rank(s, t, use_llm=False).ids()[0] in tg for s, t, tg, _ in _cases(rec, dialogues)])
    assert result.table[-1][1] == pytest.approx(r1_fused)
