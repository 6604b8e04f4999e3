"""Image and audio turns through the Recommender, with a tiny random CLIP (tests only)."""

import json

import pytest
from PIL import Image

from chatrec.media import MediaError
from chatrec.media.encoders import TINY_CLIP, ImageEncoder
from chatrec.media.inputs import MediaInputs
from chatrec.projector import build_projector
from chatrec.session import Session


@pytest.fixture
def with_tiny_clip(tiny_recommender, monkeypatch):
    rec = tiny_recommender
    clip = ImageEncoder(TINY_CLIP, allow_random=True)  # random weights: never done outside tests
    inputs = MediaInputs(rec.catalog, rec.cfg.media, rec.cfg.retrieval.rrf_k, rec.lm.projectors, image_encoder=clip)
    monkeypatch.setattr(rec, "media_inputs", lambda: inputs)
    rec.tiny_clip = clip
    return rec


@pytest.fixture
def poster(tmp_path):
    p = tmp_path / "poster.png"
    Image.new("RGB", (80, 120), (200, 30, 30)).save(p)
    return str(p)


def test_image_without_projector_is_used_for_retrieval_only(with_tiny_clip, poster):
    ans = with_tiny_clip.respond(Session(), "", image=poster)
    assert len(ans.understood["image_neighbours"]) == 3
    assert any("no trained image projector" in n for n in ans.notes)
    assert ans.recommendations


def test_image_soft_tokens_reach_the_prompt(with_tiny_clip, poster, monkeypatch):
    rec = with_tiny_clip
    lm = rec.lm
    lm.projectors["image"] = build_projector("linear", rec.tiny_clip.embed_dim, lm.hidden_size, 2)
    seen = []
    real_embed = lm.embed
    monkeypatch.setattr(lm, "embed", lambda prompts, media=None: seen.append((prompts, media)) or real_embed(prompts, media))
    try:
        rec.respond(Session(), "this mood", image=poster)
    finally:
        lm.projectors.pop("image")
    prompts, media = seen[0]
    assert prompts[0].count("<image>") == 1 and len(media[0].image) == 1
    assert media[0].image[0].shape == (1, rec.tiny_clip.embed_dim)


def test_bad_image_leaves_session_unchanged(with_tiny_clip, tmp_path):
    rec = with_tiny_clip
    s = rec.respond(Session(), "a crime film").session
    before = json.dumps(s.to_dict())
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(MediaError, match="x.png"):
        rec.respond(s, "like this", image=str(bad))
    with pytest.raises(MediaError):
        rec.respond(s, "like this", image=str(tmp_path / "missing.png"))
    assert json.dumps(s.to_dict()) == before == json.dumps(rec.store.load(s.id).to_dict())


def test_bad_audio_leaves_session_unchanged(tiny_recommender, tmp_path):
    import numpy as np
    import soundfile as sf

    rec = tiny_recommender
    s = rec.respond(Session(), "a crime film").session
    before = json.dumps(s.to_dict())
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(b"RIFF....WAVEfmt garbage")
    for path in (silent, garbage, tmp_path / "missing.wav"):
        with pytest.raises(MediaError):
            rec.respond(s, "", audio=str(path))
    assert json.dumps(s.to_dict()) == before == json.dumps(rec.store.load(s.id).to_dict())


@pytest.mark.slow
def test_items_with_audio_clips_are_matched_by_whisper_states(small_catalog, tiny_lm, tmp_path):
    """Real Whisper base: a query clip pulls up the item whose own clip sounds the same."""
    from conftest import FIXTURES, HashEmbedder

    from chatrec.catalog import Catalog, Item
    from chatrec.config import load_config
    from chatrec.recommender import Recommender
    from chatrec.retrieval import Retriever, embed_catalog
    from chatrec.store import SessionStore

    voiced = Item("voiced", "Quiet Harbour", "A lighthouse keeper's year.", {"year": 1990, "genres": ["Drama"]},
                  audio=str(FIXTURES / "speech_shoes.wav"))
    cat = Catalog(list(small_catalog) + [voiced])
    emb = HashEmbedder()
    cfg = load_config(None, [f"data_dir={tmp_path}", "retrieval.n_candidates=6", "generation.reasons=false"])
    rec = Recommender(cfg, cat, Retriever(cat, emb, embed_catalog(cat, emb, "h", tmp_path, progress=False), cfg.retrieval),
                      tiny_lm, SessionStore(tmp_path / "s.sqlite"))
    ans = rec.respond(Session(), "", audio=str(FIXTURES / "speech_shoes.wav"))
    assert "running shoes" in ans.understood["transcript"].lower()
    assert "voiced" in [r.item_id for r in ans.recommendations]
