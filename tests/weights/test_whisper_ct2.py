"""CTranslate2 -> openai-whisper conversion, on a synthetic file and on the packaged models."""

import io
import struct

import numpy as np
import pytest
import torch

from chatrec.weights import whisper_ct2
from chatrec.weights.whisper_ct2 import PackagedModel, convert, load_packaged_whisper, read_ct2


def _s(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _var(name: str, arr: np.ndarray, code: int) -> bytes:
    return (
        _s(name)
        + struct.pack(f"<B{arr.ndim}I", arr.ndim, *arr.shape)
        + struct.pack("<BI", code, arr.nbytes)
        + arr.tobytes()
    )


def test_read_ct2_streams_parts_dtypes_and_aliases():
    w = np.arange(6, dtype=np.float16).reshape(2, 3)
    bf16 = (np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16).astype(np.uint16)
    blob = (
        struct.pack("<I", 6)
        + _s("WhisperSpec")
        + struct.pack("<II", 3, 3)
        + _var("a/weight", w, 4)
        + _var("b/bf16", bf16, 5)
        + _var("enc/num_heads", np.array(8, np.int16), 2)
        + struct.pack("<I", 1)
        + _s("a/alias")
        + _s("a/weight")
    )
    cut = len(blob) // 2 + 3  # split mid-variable, like model.bin.part1/part2
    t = read_ct2([io.BytesIO(blob[:cut]), io.BytesIO(blob[cut:])])
    assert t["a/weight"].dtype == np.float16 and np.array_equal(t["a/weight"], w)
    assert np.array_equal(t["b/bf16"], [1.5, -2.0])
    assert int(t["enc/num_heads"]) == 8 and t["a/alias"] is t["a/weight"]
    with pytest.raises(ValueError, match="truncated"):
        read_ct2(io.BytesIO(blob[:cut]))


@pytest.fixture(scope="module")
def base_tensors():
    return read_ct2(whisper_ct2._model_files("base")[0])


@pytest.mark.parametrize(
    "name, state, layers, n_vocab, multilingual",
    [("base", 512, 6, 51865, True), ("tiny.en", 384, 4, 51864, False)],
)
def test_packaged_dims_and_strict_load(name, state, layers, n_vocab, multilingual):
    from whisper.model import Whisper

    tensors = read_ct2(whisper_ct2._model_files(name)[0])
    dims, sd = convert(tensors)
    assert (dims.n_audio_state, dims.n_audio_layer, dims.n_text_layer, dims.n_vocab) == (state, layers, layers, n_vocab)
    assert (dims.n_mels, dims.n_audio_ctx, dims.n_text_ctx, dims.n_audio_head) == (80, 1500, 448, state // 64)
    model = Whisper(dims)
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert model.is_multilingual is multilingual
    # Every CTranslate2 weight lands somewhere: element counts match once the fused key biases
    # (self and cross attention; absent in Whisper, all zeros in CTranslate2) are accounted for.
    unique = {id(a): a for k, a in tensors.items() if a.ndim > 0}
    key_biases = [a[state : 2 * state] for k, a in tensors.items() if k.endswith("self_attention/linear_0/bias")]
    key_biases += [a[:state] for k, a in tensors.items() if k.endswith("/attention/linear_1/bias")]  # cross k|v
    assert all(not b.any() for b in key_biases)
    n_src = sum(a.size for a in unique.values()) - sum(b.size for b in key_biases)
    assert n_src == sum(v.numel() for v in sd.values())


def test_cached_load_equals_fresh_conversion(tmp_path, monkeypatch, base_tensors):
    monkeypatch.setenv("CHATREC_CACHE", str(tmp_path))
    _, fresh = convert(base_tensors)
    first = load_packaged_whisper("base")  # converts and writes the cache
    (entry,) = (tmp_path / "whisper").iterdir()
    assert entry.name.startswith("base-") and sorted(p.name for p in entry.iterdir()) == [
        "dims.json",
        "model.safetensors",
    ]
    cached = load_packaged_whisper("base")  # reads the cache
    for m in (first, cached):
        sd = m.state_dict()
        assert all(torch.equal(sd[k], v.float()) for k, v in fresh.items())
        assert m.alignment_heads.to_dense().sum() == 8  # from config.json, for word timestamps
        assert not m.training and next(m.parameters()).dtype == torch.float32


def test_tokenizers_are_bundled_offline():
    from whisper.tokenizer import get_tokenizer

    for multilingual in (True, False):
        tok = get_tokenizer(multilingual, num_languages=99)
        assert tok.decode(tok.encode(" a quiet film")) == " a quiet film"


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match=r"choices: \['base', 'tiny.en'\]"):
        load_packaged_whisper("large")


def test_missing_package_names_pip_install(monkeypatch):
    fake = PackagedModel("no-such-whisper-pkg", ("chatrec_no_such_pkg:m.bin",), "x:c")
    monkeypatch.setitem(whisper_ct2.PACKAGED, "fake", fake)
    with pytest.raises(ModuleNotFoundError, match="pip install no-such-whisper-pkg"):
        load_packaged_whisper("fake")
