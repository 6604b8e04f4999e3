"""A mean-pooling sentence embedder read from a sentence-transformers folder, without importing that library.

``import sentence_transformers`` pulls in scikit-learn, its trainer and model-card modules and peft: about
2.5 s of a warm start on 2 busy cores, for a model that is a BERT encoder, a mean over its token states and
an L2 norm. A folder made of exactly those three modules (the packaged all-MiniLM-L6-v2) is run here with
the same steps as ``SentenceTransformer.encode`` (length-sorted batches, padding, truncation at
``max_seq_length``, mean over real tokens, normalisation), so the vectors are bit-identical to it and to
the catalog indexes it wrote (tests/weights/test_embedder.py). Any other folder goes to sentence-transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

# modules.json of a folder this class runs: the transformer, a mean pooling and a normalisation, in this order.
_MODULES = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize")


def is_mean_pooling_folder(path: Path) -> bool:
    """True when ``path`` holds Transformer -> mean Pooling -> Normalize and nothing more (no prompts, casing...)."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        pooling = json.loads((path / modules[1]["path"] / "config.json").read_text())
        st_config = json.loads((path / "sentence_bert_config.json").read_text())
        extra = json.loads((path / "config_sentence_transformers.json").read_text())
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    return (tuple(m.get("type") for m in modules) == _MODULES and modules[0].get("path") == ""
            and modes == {"pooling_mode_mean_tokens"} and pooling.get("include_prompt", True) is True
            and set(st_config) <= {"max_seq_length", "do_lower_case"} and not st_config.get("do_lower_case")
            and {k for k, v in extra.items() if v} <= {"__version__", "similarity_fn_name", "model_type"})


class MeanPoolingEmbedder:
    """``encode`` as sentence-transformers has it, for a :func:`is_mean_pooling_folder` folder."""

    def __init__(self, path: Path, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        max_len = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length")
        self.tokenizer = AutoTokenizer.from_pretrained(path, **({"model_max_length": max_len} if max_len else {}))
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.device = torch.device(device)

    @torch.inference_mode()
    def embed_batch(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, D) unit vectors: the mean of the encoder's states over real tokens, L2-normalised."""
        feats = self.tokenizer(list(texts), padding=True, truncation="longest_first", return_tensors="pt").to(self.device)
        states = self.model(**feats, return_dict=True).last_hidden_state  # (B, T, D)
        mask = feats["attention_mask"].unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        mean = (states * mask).sum(dim=1, dtype=states.dtype) / torch.clamp(mask.sum(dim=1, dtype=states.dtype), min=1e-9)
        return torch.nn.functional.normalize(mean, p=2, dim=-1)  # (B, D)

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = False,
               show_progress_bar: bool = False, convert_to_numpy: bool = True) -> np.ndarray:
        """(N, D) float32 embeddings of ``texts``, in their order.

        Longest texts are batched first, as sentence-transformers does: the batches, and so the padding each
        text sees, are the same, and with them the last bits of every vector.
        """
        from tqdm.auto import trange

        if not convert_to_numpy:
            raise ValueError("MeanPoolingEmbedder.encode returns numpy arrays only")
        order = np.argsort([-len(t) for t in texts])
        rows: list[torch.Tensor] = []
        for start in trange(0, len(texts), batch_size, desc="Batches", disable=not show_progress_bar):
            vecs = self.embed_batch([texts[i] for i in order[start:start + batch_size]])
            if normalize_embeddings:  # again, as sentence-transformers does (a no-op but for the last bit)
                vecs = torch.nn.functional.normalize(vecs, p=2, dim=1)
            rows.extend(vecs.cpu())
        if not rows:
            return np.array([])
        return torch.stack([rows[i] for i in np.argsort(order)]).numpy()
