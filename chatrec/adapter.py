"""Adapter bundles: a peft LoRA, trained projectors and a manifest that says what was trained.

``adapters/<name>/`` holds ``adapter_config.json`` + ``adapter_model.safetensors`` (peft),
``projectors.safetensors`` and ``manifest.json``. Loading reads the manifest and refuses a bundle
trained for other base weights or other prompt templates; it never guesses. No pickles anywhere.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .projector import Projector, ProjectorSpec
from .prompting import templates_hash

log = logging.getLogger(__name__)
ADAPTERS_DIR = Path(__file__).resolve().parent.parent / "adapters"


class AdapterError(ValueError):
    """An adapter bundle that cannot be used with the loaded model; the message says why."""


@dataclass(frozen=True)
class Manifest:
    base_model: str  # identity of the base weights, e.g. packaged:gemma3-270m@sha256:...
    prompts_sha256: str  # prompt templates the LoRA was trained against
    lora: bool = True  # adapter_model.safetensors present and trained
    projectors: dict[str, dict] = field(default_factory=dict)  # kind -> ProjectorSpec fields, trained only
    encoders: dict[str, str] = field(default_factory=dict)  # e.g. {"image": "ViT-B-32:laion2b", "audio": "whisper-base:4 states"}
    embedder: str = ""  # sentence embedder used for retrieval during training
    training: dict = field(default_factory=dict)  # data, steps, seconds, metrics

    def to_dict(self) -> dict:
        return asdict(self)


def resolve(name: str) -> Path:
    """An adapter name under adapters/, or a directory path."""
    p = Path(name)
    if p.is_dir():
        return p
    return ADAPTERS_DIR / name


def read_manifest(path: Path) -> Manifest:
    f = path / "manifest.json"
    if not f.is_file():
        raise AdapterError(f"{path}: no manifest.json; not an adapter bundle")
    try:
        data = json.loads(f.read_text())
        return Manifest(**data)
    except (json.JSONDecodeError, TypeError) as e:
        raise AdapterError(f"{f}: unreadable manifest ({e})") from None


def check_compatible(manifest: Manifest, base_identity: str, path: Path) -> None:
    if manifest.base_model != base_identity:
        raise AdapterError(
            f"{path}: trained for base model {manifest.base_model}, but {base_identity} is loaded; "
            "retrain it or pass the matching --llm"
        )
    if manifest.prompts_sha256 != templates_hash():
        raise AdapterError(f"{path}: trained against other prompt templates (prompts/ changed); retrain it")


def load_projectors(path: Path, manifest: Manifest) -> dict[str, Projector]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not manifest.projectors:
        return {}
    f = path / "projectors.safetensors"
    try:
        state = load_file(str(f))
    except (OSError, SafetensorError) as e:
        raise AdapterError(f"{f}: cannot read projector weights ({e})") from None
    out = {}
    for kind, spec in manifest.projectors.items():
        proj = Projector(ProjectorSpec(**spec))
        sub = {k[len(kind) + 1:]: v for k, v in state.items() if k.startswith(kind + ".")}
        missing, unexpected = proj.load_state_dict(sub, strict=False)
        if missing or unexpected:
            raise AdapterError(f"{f}: {kind} projector weights do not match the manifest (missing {missing})")
        out[kind] = proj.eval()
    return out


def load_adapter(model, base_identity: str, name: str):
    """Return (model with LoRA applied, projectors, manifest) for a bundle."""
    from peft import PeftModel

    path = resolve(name)
    if not path.is_dir():
        raise AdapterError(f"adapter {name!r} not found (looked in {path})")
    manifest = read_manifest(path)
    check_compatible(manifest, base_identity, path)
    if manifest.lora:
        try:
            model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
        except Exception as e:  # peft raises several types for a bad file
            raise AdapterError(f"{path}: cannot load LoRA weights ({type(e).__name__}: {e})") from None
    return model, load_projectors(path, manifest), manifest


def save_adapter(path: Path, model, projectors: dict[str, Projector], manifest: Manifest) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    if manifest.lora:
        model.save_pretrained(str(path), safe_serialization=True)
    if projectors:
        state = {f"{k}.{n}": t.detach().cpu().contiguous() for k, p in projectors.items() for n, t in p.state_dict().items()}
        save_file(state, str(path / "projectors.safetensors"))
    (path / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
