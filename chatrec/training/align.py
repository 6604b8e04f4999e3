"""Projector alignment, caption-style (LLaVA's first stage): only a projector learns, so that the frozen
LM, reading its soft tokens, says an item's text. Images via CLIP text embeddings plus noise (CapDec),
audio via Whisper states of item texts spoken by espeak-ng.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict
from pathlib import Path

import torch

from ..adapter import EncoderSpec
from ..config import Config
from ..model import ChatLM, SoftInputs
from ..projector import build_projector
from ..prompting import AUDIO, IMAGE, clean
from .batches import collate_text
from .losses import token_loss

log = logging.getLogger(__name__)


def align(cfg: Config, lm: ChatLM, kind: str, proj, inputs: list[torch.Tensor], prompt: str,
           targets: list[str], noise: float = 0.0) -> dict:
    """Caption-style alignment (LLaVA stage 1): only ``proj`` learns to turn ``inputs[i]`` into soft
    tokens from which the frozen LM reads ``targets[i]``.

    The last tenth of the inputs (at least one) is held out: its loss with its own input next to the loss
    with another held-out input's says whether the soft tokens carry what is specific to an item.
    """
    from tqdm import tqdm

    def media(vectors: list[torch.Tensor]) -> list[SoftInputs]:
        return [SoftInputs(image=[v]) if kind == "image" else SoftInputs(audio=[v]) for v in vectors]

    def noisy(v: torch.Tensor) -> torch.Tensor:  # CLIP space: noise on the unit sphere; none for audio
        return torch.nn.functional.normalize(v + noise * torch.randn_like(v), dim=-1) if noise else v

    n_hold = max(1, len(inputs) // 10) if len(inputs) > 1 else 0
    train_ids = list(range(len(inputs) - n_hold))
    held = list(range(len(inputs) - n_hold, len(inputs)))
    probe = train_ids[:: max(1, len(train_ids) // 32)]  # a fixed sample of training items, measured before and after

    @torch.no_grad()
    def mean_loss(ids: list[int], shift: int = 0) -> float:
        """Mean caption loss of items ``ids``, each given the input of the item ``shift`` places further on."""
        was_training = lm.training
        lm.eval()  # no dropout: the same number before and after
        loss = sum(token_loss(lm, collate_text(lm, [prompt], [targets[i]], media([inputs[ids[(n + shift) % len(ids)]]])))[0]
                   .item() for n, i in enumerate(ids)) / len(ids)
        lm.train(was_training)
        return loss

    lm.projectors[kind] = proj
    before = mean_loss(probe)
    frozen = [p for p in lm.parameters() if p.requires_grad and all(p is not q for q in proj.parameters())]
    for p in frozen:  # the LoRA stays as it is: only the projector moves
        p.requires_grad_(False)
    opt = torch.optim.AdamW(proj.parameters(), lr=cfg.train.align_lr)
    rng = random.Random(f"{cfg.seed}:align:{kind}")
    bar = tqdm(range(cfg.train.align_steps), desc=f"align {kind} projector", unit="step")
    for _ in bar:
        batch = [rng.choice(train_ids) for _ in range(cfg.train.batch_size)]
        loss, _ = token_loss(lm, collate_text(lm, [prompt] * len(batch), [targets[i] for i in batch],
                                              media([noisy(inputs[i]) for i in batch])))
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    for p in frozen:
        p.requires_grad_(True)
    note = {"kind": kind, "steps": cfg.train.align_steps, "items": len(train_ids), "held_out": len(held),
            "train_loss_before": round(before, 3), "train_loss_after": round(mean_loss(probe), 3)}
    if len(held) > 1:
        note |= {"held_out_loss": round(mean_loss(held), 3), "held_out_loss_other_input": round(mean_loss(held, 1), 3)}
    log.info("%s alignment: %s", kind, note)
    return note


def align_image_projector(cfg: Config, lm: ChatLM, catalog, device: torch.device) -> dict | None:
    """Train an image projector on CLIP *text* embeddings of items (+ noise) -> the item's description.

    CLIP puts images and their captions close together, so a projector trained on noisy caption
    embeddings transfers to image embeddings (text-only training of a vision bridge, as in CapDec,
    Nukrai et al. 2022). Only with real CLIP weights: random weights would teach nothing.
    Returns the manifest note, or None when not trained.
    """
    if not cfg.media.clip_pretrained:
        log.warning("image projector NOT trained: no CLIP weights given (set media.clip_pretrained to a local checkpoint)")
        return None
    from ..media.encoders import ImageEncoder

    enc = ImageEncoder(cfg.media.clip_model, cfg.media.clip_pretrained, device=device, allow_random=True)
    if not enc.has_real_weights:
        log.warning("image projector NOT trained: %s", enc.missing_reason)
        return None
    items = list(catalog)
    vectors = enc.encode_texts([it.text() for it in items]).to(device)  # (N, D)
    proj = build_projector(cfg.train.image_projector, enc.embed_dim, lm.hidden_size, cfg.media.image_tokens).to(device)
    note = align(cfg, lm, "image", proj, [v.unsqueeze(0) for v in vectors], f"User: {IMAGE} What film is this?\nAssistant:",
                  [caption(it) for it in items], noise=cfg.train.align_noise)
    return note | {"encoder": asdict(EncoderSpec(cfg.media.clip_model, weights=cfg.media.clip_pretrained))}


def caption(item) -> str:
    return f" {clean(item.title, 120)}: {clean(item.description, 300)}\n"


def spoken_text(item) -> str:
    """What espeak-ng says for an item: title and description, about 15 s of speech at most."""
    return clean(f"{item.title}. {item.description}", 300)


def spoken_features(cfg: Config, items: list, home: Path) -> torch.Tensor:
    """(N, audio_tokens, d_audio) Whisper states of each item's spoken text, cached by content hash.

    Features are what inference feeds the projector (``AudioEncoder.features`` = pooled states of
    ``AudioEncoder.encode``), from the packaged Whisper named by ``media.whisper``.
    """
    import hashlib
    import tempfile

    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from ..media.audio import load_audio, speak
    from ..media.encoders import AudioEncoder

    texts = [spoken_text(it) for it in items]
    key = hashlib.sha256(json.dumps([cfg.media.whisper, cfg.media.audio_tokens, texts]).encode()).hexdigest()[:16]
    cache = home / "audio_align" / f"{key}.safetensors"
    if cache.is_file():
        return load_file(str(cache))["features"]
    enc = AudioEncoder(cfg.media.whisper, n_pool=cfg.media.audio_tokens)
    feats = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(tqdm(texts, desc=f"speak + encode (whisper {cfg.media.whisper})", unit="item")):
            feats.append(enc.features(load_audio(speak(text, Path(tmp) / f"{i}.wav"))))
    out = torch.stack(feats)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"features": out.contiguous()}, str(cache))
    return out


def align_audio_projector(cfg: Config, lm: ChatLM, catalog, device: torch.device, home: Path) -> dict | None:
    """Train an audio projector on Whisper states of item descriptions spoken by espeak-ng -> those words.

    The same caption-style alignment as for images, with synthetic speech in place of captioned
    pictures. Returns the manifest note, or None when ``train_audio`` is off.
    """
    if not cfg.train.train_audio:
        return None
    items = list(catalog)[: cfg.train.audio_items or None]
    feats = spoken_features(cfg, items, home).to(device)  # (N, M, D)
    proj = build_projector(cfg.train.audio_projector, feats.shape[-1], lm.hidden_size, 1).to(device)
    note = align(cfg, lm, "audio", proj, list(feats), f"User: {AUDIO} What did I just say?\nAssistant:",
                  [f" {spoken_text(it)}\n" for it in items])
    return note | {"encoder": asdict(EncoderSpec.whisper(cfg.media.whisper, cfg.media.audio_tokens))}
