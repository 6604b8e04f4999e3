"""Reason metrics of an evaluation run, from the checks of each shown reason."""

import json

from chatrec.evaluation.replay import Counts, ReasonCheck, SystemRun
from chatrec.evaluation.report import summarize, unique_sentence_ratio, write_report


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
    header = {"model": "m", "adapter": {"note": "n"}, "config_hash": "c", "catalog": {"hash": "h"}, "seeds": {"config": 0}}
    write_report(tmp_path, header, Counts(), [summarize(run)], {"chatrec": run})
    rows = [json.loads(x) for x in (tmp_path / "reasons.jsonl").read_text().splitlines()]
    assert rows[0]["shown"] == "A tense heist." and rows[0]["system"] == "chatrec"
    assert "| false claims | about user | unique | broken |" in (tmp_path / "report.md").read_text()
