import pytest

from chatrec.config import Config, ConfigError, RetrievalConfig, load_config


def test_defaults_and_overrides():
    cfg = load_config(None, ["ranking.top_k=3", "retrieval.like_weight=0.5", "adapter=none", "generation.reasons=false"])
    assert isinstance(cfg, Config)
    assert cfg.ranking.top_k == 3 and cfg.retrieval.like_weight == 0.5
    assert cfg.adapter is None and cfg.generation.reasons is False
    assert cfg.retrieval.n_candidates == RetrievalConfig().n_candidates  # untouched default


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["ranking.topk=3"], "unknown config key(s) ['ranking.topk']"),
        (["nonsense=1"], "unknown config key(s) ['nonsense']"),
        (["ranking.top_k=three"], "'ranking.top_k' expects int"),
        (["generation.reasons=maybe"], "'generation.reasons' expects bool"),
        (["retrieval.n_candidates=40"], "between 1 and 26"),
        (["ranking.top_k=30"], "ranking.top_k must be between"),
        (["ranking"], "must look like section.key=value"),
    ],
)
def test_bad_overrides_are_errors(overrides, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert message in str(e.value)


def test_toml_and_yaml_files(tmp_path):
    t = tmp_path / "c.toml"
    t.write_text('catalog = "x.jsonl"\n[retrieval]\nn_candidates = 10\n')
    assert load_config(t).retrieval.n_candidates == 10
    y = tmp_path / "c.yaml"
    y.write_text("ranking:\n  top_k: 2\n")
    assert load_config(y).ranking.top_k == 2
    bad = tmp_path / "b.toml"
    bad.write_text("[retrieval\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("retrieval:\n  n_candidate: 3\n")
    with pytest.raises(ConfigError, match="retrieval.n_candidate"):
        load_config(typo)


def test_hash_is_stable_and_sensitive():
    assert load_config().hash() == load_config().hash()
    assert load_config().hash() != load_config(None, ["seed=1"]).hash()
