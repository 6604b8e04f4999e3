"""Shared fixtures: a tiny random causal LM with a word-level tokenizer, a hashing embedder, and a throwaway
PostgreSQL server (tests/postgres_server.py) for the tests of the shared store.

The model and the embedder are deterministic and build in milliseconds, so unit tests never touch the packaged
weights.
"""

from __future__ import annotations

import hashlib
import re
import string
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_tokenizer(extra_text: str = ""):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from chatrec.prompting import TEMPLATES, template

    words = set(string.ascii_letters) | set(string.digits) | set(string.punctuation)
    corpus = " ".join(template(t) for t in TEMPLATES) + " " + extra_text
    words |= set(re.findall(r"\w+|[^\w\s]", corpus))
    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", "\n", *sorted(words)])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", "isolated"), pre_tokenizers.Whitespace()])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def tiny_causal_lm(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


class HashEmbedder:
    """Bag-of-words hashing 'sentence embedder' with the SentenceTransformer.encode signature."""

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.calls = 0

    def encode(self, texts, normalize_embeddings=True, convert_to_numpy=True, **_):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


@pytest.fixture(scope="session")
def small_catalog():
    from chatrec.catalog import load_catalog

    return load_catalog(FIXTURES / "films_small.jsonl")


@pytest.fixture(scope="session")
def tiny_lm(small_catalog):
    from chatrec.model import ChatLM

    tok = tiny_tokenizer(" ".join(it.text() for it in small_catalog))
    return ChatLM(tok, tiny_causal_lm(len(tok)), "tiny-llama@test")


@pytest.fixture
def tiny_recommender(small_catalog, tiny_lm, tmp_path):
    """A Recommender over the small catalog with the tiny LM and the hashing embedder."""
    from chatrec.config import load_config
    from chatrec.recommender import Recommender
    from chatrec.retrieval import Retriever, embed_catalog
    from chatrec.store import SessionStore

    cfg = load_config(None, [f"data_dir={tmp_path}", "retrieval.n_candidates=8", "generation.max_reason_tokens=6"])
    emb = HashEmbedder()
    vecs = embed_catalog(small_catalog, emb, "hash", tmp_path, progress=False)
    return Recommender(cfg, small_catalog, Retriever(small_catalog, emb, vecs, cfg.retrieval), tiny_lm,
                       SessionStore(tmp_path / "sessions.sqlite"))


@pytest.fixture(scope="module")
def retriever(small_catalog, tmp_path_factory):
    """Retrieval over the small catalog with the hashing embedder, 6 candidates."""
    from chatrec.config import RetrievalConfig
    from chatrec.retrieval import Retriever, embed_catalog

    emb = HashEmbedder()
    vecs = embed_catalog(small_catalog, emb, "hash", tmp_path_factory.mktemp("idx"), progress=False)
    return Retriever(small_catalog, emb, vecs, RetrievalConfig(n_candidates=6))


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster for the whole run (tests/postgres_server.py); skips without the binaries."""
    from postgres_server import running_server

    with running_server() as server:
        yield server
