"""Frozen encoders: a tiny random open_clip model, and Whisper base on checked-in espeak fixtures."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chatrec.media.audio import SAMPLE_RATE, AudioClip, load_audio
from chatrec.media.encoders import CLIP_FLAG, TINY_CLIP, AudioEncoder, ImageEncoder, MissingWeightsError

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    return ImageEncoder(TINY_CLIP, allow_random=True)


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 80, 3), dtype=np.uint8)) for i in range(n)]


def test_tiny_clip_shapes_and_unit_norm(tiny_clip):
    img, txt = tiny_clip.encode_images(_images(3)), tiny_clip.encode_texts(["a scary film", "jazz", "toys"])
    assert img.shape == txt.shape == (3, tiny_clip.embed_dim) == (3, 32)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3)) and torch.allclose(txt.norm(dim=-1), torch.ones(3))
    assert not img.requires_grad and not any(p.requires_grad for p in tiny_clip.model.parameters())
    assert tiny_clip.encode_images([]).shape == (0, 32)


def test_random_weights_are_flagged(tiny_clip):
    assert tiny_clip.has_real_weights is False and CLIP_FLAG in tiny_clip.missing_reason


@pytest.mark.parametrize(
    "pretrained, message", [(None, "no CLIP weights"), ("openai", "not in the local cache"), ("nope", "neither a file")]
)
def test_missing_weights_raise_naming_the_flag(pretrained, message):
    with pytest.raises(MissingWeightsError, match=message) as err:
        ImageEncoder("ViT-B-32", pretrained)
    assert "--clip-pretrained PATH_OR_TAG" in str(err.value)


def test_local_checkpoint_is_real_weights(tiny_clip, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    enc = ImageEncoder.from_config({"model_name": TINY_CLIP, "pretrained": str(path)})
    assert enc.has_real_weights and enc.missing_reason == ""
    images = _images(2)
    assert torch.allclose(enc.encode_images(images), tiny_clip.encode_images(images), atol=1e-6)


def test_from_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown ImageEncoder config keys"):
        ImageEncoder.from_config({"model_name": TINY_CLIP, "pretrianed": "x"})


@pytest.fixture(scope="module")
def whisper_base():
    return AudioEncoder("base")


@pytest.mark.parametrize("name", ["speech_romcom", "speech_shoes"])
def test_whisper_transcript_and_features(whisper_base, name):
    from test_espeak_roundtrip import word_errors

    clip = load_audio(FIXTURES / f"{name}.wav")
    out = whisper_base.encode(clip)
    err, n = word_errors((FIXTURES / f"{name}.txt").read_text(), out.transcript)
    assert err / n <= 0.1, out.transcript
    assert out.features.shape == (8, 512) and out.pooled.shape == (512,)
    assert out.language == "en" and out.seconds_used == pytest.approx(clip.duration_s)
    assert torch.isfinite(out.features).all() and out.notes == []


def test_features_without_transcript_equal_those_of_encode(whisper_base):
    clip = load_audio(FIXTURES / "speech_shoes.wav")
    assert torch.allclose(whisper_base.features(clip), whisper_base.encode(clip).features)


def test_silent_windows_and_limit_are_noted(whisper_base):
    rng = np.random.default_rng(0)
    speechy = (0.1 * rng.standard_normal(SAMPLE_RATE * 40)).astype(np.float32)
    speechy[SAMPLE_RATE * 30 :] = 0  # second window silent
    clip = AudioClip(speechy, SAMPLE_RATE, 40.0, SAMPLE_RATE, [])
    notes: list[str] = []
    assert len(whisper_base._select_windows(clip, notes)) == 1 and "1 silent" in notes[0]
    long = AudioClip(np.ones(SAMPLE_RATE * 200, np.float32) * 0.1, SAMPLE_RATE, 200.0, SAMPLE_RATE, [])
    notes = []
    assert len(whisper_base._select_windows(long, notes)) == 4 and "first 120 s of 200 s" in notes[0]


def test_language_tokens_are_suppressed_and_windows_judged(whisper_base, monkeypatch):
    """decode() does not suppress <|xx|> language tokens itself; a loop on "<|vi|>" once filled a transcript."""
    import whisper

    seen = []
    real_decode = whisper.decode
    monkeypatch.setattr(
        whisper, "decode", lambda model, mel, options: seen.append(options) or real_decode(model, mel, options)
    )
    out = whisper_base.encode(load_audio(FIXTURES / "speech_shoes.wav"))
    tok = whisper.tokenizer.get_tokenizer(True, num_languages=whisper_base.model.num_languages)
    assert -1 in seen[0].suppress_tokens  # Whisper's default list is kept
    assert set(tok.all_language_tokens) | {tok.no_timestamps} <= set(seen[0].suppress_tokens)
    assert [w.problem for w in out.heard] == [None] and out.heard[0].text == out.transcript
    assert out.heard[0].no_speech_prob < 0.6 and out.heard[0].avg_logprob > -1.0
