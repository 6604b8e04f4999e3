"""Training examples, built exactly as inference builds its prompts, and their collation.

At every recommendation turn of a dialogue the session is replayed from the earlier turns with
:func:`chatrec.session.replay` (as evaluation does), the real ``Retriever`` proposes the candidates for
the same query ``Recommender.rank`` builds, and the prompt is rendered with ``prompt_turns`` and
``rank_prompt``, the functions inference uses. Retrieval's misses become hard negatives: when the
ground truth was not retrieved it replaces the last candidate. Candidate order is then shuffled
with a seeded RNG so the LoRA cannot learn "the answer is usually A" (position bias, Hou et al. 2024).

Each turn gives a rank target: the ground truth among the candidate scores of the rank prompt (a
listwise cross entropy over the per-candidate " yes"/" no" scores that ``ChatLM.rank`` reads). Reason
targets come from team-written reasons (``chatrec/data/reasons``: per turn, for the target and for other
candidates, each checked claim by claim) after ``reason_prompt``, with loss on the reason's tokens only.
Without written reasons for a turn's dialogue file, the turn's reason target is the catalog-fact
fallback (``fallback_reason``): true, but a template the model will copy.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog
from ..evaluation.dialogues import Dialogue
from ..prompting import LABELS, prompt_turns, rank_prompt, reason_prompt
from ..reasons import fallback_reason
from ..retrieval import Query, Retriever
from ..session import InputError, replay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankExample:
    prompt: str  # rank_prompt(...) exactly as the Recommender renders it
    label: int  # position of the ground truth among the candidates
    candidates: tuple[str, ...]  # item ids in label order
    target: str  # ground-truth item id
    source: str  # "dialogue-id:turn-index"
    retrieved: bool  # retrieval found the ground truth by itself (no insertion)
    media: bool = False  # the last user turn had an image or audio (trained as its words: no soft tokens)

    @property
    def n_labels(self) -> int:
        return len(self.candidates)


@dataclass(frozen=True)
class ReasonExample:
    prompt: str  # reason_prompt(item, user_text, liked, schema)
    target: str  # " " + reason + "\n"; generation stops at the newline
    source: str  # "dialogue-id:turn-index:item-id"
    written: bool = True  # a team-written reason (False: the catalog-fact fallback)


# (dialogue id, recommendation turn index) -> [(item id, reason)]
WrittenReasons = Mapping[tuple[str, int], list[tuple[str, str]]]


def load_reasons(paths: Sequence[Path]) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """Team-written reasons (rows: dialogue, turn, item, reason, author) keyed by turn."""
    out: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                out.setdefault((r["dialogue"], int(r["turn"])), []).append((r["item"], r["reason"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{n}: not a reason row (dialogue, turn, item, reason): {e}") from None
    return out


@dataclass(frozen=True)
class Examples:
    rank: list[RankExample]
    reason: list[ReasonExample]  # written reasons of the same turns (several per turn), or one fallback per turn
    turns_seen: int  # recommendation turns visited
    skipped: int  # turns whose ground truth is not in the catalog, or whose history inference would refuse

    def __len__(self) -> int:
        return len(self.rank)


def turn_examples(dialogue: Dialogue, index: int, catalog: Catalog, retriever: Retriever, n_candidates: int,
                  seed: int, train: bool = True,
                  written: WrittenReasons | None = None) -> tuple[RankExample, list[ReasonExample]] | None:
    """Examples for the recommendation turn ``dialogue.turns[index]``; None if its target is unknown or
    a user turn before it is one inference refuses (e.g. "more like #9" after a five-item list).

    ``train=False`` keeps retrieval's order and does not insert a missed ground truth: evaluation
    then sees exactly what inference sees.
    """
    target = next((i for i in dialogue.turns[index].targets if i in catalog), None)
    if target is None:
        return None
    try:
        s = replay(dialogue.turns[:index], catalog, session_id=dialogue.id)
    except InputError:
        return None
    query = Query(s.user_text(), tuple(s.liked), s.excluded(), s.constraints())
    cands = [c.item for c in retriever.retrieve(query, n_candidates)]
    retrieved = any(it.id == target for it in cands)
    # Seeded per turn, not per run: an example does not depend on which other dialogues were loaded.
    rng = random.Random(f"{seed}:{dialogue.id}:{index}")
    if train:
        if not retrieved:
            cands = cands[: n_candidates - 1]
            cands.insert(rng.randrange(len(cands) + 1), catalog.get(target))
        rng.shuffle(cands)
    ids = tuple(it.id for it in cands)
    label = ids.index(target) if target in ids else -1
    last_user = next((t for t in reversed(s.turns) if t.role == "user"), None)
    # Dialogue turns with media are trained as their words: no soft tokens (projectors are aligned apart).
    rank = RankExample(rank_prompt(prompt_turns(s), cands, catalog.schema), label, ids, target, f"{dialogue.id}:{index}",
                       retrieved, bool(last_user and (last_user.image or last_user.audio)))
    user_text = s.user_text()
    liked = [catalog.get(i) for i in s.liked if i in catalog]
    rows = (written or {}).get((dialogue.id, index))
    if rows is None:  # no written reasons for this turn: the catalog-fact fallback for the target
        rows = [(target, fallback_reason(catalog.get(target), user_text, liked, catalog.schema))]
        is_written = False
    else:
        is_written = True
    reasons = [ReasonExample(reason_prompt(catalog.get(i), user_text, liked, catalog.schema), " " + text + "\n",
                             f"{rank.source}:{i}", is_written) for i, text in rows if i in catalog]
    return rank, reasons


def build_examples(dialogues: Sequence[Dialogue], catalog: Catalog, retriever: Retriever, n_candidates: int,
                   seed: int, max_examples: int = 0, train: bool = True, written: WrittenReasons | None = None,
                   fallback_reasons: bool = True) -> Examples:
    """Examples from every recommendation turn, in dialogue order, at most ``max_examples`` (0 = all).

    ``written`` reasons are used where a turn has them; other turns get the catalog-fact fallback when
    ``fallback_reasons`` is true, else no reason example (so the model does not learn the template)."""
    if not 1 <= n_candidates <= len(LABELS):
        raise ValueError(f"n_candidates must be 1..{len(LABELS)}, got {n_candidates}")
    rank: list[RankExample] = []
    reason: list[ReasonExample] = []
    seen = skipped = 0
    for d in dialogues:
        for i in d.recommendation_turns():
            if max_examples and len(rank) >= max_examples:
                break
            seen += 1
            pair = turn_examples(d, i, catalog, retriever, n_candidates, seed, train, written)
            if pair is None:
                skipped += 1
                continue
            rank.append(pair[0])
            reason += [r for r in pair[1] if r.written or fallback_reasons]
    if skipped:
        log.warning("%d recommendation turns skipped: ground truth not in the catalog, or a turn before it that "
                    "inference refuses", skipped)
    return Examples(rank, reason, seen, skipped)
