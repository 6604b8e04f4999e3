"""Typed, frozen configuration. Unknown keys are errors, never silently ignored.

A config is loaded from TOML or YAML (nested tables matching the dataclasses below) and can be
overridden with ``section.field=value`` strings from the command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog, CatalogLimits, load_catalog

PACKAGED_LLM = "packaged:gemma3-270m"
PACKAGED_EMBEDDER = "packaged:all-MiniLM-L6-v2"


class ConfigError(ValueError):
    """A config file or override that cannot be applied; the message names the key."""


@dataclass(frozen=True)
class ModelConfig:
    llm: str = PACKAGED_LLM  # packaged default, a Hugging Face causal-LM id, or a local directory
    embedder: str = PACKAGED_EMBEDDER  # packaged default, a sentence-transformers id, or a path
    dtype: str = "float32"  # float32 | bfloat16 | float16; bf16 was slower than fp32 on the 2-core CPU
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0 = all cores

    def resolved_device(self) -> str:
        """``device`` with "auto" resolved: CUDA where it exists, else the CPU."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class RetrievalConfig:
    # Candidates handed to the LLM (one label each, at most 26). 20, not 10: with 10 the LLM can only reorder
    # fused retrieval's top 10, so Recall@10 cannot move; with 20 it lifts items from ranks 11-20 (human_val,
    # 323 turns, `chatrec tune --stage ranking --set retrieval.n_candidates=20`: R@10 0.627 at the chosen mix
    # vs 0.593 at retrieval_weight 24, nearly retrieval's order). It doubles the rank prompt (~1.4 s on 2 cores).
    n_candidates: int = 20
    pool: int = 200  # depth of each retriever's list before fusion
    rrf_k: int = 60  # reciprocal-rank-fusion constant (Cormack et al., 2009)
    # The weights below were chosen by `chatrec tune --sweeps 1` on the human validation split over the
    # 1,379-film catalog (Recall@10 of the fused list 0.532 -> 0.556 from the values tuned on the 330-film one).
    dense_weight: float = 1.0  # weight of the dense ranking in the fusion
    bm25_weight: float = 1.0  # weight of the BM25 ranking in the fusion
    # Pull of liked items on the dense query. The tuner chose 0 (people name films they liked as references
    # more than as "more of this"); a small pull stays so that "more like #2" still moves the list.
    like_weight: float = 0.3
    genre_boost: float = 0.005  # fused-score bonus for an item matching a wanted genre
    people_boost: float = 0.01  # fused-score bonus per person the user asked for (linked by name)
    era_boost: float = 0.005  # fused-score bonus for an item in a wished-for era ("something recent", "older")
    popularity_weight: float = 0.002  # mild prior from an item's `popularity` attribute, if any
    # The dense index (chatrec.index): "exact" (numpy/FAISS flat inner product), "hnsw" or "ivf" (FAISS,
    # approximate), or "auto": exact below `ann_threshold` items, HNSW from there. Approximate indexes are
    # built once per catalog content and embedder, with a progress bar, and saved next to the embeddings.
    index: str = "auto"
    ann_threshold: int = 50_000
    hnsw_m: int = 32  # graph degree: memory and build time grow with it, and recall too
    # Build and search breadth, from `python benchmarks/retrieval_scale.py` (100k items: recall@50 against exact
    # 0.943 -> 0.983 at efSearch 400 when efConstruction goes 80 -> 200, for 2.4x the build time).
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 800  # read at query time (not baked into the file): recall against latency
    ivf_nlist: int = 0  # IVF cells; 0 = 4 * sqrt(N)
    ivf_nprobe: int = 16  # cells visited per query


