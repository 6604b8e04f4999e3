"""Evaluation metrics: pure functions over ids and numpy arrays, RecBole style.

Ranking metrics are counted per ground-truth item, as in conversational-recommendation work on
ReDial (Chen et al., 2019, KBRD; Zhou et al., 2020, KGSF): a recommendation turn with two target
items contributes two samples. Items already mentioned in the dialogue are removed from the ranked
list and from the targets first (``exclude``), since recommending what the user just named is trivial.

Every ranking metric derives from the 1-based rank of each target (``inf`` when absent):
``recall@k = mean(rank <= k)``, ``ndcg@k = mean(1/log2(rank + 1) if rank <= k else 0)`` (one relevant
item per sample, so IDCG = 1), ``mrr@k = mean(1/rank if rank <= k else 0)``.

Precision, F1 and hit rate compare a whole list with a set of relevant items, so they are counted per
list (one scored turn, its fresh targets as the relevant set): with ``h`` targets in the top ``k`` of ``m``,
``precision@k = h/k`` (``k`` even when the list is shorter), ``recall@k = h/m``, ``f1@k`` their harmonic mean
(0 when ``h = 0``) and ``hit@k = [h > 0]``, each averaged over lists. These are the definitions of ranx
(Bassani, 2022) and trec_eval; ``tests/evaluation/test_metrics.py`` checks them against ranx when it is
installed (numpy here, since ranx costs seconds to import and about a minute of numba compilation cold).

The reason checks (grounding, inventions, format) live in :mod:`chatrec.reasons`: inference uses them
to decide which reasons may be shown, and evaluation counts them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 10, 50)


def target_ranks(ranked_ids: Sequence[str], relevant_ids: Iterable[str], exclude: Collection[str] = ()) -> np.ndarray:
    """1-based rank of each relevant item after dropping ``exclude``; ``inf`` if not ranked.

    Returns shape (R,) float, one entry per relevant item not in ``exclude`` (duplicates counted once).
    """
    excluded = set(exclude)
    ranked = [i for i in dict.fromkeys(ranked_ids) if i not in excluded]
    position = {item: r for r, item in enumerate(ranked, 1)}
    relevant = [i for i in dict.fromkeys(relevant_ids) if i not in excluded]
    return np.array([position.get(i, np.inf) for i in relevant], dtype=float)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def recall_from_ranks(ranks: np.ndarray, k: int) -> float:
    return _mean((ranks <= k).astype(float))


def ndcg_from_ranks(ranks: np.ndarray, k: int) -> float:
    gains = np.zeros_like(ranks)
    hit = ranks <= k
    gains[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    return _mean(gains)


def mrr_from_ranks(ranks: np.ndarray, k: int | None = None) -> float:
    hit = ranks <= (k if k is not None else np.inf)
    return _mean(np.where(hit, 1.0 / ranks, 0.0))


def recall_at_k(ranked_ids: Sequence[str], relevant_ids: Iterable[str], k: int, exclude: Collection[str] = ()) -> float:
    """Share of relevant items in the top ``k``; NaN when no relevant item is left after ``exclude``."""
    return recall_from_ranks(target_ranks(ranked_ids, relevant_ids, exclude), k)


def ndcg_at_k(ranked_ids: Sequence[str], relevant_ids: Iterable[str], k: int, exclude: Collection[str] = ()) -> float:
    """Mean over relevant items of ``1/log2(rank+1)`` within the top ``k``."""
    return ndcg_from_ranks(target_ranks(ranked_ids, relevant_ids, exclude), k)


def mrr(
    ranked_ids: Sequence[str], relevant_ids: Iterable[str], k: int | None = None, exclude: Collection[str] = ()
) -> float:
    """Mean over relevant items of ``1/rank`` (0 beyond ``k`` or when absent)."""
    return mrr_from_ranks(target_ranks(ranked_ids, relevant_ids, exclude), k)


def aggregate_ranks(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Recall/NDCG/MRR@k over a pooled array of per-target ranks, shape (N,)."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_from_ranks(ranks, k)
        out[f"ndcg@{k}"] = ndcg_from_ranks(ranks, k)
        out[f"mrr@{k}"] = mrr_from_ranks(ranks, k)
    out["n"] = float(ranks.size)
    return out


def evaluate_rankings(
    cases: Iterable[tuple[Sequence[str], Iterable[str], Collection[str]]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Pool ``(ranked_ids, relevant_ids, exclude)`` cases per ground-truth item and aggregate."""
    parts = [target_ranks(r, rel, ex) for r, rel, ex in cases]
    return aggregate_ranks(np.concatenate(parts) if parts else np.zeros(0), ks)


