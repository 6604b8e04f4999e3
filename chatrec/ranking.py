"""Stage 2 results: scores from the verbalizer, typed recommendations, reasons that are checked.

A model-written reason is kept only if it is well formed, states at least one true fact of its item
and invents nothing the catalog contradicts; otherwise a reason is built from the facts that matched
the user's words. Either way every fact a reason cites is listed in ``facts_used``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .catalog import Catalog, Item
from .dialogue import GENRE_WORDS
from .metrics import format_valid, reason_grounding, reason_inventions
from .retrieval import Candidate


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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["facts_used"] = list(self.facts_used)
        return d


def combine(candidates: Sequence[Candidate], llm_logprobs: Sequence[float] | None, llm_weight: float,
            retrieval_weight: float) -> list[tuple[Candidate, float, float | None]]:
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
        out.append((cand, score, lp))
    out.sort(key=lambda t: -t[1])
    return out


def _mentions(text_low: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text_low) is not None


def facts_in(text: str, item: Item) -> tuple[str, ...]:
    """The item's facts (as "key: value") that ``text`` states."""
    low = text.lower()
    out = []
    for key, value in item.facts():
        if key == "year":
            if value in text:
                out.append(f"year: {value}")
        elif len(value) > 2 and _mentions(low, value):
            out.append(f"{key}: {value}")
    return tuple(dict.fromkeys(out))


def matched_facts(item: Item, user_text: str, liked: Sequence[Item] = ()) -> list[str]:
    """Phrases about the item that connect it to what the user said or liked; all true facts."""
    low = user_text.lower()
    genres = item.values("genres")
    wanted = {g for w, g in GENRE_WORDS.items() if _mentions(low, w)}
    parts = []
    hit_genres = [g for g in genres if g in wanted or _mentions(low, g)]
    if hit_genres:
        parts.append(f"it is {' and '.join(g.lower() for g in hit_genres[:2])}, as you asked")
    people = [p for k in ("director", "cast") for p in item.values(k) if _mentions(low, p) or _mentions(low, p.split()[-1])]
    if people:
        parts.append(f"it features {people[0]}")
    kws = [k for k in item.values("keywords") if _mentions(low, k) or any(_mentions(low, w) for w in k.split() if len(w) > 4)]
    if kws:
        parts.append(f"it is tagged {' and '.join(kws[:2])}, as you mentioned")  # keywords mix themes and moods
    for other in liked:
        shared_dir = set(item.values("director")) & set(other.values("director"))
        shared_gen = [g for g in genres if g in other.values("genres")]
        if shared_dir:
            parts.append(f"it shares director {sorted(shared_dir)[0]} with {other.title}, which you liked")
            break
        if shared_gen:
            parts.append(f"like {other.title}, which you liked, it is {shared_gen[0].lower()}")
            break
    return parts


def fallback_reason(item: Item, user_text: str, liked: Sequence[Item] = ()) -> str:
    """A reason built only from catalog facts: always true, always well formed."""
    genres = item.values("genres")
    director = item.values("director")
    head = item.title + (f" ({item.year})" if item.year else "")
    desc = f"a {' and '.join(g.lower() for g in genres[:2])} film" if genres else "a film"
    if director:
        desc += f" by {director[0]}"
    matched = matched_facts(item, user_text, liked)
    if matched:
        if matched[0].endswith("as you asked"):  # genres are said there; don't say them twice
            desc = "a film" + (f" by {director[0]}" if director else "")
        return f"{head} is {desc}; {'; '.join(matched[:3])}."
    kws = item.values("keywords")[:2]
    tail = f", tagged {' and '.join(kws)}" if kws else ""
    cast = item.values("cast")[:2]
    star = f", starring {' and '.join(cast)}" if cast else ""
    return f"{head} is {desc}{tail}{star}."


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) > 3}


def check_reason(text: str, item: Item, catalog: Catalog, user_text: str = "") -> str | None:
    """None if a model-written reason may be shown; else why it may not."""
    if not format_valid(text):
        return "badly formed"
    words = _words(text)
    if re.match(r"\W*(i|i'm|i'd|my|me|we)\b", text.lower()) or (
        words and len(words & _words(user_text)) / len(words) >= 0.6
    ):
        return "repeats the user's words"  # the untuned base model echoes its prompt
    if not reason_grounding(text, item):
        return "states no fact of the item"
    invented = reason_inventions(text, item, catalog)
    if invented:
        return f"invents {invented[:3]}"
    return None


def finalize_reason(text: str, item: Item, catalog: Catalog, user_text: str, liked: Sequence[Item] = ()) -> tuple[str, str, tuple[str, ...]]:
    """(reason, source, facts_used) for one item from the model's raw text."""
    text = text.strip().strip('"').strip()
    if text and check_reason(text, item, catalog, user_text) is None:
        return text, "model", facts_in(text, item)
    reason = fallback_reason(item, user_text, liked)
    return reason, "fallback", facts_in(reason, item)
