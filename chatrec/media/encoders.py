"""Frozen media encoders: an open_clip image/text tower and a Whisper audio tower (no_grad, eval).

Nothing here downloads: CLIP weights must be a local checkpoint file or a tag already present in
the local open_clip / Hugging Face cache; Whisper comes from a pip package (see whisper_ct2).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..weights.whisper_ct2 import load_packaged_whisper
from .audio import SAMPLE_RATE, SILENCE_RMS, AudioClip, windows
from .files import MediaError

logger = logging.getLogger(__name__)

CLIP_FLAG = "--clip-pretrained PATH_OR_TAG"
TINY_CLIP = "chatrec-tiny"  # random, tiny open_clip model for tests; built from TINY_CLIP_CFG
TINY_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
_BATCH = 32  # images/texts per forward pass; bounds peak memory


class MissingWeightsError(RuntimeError):
    """Real encoder weights are not available locally; the message says which flag to pass."""


@dataclass(frozen=True)
class ClipWeights:
    path: str | None  # local checkpoint file, or None when no real weights are available
    tag_cfg: Mapping[str, Any]  # open_clip pretrained config of the tag (mean/std/quick_gelu), or {}
    reason: str  # why path is None; "" when it is not


def _cached_tag_file(cfg: Mapping[str, Any]) -> str | None:
    """Where open_clip would have stored a tag's checkpoint, if it is already there."""
    if hub := cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)  # "org/name/" (trailing slash) means the default file
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")  # open_clip prefers this alternative
        for name in names:
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str):
                return hit
    if url := cfg.get("url"):
        hit = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        if os.path.isfile(hit):
            return hit
    return None


def resolve_clip_weights(model_name: str, pretrained: str | None) -> ClipWeights:
    """Find local weights for ``pretrained`` (a checkpoint path or an open_clip tag); never downloads."""
    import open_clip

    if not pretrained:
        return ClipWeights(None, {}, f"no CLIP weights given for {model_name}; pass {CLIP_FLAG}")
    if os.path.isfile(pretrained):
        return ClipWeights(pretrained, {}, "")
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        return ClipWeights(
            None, {}, f"{pretrained!r} is neither a file nor a known {model_name} tag {tags}; pass {CLIP_FLAG}"
        )
    if path := _cached_tag_file(tag_cfg):
        return ClipWeights(path, tag_cfg, "")
    return ClipWeights(
        None,
        tag_cfg,
        f"CLIP weights {model_name}/{pretrained} are not in the local cache and downloads are disabled; "
        f"pass {CLIP_FLAG} with a local checkpoint file",
    )


