"""Reason metrics of an evaluation run, from the checks of each shown reason."""

import json
from collections import Counter

import pytest

from chatrec.catalog import Item
from chatrec.evaluation.beyond import EvalData
from chatrec.evaluation.replay import Counts, ReasonCheck, SystemRun
from chatrec.evaluation.report import summarize, unique_sentence_ratio, write_report

HEADER = {"model": "m", "adapter": {"note": "n"}, "config_hash": "c", "catalog": {"hash": "h"}, "seeds": {"config": 0}}


def check(shown, source="model", false=False, about=True, broken=False, raw="x", problem=""):
    return ReasonCheck("d#1", "i", shown, source, false, about, broken, raw,
                       (source == "model") if raw else None, problem)


def test_reason_metrics():
    run = SystemRun("chatrec", ranks=[1.0, 3.0], groups=["d", "d"], latencies=[1.0, 1.0], tokens=[10, 20])
    run.reasons = [check("A tense heist. It stars Al Pacino."),
                   check("A tense heist.", source="fallback", raw="Heat is a film by", problem="form"),
                   check("You wanted laughs: a comedy.", about=False, source="fallback", raw="", problem=""),
                   check("Bad.", false=True, broken=True, source="fallback", raw="Bad", problem="person")]
    r = summarize(run).reasons
    assert (r.n, r.false_claims, r.about_user, r.broken) == (4, 0.25, 0.75, 0.25)
    assert r.model_written == 0.25 and r.raw_passes == 1 / 3  # the reason with no model text is not counted
    assert r.unique == 4 / 5 and r.mean_words == (7 + 3 + 5 + 1) / 4
    assert r.raw_failures == {"form": 1, "person": 1} and r.tokens_per_turn == 15


def test_unique_sentence_ratio_penalises_a_template():
    assert unique_sentence_ratio(["It is a film. Yes.", "It is a film. No."]) == 3 / 4
    assert unique_sentence_ratio(["One.", "Two."]) == 1.0


def test_reasons_file_is_written(tmp_path):
    run = SystemRun("chatrec", ranks=[1.0], groups=["d"], latencies=[1.0], tokens=[5])
    run.reasons = [check("A tense heist.")]
    write_report(tmp_path, HEADER, Counts(), [summarize(run)], {"chatrec": run})
    rows = [json.loads(x) for x in (tmp_path / "reasons.jsonl").read_text().splitlines()]
    assert rows[0]["shown"] == "A tense heist." and rows[0]["system"] == "chatrec"
    assert "| false claims | about user | unique | broken |" in (tmp_path / "report.md").read_text()


def _ranked_run(name, rows):
    """A run of scored turns (dialogue, targets, ranked ids after exclusions), ranks as replay records them."""
    run = SystemRun(name)
    for n, (dialogue, targets, ids) in enumerate(rows):
        ranks = [float(ids.index(t) + 1) if t in ids else float("inf") for t in targets]
        run.ranks += ranks
        run.groups += [dialogue] * len(ranks)
        run.latencies.append(0.01)
        run.rankings.append({"turn": f"{dialogue}#{n}", "dialogue": dialogue, "targets": targets, "ids": ids})
    return run


def test_list_and_beyond_metrics_reach_the_tables_json_and_plots(tmp_path):
    items = [Item(f"i{j}", f"I{j}", attributes={"genres": ["drama"] if j % 2 else ["comedy"]}) for j in range(8)]
    own = {"d1": Counter(i0=1, i1=1), "d2": Counter(i1=1, i2=1)}  # i1 named twice, i0 and i2 once each
    data = EvalData.build(items, own, k=2)
    # d1 wants i0 and i1 (ranks 1 and 3); d2 wants i2 (rank 2)
    a = _ranked_run("a", [("d1", ["i0", "i1"], ["i0", "i5", "i1", "i7"]), ("d2", ["i2"], ["i4", "i2", "i6"])])
    b = _ranked_run("b", [("d1", ["i0", "i1"], ["i1", "i3", "i0"]), ("d2", ["i2"], ["i1", "i3", "i2"])])
    ma, mb = summarize(a, data), summarize(b, data)
    # the headline per-target numbers are unchanged by the new path: ranks 1, 3, 2
    assert ma.recall[1] == pytest.approx(1 / 3) and ma.mrr == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert ma.lists.ndcg[10] == pytest.approx(ma.ndcg10) and ma.lists.n_lists == 2
    # per turn @2: turn 1 has 1 of 2 targets (P 1/2, R 1/2), turn 2 has 1 of 1 (P 1/2, R 1)
    assert ma.lists.precision[2] == 0.5 and ma.lists.recall[1] == pytest.approx((1 / 2 + 0) / 2)
    assert ma.lists.hit_rate[1] == 0.5 and ma.lists.f1[5] == pytest.approx((2 / 5 * 1 * 2 / 1.4 + 2 / 6) / 2)
    # shown top 2: a [i0, i5], [i4, i2] -> 4 of 8 items; b [i1, i3] twice -> 2 of 8, all on one head item
    assert (ma.beyond.coverage, mb.beyond.coverage) == (0.5, 0.25)
    assert ma.beyond.mean_popularity == (1 + 0 + 0 + 1) / 4 and mb.beyond.mean_popularity == (2 + 0) / 2
    assert mb.beyond.gini > ma.beyond.gini and mb.beyond.novelty < ma.beyond.novelty
    # genres alternate comedy/drama by index: a [i0, i5] differ, [i4, i2] agree -> 0.5; b [i1, i3] agree -> 0
    assert (ma.beyond.diversity, mb.beyond.diversity) == (0.5, 0.0)
    # cold start: i0 and i2 are named only by their own dialogue; i1 also by the other one
    assert (ma.beyond.cold_targets, ma.beyond.cold_recall) == (2, 1.0)

    table = write_report(tmp_path, HEADER, Counts(), [ma, mb], {"a": a, "b": b}, data)
    assert "| P@1 | P@5 | P@10 | F1@1 |" in table and "| coverage | mean popularity | Gini |" in table
    md = (tmp_path / "report.md").read_text()
    assert "Beyond accuracy, the shown top 2" in md and "| b | 0.250 | 1.00 | 0.750 | 0.000 |" in md
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["systems"]["a"]["beyond"]["coverage"] == 0.5 and report["systems"]["b"]["lists"]["precision"]["1"] == 0.5
    assert report["beyond_accuracy"]["catalog_mean_popularity"] == 4 / 8
    for png in ("precision_recall_at_k.png", "popularity_bias.png", "recall_at_k.png"):
        assert (tmp_path / png).stat().st_size > 0