@dataclass(frozen=True)
class RankingConfig:
    top_k: int = 5  # items shown per answer
    llm_weight: float = 1.0  # weight of the LLM's log-probability of the candidate (softmax over the candidates' scores)
    # Weight of the log retrieval prior. `chatrec tune --stage ranking --set retrieval.n_candidates=20` on all 215
    # human_val dialogues (323 turns) with the shipped stage-4 adapter: NDCG@10 0.428 at 0 (LLM alone), 0.483 at
    # 6, 0.466 at 16, 0.452 at 24; R@1 0.259 / 0.347 / 0.336 / 0.328. The LLM's scores and retrieval's prior each
    # carry what the other misses.
    retrieval_weight: float = 6.0
    use_llm: bool = True  # False ranks by retrieval alone (a baseline)


@dataclass(frozen=True)
class GenerationConfig:
    reasons: bool = True  # write reasons with the LLM (else attribute-based reasons only)
    max_reason_tokens: int = 64  # per reason; generation stops at the line end, and a cut-off sentence is dropped
    no_repeat_ngram: int = 4  # forbid repeating a 4-token run within a reason (greedy loops); 0 = off
    batch_reasons: bool = True  # one batched generate call for all top-k reasons
    # A passing model reason that says nothing about this user is led by a true hook built from their words
    # ("You asked for horror: ..."); false keeps the model's text as written (a same-run ablation).
    lead_with_hook: bool = True
    # Reasons are decoded over the tokens of the catalog, the written reasons and the prompt, not all 262k
    # (chatrec.decoding); false computes the whole output layer at every step (a same-run baseline).
    restrict_vocab: bool = True


@dataclass(frozen=True)
class MediaConfig:
    clip_model: str = "ViT-B-32"  # open_clip architecture
    clip_pretrained: str | None = None  # open_clip pretrained tag or a local checkpoint file
    whisper: str = "base"  # packaged Whisper: base | tiny.en
    image_tokens: int = 4  # soft tokens per image (K)
    audio_tokens: int = 4  # soft tokens per audio clip (M)
    max_image_megapixels: float = 50.0  # larger images are refused
    # Longer spoken requests are refused from the file header, before decoding. A request takes seconds to say;
    # 60 s (two 30-s Whisper windows) leaves room, while a 10-min clip cost 215 s and 3.8 GB on 2 cores.
    max_audio_seconds: float = 60.0


@dataclass(frozen=True)
class ProfileConfig:
    """``[profile]``: what a person's earlier sessions add to a new one (chatrec.profiles)."""

    enabled: bool = True  # build profiles from sessions and use them in ranking; false: neither (stored ones stay)
    half_life_days: float = 90.0  # a piece of evidence counts half after this many days
    # Weight of the profile's liked items as one more ranking in the fusion (the items nearest to their mean; dense
    # and BM25 weigh 1). On the demo films with three liked films, 0.5 put 0-1 of their 30 nearest into the top 5 of
    # eight requests, 1.0 about 1, 1.5 two to four (it starts to override the request). Not tuned: no data yet.
    like_weight: float = 1.0
    soft_weight: float = 0.5  # profile genres, people and eras get this share of retrieval's genre/people/era boosts
    min_weight: float = 0.1  # entries whose decayed weight fell below this are ignored (about 3.3 half-lives)
    prompt_items: int = 3  # at most this many values per kind in the rank prompt's "Known from earlier sessions" line

    def __post_init__(self):
        if self.half_life_days <= 0:
            raise ValueError("half_life_days must be positive")
        if min(self.like_weight, self.soft_weight, self.min_weight, self.prompt_items) < 0:
            raise ValueError("like_weight, soft_weight, min_weight and prompt_items must not be negative")


