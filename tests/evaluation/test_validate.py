import json

import pytest

from chatrec.catalog import load_demo_catalog
from chatrec.evaluation.replay import DATA
from chatrec.evaluation.validate import CatalogIndex as Index
from chatrec.evaluation.validate import check_dialogue, main, validate_files

GOOD = {"id": "t-1", "source": "team-written", "split": "test", "meta": {"author": "x"}, "turns": [
    {"role": "user", "text": "I loved Alien, something as tense but newer?", "liked": ["alien-1979"]},
    {"role": "assistant", "text": "Try The Matrix (1999), Keanu Reeves as a hacker.", "targets": ["the-matrix-1999"]}]}


@pytest.fixture(scope="module")
def index():
    return Index(load_demo_catalog())


def broken(turn: int, **changes) -> dict:
    row = json.loads(json.dumps(GOOD))
    row["turns"][turn].update(changes)
    return row


@pytest.mark.parametrize("row,problem", [
    (broken(1, text="Try The Matrix (1997)."), "is from 1999, not 1997"),
    (broken(1, text="Try The Matrix, with Tom Hanks."), "names 'tom hanks', who is in none"),
    (broken(1, text="Try something with hackers."), "is not named in the turn"),
    (broken(1, targets=["no-such-film"]), "not in the catalog"),
    (broken(1, targets=["alien-1979"], text="Try Alien."), "every target was already named"),
    (broken(1, text="The Matrix is a romance film."), "calls 'The Matrix' ['romance']"),
    (broken(0, rejected=["the-matrix-1999"], text="Not The Matrix, I hated it"), "was rejected by the user earlier"),
    ({**GOOD, "meta": {}}, "meta.author missing"),
    ({**GOOD, "split": "train"}, "split must be 'test'"),
])
def test_each_problem_is_an_error(index, row, problem):
    errors, _ = check_dialogue(row, index, {it.id for it in index.catalog}, "test")
    assert any(problem in e for e in errors), errors


def test_a_good_row_passes_and_targets_outside_the_split_do_not(index):
    assert check_dialogue(GOOD, index, {"the-matrix-1999"}, "test") == ([], [])
    errors, _ = check_dialogue(GOOD, index, {"alien-1979"}, "test")
    assert errors == ["turn 1: target the-matrix-1999 is not in this split's target set"]


def test_cli_exit_code(tmp_path, capsys):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps(GOOD) + "\n")
    bad.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")  # duplicate id
    assert main(["--split", "test", str(good)]) == 0
    assert main(["--split", "test", str(bad)]) == 1
    assert "duplicate id 't-1'" in capsys.readouterr().out


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_shipped_team_written_dialogues_pass(split):
    path = DATA / f"human_{split}.jsonl"
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    report = validate_files([path], load_demo_catalog(), {it.id for it in load_demo_catalog()}, split)
    assert report.rows > 0 and report.errors == []


def test_team_written_test_targets_never_appear_as_training_targets():
    from chatrec.evaluation.dialogues import load_dialogues

    def targets(name: str) -> set[str]:
        path = DATA / name
        if not path.exists():
            pytest.skip(f"{name} not written yet")
        return {x for d in load_dialogues(path).dialogues for t in d.turns for x in t.targets}

    test = targets("human_test.jsonl")
    assert test and not test & (targets("human_train.jsonl") | targets("human_val.jsonl") | targets("train.jsonl"))
    assert not targets("human_train.jsonl") & targets("val.jsonl")  # validation items stay out of training
