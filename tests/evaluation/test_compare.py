"""Comparing runs from their rankings.jsonl files."""

import json

from chatrec.evaluation.compare import load_runs, main, paired_runs


def write(path, system, rows):
    path.write_text("".join(json.dumps({"system": system, "turn": t, "dialogue": t.split("#")[0], "targets": [g],
                                        "ids": ids}) + "\n" for t, g, ids in rows))
    return path


def test_runs_are_paired_on_shared_turns_and_compared(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", "new", [("d1#1", "x", ["x", "y"]), ("d2#1", "y", ["x", "y"]), ("d3#1", "z", ["z"])])
    (tmp_path / "old").mkdir()
    b = write(tmp_path / "old" / "rankings.jsonl", "base", [("d1#1", "x", ["y", "x"]), ("d2#1", "y", ["y"])])
    runs = paired_runs(load_runs([a, b]))
    assert [r.name for r in runs] == ["new", "base"]
    assert runs[0].ranks == [1.0, 2.0] and runs[1].ranks == [2.0, 1.0]  # d3 was scored by one run only
    assert runs[0].groups == ["d1", "d2"]
    main([str(a), str(b), "--main", "base"])
    out = capsys.readouterr().out
    assert "2 turns scored by all 2 systems" in out and "| base minus |" in out


def test_unreadable_file_is_one_line(tmp_path):
    import pytest

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(SystemExit, match="cannot read rankings"):
        main([str(bad)])
    with pytest.raises(SystemExit, match="cannot read rankings"):
        main([str(tmp_path / "missing.jsonl")])