@dataclass(frozen=True)
class CollaborativeConfig:
    """``[collaborative]``: "people who liked X also liked Y" as a third ranking in the main system's fusion
    (chatrec.collaborative); the dense, bm25 and fused baselines never use it."""

    # Off by default until it is measured with the LLM stage on the human test split (retrieval alone on human_val:
    # R@10 0.558 -> 0.574). When on, it also reads the store's sessions, so an evaluation depends on its data_dir.
    enabled: bool = False
    weight: float = 0.5  # its fusion weight when the liked items have full evidence (dense and BM25 weigh 1)
    shrink: float = 5.0  # a pair seen together c times keeps c / (c + shrink) of its cosine: weak evidence weighs little
    evidence_full: float = 20.0  # the weight is scaled by min(1, baskets holding the liked items / this)
    # Training dialogues (paths, or names of packaged splits) whose targets and liked items count as liked together,
    # next to people's likes in the session store. Train splits only: a file with another split is refused.
    dialogue_files: tuple[str, ...] = ("human_train", "train")

    def __post_init__(self):
        if min(self.weight, self.shrink) < 0 or self.evidence_full <= 0:
            raise ValueError("weight and shrink must not be negative, and evidence_full must be positive")


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: LoRA fine-tuning and projector alignment. The defaults are the recipe of stage 1 of
    the shipped adapter; the model, catalog, candidates, media encoders and seed come from the rest of
    the config, exactly as inference uses them."""

    out: str = "runs/adapter"  # output bundle directory (checkpoints in out/checkpoints); shipping is an explicit copy
    # Dialogue files (paths, or names of packaged splits): the team-written conversations and the template
    # simulator's, mixed in a seeded order before ``max_examples`` is taken.
    train_dialogues: tuple[str, ...] = ("human_train", "train")
    val_dialogues: str = "human_val"  # dialogue JSONL or packaged split name: people's words pick the adapter
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 32  # LoRA scale numerator (scale = alpha / r)
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_layers: int = 9  # LoRA on the top N decoder layers only (no backward through the rest); 0 = all
    lr: float = 1e-3  # AdamW peak learning rate (LoRA)
    warmup_steps: int = 10  # linear warm-up, then linear decay to 0 at the last step
    weight_decay: float = 0.0
    epochs: int = 1  # used when max_steps is 0
    max_steps: int = 500  # optimizer steps; 0 = epochs over the examples (500 x 4 examples: about an hour on 2 cores)
    batch_size: int = 1  # examples per micro-batch (each gives a rank and a reason sequence)
    grad_accum: int = 4  # micro-batches per optimizer step
    gradient_checkpointing: bool = False  # recompute activations: less memory, ~30% more time
    max_examples: int = 2000  # training turns used; 0 = all
    max_val_examples: int = 100  # validation turns for the final recall@k; 0 = all
    eval_every: int = 0  # optimizer steps between quick validation runs; 0 = only at the end
    eval_examples: int = 20  # validation turns in the quick runs
    checkpoint_every: int = 50  # optimizer steps between checkpoints; 0 = none
    init_adapter: str = ""  # start the LoRA from this bundle's weights (same base and LoRA shape); "" = fresh
    # Team-written reasons (paths, or names of packaged files under chatrec/data/reasons): the reason targets of
    # the turns they cover. Empty = every turn's target is the catalog-fact fallback (a template).
    reasons: tuple[str, ...] = ("train",)
    val_reasons: str = "val"  # held-out written reasons: their token loss is reported; "" = none
    fallback_reasons: bool = False  # with written reasons, also train the fallback on turns they do not cover
    reason_weight: float = 0.5  # weight of the reason loss next to the rank loss
    reason_every: int = 4  # reason loss on every Nth micro-batch (templated reasons are learnt fast; ranking needs the steps)
    load_in_4bit: bool = False  # QLoRA via bitsandbytes; CUDA only
    image_projector: str = "mlp2x_gelu"  # projector kind for the image alignment step
    align_steps: int = 200  # alignment steps per projector (image: only with real CLIP weights)
    align_lr: float = 1e-3  # AdamW learning rate of the alignment steps (projector only)
    align_noise: float = 0.1  # gaussian noise on CLIP text embeddings, bridging the text-image gap
    train_audio: bool = False  # align an audio projector on item descriptions spoken by espeak-ng (media.whisper)
    audio_projector: str = "mlp2x_gelu"  # projector kind for the audio alignment step
    audio_items: int = 0  # catalog items spoken for the audio alignment; 0 = all
    tune: bool = True  # dialogue tuning after alignment; false = align projectors only (the LoRA stays as loaded)


@dataclass(frozen=True)
class Config:
    catalog: str | None = None  # catalog file (.jsonl/.csv), or a packaged one: "films", "books"; None = films
    media_root: str = ""  # local image/audio paths of the catalog must lie in this folder; "" = the catalog's folder
    adapter: str | None = "default"  # adapter name under adapters/, a directory, or None for the base LLM
    data_dir: str = ""  # sessions database; "" = $CHATREC_HOME or ~/.local/share/chatrec
    # Where sessions and profiles live: "" = SQLite (sessions.sqlite in data_dir, one machine); a
    # postgresql://user:password@host:port/dbname URL = one PostgreSQL shared by several `chatrec serve` replicas.
    store_url: str = ""
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    collaborative: CollaborativeConfig = field(default_factory=CollaborativeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    catalog_limits: CatalogLimits = field(default_factory=CatalogLimits)  # oversized rows are refused at load

    def load_catalog(self) -> Catalog:
        """The configured catalog (the packaged films when none is named), with its limits and media root."""
        return load_catalog(self.catalog or "films", limits=self.catalog_limits, media_root=self.media_root or None)

    def home(self) -> Path:
        return Path(self.data_dir or os.environ.get("CHATREC_HOME") or Path.home() / ".local" / "share" / "chatrec")

    @staticmethod
    def cache() -> Path:
        """Converted model weights and indexes; shared by all data dirs ($CHATREC_CACHE to move it)."""
        return Path(os.environ.get("CHATREC_CACHE") or Path.home() / ".cache" / "chatrec")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        return _coerce(value, next(a for a in args if a is not type(None)), key)
    if typing.get_origin(tp) is tuple:  # a TOML list, or "a,b,c" from the command line
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
            raise ConfigError(f"config key {key!r} expects a list of strings, got {value!r}")
        return tuple(x.strip() for x in items if x.strip())
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a table, got {value!r}")
        return _build(tp, value, key + ".")
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return tp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {key!r} expects {tp.__name__}, got {value!r}") from None


def _build(cls: Any, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {[prefix + u for u in unknown]}; valid: {sorted(names)}")
    try:
        return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in data.items()})
    except ValueError as e:  # a dataclass's own check (e.g. catalog_limits must be positive)
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{prefix or 'config'}: {e}") from None


def _nested(overrides: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r} must look like section.key=value")
        key, value = o.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build a Config from an optional TOML/YAML file plus ``a.b=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
        try:
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            elif path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                raise ConfigError(f"{path}: config must be .toml, .yaml or .yml")
        except (tomllib.TOMLDecodeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from None
        except Exception as e:  # yaml.YAMLError without importing yaml at module level
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a table")
    data = _merge(data, _nested(overrides or []))
    cfg = _build(Config, data)
    if not 1 <= cfg.retrieval.n_candidates <= 26:
        raise ConfigError("retrieval.n_candidates must be between 1 and 26 (one letter label each)")
    if not 1 <= cfg.ranking.top_k <= cfg.retrieval.n_candidates:
        raise ConfigError("ranking.top_k must be between 1 and retrieval.n_candidates")
    for key in ("batch_size", "grad_accum", "epochs", "lora_r", "reason_every"):
        if getattr(cfg.train, key) < 1:
            raise ConfigError(f"train.{key} must be at least 1")
    if cfg.media.image_tokens < 1 or cfg.media.audio_tokens < 1:
        raise ConfigError("media.image_tokens and media.audio_tokens must be at least 1")
    if cfg.retrieval.index not in ("auto", "exact", "hnsw", "ivf"):
        raise ConfigError(f"retrieval.index must be auto, exact, hnsw or ivf, not {cfg.retrieval.index!r}")
    if cfg.store_url and not cfg.store_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("store_url must be empty (SQLite in data_dir) or a postgresql:// URL")
    return cfg