def list_hits(list_ranks: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets in the top ``k`` and targets in all, per list with any target; two arrays of shape (L,).

    ``list_ranks``: one array of target ranks per list (:func:`target_ranks` of that list).
    """
    kept = [r for r in list_ranks if r.size]  # a list whose targets were all excluded scores nothing
    hits = np.array([float((r <= k).sum()) for r in kept])
    return hits, np.array([float(r.size) for r in kept])


def precision_from_list_ranks(list_ranks: Sequence[np.ndarray], k: int) -> float:
    hits, _ = list_hits(list_ranks, k)
    return _mean(hits / k)


def list_recall_from_list_ranks(list_ranks: Sequence[np.ndarray], k: int) -> float:
    """Recall averaged per list (a two-target turn is one sample), the recall that F1 combines."""
    hits, sizes = list_hits(list_ranks, k)
    return _mean(hits / sizes) if sizes.size else float("nan")


def f1_from_list_ranks(list_ranks: Sequence[np.ndarray], k: int) -> float:
    hits, sizes = list_hits(list_ranks, k)
    if not sizes.size:
        return float("nan")
    p, r = hits / k, hits / sizes
    return _mean(np.where(hits > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0))


def hit_rate_from_list_ranks(list_ranks: Sequence[np.ndarray], k: int) -> float:
    """Share of lists with at least one target in the top ``k``."""
    hits, _ = list_hits(list_ranks, k)
    return _mean((hits > 0).astype(float))


def first_success_turn(ranked_per_turn: Sequence[Sequence[str]], target: str, k: int) -> int | None:
    """1-based index of the first turn whose top ``k`` holds ``target``; None if it never does."""
    for t, ranked in enumerate(ranked_per_turn, 1):
        if target in list(ranked)[:k]:
            return t
    return None


def success_at_turn(success_turns: Sequence[int | None], turn: int) -> float:
    """SR@t: share of episodes that succeeded at or before ``turn`` (None = never succeeded)."""
    hits = np.array([s is not None and s <= turn for s in success_turns], dtype=float)
    return _mean(hits)


def mean_and_ci(values: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """Mean and normal-approximation 95% half-width, ignoring NaNs."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    half = z * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0
    return float(v.mean()), float(half)


def _cluster_indices(groups: Sequence[str]) -> list[np.ndarray]:
    """Sample positions per group (dialogue), in first-seen order."""
    where: dict[str, list[int]] = {}
    for n, g in enumerate(groups):
        where.setdefault(g, []).append(n)
    return [np.asarray(v) for v in where.values()]


def bootstrap_ci(
    ranks: np.ndarray, groups: Sequence[str], metric, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(ranks)``, resampling whole dialogues (``groups``).

    Targets of one dialogue are not independent, so the dialogue is the unit that is resampled (a
    cluster bootstrap). ``ranks`` shape (N,), ``groups`` length N. Returns (low, high).
    """
    lo, hi = paired_bootstrap(ranks, np.full_like(ranks, np.inf), groups, metric, n_boot, seed, level)
    return lo, hi


def paired_bootstrap(
    ranks_a: np.ndarray, ranks_b: np.ndarray, groups: Sequence[str], metric, n_boot: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``metric(a) - metric(b)`` over dialogues resampled with replacement.

    Both systems are scored on the same targets in the same order, so each resample draws the same
    dialogues for both (a paired test): the interval excluding 0 means the difference holds beyond
    which dialogues happened to be in the test set. ``metric(b)`` of all-``inf`` ranks is 0, which is
    how :func:`bootstrap_ci` reuses this for a single system.
    """
    if len(ranks_a) != len(ranks_b) or len(ranks_a) != len(groups):
        raise ValueError("ranks_a, ranks_b and groups must have one entry per target")
    clusters = _cluster_indices(groups)
    if not clusters:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([clusters[c] for c in rng.integers(0, len(clusters), len(clusters))])
        diffs[b] = metric(ranks_a[idx]) - metric(ranks_b[idx])
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))
