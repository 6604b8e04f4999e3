"""Reason decoding over a vocabulary subset: same greedy tokens where the full layer's best is in the set."""

import threading

import torch
from conftest import tiny_causal_lm, tiny_tokenizer

from chatrec import decoding
from chatrec.decoding import reason_vocabulary, restricted


def test_the_subset_head_computes_only_its_rows_and_leaves_the_rest_at_minus_inf():
    lm = tiny_causal_lm(50)
    decoding.install(lm)
    hidden = torch.randn(2, 3, 32)
    head = lm.get_output_embeddings()
    full = head(hidden)
    ids = torch.tensor([0, 5, 7, 40])
    with restricted(ids):
        part = head(hidden)
    assert torch.allclose(part[..., ids], full[..., ids])
    others = torch.ones(50, dtype=torch.bool)
    others[ids] = False
    assert torch.isinf(part[..., others]).all() and (part[..., others] < 0).all()
    assert torch.equal(head(hidden), full)  # outside the block: the whole layer again
    decoding.install(lm)  # twice is harmless: not wrapped again
    assert torch.equal(head(hidden), full)


def test_the_subset_is_per_thread():
    lm = tiny_causal_lm(50)
    decoding.install(lm)
    head = lm.get_output_embeddings()
    hidden = torch.randn(1, 1, 32)
    seen = {}

    def other():
        seen["other"] = head(hidden)

    with restricted(torch.tensor([1, 2])):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert not torch.isinf(seen["other"]).any()  # a ranking pass in another thread sees every row


def test_greedy_text_is_the_same_when_the_best_tokens_are_in_the_subset(tiny_lm):
    prompts = ["Film : The Matrix", "Why this film fits"]
    full = tiny_lm.generate(prompts, 6)
    every = torch.arange(len(tiny_lm.tok))
    assert tiny_lm.generate(prompts, 6, vocab=every) == full  # the whole vocabulary as a subset
    first = tiny_lm.tok(full[0].split()[0], add_special_tokens=False).input_ids[0]
    assert tiny_lm.generate(prompts[:1], 1, vocab=torch.tensor([first]))[0] == full[0].split()[0]


def test_a_text_is_decoded_only_from_the_subset_and_the_prompt(tiny_lm):
    prompt = "Film : The Matrix"
    allowed = torch.tensor([tiny_lm.tok.eos_token_id])
    out = tiny_lm.generate([prompt], 6, vocab=allowed)[0]
    prompt_words = set(prompt.split())
    assert set(out.split()) <= prompt_words, out


def test_the_reason_vocabulary_covers_the_catalog_and_is_much_smaller_than_a_real_one(small_catalog):
    tok = tiny_tokenizer(" ".join(it.text() for it in small_catalog) + " zebra")
    ids = reason_vocabulary(tok, small_catalog)
    words = {tok.convert_ids_to_tokens(int(i)) for i in ids}
    item = next(iter(small_catalog))
    assert set(item.title.split()) <= words and tok.eos_token in words
    assert torch.equal(ids, torch.unique(ids))


def test_the_vocabulary_is_cached_per_model_and_catalog(small_catalog, tmp_path):
    from chatrec.decoding import cached_reason_vocabulary

    tok = tiny_tokenizer(" ".join(it.text() for it in small_catalog))
    first = cached_reason_vocabulary(tok, small_catalog, "tiny@1", tmp_path)
    assert len(list((tmp_path / "vocab").glob("*.npy"))) == 1
    assert torch.equal(cached_reason_vocabulary(tok, small_catalog, "tiny@1", tmp_path), first)
    cached_reason_vocabulary(tok, small_catalog, "tiny@2", tmp_path)  # another model: its own file
    assert len(list((tmp_path / "vocab").glob("*.npy"))) == 2
    next((tmp_path / "vocab").glob("*.npy")).write_bytes(b"junk")  # a damaged file is rebuilt
    assert len(cached_reason_vocabulary(tok, small_catalog, "tiny@1", tmp_path)) == len(first)
