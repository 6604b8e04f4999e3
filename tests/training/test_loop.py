import json
import shutil
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES, HashEmbedder, tiny_causal_lm, tiny_tokenizer

import chatrec.training.loop as train_mod
from chatrec.adapter import EncoderSpec, load_adapter
from chatrec.catalog import load_catalog
from chatrec.config import ConfigError, TrainConfig, load_config
from chatrec.evaluation.dialogues import Dialogue, Turn, save_dialogues
from chatrec.model import ChatLM
from chatrec.training.card import portable
from chatrec.training.checkpoint import TrainError
from chatrec.training.loop import batch_indices, lr_at, train
from chatrec.ui.cli import main as cli_main
from chatrec.weights import packaged

ROOT = Path(__file__).resolve().parents[2]

ASKS = [("Any scary horror films?", "the-shining-1980"), ("Something animated for my kids", "toy-story-1995"),
        ("A tense science fiction film in space", "alien-1979"), ("A classic war romance", "casablanca-1942"),
        ("A crime drama about a mafia family", "the-godfather-1972"), ("Heist thriller with Al Pacino", "heat-1995")]


def _dialogues(split: str) -> list[Dialogue]:
    return [Dialogue(f"{split}-{i}", "test", split, (Turn("user", ask), Turn("assistant", "Try this.", targets=(t,))), t)
            for i, (ask, t) in enumerate(ASKS)]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A tiny local LLM directory, a catalog copy, dialogue files, and the hashing embedder."""
    catalog = tmp_path / "films.jsonl"
    shutil.copy(FIXTURES / "films_small.jsonl", catalog)
    tok = tiny_tokenizer(" ".join(it.text() for it in load_catalog(catalog)))
    llm = tmp_path / "llm"
    lm = tiny_causal_lm(len(tok))
    with torch.no_grad():  # the default 0.02-std embeddings cap every logit near 0: nothing to learn in a few steps
        lm.get_input_embeddings().weight.mul_(10)
    lm.save_pretrained(llm)
    tok.save_pretrained(llm)
    save_dialogues(tmp_path / "train.jsonl", _dialogues("train"))
    save_dialogues(tmp_path / "val.jsonl", _dialogues("val"))
    monkeypatch.setattr(packaged, "load_embedder", lambda name, device="cpu": HashEmbedder())
    monkeypatch.setenv("CHATREC_CACHE", str(tmp_path / "home"))  # model and feature caches of this test only
    base = [f"model.llm={llm}", f"catalog={catalog}", f"train.train_dialogues={tmp_path / 'train.jsonl'}",
            f"train.val_dialogues={tmp_path / 'val.jsonl'}", f"data_dir={tmp_path / 'home'}", "retrieval.n_candidates=5",
            "ranking.top_k=5", "train.batch_size=2", "train.grad_accum=1", "train.lr=0.01", "train.lora_r=4", "train.lora_alpha=16",
            "train.max_examples=0", "train.max_val_examples=0", "train.gradient_checkpointing=true",
            "train.lora_dropout=0.1", "model.threads=1", "train.lora_layers=0", "train.warmup_steps=0",
            "train.reason_every=1", "train.target_modules=q_proj,k_proj,v_proj,o_proj"]
    return Namespace(tmp=tmp_path, llm=llm, base=base, out=tmp_path / "out")


def cfg(env, *extra):
    """The test config; bare keys are training keys (``max_steps=3`` is ``train.max_steps=3``)."""
    keys = [x if "." in x.split("=", 1)[0] else f"train.{x}" for x in extra]
    return load_config(None, env.base + [f"train.out={env.out}", *keys])


def test_a_few_steps_reduce_the_loss_and_write_the_bundle(env):
    res = train(cfg(env, "max_steps=24", "checkpoint_every=0", "lr=0.02"))
    h = res.history
    assert len(h) == 24 and sum(h[-6:]) / 6 < 0.8 * sum(h[:6]) / 6  # batches differ: compare means
    for name in ("adapter_config.json", "adapter_model.safetensors", "manifest.json", "README.md", "loss.png"):
        assert (env.out / name).is_file(), name
    assert not (env.out / "projectors.safetensors").exists()
    m = json.loads((env.out / "manifest.json").read_text())
    assert m["base_model"] == str(env.llm) and m["projectors"] == {} and m["lora"] is True
    assert m["training"]["steps"] == 24 and "image projector" in m["training"]["not_trained"]
    assert set(m["training"]["metrics"]) >= {"recall@1", "recall@5", "n"}
    # who wrote the data: rows per file and per author, in the manifest and the model card
    assert m["training"]["data"]["files"] == {"train.jsonl": 6} and m["training"]["data"]["authors"] == {"test": 6}
    assert "- `train.jsonl`: 6 dialogues" in (env.out / "README.md").read_text()


def test_several_training_files_are_mixed_and_packaged_splits_are_named(env):
    other = [replace(d, id=f"other-{d.id}", meta={"author": "zoe"}) for d in _dialogues("train")]
    save_dialogues(env.tmp / "other.jsonl", other)
    files = f"train_dialogues={env.tmp / 'train.jsonl'},{env.tmp / 'other.jsonl'}"
    m = train(cfg(env, "max_steps=1", "checkpoint_every=0", files)).manifest
    assert m.training["examples"] == 12 and m.training["data"]["authors"] == {"test": 6, "zoe": 6}
    assert train_mod.dialogue_path("human_val", "val").name == "human_val.jsonl"
    with pytest.raises(TrainError, match="packaged split"):
        train_mod.dialogue_path("no_such_split", "train")


def test_saved_adapter_reproduces_the_candidate_scores(env):
    res = train(cfg(env, "max_steps=3", "checkpoint_every=0"))
    tok, base, identity = packaged.load_llm(str(env.llm), env.tmp / "home")
    model, projectors, _ = load_adapter(base, identity, str(env.out))
    loaded = ChatLM(tok, model, identity, projectors).eval()
    prompt = "Choose the best film .\n" + "\n".join(f"{x} : a film . Fits :<fit>" for x in "ABCDE")
    with torch.no_grad():
        want = res.lm.candidate_logits(res.lm.embed([prompt]))
        got = loaded.candidate_logits(loaded.embed([prompt]))
        base_only = ChatLM(tok, tiny_causal_lm(len(tok)), identity).candidate_logits(loaded.embed([prompt]))
    assert torch.allclose(want, got, atol=1e-5)
    assert not torch.allclose(want, base_only, atol=1e-4)  # the LoRA did change something


def test_resume_continues_the_same_run(env, monkeypatch):
    run = ("max_steps=6", "checkpoint_every=3", "warmup_steps=2", "reason_every=2")
    full = train(cfg(env, *run)).history
    shutil.rmtree(env.out)
    save = train_mod.save_checkpoint

    def interrupted(path, lm, opt, c, identity, examples, step, history, *rest):
        save(path, lm, opt, c, identity, examples, step, history, *rest)
        if step == 3:
            first.extend(history)
            raise KeyboardInterrupt  # killed right after the step-3 checkpoint

    first: list[float] = []
    monkeypatch.setattr(train_mod, "save_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(env, *run))
    monkeypatch.setattr(train_mod, "save_checkpoint", save)
    assert (env.out / "checkpoints" / "step-3" / "optimizer.safetensors").is_file()
    resumed = train(cfg(env, *run), resume=True)
    assert first == pytest.approx(full[:3], abs=1e-6)
    assert resumed.history == pytest.approx(full, abs=1e-5)  # same data order, optimizer moments and dropout
    assert resumed.manifest.training["steps"] == 6


def test_init_adapter_starts_from_its_weights_and_is_recorded(env):
    first = train(cfg(env, "max_steps=3", "checkpoint_every=0")).lm
    prompt = "Choose the best film .\n" + "\n".join(f"{x} : a film . Fits :<fit>" for x in "ABC")
    second_out = env.tmp / "second"
    res = train(cfg(env, "max_steps=1", "checkpoint_every=0", "lr=0.0", f"init_adapter={env.out}",
                    f"out={second_out}"))
    with torch.no_grad():  # lr 0: the second run's LoRA is exactly the first's
        assert torch.allclose(res.lm.candidate_logits(res.lm.embed([prompt])),
                              first.candidate_logits(first.embed([prompt])), atol=1e-5)
    rec = json.loads((second_out / "manifest.json").read_text())["training"]["init_adapter"]
    assert rec["path"] == portable(str(env.out)) and rec["steps"] == 3  # no machine paths in a bundle
    assert not Path(rec["path"]).is_absolute()
    assert f"started from the LoRA of `{portable(str(env.out))}`" in (second_out / "README.md").read_text()
    with pytest.raises(TrainError, match="do not fit"):  # another LoRA rank
        train(cfg(env, "max_steps=1", "lora_r=2", f"init_adapter={env.out}", f"out={env.tmp / 'third'}"))
    m = json.loads((env.out / "manifest.json").read_text())
    (env.out / "manifest.json").write_text(json.dumps(m | {"base_model": "other@sha256:0"}))
    with pytest.raises(TrainError, match="trained for base model other"):
        train(cfg(env, "max_steps=1", f"init_adapter={env.out}", f"out={env.tmp / 'third'}"))


def test_learning_rate_warms_up_then_decays_to_zero():
    c = TrainConfig(lr=1.0, warmup_steps=4)
    lrs = [lr_at(c, s, 12) for s in range(12)]
    assert lrs[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:], strict=False)) and 0 < lrs[-1] < 0.2


def test_lora_layers_wraps_only_the_top_layers(env):
    res = train(cfg(env, "max_steps=1", "checkpoint_every=0", "lora_layers=1"))
    wrapped = {n.split(".layers.")[1].split(".")[0] for n, _ in res.lm.lm.named_parameters() if "lora_A" in n}
    assert wrapped == {"1"}  # the tiny Llama has layers 0 and 1
    with pytest.raises(TrainError, match="train.lora_layers=3 but the base model has 2 layers"):
        train(cfg(env, "max_steps=1", "lora_layers=3"))


def test_data_order_is_a_function_of_the_step():
    a = [batch_indices(m, 10, 3, seed=1) for m in range(9)]
    assert a == [batch_indices(m, 10, 3, seed=1) for m in range(9)]
    assert sorted(i for b in a[:3] for i in b) == sorted(set(i for b in a[:3] for i in b))  # no repeats in an epoch
    assert a[:3] != a[3:6]  # reshuffled each epoch


def _checkpointed(env) -> Path:
    train(cfg(env, "max_steps=2", "checkpoint_every=2"))
    return env.out / "checkpoints" / "step-2"


def test_corrupted_checkpoint_is_refused(env):
    ck = _checkpointed(env)
    (ck / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(TrainError, match="corrupted or unreadable safetensors"):
        train(cfg(env, "max_steps=4"), resume=True)


def test_checkpoint_for_another_base_is_refused(env):
    ck = _checkpointed(env)
    m = json.loads((ck / "manifest.json").read_text())
    (ck / "manifest.json").write_text(json.dumps({**m, "base_model": "some-other-llm@sha256:0"}))
    with pytest.raises(TrainError, match="trained for base model some-other-llm"):
        train(cfg(env, "max_steps=4"), resume=True)


def test_4bit_on_cpu_is_refused_before_loading(env, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")

    def boom(*a, **k):
        raise AssertionError("loaded something")

    monkeypatch.setattr(packaged, "load_llm", boom)
    monkeypatch.setattr(packaged, "resolve_llm", boom)
    assert cli_main(["train", "--set", *env.base, "--out", str(env.out), "--load-in-4bit"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize("text,overrides,match", [
    ("[train]\nlora_r = 8\nbogus = 1\n", [], r"unknown config key\(s\) \['train.bogus'\]"),
    ("[train]\nlora_r = 'eight'\n", [], "'train.lora_r' expects int"),
    ("[train]\nlora_r = [\n", [], "not valid TOML"),
    ("", ["train.batch_size=0"], "train.batch_size must be at least 1"),
    ("", ["retrieval.n_candidates=30"], "between 1 and 26"),
    ("", ["train.gradient_checkpointing=maybe"], "'train.gradient_checkpointing' expects bool"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, overrides, match):
    p = tmp_path / "t.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p, overrides)


def test_shipped_training_configs_parse_and_never_write_the_shipped_adapter():
    for path in sorted((ROOT / "configs").glob("*.toml")):
        c = load_config(path, ["train.max_steps=5", "train.target_modules=q_proj,v_proj", "train.lr=1e-3"])
        assert c.train.max_steps == 5 and c.train.target_modules == ("q_proj", "v_proj") and c.train.lr == 1e-3
        assert not (ROOT / c.train.out).resolve().is_relative_to((ROOT / "adapters").resolve()), path
    assert not (ROOT / TrainConfig().out).resolve().is_relative_to((ROOT / "adapters").resolve())


def test_spoken_turns_are_trained_as_their_words_and_recorded(env):
    import numpy as np
    import soundfile as sf

    for d in _dialogues("train"):  # the dialogue loader checks that media files exist
        sf.write(env.tmp / f"{d.id}.wav", 0.1 * np.sin(np.arange(8000) / 5.0), 16000)
    spoken = [replace(d, turns=(replace(d.turns[0], audio=str(env.tmp / f"{d.id}.wav")), d.turns[1]))
              for d in _dialogues("train")]
    save_dialogues(env.tmp / "spoken.jsonl", spoken)
    m = train(cfg(env, "max_steps=1", "checkpoint_every=0", f"train_dialogues={env.tmp / 'spoken.jsonl'}")).manifest
    assert m.training["not_trained"]["soft tokens in dialogue turns"] == "6 turns with an image or audio trained as their text"


def test_missing_or_empty_data_is_refused(env):
    with pytest.raises(TrainError, match="train dialogues not found"):
        train(cfg(env, f"train_dialogues={env.tmp / 'nope.jsonl'}"))
    chat_only = [Dialogue("c", "test", "train", (Turn("user", "hi"), Turn("assistant", "hello")))]
    save_dialogues(env.tmp / "chat.jsonl", chat_only)
    with pytest.raises(TrainError, match="no train dialogue with a recommendation turn"):
        train(cfg(env, f"train_dialogues={env.tmp / 'chat.jsonl'}"))


def test_image_projector_is_aligned_only_with_real_clip_weights(env):
    from chatrec.media.encoders import TINY_CLIP, ImageEncoder

    ckpt = env.tmp / "tiny_clip.pt"  # a local checkpoint file counts as real weights
    torch.save(ImageEncoder(TINY_CLIP, allow_random=True).model.state_dict(), ckpt)
    res = train(cfg(env, "max_steps=1", "checkpoint_every=0", f"media.clip_model={TINY_CLIP}",
                    f"media.clip_pretrained={ckpt}", "align_steps=3", "media.image_tokens=2"))
    m = res.manifest
    assert set(m.projectors) == {"image"} and m.projectors["image"]["tokens_per_input"] == 2
    assert "image projector" not in m.training["not_trained"] and m.encoders["image"].name == TINY_CLIP
    tok, base, identity = packaged.load_llm(str(env.llm), env.tmp / "home")
    _, projectors, _ = load_adapter(base, identity, str(env.out))
    x = torch.randn(1, 1, 32)
    assert torch.allclose(projectors["image"](x), res.lm.projectors["image"](x), atol=1e-6)


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@needs_espeak
def test_audio_projector_is_aligned_on_spoken_descriptions_and_the_lora_kept(env):
    first = train(cfg(env, "max_steps=2", "checkpoint_every=0")).lm
    prompt = "Choose the best film .\n" + "\n".join(f"{x} : a film . Fits :<fit>" for x in "ABC")
    audio_out = env.tmp / "audio"
    res = train(cfg(env, "tune=false", "train_audio=true", "media.whisper=tiny.en", "audio_items=6", "media.audio_tokens=2",
                    "align_steps=40", "align_lr=0.05", "batch_size=2", f"init_adapter={env.out}", f"out={audio_out}"))
    m = res.manifest
    assert m.projectors["audio"] == {"kind": "mlp2x_gelu", "in_dim": 384, "out_dim": res.lm.hidden_size,
                                     "tokens_per_input": 1}
    assert m.encoders == {"audio": EncoderSpec("whisper-tiny.en", pooled_states=2)}
    assert "audio projector" not in m.training["not_trained"]
    note = m.training["aligned"]["audio"]
    assert note["items"] == 5 and note["held_out"] == 1 and note["steps"] == 40
    # A 2-layer random LM with 10x token embeddings barely attends to 2 soft tokens: the loss only moves a
    # little here, but it moves only if gradients reach the projector and only downwards if it learns.
    assert note["train_loss_after"] < note["train_loss_before"]
    assert m.training["steps"] == 0 and "copied unchanged" in m.training["not_trained"]["LoRA"]
    with torch.no_grad():  # tune=false: the LoRA is exactly the one it started from
        assert torch.allclose(res.lm.candidate_logits(res.lm.embed([prompt])),
                              first.candidate_logits(first.embed([prompt])), atol=1e-5)
    assert "audio projector (whisper-tiny.en): 40 alignment steps on 5 items" in (audio_out / "README.md").read_text()
    assert len(list((env.tmp / "home" / "audio_align").glob("*.safetensors"))) == 1  # spoken once, cached
    tok, base, identity = packaged.load_llm(str(env.llm), env.tmp / "home")
    _, projectors, _ = load_adapter(base, identity, str(audio_out))
    x = torch.randn(1, 2, 384)
    assert torch.allclose(projectors["audio"](x), res.lm.projectors["audio"](x), atol=1e-6)


def test_audio_alignment_inputs_are_checked_before_loading(env, monkeypatch):
    with pytest.raises(TrainError, match="not a packaged Whisper"):
        train(cfg(env, "train_audio=true", "media.whisper=large"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(TrainError, match="needs espeak-ng"):
        train(cfg(env, "train_audio=true"))


def test_train_cli_takes_several_overrides_after_one_set():
    from chatrec.ui.cli import parser

    args = parser().parse_args(["train", "--set", "train.tune=false", "train.align_steps=3", "--set", "seed=2", "--resume"])
    assert args.set == ["train.tune=false", "train.align_steps=3", "seed=2"] and args.resume
