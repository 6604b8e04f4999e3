"""Attachments of a turn: image and audio reach the model as text for retrieval and as soft tokens.

Nothing untrained shapes an answer: an image is used only with real CLIP weights, and soft tokens
only when the loaded adapter holds a trained projector for that modality. Whatever is left out is
named in the answer's notes, with what to do about it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import torch

from ..catalog import Catalog
from ..config import MediaConfig
from ..model import SoftInputs
from .audio import load_audio
from .encoders import AudioEncoder, ImageEncoder, MissingWeightsError, require_speech
from .files import MediaError, shown_name
from .images import load_image

log = logging.getLogger(__name__)


@dataclass
class Attachments:
    """What one turn's image and audio gave the pipeline."""

    heard: str = ""  # the audio's transcript ("" without audio)
    soft: SoftInputs = field(default_factory=SoftInputs)  # encoder vectors for trained projectors only
    extra_scores: dict[str, float] = field(default_factory=dict)  # item id -> fused-score bonus (image/audio match)
    understood: dict = field(default_factory=dict)  # transcript, image neighbours: shown to the user
    notes: list[str] = field(default_factory=list)  # inputs not in use, and why


class MediaInputs:
    """Lazily built encoders and item indexes for one catalog."""

    def __init__(self, catalog: Catalog, cfg: MediaConfig, rrf_k: int, projectors: Collection[str],
                 image_encoder: ImageEncoder | None = None):
        self.catalog = catalog
        self.cfg = cfg
        self.rrf_k = rrf_k  # the fusion constant: attachment matches score on the text fusion's scale
        self.projectors = projectors  # kinds with a trained projector (the LM's own collection: stays current)
        self._image: ImageEncoder | None = image_encoder  # None: built from cfg at the first image
        self._image_missing: str | None = None
        self._audio: AudioEncoder | None = None
        self._item_clip: np.ndarray | None = None  # (N, D_clip)
        self._item_audio: tuple[list[int], np.ndarray] | None = None  # positions, (n, D_audio)

    # ---- encoders ------------------------------------------------------------------------------

    def image_encoder(self) -> ImageEncoder | None:
        if self._image is None and self._image_missing is None:
            try:
                self._image = ImageEncoder(self.cfg.clip_model, self.cfg.clip_pretrained)
            except MissingWeightsError as e:
                self._image_missing = str(e)
        return self._image

    def audio_encoder(self) -> AudioEncoder:
        if self._audio is None:
            self._audio = AudioEncoder(self.cfg.whisper, n_pool=self.cfg.audio_tokens, max_seconds=self.cfg.max_audio_seconds)
        return self._audio

    def item_clip_vectors(self) -> np.ndarray:
        """(N, D) CLIP embeddings: of the item's image where it has one, else of its title and description."""
        if self._item_clip is None:
            enc = self.image_encoder()
            assert enc is not None
            catalog = self.catalog
            texts = enc.encode_texts([f"{it.title}. {it.description}" for it in catalog]).cpu().numpy()
            for pos, it in enumerate(catalog):
                if it.image:
                    try:
                        texts[pos] = enc.encode_images([load_image(it.image).image])[0].cpu().numpy()
                    except MediaError as e:
                        log.warning("item %s: image not indexed (%s)", it.id, e)
            self._item_clip = texts
        return self._item_clip

    def item_audio_vectors(self) -> tuple[list[int], np.ndarray]:
        """Pooled Whisper states of items that have an audio clip."""
        if self._item_audio is None:
            positions, vecs = [], []
            for pos, it in enumerate(self.catalog):
                if it.audio:
                    try:
                        enc = self.audio_encoder().encode(load_audio(it.audio))
                    except MediaError as e:
                        log.warning("item %s: audio not indexed (%s)", it.id, e)
                        continue
                    positions.append(pos)
                    vecs.append(torch.nn.functional.normalize(enc.pooled, dim=-1).numpy())
            self._item_audio = (positions, np.stack(vecs) if vecs else np.zeros((0, 1), np.float32))
        return self._item_audio

    # ---- one turn ------------------------------------------------------------------------------

    def _bonus(self, scores: np.ndarray, positions: list[int] | None, extra: dict[str, float], k: int = 20) -> list[str]:
        """Add a reciprocal-rank bonus (same scale as text fusion) for the top-k items; return their titles."""
        order = np.argsort(-scores)[:k]
        titles = []
        for rank, j in enumerate(order, 1):
            pos = positions[j] if positions is not None else int(j)
            item = self.catalog[pos]
            extra[item.id] = extra.get(item.id, 0.0) + 1.0 / (self.rrf_k + rank)
            titles.append(item.title)
        return titles

    def prepare(self, image: str | None, audio: str | None) -> Attachments:
        """Load and encode attachments. Raises MediaError for unusable files before anything else changes."""
        loaded_image = load_image(image, max_megapixels=self.cfg.max_image_megapixels) if image else None
        clip = (load_audio(audio, max_seconds=self.cfg.max_audio_seconds, setting="media.max_audio_seconds")
                if audio else None)
        out = Attachments()
        if loaded_image is not None:
            out.notes.extend(loaded_image.notes)
            enc = self.image_encoder()
            if enc is None:
                out.notes.append(f"image not used: {self._image_missing}")
            else:
                vec = enc.encode_images([loaded_image.image])  # (1, D)
                scores = self.item_clip_vectors() @ vec[0].cpu().numpy()
                out.understood["image_neighbours"] = self._bonus(scores, None, out.extra_scores)[:3]
                if "image" in self.projectors:
                    out.soft.image.append(vec)
                else:
                    out.notes.append("image used for retrieval only: the adapter has no trained image projector")
        if clip is not None:
            encoding = self.audio_encoder().encode(clip)
            # No speech, unclear or looping transcripts are refused (one line, naming the file by its base name).
            out.heard = require_speech(encoding.heard, shown_name(audio))
            out.notes.extend(encoding.notes)
            out.understood["transcript"] = out.heard
            positions, vecs = self.item_audio_vectors()
            if positions:
                q = torch.nn.functional.normalize(encoding.pooled, dim=-1).numpy()
                self._bonus(vecs @ q, positions, out.extra_scores)
            if "audio" in self.projectors:
                out.soft.audio.append(encoding.features)
            else:
                out.notes.append("audio used as its transcript only: the adapter has no audio projector trained on "
                                 f"whisper-{self.cfg.whisper} states")
        return out
