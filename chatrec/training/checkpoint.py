"""Checkpoints for ``--resume``: LoRA, projectors and optimizer moments as safetensors, the rest JSON.

A checkpoint is validated whole (base model hash, prompts hash, readable tensors, same examples)
before a resumed run starts; the data order is a function of (seed, step), so a resumed run sees the
same batches an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from ..adapter import AdapterError, Manifest, check_compatible, load_projectors, read_manifest, save_adapter
from ..config import Config, ConfigError
from ..model import ChatLM
from ..prompting import templates_hash
from .examples import Examples


class TrainError(ConfigError):
    """Input that training cannot use; a ConfigError so the CLI reports it without a traceback."""


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError, ValueError) as e:
        raise TrainError(f"{path}: corrupted or unreadable safetensors file ({e})") from None


def last_checkpoint(out: Path) -> Path | None:
    steps = sorted((int(p.name.split("-")[1]), p) for p in (out / "checkpoints").glob("step-*")
                   if p.name.split("-")[1].isdigit() and (p / "state.json").is_file())
    return steps[-1][1] if steps else None


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
        read_safetensors(path / name)
    if (path / "projectors.safetensors").exists():
        read_safetensors(path / "projectors.safetensors")
    return state


def examples_sha(examples: Examples) -> str:
    # Which turns, in which order: that fixes the data order. Candidate lists are left out because
    # retrieval near-ties can break differently in another process (observed with the real embedder).
    h = hashlib.sha256()
    for r in examples.rank:
        h.update(f"{r.source}:{r.target}\n".encode())
    for x in examples.reason:
        h.update(f"{x.source}:{x.target}".encode())
    return h.hexdigest()


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


def save_checkpoint(path: Path, lm: ChatLM, opt, cfg: Config, identity: str, examples: Examples, step: int,
                    history: list[float], seconds: float, aligned: dict[str, dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    projectors = dict(lm.projectors.items())
    manifest = Manifest(identity, templates_hash(), True, {k: p.spec.to_dict() for k, p in projectors.items()},
                        embedder=cfg.model.embedder, training={"steps": step, "checkpoint": True})
    save_adapter(tmp, lm.lm, projectors, manifest)
    save_optimizer(opt, tmp / "optimizer.safetensors")
    state = {"step": step, "seed": cfg.seed, "loss_history": history, "seconds": seconds,
             "examples_sha": examples_sha(examples), "config": cfg.to_dict(), "aligned": aligned,
             "note": "optimizer moments in optimizer.safetensors; data order is a function of (seed, step)"}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)  # a crash mid-save leaves step-N.tmp, which resume ignores


def load_lora(lm: ChatLM, path: Path) -> None:
    from peft import set_peft_model_state_dict

    try:
        result = set_peft_model_state_dict(lm.lm, read_safetensors(path))
    except RuntimeError as e:  # shape mismatch: other rank or modules
        raise TrainError(f"{path}: LoRA weights do not fit this model/config ({e})") from None
    if getattr(result, "unexpected_keys", None):
        raise TrainError(f"{path}: LoRA weights do not fit this model/config (e.g. {result.unexpected_keys[:3]})")


def restore_weights(lm: ChatLM, path: Path) -> None:
    """LoRA and projector weights of a checkpoint (already validated by check_checkpoint)."""
    load_lora(lm, path / "adapter_model.safetensors")
    try:
        for kind, proj in load_projectors(path, read_manifest(path)).items():
            lm.projectors[kind] = proj.to(lm.device).train()
    except AdapterError as e:
        raise TrainError(str(e)) from None
