import math

import numpy as np
import pytest

from chatrec.evaluation.metrics import (
    aggregate_ranks,
    evaluate_rankings,
    f1_from_list_ranks,
    first_success_turn,
    hit_rate_from_list_ranks,
    list_recall_from_list_ranks,
    mean_and_ci,
    mrr,
    mrr_from_ranks,
    ndcg_at_k,
    ndcg_from_ranks,
    precision_from_list_ranks,
    recall_at_k,
    recall_from_ranks,
    success_at_turn,
    target_ranks,
)

RANKED = ["a", "b", "c", "d", "e"]


def test_target_ranks():
    # b is 2nd, e is 5th, z is not ranked.
    np.testing.assert_array_equal(target_ranks(RANKED, ["b", "e", "z"]), [2, 5, np.inf])
    # Excluding a shifts everything up one; excluded targets are dropped.
    np.testing.assert_array_equal(target_ranks(RANKED, ["a", "b", "e"], exclude={"a"}), [1, 4])


def test_recall():
    # relevant {b (rank 2), e (rank 5)}: top-2 holds b only -> 1/2
    assert recall_at_k(RANKED, ["b", "e"], 2) == 0.5
    assert recall_at_k(RANKED, ["b", "e"], 5) == 1.0
    # without a: ranks b=1, e=4 -> @3 = 1/2, @4 = 2/2
    assert recall_at_k(RANKED, ["b", "e"], 3, exclude={"a"}) == 0.5
    assert recall_at_k(RANKED, ["b", "e"], 4, exclude={"a"}) == 1.0
    # a mentioned target does not count: only b remains, at rank 1
    assert recall_at_k(RANKED, ["a", "b"], 1, exclude={"a"}) == 1.0
    assert recall_at_k(RANKED, ["z"], 5) == 0.0
    assert math.isnan(recall_at_k(RANKED, ["a"], 5, exclude={"a"}))


def test_ndcg():
    # b at 2 -> 1/log2(3) = 0.63093; e at 5 -> 1/log2(6) = 0.38685; mean = 0.50889
    assert ndcg_at_k(RANKED, ["b", "e"], 5) == pytest.approx((1 / math.log2(3) + 1 / math.log2(6)) / 2)
    assert ndcg_at_k(RANKED, ["b", "e"], 5) == pytest.approx(0.50889, abs=1e-5)
    # @4 drops e: 0.63093 / 2 = 0.31546
    assert ndcg_at_k(RANKED, ["b", "e"], 4) == pytest.approx(0.31546, abs=1e-5)
    # rank 1 is a full gain: 1/log2(2) = 1
    assert ndcg_at_k(RANKED, ["a"], 1) == 1.0


def test_mrr():
    # (1/2 + 1/5) / 2 = 0.35
    assert mrr(RANKED, ["b", "e"]) == pytest.approx(0.35)
    # cut at 3: (1/2 + 0) / 2 = 0.25
    assert mrr(RANKED, ["b", "e"], k=3) == pytest.approx(0.25)
    # without a: (1/1 + 1/4) / 2 = 0.625
    assert mrr(RANKED, ["b", "e"], exclude={"a"}) == pytest.approx(0.625)


def test_pooling_is_per_ground_truth_item():
    # case 1: target a at rank 1; case 2: targets b, c at ranks 2, 3 -> pooled ranks [1, 2, 3]
    cases = [(["a", "b", "c"], ["a"], ()), (["a", "b", "c"], ["b", "c"], ())]
    m = evaluate_rankings(cases, ks=(1, 2, 10))
    assert m["n"] == 3
    assert m["recall@1"] == pytest.approx(1 / 3)  # a per-turn mean would give (1 + 0) / 2 = 0.5
    assert m["recall@2"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)  # 0.61111
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(4)) / 3)  # 0.71031
    assert aggregate_ranks(np.array([1.0, 2.0, 3.0]), ks=(2,))["recall@2"] == pytest.approx(2 / 3)


