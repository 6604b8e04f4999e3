"""benchmarks/serve_load.py's pure helpers: percentiles, scripts, answer checks, summary, table, consistency.

No server: the load test itself runs by hand (python benchmarks/serve_load.py).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx")
pytest.importorskip("psutil")
pytest.importorskip("tqdm")

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "benchmarks" / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_load"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


sl = _load()


def test_percentiles_by_hand():
    assert sl.percentiles([]) is None
    assert sl.percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "n": 1}
    # linear interpolation: p50 between 2 and 3; p95 at rank 0.95 * 3 = 2.85 -> 3 + 0.85 * (4 - 3)
    assert sl.percentiles([4.0, 1.0, 3.0, 2.0]) == pytest.approx({"p50": 2.5, "p95": 3.85, "n": 4})


def test_scripts_are_deterministic_and_from_distinct_dialogues():
    texts = [f"message {i}" for i in range(20)]
    a = sl.conversation_scripts(texts, 3, 4, seed=1)
    assert a == sl.conversation_scripts(texts, 3, 4, seed=1)
    assert a != sl.conversation_scripts(texts, 3, 4, seed=2)
    assert [len(s) for s in a] == [4, 4, 4]
    flat = [t for s in a for t in s]
    assert len(set(flat)) == 12 and set(flat) <= set(texts)
    wrapped = sl.conversation_scripts(texts[:5], 2, 4, seed=0)  # 8 needed, 5 exist: they repeat in order
    flat = [t for s in wrapped for t in s]
    assert flat[5:] == flat[:3] and len(set(flat)) == 5
    with pytest.raises(ValueError):
        sl.conversation_scripts([], 1, 1, seed=0)


def test_first_user_texts(tmp_path):
    rows = [
        {"id": "a", "split": "test", "turns": [{"role": "assistant", "text": "hi"}, {"role": "user", "text": "a sad film"},
                                                {"role": "user", "text": "second"}]},
        {"id": "b", "split": "test", "turns": [{"role": "user", "text": "  "}, {"role": "user", "text": "a comedy"}]},
        {"id": "c", "split": "test", "turns": [{"role": "assistant", "text": "only me"}]},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    assert sl.first_user_texts([path]) == ["a sad film", "a comedy"]


def test_shipped_human_dialogues_give_enough_first_turns():
    data = ROOT / "chatrec" / "data" / "dialogues"
    texts = sl.first_user_texts([data / name for name in sl.DIALOGUE_FILES])
    assert len(texts) >= 6 * 3  # the default run: warm-up, baseline and 4 users of 3 turns, all distinct


GOOD = {"session_id": "s1", "recommendations": [{"item_id": "x", "rank": 1}, {"item_id": "y", "rank": 2}],
        "timings": {"ranked": 0.1, "first_token": 0.2, "total": 0.5}}


@pytest.mark.parametrize("body, problem", [
    (GOOD, ""),
    ({**GOOD, "recommendations": [], "timings": {"total": 0.1}}, ""),  # nothing fitted
    ({**GOOD, "timings": {}}, ""),
    ([], "not a JSON object"),
    ({**GOOD, "session_id": "other"}, "is not the session's"),
    ({**GOOD, "recommendations": [{"rank": 1}]}, "recommendations"),
    ({**GOOD, "recommendations": "x"}, "recommendations"),
    ({**GOOD, "recommendations": [{"item_id": "x", "rank": 2}]}, "ranks"),
    ({**GOOD, "timings": {"total": "fast"}}, "timings"),
])
def test_answer_problem(body, problem):
    got = sl.answer_problem(body, "s1")
    assert (got == "") if not problem else (problem in got)


def _log(user, latencies, outcomes=None, timings=None, planned=3):
    lg = sl.UserLog("p", user, planned)
    for i, lat in enumerate(latencies):
        outcome = outcomes[i] if outcomes else "ok"
        lg.requests.append(sl.Request("turn", user, outcome, float(i), lat, 200, dict(timings[i]) if timings else {}))
    return lg


def test_summarize_counts_and_stages():
    a = _log(0, [1.0, 3.0], timings=[{"ranked": 0.2, "first_token": 0.3, "total": 0.5},
                                     {"ranked": 0.4, "first_token": 0.5, "total": 1.0}])
    b = _log(1, [2.0, 9.0, 9.0], outcomes=["ok", "rejected", "error"],
             timings=[{"total": 1.5}, {"retry_after": 2}, {}])
    b.requests.append(sl.Request("feedback", 1, "error", 5.0, 0.1, 409))
    row = sl.summarize("load", [a, b], 10.0, 14.0, 2 * 1024**3, 3)
    assert (row["users"], row["turns"], row["planned"], row["errors"], row["rejected"]) == (2, 3, 6, 2, 1)
    assert row["wall_s"] == 4.0 and row["turns_per_s"] == pytest.approx(0.75)
    assert row["client"] == {"p50": 2.0, "p95": pytest.approx(2.9), "n": 3}
    assert row["ranked"]["n"] == 2 and row["ranked"]["p50"] == pytest.approx(0.3)
    assert row["total"]["n"] == 3 and row["total"]["p50"] == 1.0
    assert row["queue_overhead"]["p50"] == pytest.approx(0.5)  # 1-0.5, 3-1, 2-1.5
    assert row["peak_rss_gb"] == 2.0 and row["max_pending"] == 3


def test_table_and_slowdown():
    base = sl.summarize("baseline", [_log(0, [1.0, 1.0], timings=[{"total": 0.8}] * 2)], 0.0, 2.0, None, None)
    load = sl.summarize("2 users", [_log(0, [2.0, 2.0], timings=[{"total": 1.0}] * 2),
                                    _log(1, [2.0, 2.0], timings=[{"total": 1.0}] * 2)], 0.0, 4.0, 1024**3, 2)
    table = sl.format_table([base, load])
    lines = table.splitlines()
    assert lines[0] == "| | baseline | 2 users |" and lines[1] == "|---|---|---|"
    assert "| turns completed | 2/3 | 4/6 |" in lines
    assert "| client latency p50 / p95 | 1.00 / 1.00 s (n=2) | 2.00 / 2.00 s (n=4) |" in lines
    assert "| server: ranked list p50 / p95 | n/a | n/a |" in lines
    assert "| server peak RSS | n/a | 1.00 GB |" in lines
    assert "server:" not in sl.format_table([base, load], with_stages=False)
    assert sl.slowdown(base, load) == "client latency p50 x2.00, server whole turn p50 x1.25, throughput x1.00"


def _stored(sid, user_turns, liked=()):
    return {"sessions": {sid: {"user_turns": user_turns, "liked": list(liked)}}}


@pytest.mark.parametrize("expected, stored, lost, counts", [
    ([{"session_id": "a", "acknowledged": 3, "liked": "x"}], [_stored("a", 3, ["x"])], False,
     {"turns_stored": 3, "turns_missing": 0, "likes_stored": 1}),
    # a client timeout after the server saved the turn: stored without an acknowledgement, nothing lost
    ([{"session_id": "a", "acknowledged": 2, "liked": None}], [_stored("a", 3)], False, {"turns_extra": 1}),
    ([{"session_id": "a", "acknowledged": 3, "liked": None}], [_stored("a", 2)], True, {"turns_missing": 1}),
    ([{"session_id": "a", "acknowledged": 3, "liked": "x"}], [_stored("a", 3, ["y"])], True, {"likes_stored": 0}),
    ([{"session_id": "a", "acknowledged": 2, "liked": None}], [{"sessions": {}}], True,
     {"sessions_found": 0, "turns_missing": 2}),
    ([{"session_id": "a", "acknowledged": 1, "liked": None}], [{"sessions": {}, "error": "ReadTimeout"}], True,
     {"unreadable": 1}),
    ([{"session_id": None, "acknowledged": 0, "liked": None}], [{"sessions": {}}], False, {"sessions_expected": 0}),
    ([{"session_id": "a", "acknowledged": 1, "liked": None}, {"session_id": "b", "acknowledged": 2, "liked": "z"}],
     [_stored("a", 1), _stored("b", 2, ["z"])], False, {"sessions_found": 2, "turns_acknowledged": 3}),
])
def test_check_consistency(expected, stored, lost, counts):
    c = sl.check_consistency(expected, stored)
    assert c["lost"] is lost
    assert {k: c[k] for k in counts} == counts
    assert sl.consistency_line(c).startswith(f"nothing lost: {'no' if lost else 'yes'}")


def test_retry_after():
    httpx = pytest.importorskip("httpx")
    assert sl.retry_after(httpx.Response(429, headers={"Retry-After": "12"})) == 12.0
    assert sl.retry_after(httpx.Response(429)) == 1.0
    assert sl.retry_after(httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 1.0


def test_args_url_excludes_server_options():
    assert sl.parse_args([]).users == 4 and sl.parse_args([]).turns == 3
    assert sl.parse_args(["--set", "a=1", "--set", "b=2"]).set == ["a=1", "b=2"]
    with pytest.raises(SystemExit):
        sl.parse_args(["--url", "http://127.0.0.1:8000", "--set", "ranking.use_llm=false"])


def test_report_prints_both_rows_and_the_check(capsys):
    args = sl.parse_args(["--users", "2", "--turns", "3", "--set", "ranking.use_llm=false"])
    warm = sl.Phase("warm-up", [_log(0, [4.0], timings=[{"total": 3.9}], planned=1)], 0.0, 4.0)
    base = sl.Phase("baseline", [_log(0, [1.0], timings=[{"total": 0.8}])], 4.0, 5.0)
    load = sl.Phase("2 users", [_log(0, [2.0], outcomes=["error"]), _log(1, [2.0])], 5.0, 7.0)
    load.logs[0].requests[0].error = "HTTP 500: boom"
    rows = [sl.summarize(p.name, p.logs, p.t0, p.t1, None, None) for p in (base, load)]
    check = sl.check_consistency([{"session_id": "a", "acknowledged": 1, "liked": None}], [_stored("a", 1)])
    ready = {"llm": True, "catalog_items": 10, "queue": {"max": 8}}
    times = {"ready_after_s": 1.0, "rss_at_ready_bytes": 1024**3, "wall_s": 9.0}
    sl.report(args, "http://127.0.0.1:1", ready, [warm, base, load], rows, check, times, "a server line")
    out = capsys.readouterr().out
    assert "overrides: ranking.use_llm=false" in out and "RSS when ready 1.00 GB" in out
    assert "warm-up: 0 turn(s) in 4.0 s" in out  # _log does not count acknowledgements
    assert "| | baseline | 2 users |" in out and "concurrent vs baseline: client latency p50 x2.00" in out
    assert "error: 2 users user 0 turn: HTTP 500: boom" in out and "a server line" in out
    assert "nothing lost: yes" in out
