from dataclasses import replace

import pytest
import torch
from conftest import HashEmbedder

from chatrec.config import RetrievalConfig
from chatrec.data import (
    IGNORE,
    build_examples,
    collate_rank,
    collate_reasons,
    collate_text,
    rank_loss,
    replay,
    text_only,
    token_loss,
    turn_examples,
)
from chatrec.dialogues import Dialogue, Turn
from chatrec.prompting import AUDIO, LABELS, UserTurn, rank_prompt
from chatrec.ranking import fallback_reason
from chatrec.retrieval import Query, Retriever, embed_catalog

N = 6


def dialogue(did: str, target: str, first: str = "Any scary horror films?") -> Dialogue:
    return Dialogue(did, "test", "train", (
        Turn("user", first),
        Turn("assistant", "Have you seen Alien?", targets=(target,)),
        Turn("user", "Not Alien, something from the 80s please.", rejected=("alien-1979",)),
        Turn("assistant", "Try this.", targets=(target,)),
    ), target)


# (dialogue id, target, first message): targets retrieval finds and targets it misses
CASES = [
    ("d-hit", "the-shining-1980", "Any scary horror films by Stanley Kubrick?"),
    ("d-miss", "amelie-2001", "Any scary horror films?"),
    ("d-kids", "toy-story-1995", "Something animated for my kids"),
    ("d-war", "casablanca-1942", "A classic war romance"),
]


@pytest.fixture(scope="module")
def retriever(small_catalog, tmp_path_factory):
    emb = HashEmbedder()
    vecs = embed_catalog(small_catalog, emb, "hash", tmp_path_factory.mktemp("idx"), progress=False)
    return Retriever(small_catalog, emb, vecs, RetrievalConfig(n_candidates=N))


@pytest.mark.parametrize("did,target,first", CASES)
def test_ground_truth_is_at_its_label(small_catalog, retriever, did, target, first):
    ex = build_examples([dialogue(did, target, first)], small_catalog, retriever, N, seed=3)
    assert len(ex) == 2 and ex.turns_seen == 2
    for r in ex.rank:
        assert 1 <= len(r.candidates) <= N and len(set(r.candidates)) == len(r.candidates)  # constraints may filter
        assert r.candidates[r.label] == target
        line = next(x for x in r.prompt.splitlines() if x.startswith(f"{LABELS[r.label]}: "))
        assert small_catalog.get(target).title in line  # the label in the prompt names the target


def test_same_prompt_as_inference_and_deterministic(small_catalog, retriever):
    d = dialogue("d-miss", "amelie-2001")
    r, _ = turn_examples(d, 3, small_catalog, retriever, N, seed=0)
    s = replay(d, 3, small_catalog)
    assert "alien-1979" in s.rejected and s.year_min == 1980  # interpret ran on the earlier turns
    turns = [UserTurn(t.role, t.text) for t in s.turns]
    assert r.prompt == rank_prompt(turns, [small_catalog.get(i) for i in r.candidates])
    assert "alien-1979" not in r.candidates  # rejected: retrieval excluded it, as at inference
    assert not r.retrieved  # amelie is not a horror film from the 80s: inserted, replacing the last
    again, _ = turn_examples(d, 3, small_catalog, retriever, N, seed=0)
    assert again == r
    other_seeds = {turn_examples(d, 3, small_catalog, retriever, N, seed=s)[0].label for s in range(8)}
    assert len(other_seeds) > 1  # shuffled: the answer is not always at the same label


def test_eval_examples_keep_retrieval_order(small_catalog, retriever):
    d = dialogue("d-miss", "amelie-2001")
    r, _ = turn_examples(d, 3, small_catalog, retriever, N, seed=0, train=False)
    s = replay(d, 3, small_catalog)
    want = retriever.retrieve(Query(s.user_text(), tuple(s.liked), s.excluded(), s.constraints()), N)
    assert r.candidates == tuple(c.item.id for c in want) and r.label == -1


def test_reason_target_is_the_grounded_fallback(small_catalog, retriever):
    d = dialogue("d-hit", "the-shining-1980", "Any scary horror films by Stanley Kubrick?")
    _, reason = turn_examples(d, 1, small_catalog, retriever, N, seed=0)
    want = fallback_reason(small_catalog.get("the-shining-1980"), "Any scary horror films by Stanley Kubrick?")
    assert reason.target == " " + want + "\n"
    assert "Stanley Kubrick" in reason.target


def test_unknown_target_is_skipped(small_catalog, retriever):
    ex = build_examples([dialogue("x", "no-such-film")], small_catalog, retriever, N, seed=0)
    assert len(ex) == 0 and ex.skipped == 2


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


def test_media_turns_need_encoders(small_catalog, retriever, tiny_lm, tmp_path):
    r = build_examples([dialogue(*CASES[0])], small_catalog, retriever, N, seed=0).rank[0]
    with pytest.raises(NotImplementedError, match="media"):
        collate_rank(tiny_lm, [replace(r, image=str(tmp_path / "x.png"))])


def test_text_only_drops_the_media_marks_like_inference_without_a_projector(small_catalog, retriever):
    d = dialogue(*CASES[0])
    spoken = replace(d, turns=(replace(d.turns[0], audio="ask.wav"), *d.turns[1:]))
    r = build_examples([spoken], small_catalog, retriever, N, seed=0).rank[0]
    plain = build_examples([d], small_catalog, retriever, N, seed=0).rank[0]
    assert r.audio == "ask.wav" and AUDIO in r.prompt
    assert text_only(r) == plain and text_only(plain) is plain