class ImageEncoder:
    """Frozen open_clip model: images and texts -> L2-normalised (N, embed_dim) embeddings.

    ``model_name`` is an open_clip built-in (e.g. ``"ViT-B-32"``) or ``"chatrec-tiny"``.
    Without local weights it raises :class:`MissingWeightsError`, unless ``allow_random`` (tests,
    latency benchmarks): then ``has_real_weights`` is False and ``missing_reason`` says why.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = None,
        device: str | torch.device = "cpu",
        allow_random: bool = False,
    ):
        import open_clip

        if model_name.startswith(("hf-hub:", "local-dir:")):
            raise ValueError(f"{model_name!r}: use a built-in model name and {CLIP_FLAG} instead")
        weights = resolve_clip_weights(model_name, pretrained)
        if weights.path is None and not allow_random:
            raise MissingWeightsError(weights.reason)
        tiny = model_name == TINY_CLIP
        kwargs: dict[str, Any] = dict(TINY_CLIP_CFG) if tiny else {}
        tc = weights.tag_cfg  # a cached tag is loaded as a file: pass what the tag would have set
        for arg, key in (("image_mean", "mean"), ("image_std", "std"), ("image_interpolation", "interpolation")):
            if key in tc:
                kwargs[arg] = tc[key]
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            "ViT-B-32" if tiny else model_name,  # the tiny model overrides every ViT-B-32 field
            pretrained=weights.path,
            device=device,
            force_quick_gelu=bool(tc.get("quick_gelu", False)),
            pretrained_text=False,  # never fetch separate text-tower weights
            **kwargs,
        )
        self.model.eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer("ViT-B-32" if tiny else model_name)
        self.device = torch.device(device)
        self.model_name, self.pretrained = model_name, pretrained
        self.has_real_weights = weights.path is not None
        self.missing_reason = weights.reason
        if not self.has_real_weights:
            logger.warning("ImageEncoder %s uses RANDOM weights: %s", model_name, weights.reason)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | Any) -> ImageEncoder:
        """Build from a mapping or dataclass with keys model_name/pretrained/device/allow_random.

        Unknown keys are an error, so a typo cannot silently fall back to a default.
        """
        d = {f.name: getattr(cfg, f.name) for f in fields(cfg)} if is_dataclass(cfg) else dict(cfg)
        allowed = {"model_name", "pretrained", "device", "allow_random"}
        if unknown := set(d) - allowed:
            raise ValueError(f"unknown ImageEncoder config keys {sorted(unknown)}; valid: {sorted(allowed)}")
        return cls(**d)

    @property
    def embed_dim(self) -> int:
        return int(self.model.visual.output_dim)

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preprocess(im.convert("RGB")) for im in images]).to(self.device)  # (B, 3, H, W)

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> (N, embed_dim) float32, unit L2 norm."""
        out = [self.model.encode_image(self._pixels(images[i : i + _BATCH])) for i in range(0, len(images), _BATCH)]
        return F.normalize(torch.cat(out).float(), dim=-1) if out else torch.empty(0, self.embed_dim)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Strings -> (N, embed_dim) float32, unit L2 norm (long texts are truncated to 77 tokens)."""
        out = [
            self.model.encode_text(self.tokenizer(list(texts[i : i + _BATCH])).to(self.device))
            for i in range(0, len(texts), _BATCH)
        ]
        return F.normalize(torch.cat(out).float(), dim=-1) if out else torch.empty(0, self.embed_dim)


# ---- Whisper's text: special tokens out, and whether a window heard speech ------------------------------------
# Whisper's tokenizer decodes special tokens as text ("<|vi|>" thousands of times on noise reached a transcript).
_SPECIAL_TOKEN = re.compile(r"<\|[^<>|]{0,40}\|>")  # <|vi|>, <|endoftext|>, <|notimestamps|>, <|0.00|>
_TOKEN_FRAGMENT = re.compile(r"<\|[\w.:-]*\|?|\|?[\w.:-]*\|>")  # cut-off pieces: "<|vi", "<|", "vi|>", "|>"

# When a window's transcript is not a usable spoken request. The statistics are those Whisper's decoder reports per
# window (openai-whisper DecodingResult; faster-whisper/CTranslate2 segments carry the same three fields).
# Measured with the packaged Whisper base: 3-10 s pure tones and noise bursts became "you", "I'm", "1.5kg" with
# no-speech probability 0.68-0.78 and mean log-probability -1.65 to -2.38; 48 espeak-ng requests (24 texts from
# "yes" to full sentences, two voices) gave 0.02-0.56 and -0.08 to -1.38 (the one-word "Comedy"), so the
# log-probability alone at Whisper's -1.0 would refuse real short requests.
NO_SPEECH_PROB = 0.6  # Whisper's own no_speech_threshold: above it, and ...
NO_SPEECH_LOGPROB = -1.0  # ... below its logprob_threshold, transcribe() drops the window as silence/noise
MIN_AVG_LOGPROB = -1.5  # below this the words are guesses whatever no_speech_prob says (between -1.38 and -1.65)
MAX_COMPRESSION_RATIO = 2.4  # Whisper's compression_ratio_threshold: a gzip ratio above it is a repetition loop

NO_SPEECH, UNCLEAR, REPETITIVE = "no speech", "unclear", "repetitive"


def strip_special_tokens(text: str) -> str:
    """Whisper's text without any ``<|...|>`` token or stray piece of one, whitespace collapsed."""
    return " ".join(_TOKEN_FRAGMENT.sub(" ", _SPECIAL_TOKEN.sub(" ", text)).split())


@dataclass(frozen=True)
class HeardWindow:
    """What Whisper made of one 30-s window: its cleaned text, decoding statistics and verdict."""

    text: str  # special tokens stripped
    no_speech_prob: float | None  # probability of <|nospeech|> at the first step
    avg_logprob: float | None  # mean log-probability of the text's tokens
    compression_ratio: float | None  # gzip ratio of the text: high means the decoder looped
    problem: str | None  # NO_SPEECH, UNCLEAR, REPETITIVE, or None when the text is usable


