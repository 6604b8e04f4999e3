"""Stage 2: the candidates' LLM scores combined with retrieval into one order, as typed results.

``combine`` is the one place where the final order is decided; ``Ranking`` is what
``Recommender.rank`` returns for a turn (no reasons yet), and ``Recommendation`` is one shown item.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .catalog import Item
from .retrieval import Candidate
from .session import Session


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    title: str
    rank: int  # 1-based
    score: float  # combined score used for the order (higher is better)
    llm_logprob: float | None  # the candidate's log-probability from the LLM (softmax over candidate scores), None when ranking by retrieval only
    retrieval_score: float  # fused stage-1 score
    reason: str = ""
    reason_source: str = "fallback"  # "model" | "fallback"
    facts_used: tuple[str, ...] = ()  # "key: value" facts of the item that the reason states
    year: int | None = None
    attributes: dict = field(default_factory=dict)
    image: str | None = None
    reason_raw: str = ""  # what the model wrote before the checks ("" when nothing was generated)
    reason_rejected: str = ""  # why the model's text was not shown (its first false claim), "" if shown or none

    @classmethod
    def of(cls, item: Item, rank: int, score: float, llm_logprob: float | None, retrieval_score: float) -> Recommendation:
        return cls(item.id, item.title, rank, score, llm_logprob, retrieval_score, year=item.year,
                   attributes=dict(item.attributes), image=item.image)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["facts_used"] = list(self.facts_used)
        return d


@dataclass(frozen=True)
class Scored:
    """One candidate in the final order."""

    candidate: Candidate
    score: float  # combined score (higher is better)
    llm_logprob: float | None  # None when the LLM did not score it


def combine(candidates: Sequence[Candidate], llm_logprobs: Sequence[float] | None, llm_weight: float,
            retrieval_weight: float) -> list[Scored]:
    """Order candidates by llm_weight * log p_LLM(candidate) + retrieval_weight * log p_retrieval.

    The retrieval prior is the fused score normalised over the candidates; it keeps an untuned LLM's
    position bias from overruling clear retrieval evidence, and a tuned LLM can still override it.
    """
    total = sum(max(c.score, 1e-9) for c in candidates)
    prior = [math.log(max(c.score, 1e-9) / total) for c in candidates]
    out = []
    for i, cand in enumerate(candidates):
        lp = llm_logprobs[i] if llm_logprobs is not None else None
        score = retrieval_weight * prior[i] + (llm_weight * lp if lp is not None else 0.0)
        out.append(Scored(cand, score, lp))
    out.sort(key=lambda s: -s.score)
    return out


@dataclass(frozen=True)
class Ranking:
    """One turn ranked: the session it produced (not saved yet) and the candidates in final order."""

    session: Session  # the session after the user turn, before the answer is added
    ordered: list[Scored]  # the scored candidates, best first
    tail: list[Candidate] = field(default_factory=list)  # retrieval's pool beyond the candidates (rank(depth=...))

    def ids(self) -> list[str]:
        """Every ranked item id, best first: the ordered candidates, then the tail."""
        return [s.candidate.item.id for s in self.ordered] + [c.item.id for c in self.tail]

    def top(self, k: int) -> list[Recommendation]:
        """The first ``k`` as recommendations, without reasons."""
        return [Recommendation.of(s.candidate.item, r, s.score, s.llm_logprob, s.candidate.score)
                for r, s in enumerate(self.ordered[:k], 1)]
