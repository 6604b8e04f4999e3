import shutil
from collections import Counter
from pathlib import Path

import pytest

from chatrec.catalog import load_catalog
from chatrec.evaluation.dialogues import load_dialogues
from chatrec.evaluation.simulator import (
    USER_TEMPLATES,
    SimulatedUser,
    generate_dialogues,
    keyword_kind,
    main,
    split_by_target,
    synthesize_audio,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(FIXTURES / "films_small.jsonl")


@pytest.fixture(scope="module")
def dialogues(catalog):
    return generate_dialogues(catalog, 400, seed=3)


def test_deterministic(catalog, dialogues):
    assert generate_dialogues(catalog, 400, seed=3) == dialogues
    assert generate_dialogues(catalog, 400, seed=4) != dialogues


def test_shape(catalog, dialogues):
    assert len(dialogues) == 400 and len({d.id for d in dialogues}) == 400
    user_turns = Counter(sum(t.role == "user" for t in d.turns) for d in dialogues)
    assert set(user_turns) == {2, 3, 4, 5, 6}
    for d in dialogues:
        assert [t.role for t in d.turns] == ["user", "assistant"] * (len(d.turns) // 2)
        assert d.turns[-1].targets == (d.target,)  # ends recommending the target
        assert all(t.targets in ((), (d.target,)) for t in d.turns)
        assert d.target not in {i for t in d.turns for i in t.liked + t.rejected}  # the target stays hidden
        assert d.item_ids() <= {it.id for it in catalog}
    short = generate_dialogues(catalog, 30, seed=1, min_turns=3, max_turns=3)
    assert all(len(d.turns) == 6 for d in short)


def test_targets_cover_catalog_evenly(catalog, dialogues):
    counts = Counter(d.target for d in dialogues)
    assert set(counts) == {it.id for it in catalog}
    assert max(counts.values()) - min(counts.values()) <= 1


def test_templates_vary(dialogues):
    used = {t for d in dialogues for t in d.meta["templates"]}
    assert sum(len(v) for v in USER_TEMPLATES.values()) >= 40
    assert len(used) >= 40
    texts = [d.turns[0].text for d in dialogues]
    assert len(set(texts)) > 0.8 * len(texts)


def test_rejections_are_wrong_items_with_reasons(dialogues):
    rejected = [(d, t) for d in dialogues for t in d.turns if t.rejected]
    assert len(rejected) > 50
    for d, t in rejected:
        assert d.target not in t.rejected


def test_keyword_kind():
    assert keyword_kind("eerie") == "mood"
    assert keyword_kind("time travel") == "theme"
    assert keyword_kind("friendship") == "theme"


def test_split_by_target_has_no_leakage(dialogues):
    splits = split_by_target(dialogues, (0.6, 0.2, 0.2), seed=0)
    assert sum(len(v) for v in splits.values()) == len(dialogues)
    targets = {
        s: {x for d in ds for t in d.turns for x in t.targets} | {d.target for d in ds} for s, ds in splits.items()
    }
    assert not targets["train"] & targets["test"]
    assert not targets["train"] & targets["val"]
    assert not targets["val"] & targets["test"]
    assert all(d.split == s for s, ds in splits.items() for d in ds)
    assert all(len(splits[s]) > 0 for s in splits)
    with pytest.raises(ValueError):
        split_by_target(dialogues, (0.5, 0.5, 0.5))


def test_simulated_user(catalog):
    user = SimulatedUser(catalog, "alien-1979", seed=0, max_turns=5)
    assert user.opening() and not user.done
    reply = user.respond(["heat-1995", "jaws-1975"])
    assert "Heat" in reply and user.rejected == ["heat-1995"] and not user.done
    user.respond(["heat-1995", "jaws-1975"])  # an item already turned down is not turned down again
    assert user.rejected == ["heat-1995", "jaws-1975"]
    reply = user.respond(["the-thing", "alien-1979"])
    assert user.done and user.accepted and "Alien" in reply
    with pytest.raises(RuntimeError):
        user.respond(["alien-1979"])


def test_simulated_user_gives_up(catalog):
    user = SimulatedUser(catalog, "alien-1979", seed=1, max_turns=3)
    user.opening()
    for _ in range(3):
        user.respond(["heat-1995"])
    assert user.done and not user.accepted


def test_main_writes_splits_deterministically(tmp_path, catalog):
    args = ["--catalog", str(FIXTURES / "films_small.jsonl"), "--n", "60", "--seed", "0"]
    main([*args, "--out", str(tmp_path / "a")])
    main([*args, "--out", str(tmp_path / "b")])
    for split in ("train", "val", "test"):
        a, b = tmp_path / "a" / f"{split}.jsonl", tmp_path / "b" / f"{split}.jsonl"
        assert a.read_bytes() == b.read_bytes()
        res = load_dialogues(a, catalog)
        assert res.skipped == [] and all(d.split == split for d in res.dialogues)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_synthesize_audio(tmp_path, catalog):
    ds = generate_dialogues(catalog, 2, seed=0, min_turns=2, max_turns=2)
    out = synthesize_audio(ds, tmp_path, fraction=1.0)
    spoken = [t for d in out for t in d.turns if t.audio]
    assert len(spoken) == 4 and all(Path(t.audio).stat().st_size > 1000 for t in spoken)
    assert all(t.audio is None for d in out for t in d.turns if t.role == "assistant")


def test_synthesize_audio_without_espeak(tmp_path, catalog, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    ds = generate_dialogues(catalog, 2, seed=0)
    assert synthesize_audio(ds, tmp_path, fraction=1.0) == ds
