"""The mean-pooling embedder: which folders it runs, hand-computed vectors on a tiny BERT, and (slow) the
packaged MiniLM's vectors bit-identical to sentence-transformers' and to the shipped catalog index."""

import json
import shutil

import numpy as np
import pytest
import torch

from chatrec.weights.embedder import MeanPoolingEmbedder, is_mean_pooling_folder

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "heist", "film", "with", "clever", "twist", "space", "!"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A sentence-transformers folder around a random 2-layer BERT: Transformer -> mean Pooling -> Normalize."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-st")
    (path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64), add_pooling_layer=False).save_pretrained(path)
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 16, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    (path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8, "do_lower_case": False}))
    (path / "config_sentence_transformers.json").write_text(json.dumps({"__version__": {"sentence_transformers": "2.0.0"}}))
    return path


def _edit(src, dst, name, change):
    shutil.copytree(src, dst)
    data = json.loads((dst / name).read_text())
    change(data)
    (dst / name).write_text(json.dumps(data))
    return dst


@pytest.mark.parametrize(("name", "change"), [
    ("1_Pooling/config.json", lambda d: d.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)),
    ("1_Pooling/config.json", lambda d: d.update(pooling_mode_max_tokens=True)),
    ("1_Pooling/config.json", lambda d: d.update(include_prompt=False)),
    ("sentence_bert_config.json", lambda d: d.update(do_lower_case=True)),
    ("config_sentence_transformers.json", lambda d: d.update(prompts={"query": "query: "})),
    ("modules.json", lambda d: d.pop()),
    ("modules.json", lambda d: d.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})),
])
def test_only_plain_mean_pooling_folders_are_run_here(tiny_folder, tmp_path, name, change):
    assert is_mean_pooling_folder(tiny_folder)
    assert not is_mean_pooling_folder(_edit(tiny_folder, tmp_path / "x", name, change))
    assert not is_mean_pooling_folder(tmp_path)  # not a sentence-transformers folder at all


def test_vectors_are_the_normalised_mean_of_real_token_states_in_input_order(tiny_folder):
    emb = MeanPoolingEmbedder(tiny_folder)
    texts = ["a heist film with a clever twist !", "space", "a film", "heist " * 20]  # the last is truncated to 8
    got = emb.encode(texts, batch_size=3, normalize_embeddings=True)
    assert got.shape == (4, 16) and got.dtype == np.float32
    for text, vec in zip(texts, got, strict=True):
        ids = emb.tokenizer(text, truncation=True, return_tensors="pt")  # alone: no padding
        assert ids["input_ids"].shape[1] <= 8
        with torch.no_grad():
            states = emb.model(**ids).last_hidden_state[0]  # (T, 16)
        want = states.mean(0) / states.mean(0).norm()
        assert np.allclose(vec, want.numpy(), atol=1e-5)
    assert np.allclose(emb.encode(texts[::-1], batch_size=2), got[::-1], atol=1e-6)
    assert emb.encode([]).shape == (0,)


@pytest.mark.slow
def test_packaged_minilm_is_bit_identical_to_sentence_transformers_and_the_shipped_index():
    """A few requests against sentence-transformers, both demo catalogs (1,379 films, the books) against the
    indexes sentence-transformers wrote for them (~100 s on 2 busy cores)."""
    from sentence_transformers import SentenceTransformer

    from chatrec.config import PACKAGED_EMBEDDER, load_config
    from chatrec.retrieval import _index_path
    from chatrec.weights.packaged import load_embedder, offline, packaged_embedder_dir

    ours = load_embedder(PACKAGED_EMBEDDER)
    assert isinstance(ours, MeanPoolingEmbedder)
    with offline():
        st = SentenceTransformer(str(packaged_embedder_dir()))
    queries = ["a heist film with a clever twist", "not that one", "  spaces around  ", "", "Amélie, café 🎬",
               "I want a tense science fiction thriller set in space " * 30]
    for q in queries:  # one request a turn, as retrieval embeds it
        a = st.encode([q], normalize_embeddings=True, convert_to_numpy=True)[0]
        assert np.array_equal(ours.encode([q], normalize_embeddings=True, convert_to_numpy=True)[0], a), q
    kwargs = {"batch_size": 64, "normalize_embeddings": True, "show_progress_bar": False, "convert_to_numpy": True}
    for name in ("films", "books"):  # as embed_catalog calls it
        cfg = load_config(None, [f"catalog={name}"])
        catalog = cfg.load_catalog()
        texts = [it.text() for it in catalog]
        shipped = [p for p in _index_path(catalog, PACKAGED_EMBEDDER, cfg.cache()) if p.is_file()]
        assert shipped, f"no shipped {name} index (written by sentence-transformers) to compare with"
        assert np.array_equal(ours.encode(texts, **kwargs), np.load(shipped[0])), name
