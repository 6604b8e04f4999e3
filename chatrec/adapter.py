"""Adapter bundles: a peft LoRA, trained projectors and a manifest that says what was trained.

``adapters/<name>/`` holds ``adapter_config.json`` + ``adapter_model.safetensors`` (peft),
``projectors.safetensors`` and ``manifest.json``. Loading reads the manifest and refuses a bundle
trained for other base weights or other prompt templates; it never guesses. No pickles anywhere.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from .projector import Projector, ProjectorSpec
from .prompting import templates_hash

log = logging.getLogger(__name__)
# Shipped bundles: chatrec/adapters in an installed wheel, adapters/ at the top of an editable checkout.
_PACKAGED_ADAPTERS = resources.files(__package__) / "adapters"
ADAPTERS_DIR = (Path(str(_PACKAGED_ADAPTERS)) if _PACKAGED_ADAPTERS.is_dir()
                else Path(__file__).resolve().parent.parent / "adapters")


class AdapterError(ValueError):
    """An adapter bundle that cannot be used with the loaded model; the message says why."""


@dataclass(frozen=True)
class EncoderSpec:
    """The encoder a projector was aligned on; a projector is used only with this exact encoder."""

    name: str  # "whisper-base", "whisper-tiny.en", or an open_clip architecture such as "ViT-B-32"
    weights: str = ""  # CLIP: the pretrained tag or checkpoint it was aligned with
    pooled_states: int = 0  # audio: pooled Whisper states per clip (what each soft token summarises); 0 = n/a

    @staticmethod
    def whisper(model: str, pooled_states: int) -> EncoderSpec:
        return EncoderSpec(f"whisper-{model}", pooled_states=pooled_states)


@dataclass(frozen=True)
class Manifest:
    base_model: str  # identity of the base weights, e.g. packaged:gemma3-270m@sha256:...
    prompts_sha256: str  # prompt templates the LoRA was trained against
    lora: bool = True  # adapter_model.safetensors present and trained
    projectors: dict[str, dict] = field(default_factory=dict)  # kind -> ProjectorSpec fields, trained only
    encoders: dict[str, EncoderSpec] = field(default_factory=dict)  # kind ("image" | "audio") -> its encoder
    embedder: str = ""  # sentence embedder used for retrieval during training
    training: dict = field(default_factory=dict)  # data, steps, seconds, metrics

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        encoders = data.get("encoders") or {}
        if not all(isinstance(v, dict) for v in encoders.values()):
            raise TypeError("encoders must map a kind to {name, weights, pooled_states}")
        return cls(**{**data, "encoders": {k: EncoderSpec(**v) for k, v in encoders.items()}})


@dataclass(frozen=True)
class AdapterStatus:
    """What the loaded recommender runs with, for notes, the UI panel and evaluation reports."""

    requested: str | None  # the config's adapter value (None: the base LLM was asked for)
    loaded: bool = False  # a LoRA (and possibly projectors) is applied
    path: str = ""  # the bundle's directory, when loaded
    projectors: tuple[str, ...] = ()  # projector kinds in use
    dropped: tuple[str, ...] = ()  # projectors in the bundle that are not used, each with why
    missing: str = ""  # why the default adapter was not found (ranking falls back to the untuned base LLM)

    @property
    def untuned(self) -> bool:
        """The default adapter was asked for but is missing: answers come from the untuned base LLM."""
        return bool(self.missing)

    def note(self) -> str:
        if self.loaded:
            return "; ".join([f"adapter {self.requested!r} ({', '.join(['LoRA', *self.projectors])})", *self.dropped])
        if self.missing:
            return f"no trained adapter at {self.path}: ranking with the untuned base LLM ({self.missing})"
        return "base LLM, no adapter"


def resolve(name: str) -> Path:
    """A directory path (a bundle anywhere, e.g. a training run's ``runs/stage4``), else the name of a
    shipped bundle (package resource ``chatrec/adapters/<name>``)."""
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
        return Manifest.from_dict(data)
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
        # peft would fall back to adapter_model.bin, a pickle that can run code on load: safetensors only.
        if not (path / "adapter_model.safetensors").is_file():
            pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
            raise AdapterError(f"{path}: no adapter_model.safetensors" + (
                f" ({', '.join(pickles)} refused: pickled weights can run code when loaded; convert to safetensors)"
                if pickles else ""))
        try:
            model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
        except Exception as e:  # peft raises several types for a bad file
            raise AdapterError(f"{path}: cannot load LoRA weights ({type(e).__name__}: {e})") from None
    return model, load_projectors(path, manifest), manifest


def usable_projectors(projectors: dict, encoders: dict[str, EncoderSpec], expected: dict[str, EncoderSpec]
                      ) -> tuple[dict, list[str]]:
    """Projectors whose training encoder is the one configured now; the rest are dropped with a note.

    A projector reads one encoder's vectors: Whisper tiny.en states through a projector aligned on
    Whisper base would be noise, and pooling a clip into another number of states changes what each
    state summarises; that modality then falls back to transcript / retrieval only.
    """
    keep, dropped = {}, []
    for kind, proj in projectors.items():
        trained, now = encoders.get(kind), expected.get(kind)
        if now is None:
            keep[kind] = proj
        elif trained is None or trained.name != now.name:
            dropped.append(f"{kind} projector not used: trained on {trained.name if trained else 'an unrecorded encoder'}, "
                           f"but {now.name} is configured")
        elif trained.pooled_states != now.pooled_states:
            dropped.append(f"{kind} projector not used: trained on {trained.pooled_states} pooled states per clip, "
                           f"but media.audio_tokens is {now.pooled_states}")
        else:
            keep[kind] = proj
    return keep, dropped


def save_adapter(path: Path, model, projectors: dict[str, Projector], manifest: Manifest) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    if manifest.lora:
        model.save_pretrained(str(path), safe_serialization=True)
    if projectors:
        state = {f"{k}.{n}": t.detach().cpu().contiguous() for k, p in projectors.items() for n, t in p.state_dict().items()}
        save_file(state, str(path / "projectors.safetensors"))
    (path / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
