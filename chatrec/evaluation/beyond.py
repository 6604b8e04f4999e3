"""Beyond-accuracy metrics of the lists a system showed over a run: coverage, popularity bias, diversity,
novelty, and recall on cold-start targets.

Every metric reads the shown top ``k`` of each scored turn (``SystemRun.rankings``: the ranked ids after
the turn's exclusions), so all systems are measured on the same turns. Popularity is the number of
interactions (targets and liked items) in the evaluated dialogues, what the popularity baseline counts
(:func:`chatrec.evaluation.replay.popularity_counts`): no other usage data exists for an arbitrary catalog.

- coverage: share of catalog items shown in any top-``k`` list of the run (aggregate diversity,
  Adomavicius & Kwon, 2012).
- mean popularity: mean interaction count of the shown items, ARP (Abdollahpouri et al., 2019).
- Gini: Gini coefficient of how often each catalog item was shown, never-shown items included; 0 when
  every item is shown equally often, (n-1)/n when one item takes every slot (Fleder & Hosanagar, 2009).
- diversity: intra-list diversity, 1 - mean pairwise Jaccard similarity of the items' genres
  (Ziegler et al., 2005), over the items of a list that have genres; lists with fewer than two skipped.
- novelty: mean self-information ``-log2 p(i)`` of the shown items, ``p(i) = (count_i + 1) / (total + n)``
  (add-one smoothing, so a never-named item is finite) (Zhou et al., 2010; Vargas & Castells, 2011).
- cold-start recall@10: recall@10 over the targets no *other* evaluated dialogue names (at most
  ``cold_max`` interactions once the scored dialogue's own are removed), the items a popularity signal
  cannot know.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..catalog import Item
from .metrics import recall_from_ranks, target_ranks

COLD_K = 10  # cut-off of the cold-start recall


@dataclass(frozen=True)
class EvalData:
    """What the beyond-accuracy metrics need to know about the catalog and the evaluated dialogues."""

    catalog_ids: tuple[str, ...]
    genres: Mapping[str, frozenset[str]]  # item id -> its genres, lower-cased (empty when unknown)
    own: Mapping[str, Counter[str]]  # dialogue id -> that dialogue's interactions (targets, likes)
    popularity: Counter[str]  # interactions per item over all evaluated dialogues (the sum of ``own``)
    k: int = 5  # length of the shown list (ranking.top_k)
    cold_max: int = 0  # a target is cold with at most this many interactions outside its own dialogue

    @classmethod
    def build(cls, items: Iterable[Item], own: Mapping[str, Counter[str]], k: int = 5, cold_max: int = 0) -> EvalData:
        items = list(items)
        popularity: Counter[str] = Counter()
        for c in own.values():
            popularity += c
        genres = {it.id: frozenset(g.lower() for g in it.values("genres")) for it in items}
        return cls(tuple(it.id for it in items), genres, dict(own), popularity, k, cold_max)

    def describe(self) -> dict:
        """The definitions behind the numbers, for the report's header."""
        counts = np.array([self.popularity[i] for i in self.catalog_ids], dtype=float)
        return {
            "k": self.k,
            "popularity": "interactions (targets, likes) per item in the evaluated dialogues",
            "catalog_mean_popularity": float(counts.mean()) if counts.size else float("nan"),
            "catalog_items_never_named": int((counts == 0).sum()),
            "cold_start": f"targets with <= {self.cold_max} interactions outside the scored dialogue; recall@{COLD_K}",
        }


@dataclass(frozen=True)
class BeyondMetrics:
    k: int  # length of the shown lists measured
    coverage: float  # share of catalog items in any shown top-k list of the run
    mean_popularity: float  # mean interaction count of the shown items (catalog mean in the report header)
    gini: float  # Gini coefficient of shown-counts over the catalog (0 = even, near 1 = a few items everywhere)
    diversity: float  # intra-list diversity: 1 - mean pairwise genre Jaccard within a list
    novelty: float  # mean self-information of the shown items, in bits
    cold_recall: float  # recall@COLD_K over cold-start targets (NaN when there are none)
    cold_targets: int  # cold-start targets scored
    cold_in_top: float = float("nan")  # share of top-COLD_K slots holding an item no evaluated dialogue names at all


def shown_lists(rankings: Sequence[Mapping], k: int) -> list[list[str]]:
    """The top ``k`` ids of each scored turn (``rankings`` rows of a SystemRun)."""
    return [list(row["ids"][:k]) for row in rankings]


