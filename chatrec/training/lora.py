"""The model being trained: the base LM (4-bit QLoRA where CUDA exists), peft LoRA on its top layers,
and a LoRA to start from (another bundle's)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..adapter import AdapterError, Manifest, read_manifest
from ..config import Config
from ..model import ChatLM
from .checkpoint import TrainError, read_safetensors


def check_4bit(cfg: Config) -> None:
    if cfg.train.load_in_4bit and not torch.cuda.is_available():
        raise TrainError("--load-in-4bit (QLoRA) needs a CUDA GPU; bitsandbytes 4-bit training does not run on "
                         "this CPU. Train without it (LoRA in float32).")


def load_base(cfg: Config):
    """(tokenizer, causal LM, identity); 4-bit via bitsandbytes when asked (CUDA checked before)."""
    from ..weights.packaged import load_llm, resolve_llm

    if not cfg.train.load_in_4bit:
        return load_llm(cfg.model.llm, cfg.cache(), "float32", "cpu")
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    path, identity = resolve_llm(cfg.model.llm, cfg.cache())
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                               bnb_4bit_use_double_quant=True)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, device_map={"": 0})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing)
    return tok, model, identity


def build_model(cfg: Config) -> ChatLM:
    """The base LM with a fresh LoRA on ``train.target_modules`` of the top ``train.lora_layers`` layers."""
    from peft import LoraConfig, get_peft_model

    t = cfg.train
    tok, base, identity = load_base(cfg)
    base.config.use_cache = False
    if t.gradient_checkpointing:
        # Non-reentrant checkpointing needs no requires_grad on inputs_embeds (we feed embeds, not ids).
        kwargs = {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    n_layers = base.config.get_text_config().num_hidden_layers
    if t.lora_layers > n_layers:
        raise TrainError(f"train.lora_layers={t.lora_layers} but the base model has {n_layers} layers")
    top = list(range(n_layers - t.lora_layers, n_layers)) if t.lora_layers else None
    lora = LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                      target_modules=list(t.target_modules), layers_to_transform=top, task_type="CAUSAL_LM")
    return ChatLM(tok, get_peft_model(base, lora), identity)


def check_init(cfg: Config, identity: str) -> Manifest:
    """The bundle to start from: same base weights, readable LoRA. Its prompts may differ (that is the point)."""
    path = Path(cfg.train.init_adapter)
    try:
        manifest = read_manifest(path)
    except AdapterError as e:
        raise TrainError(f"train.init_adapter: {e}") from None
    if manifest.base_model != identity:
        raise TrainError(f"train.init_adapter {path}: trained for base model {manifest.base_model}, not {identity}")
    read_safetensors(path / "adapter_model.safetensors")
    return manifest


def init_record(cfg: Config, init: Manifest | None) -> dict | None:
    """What the manifest says about the LoRA a run started from."""
    if not init:
        return None
    t = init.training
    return {"path": cfg.train.init_adapter, "prompts_sha256": init.prompts_sha256, "steps": t.get("steps"),
            "seconds": t.get("seconds"), "examples": t.get("examples"), "metrics": t.get("metrics")}
