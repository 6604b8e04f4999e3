import math

import numpy as np
import pytest

from chatrec.evaluation.metrics import (
    aggregate_ranks,
    evaluate_rankings,
    first_success_turn,
    mean_and_ci,
    mrr,
    ndcg_at_k,
    recall_at_k,
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
