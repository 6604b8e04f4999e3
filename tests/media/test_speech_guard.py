"""The guard on a spoken request: Whisper's special tokens stripped, no-speech / unclear / looping transcripts
refused in one line, the media.max_audio_seconds limit applied from the header, file named by its base name."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from chatrec.config import MediaConfig
from chatrec.media import MediaError
from chatrec.media import audio as audio_mod
from chatrec.media.audio import format_seconds, load_audio
from chatrec.media.encoders import (
    MAX_COMPRESSION_RATIO,
    MIN_AVG_LOGPROB,
    NO_SPEECH,
    NO_SPEECH_LOGPROB,
    NO_SPEECH_PROB,
    REPETITIVE,
    UNCLEAR,
    AudioEncoding,
    judge_window,
    require_speech,
    strip_special_tokens,
)
from chatrec.media.inputs import MediaInputs
from chatrec.session import Session

AGAIN = "please record again closer to the microphone"


def _tone(seconds: float, rate: int = 16_000, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _seg(text="Find me a cheap pair of running shoes.", nsp=0.03, lp=-0.09, cr=0.98):
    """A decoded window as whisper (DecodingResult) or faster-whisper (Segment) gives it."""
    return SimpleNamespace(text=text, no_speech_prob=nsp, avg_logprob=lp, compression_ratio=cr)


# ---- special tokens ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("<|vi|>" * 5000, ""),
        ("Recommend a jazz album.<|vi|><|vi|><|vi|>", "Recommend a jazz album."),
        ("<|en|><|transcribe|><|notimestamps|> Jazz.<|endoftext|>", "Jazz."),
        ("<|0.00|> something older<|1.20|>", "something older"),
        ("a western <|vi", "a western"),  # cut off at the end
        ("vi|> a western", "a western"),  # cut off at the start
        ("jazz <| |> please", "jazz please"),
        ("Hello<|vi|>world", "Hello world"),
        ("rock | pop, <3 and 2 > 1", "rock | pop, <3 and 2 > 1"),  # ordinary text is left alone
    ],
)
def test_special_tokens_and_fragments_are_stripped(raw, clean):
    assert strip_special_tokens(raw) == clean


# ---- the decision on fake segments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seg, problem",
    [
        (_seg(), None),
        (_seg("you", nsp=0.74, lp=-1.72, cr=0.27), NO_SPEECH),  # Whisper base on a 3-s 440 Hz tone
        (_seg("Yes.", nsp=0.56, lp=-0.74, cr=0.33), None),  # espeak "yes": short, but speech
        (_seg("Comedy", nsp=0.19, lp=-1.38, cr=0.43), None),  # the least sure real request measured
        (_seg("Western.", nsp=0.9, lp=-0.5), None),  # no-speech alone is not enough: the text is sure
        (_seg("mumble", nsp=0.2, lp=-1.9), UNCLEAR),
        (_seg("jazz jazz jazz jazz " * 30, nsp=0.1, lp=-0.2, cr=9.5), REPETITIVE),
        (_seg("<|vi|>" * 3000, nsp=0.1, lp=-0.1, cr=40.0), NO_SPEECH),  # nothing left after stripping
        (_seg("   ", nsp=0.1, lp=-0.1), NO_SPEECH),
        (SimpleNamespace(text="Jazz.", no_speech_prob=0.2, avg_logprob=-0.3), None),  # no compression_ratio
    ],
)
def test_judge_window(seg, problem):
    assert judge_window(seg).problem == problem


def test_thresholds_are_whispers_own_where_it_has_them():
    assert (NO_SPEECH_PROB, NO_SPEECH_LOGPROB, MAX_COMPRESSION_RATIO) == (0.6, -1.0, 2.4)
    assert -1.65 < MIN_AVG_LOGPROB < -1.38  # between the worst real request and the best tone measured


def _refusal(segs, name="tone.wav") -> str:
    with pytest.raises(MediaError) as err:
        require_speech([judge_window(s) for s in segs], name)
    msg = str(err.value)
    assert "\n" not in msg and name in msg and AGAIN in msg
    return msg


def test_no_speech_is_refused_with_its_statistics():
    msg = _refusal([_seg("you", nsp=0.738, lp=-1.717, cr=0.27)])
    assert msg == (
        "no speech recognised in tone.wav (no-speech probability 0.74, mean log-probability -1.72); " + AGAIN
    )


def test_special_tokens_only_is_refused():
    assert _refusal([_seg("<|vi|>" * 3000, nsp=0.1, lp=-0.1, cr=40.0)]).startswith("no speech recognised in tone.wav")


def test_unclear_and_looping_transcripts_are_refused():
    assert "not recognised clearly (mean log-probability -1.90, below -1.5)" in _refusal([_seg("mumble", lp=-1.9)])
    assert "repeats itself (compression ratio 9.5, above 2.4)" in _refusal([_seg("a " * 99, cr=9.5)])


def test_windows_without_speech_are_left_out():
    segs = [_seg("Recommend a tense thriller set in space."), _seg("you", nsp=0.77, lp=-1.73)]
    assert require_speech([judge_window(s) for s in segs], "x.wav") == "Recommend a tense thriller set in space."


# ---- duration limit --------------------------------------------------------------------------------------------


def test_format_seconds():
    assert [format_seconds(s) for s in (7.5, 45, 60, 61, 89.9, 90, 600, 601.4)] == [
        "7.5 s",
        "45 s",
        "60 s",
        "61 s",
        "89.9 s",
        "1 min 30 s",
        "10 min 0 s",
        "10 min 1 s",
    ]


def test_default_limit_is_a_minute():
    assert MediaConfig().max_audio_seconds == 60.0


def test_too_long_message_names_limit_and_setting_by_base_name(tmp_path):
    secret = tmp_path / "gradio" / "0a1b2c3d"
    secret.mkdir(parents=True)
    path = secret / "x.wav"
    sf.write(path, _tone(600, rate=1_000), 1_000)  # a low rate keeps the file small
    with pytest.raises(MediaError) as err:
        load_audio(path, max_seconds=60, setting="media.max_audio_seconds")
    assert str(err.value) == (
        "audio is too long: x.wav is 10 min 0 s; the limit is 60 s (media.max_audio_seconds); trim it to the request"
    )


def test_length_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, _tone(61, rate=1_000), 1_000)
    monkeypatch.setattr(audio_mod.sf, "read", lambda *a, **k: pytest.fail("decoded a file that is too long"))
    with pytest.raises(MediaError, match="is 61 s; the limit is 60 s"):
        load_audio(path, max_seconds=60)


def test_a_header_that_understates_the_length_cannot_make_us_decode_more(tmp_path, monkeypatch):
    path = tmp_path / "liar.wav"
    sf.write(path, _tone(120, rate=1_000), 1_000)
    real_info, real_read = sf.info, sf.read
    reads = []

    def info(p):
        i = real_info(p)
        return SimpleNamespace(frames=10_000, samplerate=i.samplerate)  # the header claims 10 s

    def read(*a, **k):
        reads.append(k.get("frames"))
        return real_read(*a, **k)

    monkeypatch.setattr(audio_mod.sf, "info", info)
    monkeypatch.setattr(audio_mod.sf, "read", read)
    with pytest.raises(MediaError, match="liar.wav is longer than its header says, over 60 s"):
        load_audio(path, max_seconds=60)
    assert reads == [60_001]


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p,
        lambda p: (p.write_bytes(b""), p)[1],
        lambda p: (p.write_bytes(b"RIFF\x00garbage" * 50), p)[1],
        lambda p: (sf.write(p, np.zeros(16_000, np.float32), 16_000), p)[1],
        lambda p: (sf.write(p, _tone(1.0, amp=3.0).clip(-1, 1), 16_000), p)[1],
    ],
    ids=["missing", "empty", "garbage", "silent", "clipped"],
)
def test_refusals_name_the_file_without_its_directory(tmp_path, make):
    d = tmp_path / "uploads" / "tmpk2j3"
    d.mkdir(parents=True)
    with pytest.raises(MediaError) as err:
        load_audio(make(d / "clip.wav"))
    msg = str(err.value)
    assert "clip.wav" in msg and str(d) not in msg and "tmpk2j3" not in msg and "\n" not in msg


def test_media_error_is_one_line():
    assert str(MediaError("bad file\n  (details\nhere)")) == "bad file (details here)"


# ---- wiring in MediaInputs (a fake Whisper: fast) ---------------------------------------------------------------


class _FakeWhisper:
    def __init__(self, *segs):
        self.segs = segs
        self.clips = []

    def encode(self, clip):
        self.clips.append(clip)
        heard = [judge_window(s) for s in self.segs]
        return AudioEncoding(
            " ".join(w.text for w in heard if w.problem != NO_SPEECH),
            torch.zeros(4, 8),
            torch.zeros(8),
            "en",
            clip.duration_s,
            [],
            heard,
        )


def _inputs(small_catalog, monkeypatch, fake, **cfg):
    inputs = MediaInputs(small_catalog, MediaConfig(**cfg), 60, {})
    monkeypatch.setattr(inputs, "audio_encoder", lambda: fake)
    monkeypatch.setattr(inputs, "item_audio_vectors", lambda: ([], np.zeros((0, 8), np.float32)))
    return inputs


def test_prepare_refuses_a_no_speech_transcript(small_catalog, monkeypatch, tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(3), 16_000)
    inputs = _inputs(small_catalog, monkeypatch, _FakeWhisper(_seg("you", nsp=0.74, lp=-1.72, cr=0.27)))
    with pytest.raises(MediaError, match=r"^no speech recognised in tone.wav \(no-speech probability 0.74"):
        inputs.prepare(None, str(path))


def test_prepare_strips_special_tokens(small_catalog, monkeypatch, tmp_path):
    path = tmp_path / "ask.wav"
    sf.write(path, _tone(3), 16_000)
    inputs = _inputs(small_catalog, monkeypatch, _FakeWhisper(_seg("<|en|> A romantic comedy.<|vi|><|vi|>")))
    got = inputs.prepare(None, str(path))
    assert got.heard == got.understood["transcript"] == "A romantic comedy."


def test_config_limit_reaches_the_loader(small_catalog, monkeypatch, tmp_path):
    path = tmp_path / "d" / "long.wav"
    path.parent.mkdir()
    sf.write(path, _tone(61, rate=8_000), 8_000)
    fake = _FakeWhisper(_seg())
    with pytest.raises(MediaError) as err:
        _inputs(small_catalog, monkeypatch, fake).prepare(None, str(path))
    assert str(err.value) == (
        "audio is too long: long.wav is 61 s; the limit is 60 s (media.max_audio_seconds); trim it to the request"
    )
    assert fake.clips == []  # refused before anything was decoded or encoded
    assert _inputs(small_catalog, monkeypatch, fake, max_audio_seconds=90).prepare(None, str(path)).heard
    assert fake.clips[0].duration_s == pytest.approx(61)


# ---- the real packaged Whisper on a tone (a few seconds) -------------------------------------------------------


def test_a_pure_tone_is_refused_and_the_session_is_unchanged(tiny_recommender, tmp_path):
    rec = tiny_recommender
    s = rec.respond(Session(), "a crime film").session
    before = json.dumps(s.to_dict())
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(3), 16_000)  # Whisper base heard "you" in this before the guard
    with pytest.raises(MediaError) as err:
        rec.respond(s, "", audio=str(path))
    msg = str(err.value)
    assert msg.startswith("no speech recognised in tone.wav (no-speech probability") and msg.endswith(AGAIN)
    assert str(tmp_path) not in msg
    assert json.dumps(s.to_dict()) == before == json.dumps(rec.store.load(s.id).to_dict())
