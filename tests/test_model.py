import pytest
import torch

from chatrec.model import Media
from chatrec.projector import KINDS, build_projector


def test_label_logits_match_a_full_forward(tiny_lm):
    prompt = "The best candidate is option"
    ids = torch.tensor([tiny_lm._piece_ids(prompt)])
    full = tiny_lm.lm(ids).logits[0, -1]  # every position's logits, the slow way
    got = tiny_lm.rank(prompt, 5)
    want = torch.log_softmax(full[tiny_lm.label_ids[:5]], -1)
    assert torch.allclose(got, want, atol=1e-5)


def test_left_padded_batch_equals_single_rows(tiny_lm):
    prompts = ["The best candidate is option", "Film : The Matrix . The best candidate is option"]
    batch = tiny_lm.label_logits(tiny_lm.embed(prompts), 4)
    for i, p in enumerate(prompts):
        single = tiny_lm.label_logits(tiny_lm.embed([p]), 4)[0]
        assert torch.allclose(batch[i], single, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_projector_shapes(kind):
    p = build_projector(kind, in_dim=12, out_dim=32, tokens_per_input=3)
    assert p(torch.randn(2, 1, 12)).shape == (2, 3, 32)  # image: one vector -> K tokens
    p1 = build_projector(kind, in_dim=12, out_dim=32, tokens_per_input=1)
    assert p1(torch.randn(2, 5, 12)).shape == (2, 5, 32)  # audio: M pooled states -> M tokens


def test_unknown_projector_kind_lists_choices():
    with pytest.raises(ValueError, match="linear, mlp2x_gelu"):
        build_projector("transformer", 4, 4)


def test_soft_tokens_are_spliced_at_the_placeholders(tiny_lm):
    proj_img = build_projector("linear", 12, tiny_lm.hidden_size, tokens_per_input=3)
    proj_aud = build_projector("linear", 8, tiny_lm.hidden_size, tokens_per_input=1)
    tiny_lm.projectors.update({"image": proj_img, "audio": proj_aud})
    try:
        img, aud = torch.randn(1, 12), torch.randn(4, 8)
        prompts = ["User : <image> like this <audio> please", "short"]
        emb = tiny_lm.embed(prompts, [Media(image=[img], audio=[aud]), None])
        (s1, e1), (s2, e2) = emb.soft_spans[0]
        assert (e1 - s1, e2 - s2) == (3, 4)
        assert torch.allclose(emb.embeds[0, s1:e1], proj_img(img.unsqueeze(0))[0])
        assert torch.allclose(emb.embeds[0, s2:e2], proj_aud(aud.unsqueeze(0))[0])
        # row 1 is left-padded; its positions start at 0 at its first real token
        pad = int((emb.mask[1] == 0).sum())
        assert pad > 0 and emb.positions[1, pad] == 0 and emb.mask[1, :pad].sum() == 0
        assert emb.positions[0, -1] == emb.mask[0].sum() - 1
        logits = tiny_lm.label_logits(emb, 3)
        assert logits.shape == (2, 3)
        with pytest.raises(ValueError, match="placeholder but no <image> embedding"):
            tiny_lm.embed(["<image> x"])
        with pytest.raises(ValueError, match="no placeholder"):
            tiny_lm.embed(["x"], [Media(image=[img])])
    finally:
        tiny_lm.projectors.clear()


def test_missing_projector_is_a_clear_error(tiny_lm):
    with pytest.raises(KeyError, match="no trained image projector"):
        tiny_lm.embed(["<image> x"], [Media(image=[torch.randn(1, 12)])])


def test_generate_streams_each_row(tiny_lm):
    seen = {}
    out = tiny_lm.generate(["Film : The Matrix", "Why this film fits"], 4, on_token=lambda r, s: seen.setdefault(r, []).append(s))
    assert len(out) == 2 and set(seen) <= {0, 1}
    for r, pieces in seen.items():
        assert "".join(pieces).strip() == out[r]
