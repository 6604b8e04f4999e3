import json
from dataclasses import replace

import numpy as np
import pytest

from chatrec.evaluation import multisession
from chatrec.evaluation.multisession import (
    CONDITIONS,
    LATER,
    Episode,
    MultiSessionOptions,
    ReturningUser,
    differences,
    evaluate,
    make_users,
    markdown,
    run,
    run_condition,
    summarize,
    summarize_episodes,
    tastes,
    turns_to_success,
)
from chatrec.recommender import Recommender
from chatrec.store import SessionStore
from chatrec.ui.cli import main as cli_main

# The small catalog has 20 films: genre-and-decade groups of three, two sessions per user, three-item lists.
OPTS = MultiSessionOptions(users=4, sessions=2, turns=4, taste="genre-decade", seed=0, progress=False)


@pytest.fixture
def rec(tiny_recommender):
    """The tiny recommender, retrieval only, short lists, no training dialogues behind the co-occurrence."""
    cfg = tiny_recommender.cfg
    cfg = replace(cfg, ranking=replace(cfg.ranking, use_llm=False, top_k=3),
                  generation=replace(cfg.generation, reasons=False),
                  collaborative=replace(cfg.collaborative, dialogue_files=()))
    return Recommender(cfg, tiny_recommender.catalog, tiny_recommender.retriever, None, tiny_recommender.store)


def _episode(owner: str, session: int, success: int | None, condition: str = "baseline") -> Episode:
    return Episode(condition, owner, session, f"t-{owner}-{session}", success, ())


# ---- metrics on hand-made episodes --------------------------------------------------------------------


def test_turns_to_success_counts_a_failure_as_one_more_than_the_turns():
    assert turns_to_success([1, None, 3], 5).tolist() == [1.0, 6.0, 3.0]
    assert turns_to_success([], 5).shape == (0,)


def test_success_at_turn_and_turns_to_success_by_hand():
    m = summarize_episodes([_episode("a", 1, 1), _episode("b", 1, None), _episode("c", 1, 3)], max_turns=5)
    assert m["episodes"] == 3 and m["users"] == 3
    assert m["success_at_turn"] == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 2 / 3, 4: 2 / 3, 5: 2 / 3})
    assert m["turns_to_success"] == pytest.approx((1 + 6 + 3) / 3)
    for t, (lo, hi) in m["success_ci"].items():
        assert 0 <= lo <= m["success_at_turn"][t] <= hi <= 1
    lo, hi = m["turns_ci"]
    assert 1 <= lo <= m["turns_to_success"] <= hi <= 6
    every = summarize_episodes([_episode("a", 1, 2), _episode("b", 1, 2)], max_turns=3)
    assert every["success_ci"][2] == (1.0, 1.0) and every["turns_ci"] == (2.0, 2.0)  # no spread, no width


def test_summary_per_session_and_paired_differences_by_hand():
    base = [_episode(u, s, x) for u, s, x in
            [("a", 1, 2), ("a", 2, 2), ("b", 1, None), ("b", 2, None), ("c", 1, 1), ("c", 2, None)]]
    prof = [replace(e, condition="profiles") for e in base[:1]] + [
        _episode(u, s, x, "profiles") for u, s, x in
        [("a", 2, 1), ("b", 1, None), ("b", 2, 1), ("c", 1, 1), ("c", 2, None)]]
    summary = summarize(base + prof, sessions=2, max_turns=5)
    assert list(summary) == ["baseline", "profiles"] and list(summary["profiles"]) == ["1", "2", LATER]
    assert summary["profiles"]["2"]["success_at_turn"][1] == pytest.approx(2 / 3)
    assert summary["profiles"][LATER]["episodes"] == 3  # with two sessions, sessions >= 2 is session 2
    diffs = differences(base + prof, sessions=2, max_turns=5)
    d, lo, hi = diffs["profiles"][LATER]["S@1"]
    assert d == pytest.approx(2 / 3) and lo <= d <= hi
    assert diffs["profiles"][LATER]["S@5"][0] == pytest.approx(2 / 3 - 1 / 3)
    assert diffs["profiles"][LATER]["turns"][0] == pytest.approx((1 + 1 + 6) / 3 - (2 + 6 + 6) / 3)
    assert diffs["profiles"]["1"]["turns"] == (0.0, 0.0, 0.0)  # the same session 1: no difference at all
    table = markdown(summary, diffs, 5)
    assert "| profiles | ≥ 2 | 3 |" in table and "+0.667 [" in table
    with pytest.raises(ValueError, match="different users"):
        differences(base + prof[:-1], sessions=2, max_turns=5)


# ---- users --------------------------------------------------------------------------------------------


