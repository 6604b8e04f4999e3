"""Decoding user audio in Python (no ffmpeg): soundfile -> mono float32 at 16 kHz for Whisper."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .files import MediaError, check_file, quiet_error, shown_name

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Whisper's input rate
WINDOW_SECONDS = 30.0  # Whisper's fixed context: 3000 mel frames
# Default limit of load_audio (catalog clips): longer files would take minutes to decode on 2 cores. A user's
# spoken request has its own, tighter limit, MediaConfig.max_audio_seconds (60 s), passed in by MediaInputs.
MAX_SECONDS = 600.0
SILENCE_RMS = 10 ** (-60 / 20)  # -60 dBFS; quieter than this is no usable speech
FULL_SCALE = 0.999  # |sample| at or above this counts as clipped
MAX_CLIPPED_FRACTION = 0.05  # refuse above this fraction of clipped samples
NOTE_CLIPPED_FRACTION = 0.001  # mention clipping above this


@dataclass
class AudioClip:
    samples: np.ndarray  # (n,) float32 mono at sample_rate
    sample_rate: int  # always SAMPLE_RATE
    duration_s: float  # len(samples) / sample_rate
    source_rate: int  # rate of the file before resampling
    notes: list[str] = field(default_factory=list)  # what the user should know about the clip


def load_audio(path: str | os.PathLike, max_seconds: float = MAX_SECONDS, setting: str | None = None) -> AudioClip:
    """Decode WAV/FLAC/OGG (anything libsndfile reads), mix to mono and resample to 16 kHz.

    Raises :class:`MediaError` for missing, empty, undecodable, zero-length, too long, silent or
    heavily clipped audio. The length is checked from the file header before anything is decoded, and
    no more than ``max_seconds`` of samples are ever read (a header that lies cannot make us decode
    more). ``setting`` names where the limit comes from (e.g. ``"media.max_audio_seconds"``) for the
    message. Clips longer than 30 s get a note; see :func:`windows`.
    """
    path = Path(path)
    check_file(path, "audio")
    name = shown_name(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise MediaError(
            f"not a readable audio file (WAV/FLAC/OGG expected) or corrupt: {name} ({quiet_error(e, path)})"
        ) from e
    if info.frames <= 0 or info.samplerate <= 0:
        raise MediaError(f"audio file contains no samples (zero length): {name}")
    if info.frames / info.samplerate > max_seconds:
        raise _too_long(name, format_seconds(info.frames / info.samplerate), max_seconds, setting)
    limit_frames = math.ceil(max_seconds * info.samplerate) if math.isfinite(max_seconds) else -2  # -2: no limit
    try:  # one frame past the limit tells a lying header from an honest one
        data, rate = sf.read(str(path), frames=limit_frames + 1, dtype="float32", always_2d=True)  # (n, channels)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise MediaError(f"audio file is corrupt: {name} ({quiet_error(e, path)})") from e
    if data.shape[0] == 0:
        raise MediaError(f"audio file contains no samples (zero length): {name}")
    if 0 <= limit_frames < data.shape[0]:
        raise _too_long(name, f"longer than its header says, over {format_seconds(max_seconds)}", max_seconds, setting)
    notes = _check_levels(data, path)
    mono = data.mean(axis=1)  # (n,)
    if data.shape[1] > 1:
        notes.append(f"{path.name}: {data.shape[1]} channels mixed down to mono")
    samples = _resample(mono, rate)
    duration = len(samples) / SAMPLE_RATE
    if duration > WINDOW_SECONDS:
        n = len(windows(samples))
        notes.append(f"{path.name}: {duration:.1f} s long, processed as {n} windows of up to {WINDOW_SECONDS:.0f} s")
    return AudioClip(samples, SAMPLE_RATE, duration, rate, notes)


def format_seconds(seconds: float) -> str:
    """A duration as people say it: "7.5 s", "45 s", "61 s", "1 min 30 s", "10 min 0 s"."""
    if seconds < 89.95:  # up to a minute and a half, seconds are easier to compare with a limit in seconds
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s"


def _too_long(name: str, length: str, max_seconds: float, setting: str | None) -> MediaError:
    limit = format_seconds(max_seconds) + (f" ({setting})" if setting else "")
    return MediaError(f"audio is too long: {name} is {length}; the limit is {limit}; trim it to the request")


def _check_levels(data: np.ndarray, path: Path) -> list[str]:
    """Silence and clipping are judged on the original samples: resampling smears both."""
    rms = float(np.sqrt(np.mean(np.square(data, dtype=np.float64))))
    if rms < SILENCE_RMS:
        db = 20 * math.log10(rms) if rms > 0 else -math.inf
        raise MediaError(f"audio is silent: {shown_name(path)} (level {db:.0f} dBFS); check the microphone")
    clipped = float(np.mean(np.abs(data) >= FULL_SCALE))
    if clipped > MAX_CLIPPED_FRACTION:
        raise MediaError(
            f"audio is badly clipped: {shown_name(path)} has {clipped:.0%} of samples at full scale; "
            "record again with lower input gain"
        )
    return [f"{path.name}: {clipped:.1%} of samples clipped"] if clipped > NOTE_CLIPPED_FRACTION else []


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return x.astype(np.float32, copy=False)
    g = math.gcd(rate, SAMPLE_RATE)
    return resample_poly(x, SAMPLE_RATE // g, rate // g).astype(np.float32)


def windows(clip: AudioClip | np.ndarray, seconds: float = WINDOW_SECONDS) -> list[np.ndarray]:
    """Cut a clip into consecutive windows of ``seconds`` (the last one shorter); views, no copy.

    Returns a list of (<= seconds*16000,) float32 arrays; a 70-s clip gives 30 + 30 + 10 s.
    """
    x = clip.samples if isinstance(clip, AudioClip) else clip
    step = int(round(seconds * SAMPLE_RATE))
    return [x[i : i + step] for i in range(0, len(x), step)]


def speak(text: str, path: str | os.PathLike, voice: str = "en-us") -> Path:
    """Synthesise ``text`` into a WAV file with espeak-ng (test requests, spoken item descriptions)."""
    import shutil
    import subprocess

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MediaError("espeak-ng is not installed (Debian: apt-get install espeak-ng); cannot synthesise speech")
    subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return Path(path)
