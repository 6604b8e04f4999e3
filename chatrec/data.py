"""Training examples, built exactly as inference builds its prompts, and their collation.

At every recommendation turn of a dialogue the session is replayed from the earlier turns with
``interpret`` (as ``Recommender.respond`` does), the real ``Retriever`` proposes the candidates, and
the prompt is rendered with ``rank_prompt``. Retrieval's misses become hard negatives: when the
ground truth was not retrieved it replaces the last candidate. Candidate order is then shuffled
with a seeded RNG so the LoRA cannot learn "the answer is usually A" (position bias, Hou et al. 2024).

Each turn gives two targets: the ground truth among the candidate scores of the rank prompt (a
listwise cross entropy over the per-candidate " yes"/" no" scores that ``ChatLM.rank`` reads) and a
grounded reason (``fallback_reason``, built from catalog facts only) after ``reason_prompt``, with
loss on the reason's tokens only (every other label is -100).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from .catalog import Catalog
from .dialogue import Session, TurnRecord, _titles_in, interpret
from .dialogues import Dialogue
from .model import ChatLM, Embedded, Media
from .prompting import AUDIO, IMAGE, LABELS, UserTurn, rank_prompt, reason_prompt
from .ranking import fallback_reason
from .retrieval import Query, Retriever

log = logging.getLogger(__name__)
IGNORE = -100  # label value that torch's cross entropy skips


@dataclass(frozen=True)
class RankExample:
    prompt: str  # rank_prompt(...) exactly as the Recommender renders it
    label: int  # position of the ground truth among the candidates
    candidates: tuple[str, ...]  # item ids in label order
    target: str  # ground-truth item id
    source: str  # "dialogue-id:turn-index"
    retrieved: bool  # retrieval found the ground truth by itself (no insertion)
    image: str | None = None  # media of the last user turn, spliced at its placeholder
    audio: str | None = None

    @property
    def n_labels(self) -> int:
        return len(self.candidates)


@dataclass(frozen=True)
class ReasonExample:
    prompt: str  # reason_prompt(item, user_text)
    target: str  # " " + fallback_reason(...) + "\n"; generation stops at the newline
    source: str


@dataclass(frozen=True)
class Examples:
    rank: list[RankExample]
    reason: list[ReasonExample]  # aligned with ``rank``: same turn at the same index
    turns_seen: int  # recommendation turns visited
    skipped: int  # turns whose ground truth is not in the catalog

    def __len__(self) -> int:
        return len(self.rank)


def replay(dialogue: Dialogue, upto: int, catalog: Catalog) -> Session:
    """The session a Recommender would hold after ``dialogue.turns[:upto]``."""
    s = Session(id=dialogue.id)
    for t in dialogue.turns[:upto]:
        if t.role == "user":
            try:
                s = interpret(s, t.text, catalog)
            except IndexError:  # "more like #9" with no such item: inference refuses and keeps the session
                pass
            s.turns.append(TurnRecord("user", t.text, image=t.image, audio=t.audio))
        else:
            # The items an assistant turn showed are the titles it names; "not that one" refers to them.
            s.turns.append(TurnRecord("assistant", t.text, items=[i for i, _ in _titles_in(t.text.lower(), catalog)]))
    return s


def prompt_turns(s: Session) -> list[UserTurn]:
    """Turns as the rank prompt sees them; like inference, only the newest user turn carries media marks."""
    last = s.turns[-1] if s.turns else None
    return [
        UserTurn(t.role, t.text, bool(t.image) and t is last, bool(t.audio) and t is last) if t.role == "user"
        else UserTurn(t.role, t.text)
        for t in s.turns
    ]


def turn_examples(dialogue: Dialogue, index: int, catalog: Catalog, retriever: Retriever, n_candidates: int,
                  seed: int, train: bool = True) -> tuple[RankExample, ReasonExample] | None:
    """Examples for the recommendation turn ``dialogue.turns[index]``; None if its target is unknown.

    ``train=False`` keeps retrieval's order and does not insert a missed ground truth: evaluation
    then sees exactly what inference sees.
    """
    target = next((i for i in dialogue.turns[index].targets if i in catalog), None)
    if target is None:
        return None
    s = replay(dialogue, index, catalog)
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
    rank = RankExample(
        rank_prompt(prompt_turns(s), cands), label, ids, target, f"{dialogue.id}:{index}", retrieved,
        last_user.image if last_user else None, last_user.audio if last_user else None,
    )
    item = catalog.get(target)
    user_text = s.user_text()
    liked = [catalog.get(i) for i in s.liked if i in catalog]
    reason = ReasonExample(reason_prompt(item, user_text), " " + fallback_reason(item, user_text, liked) + "\n",
                           rank.source)
    return rank, reason


def build_examples(dialogues: Sequence[Dialogue], catalog: Catalog, retriever: Retriever, n_candidates: int,
                   seed: int, max_examples: int = 0, train: bool = True) -> Examples:
    """Examples from every recommendation turn, in dialogue order, at most ``max_examples`` (0 = all)."""
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
            pair = turn_examples(d, i, catalog, retriever, n_candidates, seed, train)
            if pair is None:
                skipped += 1
                continue
            rank.append(pair[0])
            reason.append(pair[1])
    if skipped:
        log.warning("%d recommendation turns skipped: ground truth not in the catalog", skipped)
    return Examples(rank, reason, seen, skipped)


def text_only(ex: RankExample) -> RankExample:
    """The example without its media: placeholders removed, as inference renders a turn whose input has
    no trained projector (the words stay: a dialogue file's text of a spoken turn is what was said)."""
    if not (ex.image or ex.audio):
        return ex
    prompt = ex.prompt.replace(IMAGE + " ", "").replace(AUDIO + " ", "")
    return replace(ex, prompt=prompt, image=None, audio=None)


# ---- collation ---------------------------------------------------------------------------------

MediaFn = Callable[[RankExample], Media]  # encodes an example's image/audio into encoder vectors


@dataclass(frozen=True)
class TokenBatch:
    emb: Embedded  # prompt + target, left-padded: targets end every row
    labels: torch.Tensor  # (B, T) target token ids, IGNORE elsewhere


@dataclass(frozen=True)
class RankBatch:
    emb: Embedded  # rank prompts, left-padded, with the <fit> score positions
    label: torch.Tensor  # (B,) ground-truth candidate index
    n_labels: torch.Tensor  # (B,) candidates per row (retrieval may return fewer than asked)


def _media(examples: Sequence[RankExample], media_fn: MediaFn | None) -> list[Media | None]:
    out: list[Media | None] = []
    for ex in examples:
        if ex.image or ex.audio:
            if media_fn is None:
                raise NotImplementedError(
                    f"{ex.source}: media turns need encoders during training; pass media_fn (not wired up yet)")
            out.append(media_fn(ex))
        else:
            out.append(None)
    return out


def append_targets(lm: ChatLM, emb: Embedded, targets: Sequence[str]) -> TokenBatch:
    """Append each row's target tokens after its prompt and re-pad on the left.

    Targets are tokenised on their own, as generation would emit them after the prompt, so the
    prompt tokens are exactly those inference sees. Returns labels (B, T') aligned to the embeds.
    """
    table = lm.lm.get_input_embeddings()
    rows, ids_per_row, shifts = [], [], []
    for i, text in enumerate(targets):
        ids = lm.tok(text, add_special_tokens=False).input_ids
        if not ids:
            raise ValueError(f"empty target for row {i}")
        real = emb.embeds[i][emb.mask[i].bool()]  # (t_i, H)
        rows.append(torch.cat([real, table(torch.tensor(ids, device=lm.device))]))
        ids_per_row.append(ids)
        shifts.append(int((emb.mask[i] == 0).sum()))
    width = max(r.shape[0] for r in rows)
    embeds = rows[0].new_zeros(len(rows), width, rows[0].shape[1])
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=lm.device)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long, device=lm.device)
    spans = []
    for i, (r, ids) in enumerate(zip(rows, ids_per_row, strict=True)):
        pad = width - r.shape[0]
        embeds[i, pad:] = r
        mask[i, pad:] = 1
        labels[i, width - len(ids):] = torch.tensor(ids, device=lm.device)
        spans.append([(s - shifts[i] + pad, e - shifts[i] + pad) for s, e in emb.soft_spans[i]])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return TokenBatch(Embedded(embeds, mask, positions, spans), labels)


