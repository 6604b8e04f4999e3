import json
from pathlib import Path

import pytest

from chatrec.catalog import load_catalog
from chatrec.evaluation.dialogues import Dialogue, Turn, load_dialogues, save_dialogues

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(FIXTURES / "films_small.jsonl")


def _good(i: int = 1, **extra) -> dict:
    return {
        "id": f"d{i}",
        "source": "handwritten",
        "split": "test",
        "target": "alien-1979",
        "turns": [
            {"role": "user", "text": "Something scary in space.", "liked": ["the-terminator-1984"]},
            {"role": "assistant", "text": "How about Alien?", "targets": ["alien-1979"]},
        ],
        "meta": {},
        **extra,
    }


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_round_trip(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    d = Dialogue(
        "x1",
        "simulator",
        "train",
        (
            Turn("user", "hi", audio=str(tmp_path / "a.wav"), rejected=("heat-1995",)),
            Turn("assistant", "Try Jaws.", targets=("jaws-1975",)),
        ),
        target="jaws-1975",
        meta={"templates": ["open.1"]},
    )
    save_dialogues(tmp_path / "out.jsonl", [d])
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert row["turns"][0]["audio"] == "a.wav"  # stored relative to the file
    assert "image" not in row["turns"][0] and "targets" not in row["turns"][0]  # empty fields omitted
    res = load_dialogues(tmp_path / "out.jsonl")
    assert res.skipped == [] and res.dialogues == [d]


def test_bad_rows_are_reported_and_skipped(tmp_path, catalog):
    rows = [
        _good(1),
        "{not json",
        _good(3, turns=[]),
        _good(4, target="no-such-film"),
        _good(5, split="dev"),
        _good(6, turns=[{"role": "user", "text": "look", "image": "missing.jpg"}]),
        _good(7, turns=[{"role": "narrator", "text": "x"}]),
        _good(1),
        _good(9, turns=[{"role": "user", "text": "x", "liked": "alien-1979"}]),
        _good(10, colour="red"),
        "",
        _good(12),
    ]
    path = _write(tmp_path / "d.jsonl", rows)
    res = load_dialogues(path, catalog)
    assert [d.id for d in res.dialogues] == ["d1", "d12"]
    reasons = {s.where: s.reason for s in res.skipped}
    assert list(reasons) == [f"{path}:{n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10)]
    assert "invalid JSON" in reasons[f"{path}:2"]
    assert "empty dialogue" in reasons[f"{path}:3"]
    assert "no-such-film" in reasons[f"{path}:4"]
    assert "split" in reasons[f"{path}:5"]
    assert "image file not found: missing.jpg" in reasons[f"{path}:6"]
    assert "role" in reasons[f"{path}:7"]
    assert "duplicate id 'd1'" in reasons[f"{path}:8"]
    assert "liked" in reasons[f"{path}:9"]
    assert "colour" in reasons[f"{path}:10"]


def test_unknown_ids_pass_without_a_catalog(tmp_path):
    res = load_dialogues(_write(tmp_path / "d.jsonl", [_good(4, target="no-such-film")]))
    assert len(res.dialogues) == 1 and res.skipped == []


def test_helpers(tmp_path):
    d = load_dialogues(_write(tmp_path / "d.jsonl", [_good()])).dialogues[0]
    assert d.recommendation_turns() == [1]
    assert d.mentioned_before(1) == {"the-terminator-1984"}
    assert d.item_ids() == {"the-terminator-1984", "alien-1979"}
