"""``chatrec tune``: choose the fusion weights and state boosts, or the LLM/retrieval mix, on validation dialogues.

Coordinate ascent over a small grid per parameter (a few sweeps), scoring the fused retrieval list
exactly as evaluation does (``Recommender.rank`` without the LLM, so the same turn path). The
objective is Recall@n_candidates, since only the candidates reach the LLM, with NDCG@10 breaking
ties. Query embeddings are cached across settings: only the weights change between runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from tqdm import tqdm

from ..config import RetrievalConfig
from ..recommender import Recommender
from .dialogues import Dialogue
from .metrics import ndcg_from_ranks, recall_from_ranks, target_ranks
from .replay import MAX_K, SkipTurn, prepare_turn, session_before

log = logging.getLogger(__name__)

# The values tried for each parameter (the current value is always tried too).
GRID: dict[str, tuple[float, ...]] = {
    "dense_weight": (0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
    "bm25_weight": (0.25, 0.5, 1.0, 1.5),
    "like_weight": (0.0, 0.3, 0.6, 1.0, 1.5),
    "people_boost": (0.0, 0.003, 0.01, 0.02, 0.04),
    "genre_boost": (0.0, 0.002, 0.005, 0.01, 0.02),
    "era_boost": (0.0, 0.002, 0.005, 0.01, 0.02),
}


@dataclass(frozen=True)
class TuneResult:
    best: RetrievalConfig  # the chosen weights
    score: tuple[float, float]  # (Recall@n_candidates, NDCG@10) of the best setting
    start: tuple[float, float]  # the same for the starting setting
    trials: list[tuple[dict[str, float], float, float]]  # every setting tried: (changed values, recall, ndcg)
    turns: int  # scored turns


def _cases(rec: Recommender, dialogues: Sequence[Dialogue]):
    """(session before, prepared turn, targets, exclude) for every scored turn, built once."""
    out = []
    for d in dialogues:
        for i in d.recommendation_turns():
            exclude = d.mentioned_before(i)
            users = [n for n in range(i) if d.turns[n].role == "user"]
            if not users or not set(d.turns[i].targets) - exclude:
                continue
            try:
                out.append((session_before(rec, d, users[-1]), prepare_turn(rec, d.turns[users[-1]]),
                            d.turns[i].targets, exclude))
            except SkipTurn as e:
                log.warning("skipped %s#%d: %s", d.id, i, e)
    return out


def score(rec: Recommender, cases, cfg: RetrievalConfig) -> tuple[float, float]:
    """(Recall@n_candidates, NDCG@10) of fused retrieval with ``cfg`` over the cases.

    Lists are as deep as evaluation's, since the metrics drop already-mentioned items before counting.
    """
    rec.retriever.cfg = cfg  # the weights are read at query time; the indexes stay
    ranks = []
    for session, turn, targets, exclude in cases:
        ids = rec.rank(session, turn, use_llm=False, depth=MAX_K).ids()  # as deep as evaluation's lists
        ranks.extend(target_ranks(ids, targets, exclude).tolist())
    r = np.asarray(ranks, dtype=float)
    return recall_from_ranks(r, cfg.n_candidates), ndcg_from_ranks(r, 10)


def tune_retrieval(rec: Recommender, dialogues: Sequence[Dialogue], sweeps: int = 2,
                   grid: dict[str, tuple[float, ...]] = GRID, progress: bool = True) -> TuneResult:
    """Coordinate ascent over ``grid`` from the recommender's current retrieval config."""
    original = rec.retriever.cfg
    embed = rec.retriever.embed_query
    rec.retriever.embed_query = lru_cache(maxsize=None)(embed)  # same texts under every setting
    try:
        cases = _cases(rec, dialogues)
        best = original
        best_score = start = score(rec, cases, best)
        trials = [({}, *start)]
        steps = [(name, v) for _ in range(sweeps) for name, values in grid.items() for v in values]
        bar = tqdm(total=len(steps), desc="tune", unit="setting", disable=not progress)
        for name, values in [(n, v) for _ in range(sweeps) for n, v in grid.items()]:
            for v in values:
                bar.update(1)
                if getattr(best, name) == v:
                    continue
                cand = replace(best, **{name: v})
                s = score(rec, cases, cand)
                trials.append(({name: v}, *s))
                if s > best_score:
                    best, best_score = cand, s
        bar.close()
        return TuneResult(best, best_score, start, trials, len(cases))
    finally:
        rec.retriever.cfg = original
        rec.retriever.embed_query = embed


RETRIEVAL_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)  # ranking.retrieval_weight values tried (llm_weight = 1)


@dataclass(frozen=True)
class CombinationResult:
    best: float  # the chosen ranking.retrieval_weight
    table: list[tuple[float, float, float, float]]  # (weight, Recall@1, Recall@10, NDCG@10) for every weight tried
    turns: int


def tune_combination(rec: Recommender, dialogues: Sequence[Dialogue], weights: Sequence[float] = RETRIEVAL_WEIGHTS,
                     progress: bool = True) -> CombinationResult:
    """Pick ``ranking.retrieval_weight`` (with ``llm_weight`` 1) on validation dialogues.

    The LLM scores every turn's candidates once; each weight then only re-combines those scores with the
    retrieval prior through :func:`chatrec.ranking.combine`, the function inference uses. The objective is
    NDCG@10, with Recall@1 breaking ties.
    """
    from ..ranking import combine

    cases = _cases(rec, dialogues)
    scored = []
    for session, turn, targets, exclude in tqdm(cases, desc="llm scores", unit="turn", disable=not progress):
        r = rec.rank(session, turn, depth=MAX_K)
        scored.append((r, targets, exclude))
    table = []
    for w in weights:
        ranks = []
        for r, targets, exclude in scored:
            head = [s.candidate for s in r.ordered]
            lps = [s.llm_logprob for s in r.ordered]
            order = combine(head, None if None in lps else lps, 1.0, w)
            ids = [s.candidate.item.id for s in order] + [c.item.id for c in r.tail]
            ranks.extend(target_ranks(ids, targets, exclude).tolist())
        a = np.asarray(ranks, dtype=float)
        table.append((w, recall_from_ranks(a, 1), recall_from_ranks(a, 10), ndcg_from_ranks(a, 10)))
    best = max(table, key=lambda row: (row[3], row[1]))[0]
    return CombinationResult(best, table, len(cases))
