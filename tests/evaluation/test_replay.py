import json
import math
from pathlib import Path

import pytest

from chatrec.config import load_config
from chatrec.evaluation.dialogues import Dialogue, Turn, load_dialogues
from chatrec.evaluation.replay import (
    DATA,
    Counts,
    Kind,
    SkipTurn,
    System,
    build_systems,
    interactions,
    prepare_turn,
    rank_system,
    replay_dialogues,
    session_before,
)
from chatrec.evaluation.report import summarize
from chatrec.media import MediaError
from chatrec.recommender import Recommender, UserInput
from chatrec.session import Session
from chatrec.ui.cli import main as cli_main

NO_LLM = ["ranking.use_llm=false", "generation.reasons=false"]


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    cfg = load_config(overrides=NO_LLM + [f"data_dir={tmp_path_factory.mktemp('home')}"])
    return Recommender.from_config(cfg, load_llm_model=False, progress=False)


def _broken_file(tmp_path: Path) -> Path:
    """Three good test dialogues and four bad rows: bad JSON, unknown id, empty, missing media."""
    good = (DATA / "test.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    bad_id = json.loads(good[0]) | {"id": "bad-id", "target": "no-such-film-1900"}
    empty = {"id": "empty", "source": "x", "split": "test", "turns": []}
    no_media = json.loads(good[1]) | {"id": "no-media"}
    no_media["turns"][0]["image"] = "missing.png"
    rows = good + ['{"id": "x", "turns": [', json.dumps(bad_id), json.dumps(empty), json.dumps(no_media)]
    path = tmp_path / "dialogues.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_cli_report_without_llm(tmp_path):
    out = tmp_path / "out"
    code = cli_main(
        [
            "eval",
            "--dialogues",
            str(_broken_file(tmp_path)),
            "--baselines",
            "all",
            "--no-reasons",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "home"),
            "--interactive",
            "2",
        ]
        + [a for s in NO_LLM for a in ("--set", s)]
    )
    assert code == 0
    for name in ("report.md", "recall_at_k.png", "latency.png", "success_at_turn.png", "precision_recall_at_k.png",
                 "popularity_bias.png"):
        assert (out / name).stat().st_size > 0
    injection = json.loads((out / "injection.json").read_text())  # the hostile-item check ran, retrieval only
    assert injection["n_turns"] >= 20 and injection["hostile_items"] >= 20 and 0 <= injection["share_top5"] <= 1
    report = json.loads((out / "report.json").read_text())
    counts = report["counts"]
    assert counts["dialogues_skipped_n"] == 4 and counts["dialogues_evaluated"] == 3
    assert [s["where"].rsplit(":", 1)[1] for s in counts["dialogues_skipped"]] == ["4", "5", "6", "7"]
    assert "unknown item id" in counts["dialogues_skipped"][1]["reason"]
    assert counts["turns_evaluated"] == 3
    assert report["model"] is None and len(report["catalog"]["hash"]) == 64
    systems = report["systems"]
    assert {"popularity", "linked", "bm25", "dense", "fused"} <= set(systems)  # llm-base needs the LLM
    for m in systems.values():
        values = [*m["recall"].values(), m["ndcg10"], m["mrr"], *m["success_at_turn"].values()]
        assert all(v is None or 0.0 <= v <= 1.0 for v in values)
        assert m["n_targets"] == 3
    assert (out / "report.md").read_text().count("| ") >= 6
    # the per-list and beyond-accuracy tables, for every system
    md = (out / "report.md").read_text()
    assert "| P@1 | P@5 | P@10 |" in md and "| coverage | mean popularity | Gini |" in md
    assert report["beyond_accuracy"]["k"] == 5
    for m in systems.values():
        assert m["lists"]["n_lists"] == 3 and m["lists"]["ndcg"]["10"] == pytest.approx(m["ndcg10"])
        assert 0 < m["beyond"]["coverage"] <= 1 and m["beyond"]["novelty"] > 0
    # every scored turn's ranked ids, per system, for turn-by-turn comparisons
    rows = [json.loads(x) for x in (out / "rankings.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * len(systems) and {r["system"] for r in rows} == set(systems)
    assert all(len(r["ids"]) == 50 and r["targets"] and r["turn"].startswith(r["dialogue"]) for r in rows)
    diffs = report["differences"]
    assert {d["other"] for d in diffs} == set(systems) - {next(iter(systems))}
    assert all(d["low"] <= d["diff"] <= d["high"] for d in diffs)
    assert all(len(m["ci"]["R@10"]) == 2 for m in systems.values())


def test_popularity_leaves_the_scored_dialogue_out(rec):
    dialogues = load_dialogues(DATA / "test.jsonl", rec.catalog).dialogues[:20]
    pop = build_systems(rec, ["popularity"], dialogues)[1]
    d = dialogues[0]
    own = interactions(d)
    assert own and all(pop.popular[i] >= n for i, n in own.items())
    ids = rank_system(pop, Session(), rec.prepare(UserInput("anything")), own).ids
    counts = pop.popular - own
    assert [counts[i] for i in ids] == sorted((counts[i] for i in ids), reverse=True)
    # an item only the scored dialogue names gets no credit from it: catalog order remains
    solo = Dialogue("solo", "test", "test", (Turn("user", "hi"), Turn("assistant", "x", targets=("amelie-2001",))))
    alone = build_systems(rec, ["popularity"], [solo])[1]
    assert alone.popular["amelie-2001"] == 1
    ids = rank_system(alone, Session(), rec.prepare(UserInput("hi")), interactions(solo)).ids
    assert ids == [it.id for it in rec.catalog]


def test_ranked_lists_are_long_and_exclude_state(rec, monkeypatch):
    turn = rec.prepare(UserInput("a sci-fi film like The Matrix"))
    lists = {}
    for kind in (Kind.LLM, Kind.BM25, Kind.DENSE, Kind.FUSED):
        lists[kind] = rank_system(System(kind.value, kind, rec), Session(), turn).ids
        assert len(lists[kind]) >= 50 and len(set(lists[kind])) == len(lists[kind])
        assert "the-matrix-1999" not in lists[kind]  # named by the user: mentioned, so excluded
    assert lists[Kind.BM25] != lists[Kind.DENSE]  # the kinds really select different retrievers
    # no LLM loaded here: the main system is fused retrieval plus the co-occurrence ranking (chatrec.collaborative)
    monkeypatch.setattr(rec.retriever, "collab", None)
    assert rank_system(System("chatrec", Kind.LLM, rec), Session(), turn).ids == lists[Kind.FUSED]
    with pytest.raises(ValueError, match="random"):
        Kind("random")


def test_unusable_media_turn_is_skipped(rec, monkeypatch, tmp_path):
    class Broken:
        def prepare(self, *a):
            raise MediaError("not an image or corrupt: x.png")

    monkeypatch.setattr(rec, "media_inputs", lambda: Broken())
    with pytest.raises(SkipTurn, match="media unusable"):
        prepare_turn(rec, Turn("user", "like this poster", image=str(tmp_path / "x.png")))
    assert prepare_turn(rec, Turn("user", "plain text")).text == "plain text"


def test_fused_beats_popularity(rec):
    """A real signal check on 40 shipped test dialogues (no LLM)."""
    dialogues = load_dialogues(DATA / "test.jsonl", rec.catalog).dialogues[:40]
    systems = build_systems(rec, ["popularity", "fused"], dialogues)[1:]
    counts = Counts()
    runs = replay_dialogues(systems, dialogues, reasons=False, counts=counts, progress=False)
    pop, fused = (summarize(runs[n]) for n in ("popularity", "fused"))
    assert counts.turns_evaluated >= 30 and fused.n_targets == pop.n_targets
    assert fused.recall[10] > pop.recall[10] + 0.3
    assert fused.recall[50] >= fused.recall[10] >= fused.recall[1]


@pytest.mark.slow
def test_real_models_table_has_all_systems(tmp_path, capsys):
    src = (DATA / "test.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    path = tmp_path / "three.jsonl"
    path.write_text("\n".join(src) + "\n", encoding="utf-8")
    assert cli_main(["eval", "--dialogues", str(path), "--baselines", "all", "--out", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out
    for name in ("chatrec", "popularity", "bm25", "dense", "fused", "llm-base"):
        assert f"| {name}" in table or name in table
    assert "## Injection" in table and "hostile items in the top 5: 0.0%" in table  # goal: none reaches the list
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    main = next(iter(report["systems"].values()))
    assert report["model"] and main["reasons"]["n"] == 5 * report["counts"]["turns_evaluated"]
    assert 0.0 <= main["reasons"]["model_written"] <= 1.0 and main["reasons"]["tokens_per_turn"] > 0
    assert main["reasons"]["false_claims"] == 0 and main["reasons"]["broken"] == 0  # never shown
    assert not any(v is not None and math.isnan(v) for v in main["recall"].values())


@pytest.mark.slow
def test_replay_and_respond_give_the_same_candidates_and_scores(tmp_path):
    """Evaluation's replay and a live respond() share one turn path: same candidates, same scores,
    on the real packaged models (adapter included), for template dialogues and a spoken turn."""
    from conftest import FIXTURES

    from chatrec.evaluation.dialogues import Dialogue

    # profiles off: evaluation never reads a stored profile, while respond() would read the one its earlier turns built
    cfg = load_config(overrides=[f"data_dir={tmp_path}", "generation.reasons=false", "ranking.top_k=20", "profile.enabled=false"])
    rec = Recommender.from_config(cfg, progress=False)
    main = build_systems(rec, [])[0]
    spoken = Dialogue("spoken", "test", "test", (
        Turn("user", "Something with Tom Hanks, please."),
        Turn("assistant", "How about Forrest Gump?"),
        Turn("user", (FIXTURES / "speech_romcom.txt").read_text().strip(), audio=str(FIXTURES / "speech_romcom.wav")),
        Turn("assistant", "Try this.", targets=("when-harry-met-sally-1989",)),
    ))
    dialogues = [*load_dialogues(DATA / "test.jsonl", rec.catalog).dialogues[:4], spoken]
    assert sum(len(d.turns) > 2 for d in dialogues) >= 3  # replayed histories, not only first turns
    for d in dialogues:
        i = d.recommendation_turns()[-1]
        u = max(n for n in range(i) if d.turns[n].role == "user")
        session = session_before(rec, d, u)
        replayed = rank_system(main, session, prepare_turn(rec, d.turns[u])).ranking
        turn = d.turns[u]
        answer = rec.respond(session, "" if turn.audio else turn.text, audio=turn.audio)
        want = [(s.candidate.item.id, s.score, s.llm_logprob, s.candidate.score) for s in replayed.ordered]
        got = [(r.item_id, r.score, r.llm_logprob, r.retrieval_score) for r in answer.recommendations]
        assert got == want, d.id
        assert all(lp is not None for _, _, lp, _ in got)  # the LLM scored every candidate
        if turn.audio:
            assert answer.understood["transcript"] and answer.session.turns[-2].transcript


def test_linked_baseline_ranks_by_the_dialogue_state_alone(rec):
    linked = System("linked", Kind.LINKED, rec)
    ids = rank_system(linked, Session(), rec.prepare(UserInput("anything with Al Pacino"))).ids
    pacino = [it.id for it in rec.catalog if "Al Pacino" in it.values("cast")]
    assert len(pacino) >= 3 and set(ids[: len(pacino)]) == set(pacino)
    # without anything linked there is no signal: the catalog in its own order
    assert rank_system(linked, Session(), rec.prepare(UserInput("hello there"))).ids[:5] == [it.id for it in rec.catalog][:5]
