"""Batches for training: prompts (with soft tokens where given) plus targets, left-padded as inference pads.

Shapes: ``Embedded.embeds`` (B, T, H); labels (B, T) with ``IGNORE`` everywhere but target tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..model import ChatLM, Embedded, SoftInputs
from .examples import RankExample, ReasonExample

IGNORE = -100  # label value that torch's cross entropy skips




@dataclass(frozen=True)
class TokenBatch:
    emb: Embedded  # prompt + target, left-padded: targets end every row
    labels: torch.Tensor  # (B, T) target token ids, IGNORE elsewhere


@dataclass(frozen=True)
class RankBatch:
    emb: Embedded  # rank prompts, left-padded, with the <fit> score positions
    label: torch.Tensor  # (B,) ground-truth candidate index
    n_labels: torch.Tensor  # (B,) candidates per row (retrieval may return fewer than asked)


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
                 media: Sequence[SoftInputs | None] | None = None) -> TokenBatch:
    """Prompt + target sequences with labels only on the target tokens."""
    return append_targets(lm, lm.embed(prompts, media), targets)


def collate_reasons(lm: ChatLM, examples: Sequence[ReasonExample]) -> TokenBatch:
    return collate_text(lm, [e.prompt for e in examples], [e.target for e in examples])


def collate_rank(lm: ChatLM, examples: Sequence[RankExample]) -> RankBatch:
    """Rank prompts, scored at their <fit> marks as ``ChatLM.rank`` scores them."""
    if any(e.label < 0 for e in examples):
        raise ValueError("rank example without its ground truth among the candidates (built with train=False?)")
    emb = lm.embed([e.prompt for e in examples])
    label = torch.tensor([e.label for e in examples], device=lm.device)
    n = torch.tensor([e.n_labels for e in examples], device=lm.device)
    return RankBatch(emb, label, n)