def test_users_draw_distinct_targets_from_one_taste(small_catalog):
    users = make_users(small_catalog, 6, sessions=2, kind="genre-decade", seed=1)
    assert users == make_users(small_catalog, 6, sessions=2, kind="genre-decade", seed=1)
    assert users != make_users(small_catalog, 6, sessions=2, kind="genre-decade", seed=2)
    assert len({u.owner for u in users}) == 6
    for u in users:
        assert len(set(u.targets)) == 2 and set(u.targets) <= set(u.taste.members) and len(u.taste.members) >= 3
        genre, decade = u.taste.value.split(", ")
        for i in u.taste.members:
            item = small_catalog.get(i)
            assert genre in item.values("genres") and f"{item.year // 10 * 10}s" == decade
    directors = tastes(small_catalog, "director", 2)
    assert directors and all(t.value in small_catalog.get(i).values("director") for t in directors for i in t.members)
    with pytest.raises(ValueError, match="no director group"):
        make_users(small_catalog, 1, sessions=3, kind="director")
    with pytest.raises(ValueError, match="director, genre-decade"):
        MultiSessionOptions(taste="mood")


# ---- runs through the recommender ---------------------------------------------------------------------


def test_run_is_deterministic_and_every_condition_has_the_same_users(rec):
    users, episodes = run(rec, OPTS)
    assert run(rec, OPTS) == (users, episodes)
    assert [e.condition for e in episodes[:: OPTS.users * OPTS.sessions]] == [c.name for c in CONDITIONS]
    by_condition = {c.name: [e for e in episodes if e.condition == c.name] for c in CONDITIONS}
    expected = [(u.owner, i + 1, u.targets[i]) for u in users for i in range(OPTS.sessions)]
    for eps in by_condition.values():
        assert [(e.owner, e.session, e.target) for e in eps] == expected
        assert all(1 <= len(e.shown) <= OPTS.turns and all(len(s) <= 3 for s in e.shown) for e in eps)
        assert all((e.success_turn is None) == (e.target not in {i for s in e.shown for i in s}) for e in eps)
    # Nothing is known in session 1 without the co-occurrence: profiles on or off, the same lists.
    first = [replace(e, condition="") for e in by_condition["baseline"] if e.session == 1]
    assert first == [replace(e, condition="") for e in by_condition["profiles"] if e.session == 1]


def test_the_profile_shapes_the_second_session(rec, tmp_path):
    users = make_users(rec.catalog, OPTS.users, OPTS.sessions, OPTS.taste, seed=0)
    base = run_condition(rec, CONDITIONS[0], users, OPTS.turns, tmp_path / "baseline")
    prof = run_condition(rec, CONDITIONS[1], users, OPTS.turns, tmp_path / "profiles")
    store = SessionStore(tmp_path / "profiles" / "sessions.sqlite")
    changed = 0
    for u in users:
        b2, p1, p2 = (next(e for e in eps if e.owner == u.owner and e.session == s)
                      for eps, s in ((base, 2), (prof, 1), (prof, 2)))
        # What session 1 liked (the accepted target among it) is in the profile and never shown again.
        profile = store.load_profile(u.owner)
        assert profile is not None and {i for i in p1.liked} <= {e.value for e in profile.entries}
        assert not set(p1.liked) & {i for s in p2.shown for i in s}
        changed += p2.shown[0] != b2.shown[0]
    assert changed >= 1  # the same first message of session 2 gets another list because of the profile
    assert all(SessionStore(tmp_path / "baseline" / "sessions.sqlite").load_profile(u.owner) is None for u in users)


def test_report_files_and_cli_flag(rec, tmp_path, monkeypatch):
    opts = replace(OPTS, users=2, out=str(tmp_path / "out"))
    table, report = evaluate(rec.cfg, opts, rec=rec)
    for name in ("multisession.md", "multisession.json", "multisession_success.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "out" / "multisession.json").read_text())
    assert saved["failure_turns"] == OPTS.turns + 1 and len(saved["episodes"]) == 4 * 2 * OPTS.sessions
    assert set(saved["summary"]) == {c.name for c in CONDITIONS} and saved["llm"] is None
    assert table in (tmp_path / "out" / "multisession.md").read_text()
    assert np.isfinite(report["summary"]["baseline"][LATER]["turns_to_success"])

    got = {}

    def fake_evaluate(cfg, o):
        got["opts"] = o
        return "table", {}

    monkeypatch.setattr(multisession, "evaluate", fake_evaluate)
    assert cli_main(["eval", "--multisession", "7", "--out", str(tmp_path / "cli")]) == 0
    assert got["opts"] == MultiSessionOptions(users=7, out=str(tmp_path / "cli"))


def test_returning_user_never_marks_a_later_target(rec):
    user = ReturningUser("u", tastes(rec.catalog, "genre-decade", 3)[0], (), 0)
    user = replace(user, targets=tuple(user.taste.members[:3]))
    episodes = [multisession.run_episode(rec, user, i, 4) for i in range(3)]
    sessions = rec.store.sessions_of("u")  # oldest first: the episodes' order
    assert len(sessions) == 3
    for i, (e, s) in enumerate(zip(episodes, sessions, strict=True)):
        later = set(user.targets[i + 1:])
        assert not later & (set(s.liked) | set(s.rejected) | set(s.mentioned))  # in words or by feedback
        assert set(e.liked) <= set(s.liked) and set(e.rejected) <= set(s.rejected)
        assert not set(e.rejected) & set(user.taste.members)  # only films outside the taste are turned down