def test_success():
    assert first_success_turn([["x", "y"], ["a", "t"], ["t"]], "t", k=1) == 3
    assert first_success_turn([["x", "y"], ["a", "t"], ["t"]], "t", k=2) == 2
    assert first_success_turn([["x"]], "t", k=5) is None
    # episodes succeeding at turns 1, 3, never, 2: by turn 2 -> 2/4, by turn 3 -> 3/4
    assert success_at_turn([1, 3, None, 2], 2) == 0.5
    assert success_at_turn([1, 3, None, 2], 3) == 0.75


def test_mean_and_ci():
    # values 1, 2, 3: mean 2, sample sd 1, half-width 1.96 * 1 / sqrt(3) = 1.13161
    mean, half = mean_and_ci([1.0, 2.0, 3.0, float("nan")])
    assert mean == 2.0 and half == pytest.approx(1.13161, abs=1e-5)


def test_bootstrap_interval_resamples_dialogues():
    from chatrec.evaluation.metrics import bootstrap_ci, paired_bootstrap, recall_from_ranks

    r1 = lambda r: recall_from_ranks(r, 1)  # noqa: E731
    same = np.array([1.0, 1.0, 1.0, 1.0])
    assert bootstrap_ci(same, ["a", "a", "b", "b"], r1) == (1.0, 1.0)  # no variance: a point
    ranks = np.array([1.0, np.inf] * 50)
    lo, hi = bootstrap_ci(ranks, [f"d{i}" for i in range(100)], r1)
    assert lo < 0.5 < hi and hi - lo < 0.3
    # one dialogue holding every hit: resampling dialogues (not targets) gives a much wider interval
    clustered = ["hit"] * 50 + [f"d{i}" for i in range(50)]
    lo_c, hi_c = bootstrap_ci(np.array([1.0] * 50 + [np.inf] * 50), clustered, r1)
    assert hi_c - lo_c > 2 * (hi - lo)
    # paired: a system that wins on every dialogue has an interval above zero; against itself, exactly zero
    better, worse = np.array([1.0] * 40), np.array([1.0] * 20 + [np.inf] * 20)
    groups = [f"d{i}" for i in range(40)]
    assert paired_bootstrap(better, worse, groups, r1)[0] > 0
    assert paired_bootstrap(worse, worse, groups, r1) == (0.0, 0.0)
    with pytest.raises(ValueError, match="one entry per target"):
        paired_bootstrap(better, worse[:3], groups, r1)


# Three scored turns: targets at ranks 1 and 4; one target not ranked; one target at rank 3.
LIST_RANKS = [np.array([1.0, 4.0]), np.array([np.inf]), np.array([3.0])]


def test_list_metrics_count_one_sample_per_turn():
    # @1: hits [1, 0, 0]
    assert precision_from_list_ranks(LIST_RANKS, 1) == pytest.approx(1 / 3)
    assert list_recall_from_list_ranks(LIST_RANKS, 1) == pytest.approx((1 / 2) / 3)
    assert f1_from_list_ranks(LIST_RANKS, 1) == pytest.approx((2 * 1 * 0.5 / 1.5) / 3)  # (2/3) / 3
    assert hit_rate_from_list_ranks(LIST_RANKS, 1) == pytest.approx(1 / 3)
    # @5: hits [2, 0, 1]; P = (2/5 + 0 + 1/5) / 3 = 0.2; list recall (1 + 0 + 1) / 3 (pooled per target: 3/4)
    assert precision_from_list_ranks(LIST_RANKS, 5) == pytest.approx(0.2)
    assert list_recall_from_list_ranks(LIST_RANKS, 5) == pytest.approx(2 / 3)
    assert recall_from_ranks(np.concatenate(LIST_RANKS), 5) == 0.75
    # F1: turn 1 P .4 R 1 -> .8/1.4; turn 3 P .2 R 1 -> .4/1.2 -> mean 0.301587
    assert f1_from_list_ranks(LIST_RANKS, 5) == pytest.approx((0.8 / 1.4 + 0.4 / 1.2) / 3)
    assert f1_from_list_ranks(LIST_RANKS, 5) == pytest.approx(0.301587, abs=1e-6)
    assert hit_rate_from_list_ranks(LIST_RANKS, 5) == pytest.approx(2 / 3)
    # precision divides by k even past the end of a short list
    assert precision_from_list_ranks([np.array([1.0])], 10) == 0.1
    # a turn whose targets were all excluded is no sample at all
    assert precision_from_list_ranks([np.zeros(0), np.array([1.0])], 1) == 1.0
    assert math.isnan(f1_from_list_ranks([np.zeros(0)], 5)) and math.isnan(hit_rate_from_list_ranks([], 5))