def judge_window(result: Any) -> HeardWindow:
    """Classify one decoded window (anything with ``text``, ``no_speech_prob``, ``avg_logprob`` and,
    where available, ``compression_ratio``: a whisper DecodingResult or a faster-whisper Segment)."""
    text = strip_special_tokens(getattr(result, "text", "") or "")
    nsp, lp, cr = (getattr(result, k, None) for k in ("no_speech_prob", "avg_logprob", "compression_ratio"))
    if not text or (nsp is not None and lp is not None and nsp > NO_SPEECH_PROB and lp < NO_SPEECH_LOGPROB):
        problem: str | None = NO_SPEECH
    elif lp is not None and lp < MIN_AVG_LOGPROB:
        problem = UNCLEAR
    elif cr is not None and cr > MAX_COMPRESSION_RATIO:
        problem = REPETITIVE
    else:
        problem = None
    return HeardWindow(text, nsp, lp, cr, problem)


def _stats(w: HeardWindow) -> str:
    parts = []
    if w.no_speech_prob is not None:
        parts.append(f"no-speech probability {w.no_speech_prob:.2f}")
    if w.avg_logprob is not None:
        parts.append(f"mean log-probability {w.avg_logprob:.2f}")
    return ", ".join(parts) or "no words"


def require_speech(heard: Sequence[HeardWindow], name: str) -> str:
    """The transcript of a spoken request, or a one-line :class:`MediaError` saying why there is none.

    Windows with no speech are left out (as Whisper's transcribe() does); nothing left, or nothing left
    after stripping special tokens, is a refusal, and so is any remaining window that is unclear or looped.
    """
    again = "please record again closer to the microphone"
    used = [w for w in heard if w.problem != NO_SPEECH]
    transcript = " ".join(w.text for w in used)
    if not transcript:
        worst = max(heard, key=lambda w: w.no_speech_prob or 0.0, default=None)
        stats = f" ({_stats(worst)})" if worst is not None else ""
        raise MediaError(f"no speech recognised in {name}{stats}; {again}")
    for w in used:
        if w.problem == UNCLEAR:
            raise MediaError(
                f"speech in {name} was not recognised clearly (mean log-probability {w.avg_logprob:.2f}, "
                f"below {MIN_AVG_LOGPROB}); {again}, speaking slowly"
            )
        if w.problem == REPETITIVE:
            raise MediaError(
                f"the transcript of {name} repeats itself (compression ratio {w.compression_ratio:.1f}, "
                f"above {MAX_COMPRESSION_RATIO}), so it is not a reliable request; {again}"
            )
    return transcript


@dataclass
class AudioEncoding:
    transcript: str  # Whisper's text (special tokens stripped) of the windows with speech, joined by spaces
    features: torch.Tensor  # (n_pool, d_audio) encoder states of the real audio, mean-pooled in time
    pooled: torch.Tensor  # (d_audio,) mean of the same states
    language: str | None  # detected or forced language code, e.g. "en"
    seconds_used: float  # audio actually encoded (<= clip duration)
    notes: list[str] = field(default_factory=list)  # clip notes plus what happened here
    heard: list[HeardWindow] = field(default_factory=list)  # per window used: text, statistics, verdict


