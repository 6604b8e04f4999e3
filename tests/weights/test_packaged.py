"""The packaged LLM's tokenizer read back from the cache: the same tokens and text as the one it was saved from."""

import pytest

from chatrec.weights.packaged import load_cached_tokenizer

STRINGS = [
    "a heist film with a clever twist",
    " yes",
    " no",
    "",
    "  two  spaces,\ttabs\tand\nnew\n\nlines  ",
    "Café, naïve, Amélie — “quotes” and ‘more’… 1999/2001 #2 50%",
    "日本語のタイトル, 한국어, русский, עברית, العربية",
    "emoji 🎬🍿 and a rare byte \x07 and \u200b zero width",
    "<bos>special<eos> <pad> <start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<image> and <audio> placeholders, <fit> marks",
]


def _same(a, b, strings):
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "padding_side", "all_special_ids"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.convert_tokens_to_ids(["<end_of_turn>"]) == b.convert_tokens_to_ids(["<end_of_turn>"])
    for text in strings:
        for special in (False, True):
            ids = a(text, add_special_tokens=special).input_ids
            assert b(text, add_special_tokens=special).input_ids == ids, text
            assert b(text, add_special_tokens=special).keys() == a(text, add_special_tokens=special).keys()
            for skip in (False, True):
                assert b.decode(ids, skip_special_tokens=skip) == a.decode(ids, skip_special_tokens=skip), text
            for n in range(1, len(ids)):  # as the reason streamer decodes: each prefix of the tokens
                assert b.decode(ids[:n], skip_special_tokens=True) == a.decode(ids[:n], skip_special_tokens=True)


def test_cached_tokenizer_reads_back_what_was_saved(tmp_path):
    from conftest import tiny_tokenizer

    saved = tiny_tokenizer("heist film clever twist")
    saved.padding_side = "left"
    saved.save_pretrained(tmp_path)
    loaded = load_cached_tokenizer(tmp_path)
    assert type(loaded).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend")
    assert loaded.backend_tokenizer.to_str() == saved.backend_tokenizer.to_str()
    _same(saved, loaded, ["a heist film with a clever twist", "<bos> film <eos> twist <pad>", "unknown words", ""])


def test_built_cache_is_found_by_the_pinned_digest_without_hashing_the_gguf(tmp_path, monkeypatch):
    from chatrec.config import PACKAGED_LLM
    from chatrec.weights import packaged

    digest = "ab" * 32
    built = tmp_path / "llm" / f"gemma3-270m-{digest[:16]}"
    built.mkdir(parents=True)
    (built / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(packaged, "_declared_gguf_sha256", lambda: digest)
    monkeypatch.setattr(packaged, "packaged_gguf", lambda: pytest.fail("assemble() hashes the GGUF"))
    assert packaged.resolve_llm(PACKAGED_LLM, tmp_path) == (str(built), f"{PACKAGED_LLM}@sha256:{digest}")


@pytest.mark.slow
def test_cached_gemma_tokenizer_encodes_and_decodes_as_the_gguf_one():
    """The cached tokenizer.json against the tokenizer transformers builds from the GGUF (~45 s on 2 cores)."""
    from transformers import AutoTokenizer

    from chatrec.config import load_config
    from chatrec.prompting import PromptTurn, rank_prompt, reason_prompt
    from chatrec.weights.packaged import _cached_gguf_dir, file_sha256, offline, packaged_gguf

    cfg = load_config(None, [])
    path, digest = _cached_gguf_dir(cfg.cache())
    gguf = packaged_gguf()
    assert file_sha256(gguf) == digest  # the pinned digest that keys the cache is the file's
    with offline():
        reference = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    catalog = cfg.load_catalog()
    items = list(catalog)[:40]
    prompts = [rank_prompt([PromptTurn("user", STRINGS[0])], items[:20], catalog.schema),
               reason_prompt(items[0], STRINGS[0], items[1:3], catalog.schema)]
    _same(reference, load_cached_tokenizer(path), STRINGS + prompts + [it.text() for it in items])
