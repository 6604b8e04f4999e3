"""Attachments of a turn: image and audio reach the model as text for retrieval and as soft tokens.

Nothing untrained shapes an answer: an image is used only with real CLIP weights, and soft tokens
only when the loaded adapter holds a trained projector for that modality. Whatever is left out is
named in the answer's notes, with what to do about it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .audio import load_audio
from .encoders import AudioEncoder, ImageEncoder, MissingWeightsError
from .media import MediaError, load_image
from .model import Media

log = logging.getLogger(__name__)


class MultimodalInputs:
    """Lazily built encoders and item indexes for one Recommender."""

    def __init__(self, rec):
        self.rec = rec
        self.cfg = rec.cfg.media
        self._image: ImageEncoder | None = None
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
            catalog = self.rec.catalog
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
            for pos, it in enumerate(self.rec.catalog):
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
            item = self.rec.catalog[pos]
            extra[item.id] = extra.get(item.id, 0.0) + 1.0 / (self.rec.cfg.retrieval.rrf_k + rank)
            titles.append(item.title)
        return titles

    def prepare(self, image: str | None, audio: str | None, media: Media, extra: dict[str, float],
                understood: dict, notes: list[str]) -> str:
        """Load and encode attachments; fill media (soft tokens), extra (retrieval scores). Returns heard text.

        Raises MediaError for unusable files before anything else changes.
        """
        loaded_image = load_image(image, max_megapixels=self.cfg.max_image_megapixels) if image else None
        clip = load_audio(audio, max_seconds=self.cfg.max_audio_seconds) if audio else None
        heard = ""
        if loaded_image is not None:
            notes.extend(loaded_image.notes)
            enc = self.image_encoder()
            if enc is None:
                notes.append(f"image not used: {self._image_missing}")
            else:
                vec = enc.encode_images([loaded_image.image])  # (1, D)
                understood["image_neighbours"] = self._bonus(self.item_clip_vectors() @ vec[0].cpu().numpy(), None, extra)[:3]
                if self._has_projector("image"):
                    media.image.append(vec)
                else:
                    notes.append("image used for retrieval only: the adapter has no trained image projector")
        if clip is not None:
            enc_a = self.audio_encoder()
            encoding = enc_a.encode(clip)
            notes.extend(encoding.notes)
            heard = encoding.transcript.strip()
            if not heard:
                raise MediaError(f"{audio}: no speech was recognised in the audio")
            understood["transcript"] = heard
            positions, vecs = self.item_audio_vectors()
            if positions:
                q = torch.nn.functional.normalize(encoding.pooled, dim=-1).numpy()
                self._bonus(vecs @ q, positions, extra)
            if self._has_projector("audio"):
                media.audio.append(encoding.features)
            else:
                notes.append("audio used as its transcript only: the adapter has no audio projector trained on "
                             f"whisper-{self.cfg.whisper} states")
        return heard

    def _has_projector(self, kind: str) -> bool:
        lm = self.rec.lm
        return lm is not None and kind in lm.projectors

