"""Reason decoding over the words a reason can use: the output layer over a vocabulary subset.

Gemma 3's output layer is 262k rows x 640, 168M of the model's 270M parameters, and a greedy step of a
batch of reasons multiplies every row. A reason only uses words of its prompt (the item's facts and
premise, the user's words), of the catalog, and of plain English reasons, so decoding computes the
logits of those tokens only (tens of thousands of rows) and leaves every other token at -inf. Greedy
decoding then picks the same token as the full layer whenever the full layer's best token is in the
set; ``benchmarks/turn_latency.py`` measures how often the texts differ, in the same run as the speed.

The subset is switched on per thread (the generation worker), so a ranking pass running in another
thread at the same time still sees the full layer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .catalog import Catalog

_LOCAL = threading.local()
_INSTALLED: weakref.WeakSet[nn.Module] = weakref.WeakSet()  # output layers already wrapped


def _allowed() -> torch.Tensor | None:
    return getattr(_LOCAL, "ids", None)


def _written_reasons() -> list[str]:
    """The team-written reasons shipped for training: plain English of the kind a reason uses."""
    path = resources.files("chatrec").joinpath("data", "reasons", "train.jsonl")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, OSError):  # a trimmed install: the catalog and prompt words remain
        return []
    return [json.loads(line)["reason"] for line in lines if line.strip()]


def catalog_texts(catalog: Catalog) -> Iterable[str]:
    """Every string of every item: titles, premises, people, genres, keywords."""
    for item in catalog:
        yield item.title
        yield item.description
        for key in item.attributes:
            yield from item.values(key)


def reason_vocabulary(tok, catalog: Catalog, extra: Sequence[str] = ()) -> torch.Tensor:
    """Sorted token ids a reason over ``catalog`` may use (prompt tokens are added per call)."""
    texts = [*catalog_texts(catalog), *_written_reasons(), *extra]
    ids: set[int] = set()
    for start in range(0, len(texts), 512):
        batch = texts[start:start + 512]
        for row in tok(batch, add_special_tokens=False).input_ids:
            ids.update(row)
        # A word starts a sentence, follows a space or ends one: the same word tokenises differently.
        for row in tok([" " + t for t in batch], add_special_tokens=False).input_ids:
            ids.update(row)
    specials = [tok.eos_token_id, tok.pad_token_id, *tok.convert_tokens_to_ids(["<end_of_turn>"])]
    ids.update(i for i in specials if isinstance(i, int) and i >= 0)
    ids.update(tok("\n .,;:!?'\"-()", add_special_tokens=False).input_ids)
    return torch.tensor(sorted(ids), dtype=torch.long)


def cached_reason_vocabulary(tok, catalog: Catalog, model_identity: str, cache: Path) -> torch.Tensor:
    """:func:`reason_vocabulary`, kept on disk per model and catalog content (~2 s to build on 2 cores)."""
    key = hashlib.sha256(f"{model_identity}|{catalog.content_hash()}|{len(_written_reasons())}".encode()).hexdigest()
    path = cache / "vocab" / f"{key[:24]}.npy"
    if path.is_file():
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False).astype(np.int64))
        except (OSError, ValueError):
            pass  # unreadable: built again below
    ids = reason_vocabulary(tok, catalog)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, ids.numpy().astype(np.int32))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs the build next time
    return ids


def _restricted_forward(head: nn.Linear, full_forward):
    def forward(hidden: torch.Tensor) -> torch.Tensor:
        ids = _allowed()
        if ids is None:
            return full_forward(hidden)
        ids = ids.to(head.weight.device)
        rows = getattr(_LOCAL, "rows", None)
        if rows is None or rows[0] is not head:  # gathered once per block, not at every step
            rows = _LOCAL.rows = (head, head.weight[ids], None if head.bias is None else head.bias[ids])
        part = hidden @ rows[1].T  # (.., len(ids)): the only rows computed
        if rows[2] is not None:
            part = part + rows[2]
        out = part.new_full((*hidden.shape[:-1], head.weight.shape[0]), float("-inf"))
        out[..., ids] = part
        return out

    return forward


def install(lm: nn.Module) -> None:
    """Let ``lm``'s output layer compute a subset of rows when a thread asks (:func:`restricted`).

    The layer keeps its weights and its place in the state dict; only its ``forward`` is wrapped.
    """
    head = lm.get_output_embeddings()
    if not isinstance(head, nn.Linear) or head in _INSTALLED:
        return
    head.forward = _restricted_forward(head, head.forward)
    _INSTALLED.add(head)


class restricted:
    """``with restricted(ids):`` the output layer computes only ``ids`` in this thread."""

    def __init__(self, ids: torch.Tensor | None):
        self.ids = ids

    def __enter__(self) -> None:
        self.before = (_allowed(), getattr(_LOCAL, "rows", None))
        _LOCAL.ids, _LOCAL.rows = self.ids, None

    def __exit__(self, *exc) -> None:
        _LOCAL.ids, _LOCAL.rows = self.before
