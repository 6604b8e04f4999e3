"""Beyond-accuracy metrics against values computed by hand on a four-item catalog."""

import math
from collections import Counter

import numpy as np
import pytest

from chatrec.catalog import Item
from chatrec.evaluation.beyond import (
    EvalData,
    beyond_metrics,
    cold_ranks,
    coverage,
    gini,
    intra_list_diversity,
    novelty,
    recommendation_counts,
    self_information,
)

# Catalog a, b, c, d; d has no genres. Interactions: d1 names a twice and b, d2 names a and c, d3 names c.
# Popularity a=3, b=1, c=2, d=0 (total 6).
ITEMS = [
    Item("a", "A", attributes={"genres": ["Drama"]}),
    Item("b", "B", attributes={"genres": ["drama", "Crime"]}),
    Item("c", "C", attributes={"genres": ["Comedy"]}),
    Item("d", "D"),
]
OWN = {"d1": Counter(a=2, b=1), "d2": Counter(a=1, c=1), "d3": Counter(c=1)}
# Two scored turns: d1 wants b (ranked 2nd), d2 wants c (not ranked). Shown top 2: [a, b] and [a, d].
ROWS = [
    {"dialogue": "d1", "targets": ["b"], "ids": ["a", "b", "c"]},
    {"dialogue": "d2", "targets": ["c"], "ids": ["a", "d"]},
]
LISTS = [["a", "b"], ["a", "d"]]


def data(cold_max=0):
    return EvalData.build(ITEMS, OWN, k=2, cold_max=cold_max)


def test_eval_data_counts_popularity_and_lowercases_genres():
    d = data()
    assert d.popularity == Counter(a=3, b=1, c=2)
    assert d.genres["b"] == {"drama", "crime"} and d.genres["d"] == frozenset()
    assert d.describe()["catalog_mean_popularity"] == 1.5 and d.describe()["catalog_items_never_named"] == 1


def test_coverage_and_recommendation_counts():
    assert coverage(LISTS, "abcd") == 3 / 4  # a, b, d shown; c never
    np.testing.assert_array_equal(recommendation_counts(LISTS, "abcd"), [2, 1, 0, 1])


def test_gini():
    assert gini(np.array([1.0, 1.0, 1.0, 1.0])) == 0.0
    # one item takes every slot: (n - 1) / n
    assert gini(np.array([0.0, 0.0, 0.0, 4.0])) == 0.75
    # sorted [0, 1, 1, 2]: (-3*0 - 1*1 + 1*1 + 3*2) / (4 * 4) = 6/16
    assert gini(np.array([2.0, 1.0, 0.0, 1.0])) == 0.375
    assert math.isnan(gini(np.zeros(3)))


def test_intra_list_diversity_leaves_items_without_genres_out():
    # [a, b]: Jaccard({drama}, {drama, crime}) = 1/2 -> 0.5; [a, d]: d has no genres -> list skipped.
    # Counting d as "nothing in common" would give (0.5 + 1) / 2 = 0.75.
    assert intra_list_diversity(LISTS, data().genres) == 0.5
    # three items: pairs a-b 1/2, a-c 0, b-c 0 -> 1 - 1/6
    assert intra_list_diversity([["a", "b", "c"]], data().genres) == pytest.approx(5 / 6)
    assert math.isnan(intra_list_diversity([["d", "d"]], data().genres))


def test_novelty_is_smoothed_self_information():
    # p(i) = (count + 1) / (6 + 4): a 4/10, b 2/10, d 1/10 (never named, still finite)
    bits = self_information(data().popularity, "abcd")
    assert bits["d"] == pytest.approx(math.log2(10)) and bits["a"] == pytest.approx(math.log2(10 / 4))
    expected = (2 * math.log2(10 / 4) + math.log2(10 / 2) + math.log2(10)) / 4  # 2.07193
    assert novelty(LISTS, data().popularity, "abcd") == pytest.approx(expected)
    assert expected == pytest.approx(2.07193, abs=1e-5)


def test_cold_start_leaves_the_scored_dialogue_out():
    # b: 1 interaction, all in d1 (its own dialogue) -> cold. c: 2, one outside d2 -> warm at cold_max 0.
    np.testing.assert_array_equal(cold_ranks(ROWS, data()), [2])
    # at cold_max 1, c is cold too, and it is not ranked
    np.testing.assert_array_equal(cold_ranks(ROWS, data(cold_max=1)), [2, np.inf])


def test_beyond_metrics_of_a_run():
    m = beyond_metrics(ROWS, data())
    assert (m.k, m.coverage, m.mean_popularity, m.gini, m.diversity) == (2, 0.75, 1.75, 0.375, 0.5)
    assert m.novelty == pytest.approx(2.07193, abs=1e-5)
    assert (m.cold_recall, m.cold_targets) == (1.0, 1)
    m1 = beyond_metrics(ROWS, data(cold_max=1))
    assert (m1.cold_recall, m1.cold_targets) == (0.5, 2)
    empty = beyond_metrics([], data())
    assert math.isnan(empty.cold_recall) and empty.coverage == 0.0 and empty.cold_targets == 0


def test_share_of_top_slots_given_to_items_nobody_named():
    from chatrec.evaluation.beyond import cold_item_share

    # top-10 slots: a, b, c, a, d -> only d (popularity 0) is never named: 1 of 5
    assert cold_item_share(ROWS, data()) == pytest.approx(1 / 5)
    assert math.isnan(cold_item_share([], data()))
    assert beyond_metrics(ROWS, data()).cold_in_top == pytest.approx(1 / 5)
