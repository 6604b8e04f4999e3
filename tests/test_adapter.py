import json

import pytest
import torch
from conftest import tiny_causal_lm

from chatrec.adapter import (
    ADAPTERS_DIR,
    AdapterError,
    AdapterStatus,
    EncoderSpec,
    Manifest,
    load_adapter,
    read_manifest,
    save_adapter,
    usable_projectors,
)
from chatrec.model import ChatLM
from chatrec.projector import build_projector
from chatrec.prompting import templates_hash

PROMPT = "User : a film\n" + "\n".join(f"{x} : Heat . Fits :<fit>" for x in "ABCDE")


@pytest.fixture
def bundle(tmp_path, tiny_lm):
    from peft import LoraConfig, get_peft_model

    base = tiny_causal_lm(len(tiny_lm.tok))
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    proj = build_projector("linear", 6, 32, 2)
    manifest = Manifest("tiny@1", templates_hash(), True, {"image": proj.spec.to_dict()}, {"image": EncoderSpec("test")})
    save_adapter(tmp_path / "a", lora, {"image": proj}, manifest)
    want = ChatLM(tiny_lm.tok, lora, "tiny@1").rank(PROMPT, 5)
    return tmp_path / "a", want, proj


def test_round_trip_gives_identical_outputs(bundle, tiny_lm):
    path, want, proj = bundle
    model, projectors, manifest = load_adapter(tiny_causal_lm(len(tiny_lm.tok)), "tiny@1", str(path))
    got = ChatLM(tiny_lm.tok, model, "tiny@1", projectors).rank(PROMPT, 5)
    assert torch.allclose(got, want, atol=1e-6)
    x = torch.randn(1, 1, 6)
    assert torch.allclose(projectors["image"](x), proj(x))
    assert manifest.projectors["image"]["tokens_per_input"] == 2
    base = ChatLM(tiny_lm.tok, tiny_causal_lm(len(tiny_lm.tok)), "tiny@1").rank(PROMPT, 5)
    assert not torch.allclose(base, want, atol=1e-4)  # the LoRA really changes the ranking


def test_other_base_or_prompts_are_refused(bundle, tiny_lm):
    path, _, _ = bundle
    with pytest.raises(AdapterError, match="trained for base model tiny@1"):
        load_adapter(tiny_causal_lm(len(tiny_lm.tok)), "other@2", str(path))
    m = json.loads((path / "manifest.json").read_text())
    m["prompts_sha256"] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AdapterError, match="other prompt templates"):
        load_adapter(tiny_causal_lm(len(tiny_lm.tok)), "tiny@1", str(path))


def test_corrupted_files_are_clear_errors(bundle, tiny_lm):
    path, _, _ = bundle
    (path / "projectors.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(AdapterError, match="cannot read projector weights"):
        load_adapter(tiny_causal_lm(len(tiny_lm.tok)), "tiny@1", str(path))
    (path / "manifest.json").write_text("{broken")
    with pytest.raises(AdapterError, match="unreadable manifest"):
        read_manifest(path)
    with pytest.raises(AdapterError, match="not found"):
        load_adapter(tiny_causal_lm(len(tiny_lm.tok)), "tiny@1", str(path / "nope"))


def test_shipped_default_adapter_records_what_was_trained():
    path = ADAPTERS_DIR / "default"
    if not (path / "manifest.json").is_file():
        pytest.skip("no shipped default adapter")
    m = read_manifest(path)
    assert m.base_model.startswith("packaged:gemma3-270m@sha256:") and m.prompts_sha256 == templates_hash()
    assert m.lora and (path / "adapter_model.safetensors").stat().st_size < 30 * 2**20
    assert set(m.projectors) <= {"image", "audio"}
    t = m.training
    assert t["steps"] > 0 and t["seconds"] > 0 and t["examples"] > 0 and "recall@1" in t["metrics"]
    for kind in {"image", "audio"} - set(m.projectors):  # what was not trained is said
        assert f"{kind} projector" in t["not_trained"]


def test_manifest_round_trips_typed_encoders(bundle):
    path, _, _ = bundle
    assert read_manifest(path).encoders == {"image": EncoderSpec("test")}
    old = json.loads((path / "manifest.json").read_text()) | {"encoders": {"audio": "whisper-base:4 states"}}
    (path / "manifest.json").write_text(json.dumps(old))
    with pytest.raises(AdapterError, match="unreadable manifest"):
        read_manifest(path)


def test_a_projector_trained_on_another_encoder_is_not_used():
    projectors = {"audio": "proj-a", "image": "proj-i"}
    encoders = {"audio": EncoderSpec.whisper("base", 4), "image": EncoderSpec("ViT-B-32", weights="/weights/clip.bin")}
    now = {"audio": EncoderSpec.whisper("base", 4), "image": EncoderSpec("ViT-B-32")}
    assert usable_projectors(projectors, encoders, now) == (projectors, [])
    keep, dropped = usable_projectors(projectors, encoders, {"audio": EncoderSpec.whisper("tiny.en", 4),
                                                             "image": EncoderSpec("ViT-B-16")})
    assert keep == {}
    assert dropped == ["audio projector not used: trained on whisper-base, but whisper-tiny.en is configured",
                       "image projector not used: trained on ViT-B-32, but ViT-B-16 is configured"]
    keep, dropped = usable_projectors(projectors, encoders, {**now, "audio": EncoderSpec.whisper("base", 8)})
    assert keep == {"image": "proj-i"}
    assert dropped == ["audio projector not used: trained on 4 pooled states per clip, but media.audio_tokens is 8"]
    keep, dropped = usable_projectors(projectors, {}, now)
    assert keep == {} and "an unrecorded encoder" in dropped[0]


def test_adapter_status_says_what_runs():
    assert AdapterStatus(None).note() == "base LLM, no adapter" and not AdapterStatus(None).untuned
    loaded = AdapterStatus("default", True, "/a", ("audio",), ("image projector not used: x",))
    assert loaded.note() == "adapter 'default' (LoRA, audio); image projector not used: x" and not loaded.untuned
    missing = AdapterStatus("default", path="/a", missing="no manifest.json")
    assert missing.untuned and "untuned base LLM" in missing.note()