class AudioEncoder:
    """Frozen Whisper: one encoder pass per 30-s window serves both the features and the transcript.

    ``language=None`` detects the language on multilingual models; English-only models force "en".
    """

    FRAMES_PER_SECOND = 50  # encoder output rate: 100 mel frames/s, conv stride 2

    def __init__(
        self,
        model_name: str = "base",
        device: str | torch.device = "cpu",
        language: str | None = None,
        n_pool: int = 8,
        max_seconds: float = 120.0,
        beam_size: int | None = None,
        prompt: str | None = None,
    ):
        self.model = load_packaged_whisper(model_name, device).requires_grad_(False)
        if not self.model.is_multilingual:
            if language not in (None, "en"):
                raise ValueError(f"Whisper {model_name} is English-only; language {language!r} is not possible")
            language = "en"
        self.model_name, self.language, self.n_pool, self.max_seconds = model_name, language, n_pool, max_seconds
        self.beam_size, self.prompt = beam_size, prompt
        self.device = torch.device(device)

    @property
    def d_audio(self) -> int:
        return self.model.dims.n_audio_state

    def _select_windows(self, clip: AudioClip, notes: list[str]) -> list[np.ndarray]:
        wins = windows(clip)
        limit = max(1, int(self.max_seconds // 30))
        if len(wins) > limit:
            notes.append(f"only the first {limit * 30} s of {clip.duration_s:.0f} s were used")
            wins = wins[:limit]
        # Whisper invents text for near-empty input: drop silent windows and a sub-second tail.
        kept = [w for w in wins if float(np.sqrt(np.mean(np.square(w)))) >= SILENCE_RMS]
        if len(kept) > 1 and len(kept[-1]) < SAMPLE_RATE:
            kept = kept[:-1]
        if len(kept) < len(wins):
            notes.append(f"{len(wins) - len(kept)} silent or sub-second window(s) skipped")
        return kept or wins[:1]

    def _mel(self, window: np.ndarray) -> torch.Tensor:
        """(n,) samples -> (n_mels, 3000) log-mel, zero-padded in the mel domain like transcribe().

        Padding the waveform with silence instead changes the padded frames' values and measurably
        hurts transcripts (an espeak "thriller set in space" became "Freelapse at InPace").
        """
        import whisper

        n_frames = len(window) // whisper.audio.HOP_LENGTH
        mel = whisper.log_mel_spectrogram(
            torch.from_numpy(window), self.model.dims.n_mels, padding=whisper.audio.N_SAMPLES
        )
        return whisper.pad_or_trim(mel[:, :n_frames], whisper.audio.N_FRAMES)

    def _states(self, clip: AudioClip, notes: list[str]) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
        """(windows used, encoder output (W, 1500, d), states of the real audio only (T, d))."""
        assert clip.sample_rate == SAMPLE_RATE, clip.sample_rate
        wins = self._select_windows(clip, notes)
        mel = torch.stack([self._mel(w) for w in wins]).to(self.device)  # (W, n_mels, 3000)
        # Batches of 4 bound attention memory (W x heads x 1500^2 floats per layer).
        feats = torch.cat([self.model.encoder(mel[i : i + 4]) for i in range(0, len(wins), 4)])  # (W, 1500, d)
        n_ctx = self.model.dims.n_audio_ctx
        n_frames = [min(n_ctx, math.ceil(len(w) / SAMPLE_RATE * self.FRAMES_PER_SECOND)) for w in wins]
        hidden = torch.cat([f[:n] for f, n in zip(feats, n_frames, strict=True)]).float()  # (T, d)
        return wins, feats, hidden

    def _pool(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool1d(hidden.T.unsqueeze(0), self.n_pool)[0].T  # (n_pool, d)

    @torch.no_grad()
    def features(self, clip: AudioClip) -> torch.Tensor:
        """(n_pool, d_audio) pooled encoder states, as ``encode`` gives them, without transcribing."""
        return self._pool(self._states(clip, list(clip.notes))[2])

    @torch.no_grad()
    def encode(self, clip: AudioClip) -> AudioEncoding:
        """Transcribe and embed a clip; features (n_pool, d_audio) exclude Whisper's zero padding."""
        import whisper

        notes = list(clip.notes)
        wins, feats, hidden = self._states(clip, notes)
        tokenizer = whisper.tokenizer.get_tokenizer(
            self.model.is_multilingual,
            num_languages=self.model.num_languages,
            language=self.language,
            task="transcribe",
        )
        options = whisper.DecodingOptions(
            task="transcribe",
            language=self.language,
            temperature=0.0,
            beam_size=self.beam_size,
            prompt=self.prompt,
            without_timestamps=True,
            fp16=False,
            # Language and <|notimestamps|> tokens are never text, but decode() does not suppress them: on noise
            # the decoder can loop on "<|vi|>" for its whole token budget. -1 keeps Whisper's default list.
            suppress_tokens=[-1, *tokenizer.all_language_tokens, tokenizer.no_timestamps],
        )
        # decode() skips the encoder when given (.., n_audio_ctx, n_audio_state) features.
        results = whisper.decode(self.model, feats, options)
        heard = [judge_window(r) for r in results]
        for i, w in enumerate(heard):
            if w.problem == NO_SPEECH:
                notes.append(f"window {i + 1}: no speech recognised, left out of the transcript")
            elif w.problem == UNCLEAR:
                notes.append(f"window {i + 1}: unclear speech, transcript may be wrong")
            elif w.problem == REPETITIVE:
                notes.append(f"window {i + 1}: repetitive transcript, may be unreliable")
        languages = Counter(r.language for r in results)
        return AudioEncoding(
            transcript=" ".join(w.text for w in heard if w.problem != NO_SPEECH),
            features=self._pool(hidden),
            pooled=hidden.mean(0),
            language=languages.most_common(1)[0][0] if languages else self.language,
            seconds_used=sum(len(w) for w in wins) / SAMPLE_RATE,
            notes=notes,
            heard=heard,
        )
