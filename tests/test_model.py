import pytest
import torch

from chatrec.model import SoftInputs
from chatrec.projector import KINDS, build_projector
from chatrec.prompting import FIT

FITS = "User : a film\nA : The Matrix . Fits :<fit>\nB : Heat . Fits :<fit>\nC : Alien . Fits :<fit>"


def test_candidate_scores_match_a_full_forward(tiny_lm):
    pieces = tiny_lm._piece_ids(FITS)
    ids = [p for p in pieces if isinstance(p, int)]
    marks = [sum(isinstance(q, int) for q in pieces[:i]) - 1 for i, p in enumerate(pieces) if p == FIT]
    full = tiny_lm.lm(torch.tensor([ids])).logits[0]  # every position's logits, the slow way
    want = torch.log_softmax(full[marks, tiny_lm.yes_id] - full[marks, tiny_lm.no_id], -1)
    assert torch.allclose(tiny_lm.rank(FITS, 3), want, atol=1e-5)
    # each score is read right after its line: " Fits :" is the last text before every mark
    assert [tiny_lm.tok.convert_ids_to_tokens(ids[m]) for m in marks] == [":"] * 3


def test_left_padded_batch_equals_single_rows(tiny_lm):
    prompts = [FITS, "User : something else\nA : Heat . Fits :<fit>"]
    batch = tiny_lm.candidate_logits(tiny_lm.embed(prompts))
    assert batch.shape == (2, 3) and torch.isinf(batch[1, 1:]).all()  # row 1 has one candidate
    for i, p in enumerate(prompts):
        single = tiny_lm.candidate_logits(tiny_lm.embed([p]))[0]
        assert torch.allclose(batch[i, : len(single)], single, atol=1e-4)


def test_rank_checks_the_candidate_count(tiny_lm):
    with pytest.raises(ValueError, match="scores 3 candidates, expected 4"):
        tiny_lm.rank(FITS, 4)
    with pytest.raises(ValueError, match="no <fit> mark"):
        tiny_lm.candidate_logits(tiny_lm.embed(["no marks here"]))


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
        prompts = ["User : <image> like this <audio> please<fit>", "short<fit>"]
        emb = tiny_lm.embed(prompts, [SoftInputs(image=[img], audio=[aud]), None])
        (s1, e1), (s2, e2) = emb.soft_spans[0]
        assert (e1 - s1, e2 - s2) == (3, 4)
        assert torch.allclose(emb.embeds[0, s1:e1], proj_img(img.unsqueeze(0))[0])
        assert torch.allclose(emb.embeds[0, s2:e2], proj_aud(aud.unsqueeze(0))[0])
        # row 1 is left-padded; its positions start at 0 at its first real token
        pad = int((emb.mask[1] == 0).sum())
        assert pad > 0 and emb.positions[1, pad] == 0 and emb.mask[1, :pad].sum() == 0
        assert emb.positions[0, -1] == emb.mask[0].sum() - 1
        assert tiny_lm.candidate_logits(emb).shape == (2, 1)
        with pytest.raises(ValueError, match="placeholder but no <image> embedding"):
            tiny_lm.embed(["<image> x"])
        with pytest.raises(ValueError, match="no placeholder"):
            tiny_lm.embed(["x"], [SoftInputs(image=[img])])
    finally:
        tiny_lm.projectors.clear()


def test_missing_projector_is_a_clear_error(tiny_lm):
    with pytest.raises(KeyError, match="no trained image projector"):
        tiny_lm.embed(["<image> x"], [SoftInputs(image=[torch.randn(1, 12)])])


def test_generate_streams_each_row(tiny_lm):
    seen = {}
    out = tiny_lm.generate(["Film : The Matrix", "Why this film fits"], 4, on_token=lambda r, s: seen.setdefault(r, []).append(s))
    assert len(out) == 2 and set(seen) <= {0, 1}
    for r, pieces in seen.items():
        assert "".join(pieces).strip() == out[r]
