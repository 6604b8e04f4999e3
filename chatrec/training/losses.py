"""Training losses: the listwise ranking loss over the candidates' verbalizer scores, and next-token
loss on target tokens (reasons, alignment captions)."""

from __future__ import annotations

import torch

from ..model import ChatLM
from .batches import IGNORE, RankBatch, TokenBatch


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
