"""load_audio: decoding, resampling, mono mix-down, refusals and 30-s windows."""

import numpy as np
import pytest
import soundfile as sf

from chatrec.media import MediaError
from chatrec.media.audio import SAMPLE_RATE, load_audio, windows


def _tone(seconds: float, rate: int, amp: float = 0.3, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _wav(path, data, rate, subtype="PCM_16"):
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def test_stereo_44k_becomes_mono_16k(tmp_path):
    clip = load_audio(_wav(tmp_path / "a.wav", _tone(2.5, 44_100, channels=2), 44_100))
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert (clip.sample_rate, clip.source_rate) == (SAMPLE_RATE, 44_100)
    assert len(clip.samples) == 2.5 * SAMPLE_RATE and clip.duration_s == pytest.approx(2.5)
    assert np.sqrt(np.mean(clip.samples**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)  # level kept
    assert any("mono" in n for n in clip.notes)


def test_flac_and_ogg_decode(tmp_path):
    for name in ("a.flac", "a.ogg"):
        clip = load_audio(_wav(tmp_path / name, _tone(1.0, 22_050), 22_050, subtype=None))
        assert clip.duration_s == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "not found"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.write_bytes(b"RIFF\x00garbage" * 50), p)[1], "not a readable audio file"),
        (lambda p: (p.write_text("hello, I am text, not sound\n" * 20), p)[1], "not a readable audio file"),
        (lambda p: _wav(p, np.zeros(0, np.float32), 16_000), "zero length"),
        (lambda p: _wav(p, np.zeros(16_000, np.float32), 16_000), "silent"),
        (lambda p: _wav(p, _tone(1.0, 16_000, amp=3.0).clip(-1, 1), 16_000), "badly clipped"),
        (lambda p: _wav(p, _tone(601, 1_000), 1_000), "too long"),  # low rate keeps the file small
    ],
    ids=["missing", "empty", "garbage", "text", "zero-length", "silent", "clipped", "too-long"],
)
def test_refusals_name_file_and_problem(tmp_path, make, message):
    path = make(tmp_path / "clip.wav")
    with pytest.raises(MediaError, match=message) as err:
        load_audio(path)
    assert "clip.wav" in str(err.value)


def test_too_long_says_length_and_limit_plainly(tmp_path):
    path = _wav(tmp_path / "x.wav", _tone(600, 1_000), 1_000)
    with pytest.raises(MediaError) as err:
        load_audio(path, max_seconds=60, setting="media.max_audio_seconds")
    assert str(err.value) == (
        "audio is too long: x.wav is 10 min 0 s; the limit is 60 s (media.max_audio_seconds); trim it to the request"
    )


def test_refusals_do_not_show_the_directory(tmp_path):
    path = tmp_path / "upload" / "clip.wav"
    path.parent.mkdir()
    path.write_bytes(b"RIFF\x00garbage" * 50)  # libsndfile's own message names the full path
    with pytest.raises(MediaError) as err:
        load_audio(path)
    assert "clip.wav" in str(err.value) and str(path.parent) not in str(err.value)


def test_mild_clipping_is_a_note(tmp_path):
    x = _tone(1.0, 16_000)
    x[::200] = 1.0  # 0.5% of samples at full scale
    assert any("clipped" in n for n in load_audio(_wav(tmp_path / "a.wav", x, 16_000)).notes)


def test_long_clip_is_windowed_with_a_note(tmp_path):
    clip = load_audio(_wav(tmp_path / "long.wav", _tone(70, 16_000), 16_000))
    wins = windows(clip)
    assert [len(w) / SAMPLE_RATE for w in wins] == [30, 30, 10]
    assert np.array_equal(np.concatenate(wins), clip.samples)
    assert any("70.0 s" in n and "3 windows" in n for n in clip.notes)
    assert [len(w) for w in windows(clip.samples, seconds=25)] == [400_000, 400_000, 320_000]


def test_short_clip_has_one_window_and_no_notes(tmp_path):
    clip = load_audio(_wav(tmp_path / "a.wav", _tone(3.0, 16_000), 16_000))
    assert len(windows(clip)) == 1 and clip.notes == []
