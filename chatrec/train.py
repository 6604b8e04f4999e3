"""LoRA fine-tuning of the per-candidate ranking scores and grounded reasons, after projector alignment.

``chatrec train --config configs/train_default.toml [--set key=value] [--out DIR] [--resume]``

Every input is checked before the first step: config keys, data files, the resume checkpoint (base
model hash, prompts hash, readable safetensors) and 4-bit support. The data order is a function of
(seed, step), so ``--resume`` continues the same run. Nothing here uses pickles: LoRA, projectors and
optimizer moments are safetensors, the rest JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
import torch

from .adapter import AdapterError, Manifest, check_compatible, read_manifest, save_adapter
from .config import PACKAGED_EMBEDDER, PACKAGED_LLM, Config, ConfigError, RetrievalConfig
from .data import (
    Examples,
    build_examples,
    collate_rank,
    collate_reasons,
    collate_text,
    rank_loss,
    text_only,
    token_loss,
)
from .model import ChatLM, Media
from .prompting import AUDIO, IMAGE, clean, templates_hash

log = logging.getLogger(__name__)


class TrainError(ConfigError):
    """Input that training cannot use; a ConfigError so the CLI reports it without a traceback."""


@dataclass(frozen=True)
class TrainConfig:
    llm: str = PACKAGED_LLM  # base causal LM: packaged default, HF id or local directory
    embedder: str = PACKAGED_EMBEDDER  # sentence embedder for retrieval (as at inference)
    catalog: str = ""  # catalog file; "" = the packaged demo films
    train_dialogues: str = ""  # dialogue JSONL; "" = packaged train split
    val_dialogues: str = ""  # dialogue JSONL; "" = packaged val split
    out: str = "adapters/trained"  # output bundle directory (checkpoints go to out/checkpoints)
    data_dir: str = ""  # caches (dequantised LLM, embeddings); "" = $CHATREC_CACHE or ~/.cache/chatrec
    n_candidates: int = RetrievalConfig.n_candidates  # candidates per rank prompt, as at inference
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scale numerator (scale = alpha / r)
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # module names to wrap
    lora_layers: int = 0  # LoRA on the top N decoder layers only (no backward through the rest); 0 = all
    lr: float = 2e-4  # AdamW peak learning rate (LoRA and projectors)
    warmup_steps: int = 0  # linear warm-up, then linear decay to 0 at the last step
    weight_decay: float = 0.0
    epochs: int = 1  # used when max_steps is 0
    max_steps: int = 0  # optimizer steps; 0 = epochs over the examples
    batch_size: int = 1  # examples per micro-batch (each gives a rank and a reason sequence)
    grad_accum: int = 4  # micro-batches per optimizer step
    gradient_checkpointing: bool = True  # recompute activations: less memory, ~30% more time
    max_examples: int = 2000  # training turns used; 0 = all
    max_val_examples: int = 60  # validation turns for the final recall@k; 0 = all
    eval_every: int = 0  # optimizer steps between quick validation runs; 0 = only at the end
    eval_examples: int = 20  # validation turns in the quick runs
    checkpoint_every: int = 50  # optimizer steps between checkpoints; 0 = none
    seed: int = 0
    init_adapter: str = ""  # start the LoRA from this bundle's weights (same base and LoRA shape); "" = fresh
    reason_weight: float = 0.5  # weight of the reason loss next to the rank loss
    reason_every: int = 1  # reason loss on every Nth micro-batch (reasons are easier to learn than ranking)
    load_in_4bit: bool = False  # QLoRA via bitsandbytes; CUDA only
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    image_projector: str = "mlp2x_gelu"  # projector kind for the image alignment step
    image_tokens: int = 4  # soft tokens per image
    clip_model: str = "ViT-B-32"  # open_clip architecture
    clip_pretrained: str = ""  # local CLIP weights; "" = no real weights, image projector not trained
    align_steps: int = 200  # alignment steps per projector (image: only with real CLIP weights)
    align_lr: float = 1e-3  # AdamW learning rate of the alignment steps (projector only)
    align_noise: float = 0.1  # gaussian noise on CLIP text embeddings, bridging the text-image gap
    train_audio: bool = False  # align an audio projector on item descriptions spoken by espeak-ng
    whisper: str = "base"  # packaged Whisper for the audio projector; inference must use the same (media.whisper)
    audio_projector: str = "mlp2x_gelu"  # projector kind for the audio alignment step
    audio_tokens: int = 4  # soft tokens per audio clip (pooled Whisper states), as media.audio_tokens
    audio_items: int = 0  # catalog items spoken for the audio alignment; 0 = all
    tune: bool = True  # dialogue tuning after alignment; false = align projectors only (the LoRA stays as loaded)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


def _coerce(key: str, value: Any, tp: Any) -> Any:
    if isinstance(value, str) and tp is not str:
        try:  # --set values are TOML literals when they parse as one ("3", "true", "['q_proj']")
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    if typing.get_origin(tp) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
            raise TrainError(f"config key {key!r} expects a list of strings, got {value!r}")
        return tuple(x.strip() for x in items if x.strip())
    if tp is bool and not isinstance(value, bool):
        raise TrainError(f"config key {key!r} expects true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TrainError(f"config key {key!r} expects an integer, got {value!r}")
    if tp is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise TrainError(f"config key {key!r} expects a number, got {value!r}")
    if tp is str and not isinstance(value, str):
        raise TrainError(f"config key {key!r} expects a string, got {value!r}")
    return float(value) if tp is float else value


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """TrainConfig from a flat TOML file plus ``key=value`` overrides; unknown keys are errors."""
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise TrainError(f"{path}: cannot read training config ({e.strerror})") from None
        except tomllib.TOMLDecodeError as e:
            raise TrainError(f"{path}: not valid TOML: {e}") from None
    for o in overrides or []:
        if "=" not in o:
            raise TrainError(f"override {o!r} must look like key=value")
        k, v = o.split("=", 1)
        data[k.strip()] = v.strip()
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise TrainError(f"unknown training config key(s) {unknown}; valid: {sorted(hints)}")
    cfg = TrainConfig(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})
    for key in ("batch_size", "grad_accum", "epochs", "lora_r", "reason_every", "image_tokens", "audio_tokens"):
        if getattr(cfg, key) < 1:
            raise TrainError(f"{key} must be at least 1")
    if not 1 <= cfg.n_candidates <= 26:
        raise TrainError("n_candidates must be between 1 and 26 (one letter label each)")
    return cfg


# ---- inputs, checked before anything is loaded ---------------------------------------------------

def _dialogue_path(value: str, split: str) -> Path:
    p = Path(value) if value else Path(__file__).parent / "data" / "dialogues" / f"{split}.jsonl"
    if not p.is_file():
        raise TrainError(f"{split} dialogues not found: {p}")
    return p


def _check_4bit(cfg: TrainConfig) -> None:
    if cfg.load_in_4bit and not torch.cuda.is_available():
        raise TrainError("--load-in-4bit (QLoRA) needs a CUDA GPU; bitsandbytes 4-bit training does not run on "
                         "this CPU. Train without it (LoRA in float32).")


def _check_audio(cfg: TrainConfig) -> None:
    if not cfg.train_audio:
        return
    import shutil

    from .whisper_ct2 import PACKAGED

    if cfg.whisper not in PACKAGED:
        raise TrainError(f"whisper={cfg.whisper!r} is not a packaged Whisper; choices: {sorted(PACKAGED)}")
    if shutil.which("espeak-ng") is None:
        raise TrainError("train_audio needs espeak-ng to speak the item descriptions (Debian: apt-get install "
                         "espeak-ng); install it or set train_audio=false")


def last_checkpoint(out: Path) -> Path | None:
    steps = sorted((int(p.name.split("-")[1]), p) for p in (out / "checkpoints").glob("step-*")
                   if p.name.split("-")[1].isdigit() and (p / "state.json").is_file())
    return steps[-1][1] if steps else None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError, ValueError) as e:
        raise TrainError(f"{path}: corrupted or unreadable safetensors file ({e})") from None


def check_checkpoint(path: Path, identity: str) -> dict:
    """Validate a resume checkpoint fully (hashes, JSON, tensors) and return its state."""
    try:
        check_compatible(read_manifest(path), identity, path)
    except AdapterError as e:
        raise TrainError(str(e)) from None
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TrainError(f"{path / 'state.json'}: unreadable checkpoint state ({e})") from None
    for name in ("adapter_model.safetensors", "optimizer.safetensors"):
        _read_safetensors(path / name)
    if (path / "projectors.safetensors").exists():
        _read_safetensors(path / "projectors.safetensors")
    return state


# ---- model -------------------------------------------------------------------------------------

def load_base(cfg: TrainConfig, home: Path):
    """(tokenizer, causal LM, identity); 4-bit via bitsandbytes when asked (CUDA checked before)."""
    from .packaged import load_llm, resolve_llm

    if not cfg.load_in_4bit:
        return load_llm(cfg.llm, home, "float32", "cpu")
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    path, identity = resolve_llm(cfg.llm, home)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                               bnb_4bit_use_double_quant=True)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, device_map={"": 0})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return tok, model, identity


def build_model(cfg: TrainConfig, home: Path) -> ChatLM:
    from peft import LoraConfig, get_peft_model

    tok, base, identity = load_base(cfg, home)
    base.config.use_cache = False
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing needs no requires_grad on inputs_embeds (we feed embeds, not ids).
        kwargs = {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    n_layers = base.config.get_text_config().num_hidden_layers
    if cfg.lora_layers > n_layers:
        raise TrainError(f"lora_layers={cfg.lora_layers} but the base model has {n_layers} layers")
    top = list(range(n_layers - cfg.lora_layers, n_layers)) if cfg.lora_layers else None
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), layers_to_transform=top, task_type="CAUSAL_LM")
    model = get_peft_model(base, lora)
    return ChatLM(tok, model, identity)


# ---- data order ----------------------------------------------------------------------------------

def batch_indices(micro: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Example indices of micro-batch ``micro``: a per-epoch permutation seeded by (seed, epoch).

    A pure function of the micro-batch number, so a resumed run sees the same data in the same order.
    """
    per_epoch = max(1, n // batch_size)  # the ragged tail of an epoch is dropped
    epoch, k = divmod(micro, per_epoch)
    order = list(range(n))
    random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
    return order[k * batch_size:(k + 1) * batch_size]


def hash_seed(seed: int, step: int) -> int:
    return random.Random(f"{seed}:step:{step}").getrandbits(63)


def lr_at(cfg: TrainConfig, step: int, steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): warm-up, then linear decay; resume-safe."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * max(0.0, steps - step) / max(1, steps - cfg.warmup_steps)


def total_steps(cfg: TrainConfig, n: int) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    return max(1, cfg.epochs * max(1, n // cfg.batch_size) // cfg.grad_accum)


# ---- evaluation ----------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(lm: ChatLM, examples: Examples) -> dict[str, float]:
    """Recall@1/5 of the LLM label ranking over retrieval's candidates, plus retrieval's own recall.

    Examples are built with ``train=False``: candidates in retrieval order, no inserted ground truth,
    exactly what inference ranks. A turn whose ground truth retrieval missed counts as a miss.
    """
    was_training = lm.training
    lm.eval()
    hits = {"recall@1": 0, "recall@5": 0, "retrieval_recall@1": 0, "retrieval_recall@5": 0, "candidates_recall": 0}
    for ex in examples.rank:
        if ex.label < 0 or not ex.candidates:
            continue
        order = torch.argsort(lm.rank(ex.prompt, ex.n_labels), descending=True).tolist()
        pos = order.index(ex.label)
        hits["recall@1"] += pos < 1
        hits["recall@5"] += pos < 5
        hits["retrieval_recall@1"] += ex.label < 1
        hits["retrieval_recall@5"] += ex.label < 5
        hits["candidates_recall"] += 1
    lm.train(was_training)
    n = max(1, len(examples.rank))
    return {k: v / n for k, v in hits.items()} | {"n": len(examples.rank)}


# ---- projector alignment -------------------------------------------------------------------------

def _align(cfg: TrainConfig, lm: ChatLM, kind: str, proj, inputs: list[torch.Tensor], prompt: str,
           targets: list[str], noise: float = 0.0) -> dict:
    """Caption-style alignment (LLaVA stage 1): only ``proj`` learns to turn ``inputs[i]`` into soft
    tokens from which the frozen LM reads ``targets[i]``.

    The last tenth of the inputs (at least one) is held out: its loss with its own input next to the loss
    with another held-out input's says whether the soft tokens carry what is specific to an item.
    """
    from tqdm import tqdm

    def media(vectors: list[torch.Tensor]) -> list[Media]:
        return [Media(image=[v]) if kind == "image" else Media(audio=[v]) for v in vectors]

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
    opt = torch.optim.AdamW(proj.parameters(), lr=cfg.align_lr)
    rng = random.Random(f"{cfg.seed}:align:{kind}")
    bar = tqdm(range(cfg.align_steps), desc=f"align {kind} projector", unit="step")
    for _ in bar:
        batch = [rng.choice(train_ids) for _ in range(cfg.batch_size)]
        loss, _ = token_loss(lm, collate_text(lm, [prompt] * len(batch), [targets[i] for i in batch],
                                              media([noisy(inputs[i]) for i in batch])))
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    for p in frozen:
        p.requires_grad_(True)
    note = {"kind": kind, "steps": cfg.align_steps, "items": len(train_ids), "held_out": len(held),
            "train_loss_before": round(before, 3), "train_loss_after": round(mean_loss(probe), 3)}
    if len(held) > 1:
        note |= {"held_out_loss": round(mean_loss(held), 3), "held_out_loss_other_input": round(mean_loss(held, 1), 3)}
    log.info("%s alignment: %s", kind, note)
    return note


def align_image_projector(cfg: TrainConfig, lm: ChatLM, catalog, device: torch.device) -> dict | None:
    """Train an image projector on CLIP *text* embeddings of items (+ noise) -> the item's description.

    CLIP puts images and their captions close together, so a projector trained on noisy caption
    embeddings transfers to image embeddings (text-only training of a vision bridge, as in CapDec,
    Nukrai et al. 2022). Only with real CLIP weights: random weights would teach nothing.
    Returns the manifest note, or None when not trained.
    """
    if not cfg.clip_pretrained:
        log.warning("image projector NOT trained: no CLIP weights given (set clip_pretrained to a local checkpoint)")
        return None
    from .encoders import ImageEncoder
    from .projector import build_projector

    enc = ImageEncoder(cfg.clip_model, cfg.clip_pretrained, device=device, allow_random=True)
    if not enc.has_real_weights:
        log.warning("image projector NOT trained: %s", enc.missing_reason)
        return None
    items = list(catalog)
    vectors = enc.encode_texts([it.text() for it in items]).to(device)  # (N, D)
    proj = build_projector(cfg.image_projector, enc.embed_dim, lm.hidden_size, cfg.image_tokens).to(device)
    note = _align(cfg, lm, "image", proj, [v.unsqueeze(0) for v in vectors], f"User: {IMAGE} What film is this?\nAssistant:",
                  [_caption(it) for it in items], noise=cfg.align_noise)
    return note | {"encoder": f"{cfg.clip_model}:{cfg.clip_pretrained}"}


def _caption(item) -> str:
    return f" {clean(item.title, 120)}: {clean(item.description, 300)}\n"


def spoken_text(item) -> str:
    """What espeak-ng says for an item: title and description, about 15 s of speech at most."""
    return clean(f"{item.title}. {item.description}", 300)


def spoken_features(cfg: TrainConfig, items: list, home: Path) -> torch.Tensor:
    """(N, audio_tokens, d_audio) Whisper states of each item's spoken text, cached by content hash.

    Features are what inference feeds the projector (``AudioEncoder.features`` = pooled states of
    ``AudioEncoder.encode``), from the packaged Whisper named by ``cfg.whisper``.
    """
    import hashlib
    import tempfile

    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from .audio import load_audio, speak
    from .encoders import AudioEncoder

    texts = [spoken_text(it) for it in items]
    key = hashlib.sha256(json.dumps([cfg.whisper, cfg.audio_tokens, texts]).encode()).hexdigest()[:16]
    cache = home / "audio_align" / f"{key}.safetensors"
    if cache.is_file():
        return load_file(str(cache))["features"]
    enc = AudioEncoder(cfg.whisper, n_pool=cfg.audio_tokens)
    feats = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(tqdm(texts, desc=f"speak + encode (whisper {cfg.whisper})", unit="item")):
            feats.append(enc.features(load_audio(speak(text, Path(tmp) / f"{i}.wav"))))
    out = torch.stack(feats)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"features": out.contiguous()}, str(cache))
    return out


def align_audio_projector(cfg: TrainConfig, lm: ChatLM, catalog, device: torch.device, home: Path) -> dict | None:
    """Train an audio projector on Whisper states of item descriptions spoken by espeak-ng -> those words.

    The same caption-style alignment as for images, with synthetic speech in place of captioned
    pictures. Returns the manifest note, or None when ``train_audio`` is off.
    """
    if not cfg.train_audio:
        return None
    from .projector import build_projector

    items = list(catalog)[: cfg.audio_items or None]
    feats = spoken_features(cfg, items, home).to(device)  # (N, M, D)
    proj = build_projector(cfg.audio_projector, feats.shape[-1], lm.hidden_size, 1).to(device)
    note = _align(cfg, lm, "audio", proj, list(feats), f"User: {AUDIO} What did I just say?\nAssistant:",
                  [f" {spoken_text(it)}\n" for it in items])
    return note | {"encoder": f"whisper-{cfg.whisper}:{cfg.audio_tokens} states"}


# ---- outputs -------------------------------------------------------------------------------------

def save_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """Optimizer moments as safetensors (no pickle); hyper-parameters live in the config."""
    from safetensors.torch import save_file

    state = opt.state_dict()["state"]
    tensors = {f"{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
               for i, s in state.items() for k, v in s.items()}
    save_file(tensors or {"empty": torch.zeros(1)}, str(path))


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if name == "empty":
            continue
        i, k = name.split(".", 1)
        state.setdefault(int(i), {})[k] = t
    sd["state"] = state
    opt.load_state_dict(sd)


def plot_loss(history: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(history) + 1), history, lw=1, label="loss per step")
    if len(history) >= 10:
        w = max(2, len(history) // 20)
        smooth = [sum(history[max(0, i - w + 1): i + 1]) / len(history[max(0, i - w + 1): i + 1]) for i in range(len(history))]
        ax.plot(range(1, len(history) + 1), smooth, lw=2, label=f"mean of {w}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("rank + w * reason loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_card(manifest: Manifest, cfg: TrainConfig) -> str:
    t = manifest.training
    metrics = "\n".join(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |"
                        for k, v in t.get("metrics", {}).items())
    not_trained = "\n".join(f"- {k}: {v}" for k, v in t.get("not_trained", {}).items()) or "- nothing"
    aligned = "".join(
        f"- {k} projector ({note['encoder']}): {note['steps']} alignment steps on {note['items']} items, their "
        f"loss {note['train_loss_before']} -> {note['train_loss_after']}"
        + (f"; held-out items {note['held_out_loss']} with their own input vs {note['held_out_loss_other_input']} "
           "with another item's" if "held_out_loss" in note else "") + "\n"
        for k, note in t.get("aligned", {}).items())
    init = t.get("init_adapter")
    started = (f"- started from the LoRA of `{init['path']}` ({init['steps']} steps, {init['seconds']:.0f} s, "
               f"prompts sha256 `{init['prompts_sha256']}`)\n" if init else "")
    return f"""# chatrec adapter

LoRA (r={cfg.lora_r}, alpha={cfg.lora_alpha}, modules {', '.join(cfg.target_modules)}) on `{manifest.base_model}`,
trained to score the ground-truth candidate highest in the rank prompt (listwise cross entropy over the
candidates' " yes" minus " no" logits at their `<fit>` marks) and to write a grounded reason.

- prompts sha256: `{manifest.prompts_sha256}`
- data: {t.get('data')}
- steps: {t.get('steps')} ({t.get('seconds', 0):.0f} s), examples: {t.get('examples')}
{started}- projectors trained: {', '.join(manifest.projectors) or 'none'}
{aligned}
Not trained:
{not_trained}

## Validation (LLM ranking alone over retrieval's candidates)

| metric | value |
|---|---|
{metrics}

`retrieval_recall@k` is retrieval's own order on the same candidates; `candidates_recall` is how often the
ground truth was among them at all (an upper bound for the LLM).

Reasons at inference are checked against the catalog; this adapter was trained on fact-only reasons.
"""


# ---- main ----------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    lm: ChatLM  # the trained model (LoRA still attached, in eval mode)
    manifest: Manifest  # what was written to out/manifest.json
    history: list[float]  # loss per optimizer step, across resumes


def main(args: argparse.Namespace) -> int:
    overrides = list(getattr(args, "set", None) or [])
    if getattr(args, "out", None):
        overrides.append(f"out={args.out}")
    if getattr(args, "load_in_4bit", False):
        overrides.append("load_in_4bit=true")
    if getattr(args, "verbose", False):
        logging.getLogger("chatrec").setLevel(logging.INFO)
    result = train(load_train_config(getattr(args, "config", None), overrides), getattr(args, "resume", False))
    m, t = result.manifest.training["metrics"], result.manifest.training
    print(f"trained {t['steps']} steps in {t['seconds']:.0f} s; validation recall@1 {m['recall@1']:.3f}, "
          f"recall@5 {m['recall@5']:.3f} on {m['n']} turns; adapter in {t['out']}")
    return 0


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Check every input, then train, checkpoint, evaluate and write the adapter bundle to cfg.out."""
    from tqdm import tqdm

    _check_4bit(cfg)  # before loading anything
    _check_audio(cfg)
    train_path, val_path = _dialogue_path(cfg.train_dialogues, "train"), _dialogue_path(cfg.val_dialogues, "val")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    home = Path(cfg.data_dir) if cfg.data_dir else Config.cache()  # model and index caches
    out = Path(cfg.out)

    from .packaged import resolve_llm

    _, identity = resolve_llm(cfg.llm, home)  # the base hash, without loading the weights
    resume_dir = last_checkpoint(out) if resume else None
    if resume and resume_dir is None:
        raise TrainError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    state = check_checkpoint(resume_dir, identity) if resume_dir else None
    init = _check_init(cfg, identity) if cfg.init_adapter else None

    examples, val, catalog = _load_data(cfg, train_path, val_path, home)
    n_media = sum(bool(e.image or e.audio) for e in examples.rank)
    if n_media:  # soft tokens are trained by alignment only; these turns teach ranking from their words
        log.warning("%d training turns with an image or audio are trained as their written text", n_media)
        examples, val = ([dataclasses.replace(x, rank=[text_only(e) for e in x.rank]) for x in (examples, val)])
    if state and state.get("examples_sha") != _examples_sha(examples):
        raise TrainError(f"{resume_dir}: checkpoint was trained on other examples (data or config changed)")

    from accelerate import Accelerator

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()
    lm = build_model(cfg, home)
    not_trained: dict[str, str] = {}
    step, history, seconds_before = 0, [], 0.0
    if state:  # the checkpoint already holds the aligned projectors, if there were any
        _restore_weights(lm, resume_dir)
        aligned = state.get("aligned", {})
        step, history, seconds_before = state["step"], state["loss_history"], state["seconds"]
        log.info("resuming from %s at step %d", resume_dir, step)
    else:
        if init:
            _load_lora(lm, Path(cfg.init_adapter) / "adapter_model.safetensors")
            log.info("LoRA initialised from %s (%s steps)", cfg.init_adapter, init.training.get("steps"))
        notes = {"image": align_image_projector(cfg, lm, catalog, accelerator.device),
                 "audio": align_audio_projector(cfg, lm, catalog, accelerator.device, home)}
        aligned = {k: v for k, v in notes.items() if v}
    if "image" not in aligned:
        not_trained["image projector"] = "no real CLIP weights (clip_pretrained not set or not found)"
    if "audio" not in aligned:
        not_trained["audio projector"] = "train_audio was off"
    if n_media:
        not_trained["soft tokens in dialogue turns"] = f"{n_media} turns with an image or audio trained as their text"
    if not cfg.tune:
        not_trained["LoRA"] = (f"tune=false: copied unchanged from {cfg.init_adapter}" if init
                               else "tune=false and no init_adapter: the LoRA is the untrained initialisation")
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state:
        try:
            load_optimizer(opt, _read_safetensors(resume_dir / "optimizer.safetensors"))
        except (ValueError, KeyError) as e:
            raise TrainError(f"{resume_dir}: optimizer state does not fit this run ({e})") from None
    lm, opt = accelerator.prepare(lm, opt)
    steps = total_steps(cfg, len(examples)) if cfg.tune else 0
    evals: list[dict] = []
    lm.train()
    bar = tqdm(total=steps, initial=step, desc="train", unit="step")
    tokens, t_tok = 0, time.perf_counter()
    while step < steps:
        torch.manual_seed(hash_seed(cfg.seed, step))  # dropout noise is a function of the step too
        opt.zero_grad()
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step, steps)
        total = 0.0
        for j in range(cfg.grad_accum):
            micro = step * cfg.grad_accum + j
            idx = batch_indices(micro, len(examples), cfg.batch_size, cfg.seed)
            rank_batch = collate_rank(lm, [examples.rank[i] for i in idx])
            loss = rank_loss(lm, rank_batch)
            tokens += int(rank_batch.emb.mask.sum())
            if micro % cfg.reason_every == 0:
                reason_batch = collate_reasons(lm, [examples.reason[i] for i in idx])
                loss = loss + cfg.reason_weight * token_loss(lm, reason_batch)[0]
                tokens += int(reason_batch.emb.mask.sum())
            accelerator.backward(loss / cfg.grad_accum)
            total += loss.item() / cfg.grad_accum
        opt.step()
        step += 1
        history.append(total)
        bar.update(1)
        bar.set_postfix(loss=f"{total:.3f}", tok_s=f"{tokens / (time.perf_counter() - t_tok):.0f}")
        if cfg.eval_every and step % cfg.eval_every == 0:
            quick = Examples(val.rank[: cfg.eval_examples], val.reason[: cfg.eval_examples], 0, 0)
            evals.append({"step": step, **evaluate(lm, quick)})
            log.info("step %d validation %s", step, evals[-1])
        if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step == steps):
            seconds = seconds_before + time.perf_counter() - t_start
            _checkpoint(out / "checkpoints" / f"step-{step}", lm, opt, cfg, identity, examples, step, history, seconds,
                        aligned)
    bar.close()
    metrics = evaluate(lm, val)
    log.info("validation: %s", metrics)
    seconds = seconds_before + time.perf_counter() - t_start
    projectors = {k: p for k, p in lm.projectors.items()}
    manifest = Manifest(
        base_model=identity, prompts_sha256=templates_hash(), lora=True,
        projectors={k: p.spec.to_dict() for k, p in projectors.items()},
        encoders={k: note["encoder"] for k, note in aligned.items()},
        embedder=cfg.embedder,
        training={"data": {"train": str(train_path), "val": str(val_path), "catalog": cfg.catalog or "packaged demo"},
                  "init_adapter": _init_record(cfg, init),
                  "examples": len(examples), "steps": step, "seconds": round(seconds, 1), "metrics": metrics,
                  "evals": evals, "aligned": aligned, "not_trained": not_trained, "out": str(out),
                  "config": cfg.to_dict()},
    )
    save_adapter(out, lm.lm, projectors, manifest)
    if history:
        plot_loss(history, out / "loss.png")
    (out / "README.md").write_text(model_card(manifest, cfg))
    log.info("saved %s (%d steps, %.0f s)", out, step, seconds)
    return TrainResult(lm.eval(), manifest, history)


def _load_data(cfg: TrainConfig, train_path: Path, val_path: Path, home: Path):
    from .catalog import load_catalog, load_demo_catalog
    from .dialogues import load_dialogues
    from .packaged import load_embedder
    from .retrieval import Retriever, embed_catalog

    catalog = load_catalog(cfg.catalog) if cfg.catalog else load_demo_catalog()
    train_d = load_dialogues(train_path, catalog).dialogues
    val_d = load_dialogues(val_path, catalog).dialogues
    for name, ds, path in (("train", train_d, train_path), ("val", val_d, val_path)):
        if not any(d.recommendation_turns() for d in ds):
            raise TrainError(f"{path}: no {name} dialogue with a recommendation turn (assistant turn with targets)")
    embedder = load_embedder(cfg.embedder)
    vectors = embed_catalog(catalog, embedder, cfg.embedder, home, progress=False)
    retriever = Retriever(catalog, embedder, vectors, RetrievalConfig(n_candidates=cfg.n_candidates))
    t0 = time.perf_counter()
    examples = build_examples(train_d, catalog, retriever, cfg.n_candidates, cfg.seed, cfg.max_examples)
    val = build_examples(val_d, catalog, retriever, cfg.n_candidates, cfg.seed, cfg.max_val_examples, train=False)
    if not len(examples):
        raise TrainError(f"{train_path}: no usable recommendation turns (targets not in the catalog?)")
    hits = sum(e.retrieved for e in examples.rank)
    log.info("built %d train / %d val examples in %.0f s; retrieval found the ground truth in %d%% of train turns",
             len(examples), len(val), time.perf_counter() - t0, 100 * hits // len(examples))
    return examples, val, catalog


def _examples_sha(examples: Examples) -> str:
    import hashlib

    # Which turns, in which order: that fixes the data order. Candidate lists are left out because
    # retrieval near-ties can break differently in another process (observed with the real embedder).
    h = hashlib.sha256()
    for r in examples.rank:
        h.update(f"{r.source}:{r.target}\n".encode())
    return h.hexdigest()


def _checkpoint(path: Path, lm: ChatLM, opt, cfg: TrainConfig, identity: str, examples: Examples, step: int,
                history: list[float], seconds: float, aligned: dict[str, dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    projectors = dict(lm.projectors.items())
    manifest = Manifest(identity, templates_hash(), True, {k: p.spec.to_dict() for k, p in projectors.items()},
                        embedder=cfg.embedder, training={"steps": step, "checkpoint": True})
    save_adapter(tmp, lm.lm, projectors, manifest)
    save_optimizer(opt, tmp / "optimizer.safetensors")
    state = {"step": step, "seed": cfg.seed, "loss_history": history, "seconds": seconds,
             "examples_sha": _examples_sha(examples), "config": cfg.to_dict(), "aligned": aligned,
             "note": "optimizer moments in optimizer.safetensors; data order is a function of (seed, step)"}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    if path.exists():
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)  # a crash mid-save leaves step-N.tmp, which resume ignores


def _check_init(cfg: TrainConfig, identity: str) -> Manifest:
    """The bundle to start from: same base weights, readable LoRA. Its prompts may differ (that is the point)."""
    path = Path(cfg.init_adapter)
    try:
        manifest = read_manifest(path)
    except AdapterError as e:
        raise TrainError(f"init_adapter: {e}") from None
    if manifest.base_model != identity:
        raise TrainError(f"init_adapter {path}: trained for base model {manifest.base_model}, not {identity}")
    _read_safetensors(path / "adapter_model.safetensors")
    return manifest


def _init_record(cfg: TrainConfig, init: Manifest | None) -> dict | None:
    if not init:
        return None
    t = init.training
    return {"path": cfg.init_adapter, "prompts_sha256": init.prompts_sha256, "steps": t.get("steps"),
            "seconds": t.get("seconds"), "examples": t.get("examples"), "metrics": t.get("metrics")}


def _load_lora(lm: ChatLM, path: Path) -> None:
    from peft import set_peft_model_state_dict

    try:
        result = set_peft_model_state_dict(lm.lm, _read_safetensors(path))
    except RuntimeError as e:  # shape mismatch: other rank or modules
        raise TrainError(f"{path}: LoRA weights do not fit this model/config ({e})") from None
    if getattr(result, "unexpected_keys", None):
        raise TrainError(f"{path}: LoRA weights do not fit this model/config (e.g. {result.unexpected_keys[:3]})")


def _restore_weights(lm: ChatLM, path: Path) -> None:
    """LoRA and projector weights of a checkpoint (already validated by check_checkpoint)."""
    from .adapter import load_projectors

    _load_lora(lm, path / "adapter_model.safetensors")
    try:
        for kind, proj in load_projectors(path, read_manifest(path)).items():
            lm.projectors[kind] = proj.to(lm.device).train()
    except AdapterError as e:
        raise TrainError(str(e)) from None


__all__ = ["TrainConfig", "TrainError", "TrainResult", "load_train_config", "main", "train", "batch_indices", "evaluate"]