def coverage(lists: Sequence[Sequence[str]], catalog_ids: Sequence[str]) -> float:
    catalog = set(catalog_ids)
    return len({i for lst in lists for i in lst} & catalog) / len(catalog) if catalog else float("nan")


def recommendation_counts(lists: Sequence[Sequence[str]], catalog_ids: Sequence[str]) -> np.ndarray:
    """How often each catalog item was shown, shape (n,) in catalog order (zeros kept: they are the tail)."""
    shown = Counter(i for lst in lists for i in lst)
    return np.array([shown[i] for i in catalog_ids], dtype=float)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative ``values``, shape (n,): ``sum_i (2i - n - 1) x_(i) / (n sum x)``."""
    x = np.sort(np.asarray(values, dtype=float))
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return float("nan")
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * total))


def shown_popularity(lists: Sequence[Sequence[str]], popularity: Mapping[str, int]) -> np.ndarray:
    """Interaction count of every shown item, one entry per list slot, shape (S,)."""
    return np.array([popularity.get(i, 0) for lst in lists for i in lst], dtype=float)


def self_information(popularity: Mapping[str, int], catalog_ids: Sequence[str]) -> dict[str, float]:
    """``-log2 p(i)`` with add-one smoothing over the catalog."""
    total = sum(popularity.get(i, 0) for i in catalog_ids) + len(catalog_ids)
    return {i: float(-np.log2((popularity.get(i, 0) + 1) / total)) for i in catalog_ids}


def novelty(lists: Sequence[Sequence[str]], popularity: Mapping[str, int], catalog_ids: Sequence[str]) -> float:
    bits = self_information(popularity, catalog_ids)
    values = [bits[i] for lst in lists for i in lst if i in bits]
    return float(np.mean(values)) if values else float("nan")


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else float("nan")


def intra_list_diversity(lists: Sequence[Sequence[str]], genres: Mapping[str, frozenset[str]]) -> float:
    """Mean over lists of 1 - mean pairwise genre Jaccard; items without genres say nothing, so they are left out."""
    per_list = []
    for lst in lists:
        known = [genres[i] for i in lst if genres.get(i)]
        if len(known) >= 2:
            per_list.append(1.0 - np.mean([jaccard(a, b) for a, b in itertools.combinations(known, 2)]))
    return float(np.mean(per_list)) if per_list else float("nan")


def cold_ranks(rankings: Sequence[Mapping], data: EvalData) -> np.ndarray:
    """Ranks of the cold-start targets, shape (C,): the scored dialogue's own interactions do not count,
    as the popularity baseline leaves them out."""
    ranks = []
    for row in rankings:
        own = data.own.get(row["dialogue"], Counter())
        cold = [t for t in row["targets"] if data.popularity[t] - own[t] <= data.cold_max]
        ranks.append(target_ranks(row["ids"], cold))
    return np.concatenate(ranks) if ranks else np.zeros(0)


def cold_item_share(rankings: Sequence[Mapping], data: EvalData) -> float:
    """Share of all top-COLD_K slots filled by items with no interaction at all in the evaluated dialogues:
    whether items nobody has named yet still reach people (cold start), whatever the targets."""
    slots = [i for row in rankings for i in row["ids"][:COLD_K]]
    return sum(data.popularity[i] == 0 for i in slots) / len(slots) if slots else float("nan")


def beyond_metrics(rankings: Sequence[Mapping], data: EvalData) -> BeyondMetrics:
    """Every beyond-accuracy metric of one system's run (its ``rankings`` rows)."""
    lists = shown_lists(rankings, data.k)
    cold = cold_ranks(rankings, data)
    shown_pop = shown_popularity(lists, data.popularity)
    return BeyondMetrics(
        k=data.k,
        coverage=coverage(lists, data.catalog_ids),
        mean_popularity=float(shown_pop.mean()) if shown_pop.size else float("nan"),
        gini=gini(recommendation_counts(lists, data.catalog_ids)),
        diversity=intra_list_diversity(lists, data.genres),
        novelty=novelty(lists, data.popularity, data.catalog_ids),
        cold_recall=recall_from_ranks(cold, COLD_K),
        cold_targets=int(cold.size),
        cold_in_top=cold_item_share(rankings, data),
    )
