import torch
from test_examples import CASES, N, dialogue

from chatrec.training.batches import IGNORE, collate_rank, collate_reasons, collate_text
from chatrec.training.examples import build_examples
from chatrec.training.losses import rank_loss, token_loss


def test_loss_mask_covers_only_target_tokens(tiny_lm):
    prompts = ["Film : The Matrix", "User : a much longer prompt about a film"]
    targets = [" It is a film .\n", " Yes\n"]
    batch = collate_text(tiny_lm, prompts, targets)
    plain = tiny_lm.embed(prompts)
    for i, t in enumerate(targets):
        ids = tiny_lm.tok(t, add_special_tokens=False).input_ids
        row = batch.labels[i]
        assert int((row != IGNORE).sum()) == len(ids)
        assert row[-len(ids):].tolist() == ids  # targets end every left-padded row
        # the prompt part is exactly what inference embeds
        n_prompt = int(plain.mask[i].sum())
        real = batch.emb.embeds[i][batch.emb.mask[i].bool()]
        assert torch.allclose(real[:n_prompt], plain.embeds[i][plain.mask[i].bool()])
        assert int(batch.emb.mask[i].sum()) == n_prompt + len(ids)
    loss, n = token_loss(tiny_lm, batch)
    assert n == sum(len(tiny_lm.tok(t, add_special_tokens=False).input_ids) for t in targets)
    # same loss as a full forward with HF's own shifted loss
    out = tiny_lm.lm(inputs_embeds=batch.emb.embeds, attention_mask=batch.emb.mask,
                     position_ids=batch.emb.positions, labels=batch.labels)
    assert torch.allclose(loss, out.loss, atol=1e-5)


def test_rank_batch_and_loss(small_catalog, retriever, tiny_lm):
    ex = build_examples([dialogue(*c) for c in CASES], small_catalog, retriever, N, seed=0)
    batch = collate_rank(tiny_lm, ex.rank[:3])
    assert batch.label.tolist() == [r.label for r in ex.rank[:3]]
    assert [len(p) for p in batch.emb.score_positions] == [r.n_labels for r in ex.rank[:3]]
    # listwise loss == cross entropy of ChatLM.rank's log-probabilities at the ground truth
    want = -torch.stack([tiny_lm.rank(r.prompt, r.n_labels)[r.label] for r in ex.rank[:3]]).mean()
    assert torch.allclose(rank_loss(tiny_lm, batch), want, atol=1e-4)
    assert collate_reasons(tiny_lm, ex.reason[:2]).labels.shape[0] == 2