def collate_text(lm: ChatLM, prompts: Sequence[str], targets: Sequence[str],
                 media: Sequence[Media | None] | None = None) -> TokenBatch:
    """Prompt + target sequences with labels only on the target tokens."""
    return append_targets(lm, lm.embed(prompts, media), targets)


def collate_reasons(lm: ChatLM, examples: Sequence[ReasonExample]) -> TokenBatch:
    return collate_text(lm, [e.prompt for e in examples], [e.target for e in examples])


def collate_rank(lm: ChatLM, examples: Sequence[RankExample], media_fn: MediaFn | None = None) -> RankBatch:
    """Rank prompts, scored at their <fit> marks as ``ChatLM.rank`` scores them."""
    if any(e.label < 0 for e in examples):
        raise ValueError("rank example without its ground truth among the candidates (built with train=False?)")
    emb = lm.embed([e.prompt for e in examples], _media(examples, media_fn))
    label = torch.tensor([e.label for e in examples], device=lm.device)
    n = torch.tensor([e.n_labels for e in examples], device=lm.device)
    return RankBatch(emb, label, n)


# ---- losses ------------------------------------------------------------------------------------

def rank_loss(lm: ChatLM, batch: RankBatch) -> torch.Tensor:
    """Listwise cross entropy over the candidate scores (-inf past a row's candidates): what ``rank`` scores."""
    return torch.nn.functional.cross_entropy(lm.candidate_logits(batch.emb), batch.label)


def token_loss(lm: ChatLM, batch: TokenBatch) -> tuple[torch.Tensor, int]:
    """Mean next-token cross entropy over target tokens; returns (loss, number of target tokens).

    Targets sit at the end of every left-padded row, so only the last K+1 positions need logits:
    the 262k-row output layer runs for the reason, not for the whole prompt.
    """
    t = batch.labels.shape[1]
    first = int((batch.labels != IGNORE).float().argmax(-1).min())  # earliest target column in the batch
    keep = t - first + 1  # logits at positions first-1 .. t-1
    out = lm.lm(inputs_embeds=batch.emb.embeds, attention_mask=batch.emb.mask, position_ids=batch.emb.positions,
                logits_to_keep=keep, use_cache=False)
    logits = out.logits[:, :-1].float()  # (B, keep-1, V): predictions for columns first..t-1
    gold = batch.labels[:, t - keep + 1:]  # (B, keep-1)
    n = int((gold != IGNORE).sum())
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1),
                                             ignore_index=IGNORE)
    return loss, n