def _random_turns(n=40, seed=0):
    """(ranked ids, targets, mentioned) per turn; targets are sometimes mentioned or unranked."""
    rng = np.random.default_rng(seed)
    catalog = [f"i{j}" for j in range(30)]
    turns = []
    for _ in range(n):
        ranked = list(rng.permutation(catalog)[: rng.integers(5, 25)])
        mentioned = set(rng.choice(catalog, rng.integers(0, 4), replace=False))
        targets = list(rng.choice(catalog, rng.integers(1, 4), replace=False))
        if set(targets) - mentioned:
            turns.append((ranked, targets, mentioned))
    return turns


@pytest.mark.slow  # ranx compiles its numba kernels on first use: about a minute on two cores, then cached
def test_numpy_metrics_and_the_existing_ones_agree_with_ranx():
    """ranx run built from each turn's list after the mentioned items are dropped, as target_ranks does.

    Per-target queries (one relevant item each) reproduce the existing Recall/NDCG/MRR exactly; per-turn
    queries give precision, recall, F1 and hit rate per list.
    """
    ranx = pytest.importorskip("ranx")
    turns = _random_turns()
    per_target_q, per_target_run, per_turn_q, per_turn_run = {}, {}, {}, {}
    for n, (ranked, targets, mentioned) in enumerate(turns):
        kept = [i for i in ranked if i not in mentioned]
        scores = {i: float(len(kept) - r) for r, i in enumerate(kept)}  # strictly decreasing: no ties to break
        fresh = [t for t in targets if t not in mentioned]
        per_turn_q[f"t{n}"], per_turn_run[f"t{n}"] = dict.fromkeys(fresh, 1), scores
        for t in fresh:
            per_target_q[f"t{n}-{t}"], per_target_run[f"t{n}-{t}"] = {t: 1}, scores
    ks = (1, 5, 10)
    by_target = ranx.evaluate(ranx.Qrels(per_target_q), ranx.Run(per_target_run),
                              [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in ks] + ["mrr"])
    by_turn = ranx.evaluate(ranx.Qrels(per_turn_q), ranx.Run(per_turn_run),
                            [f"{m}@{k}" for m in ("precision", "recall", "f1", "hit_rate") for k in ks])
    pooled = evaluate_rankings(turns, ks)  # the existing metrics, pooled per ground-truth item
    ranks = np.concatenate([target_ranks(r, t, m) for r, t, m in turns])
    lists = [target_ranks(r, t, m) for r, t, m in turns]
    assert 0 < pooled["recall@5"] < 1 and len(turns) > 30  # the cases are not trivial
    for k in ks:
        assert pooled[f"recall@{k}"] == pytest.approx(by_target[f"recall@{k}"])
        assert pooled[f"ndcg@{k}"] == pytest.approx(by_target[f"ndcg@{k}"])
        assert pooled[f"mrr@{k}"] == pytest.approx(by_target[f"mrr@{k}"])
        assert precision_from_list_ranks(lists, k) == pytest.approx(by_turn[f"precision@{k}"])
        assert list_recall_from_list_ranks(lists, k) == pytest.approx(by_turn[f"recall@{k}"])
        assert f1_from_list_ranks(lists, k) == pytest.approx(by_turn[f"f1@{k}"])
        assert hit_rate_from_list_ranks(lists, k) == pytest.approx(by_turn[f"hit_rate@{k}"])
    assert mrr_from_ranks(ranks) == pytest.approx(by_target["mrr"])
    assert ndcg_from_ranks(ranks, 10) == pytest.approx(by_target["ndcg@10"])
