import json
from dataclasses import replace

import pytest

from chatrec.evaluation.dialogues import Dialogue, Turn
from chatrec.prompting import AUDIO, LABELS, PromptTurn, rank_prompt
from chatrec.reasons import fallback_reason
from chatrec.retrieval import Query
from chatrec.session import replay
from chatrec.training.examples import build_examples, load_reasons, turn_examples

N = 6


def dialogue(did: str, target: str, first: str = "Any scary horror films?") -> Dialogue:
    return Dialogue(did, "test", "train", (
        Turn("user", first),
        Turn("assistant", "Have you seen Alien?", targets=(target,)),
        Turn("user", "Not Alien, something from the 80s please.", rejected=("alien-1979",)),
        Turn("assistant", "Try this.", targets=(target,)),
    ), target)


# (dialogue id, target, first message): targets retrieval finds and targets it misses
CASES = [
    ("d-hit", "the-shining-1980", "Any scary horror films by Stanley Kubrick?"),
    ("d-miss", "amelie-2001", "Any scary horror films?"),
    ("d-kids", "toy-story-1995", "Something animated for my kids"),
    ("d-war", "casablanca-1942", "A classic war romance"),
]


@pytest.mark.parametrize("did,target,first", CASES)
def test_ground_truth_is_at_its_label(small_catalog, retriever, did, target, first):
    ex = build_examples([dialogue(did, target, first)], small_catalog, retriever, N, seed=3)
    assert len(ex) == 2 and ex.turns_seen == 2
    for r in ex.rank:
        assert 1 <= len(r.candidates) <= N and len(set(r.candidates)) == len(r.candidates)  # constraints may filter
        assert r.candidates[r.label] == target
        line = next(x for x in r.prompt.splitlines() if x.startswith(f"{LABELS[r.label]}: "))
        assert small_catalog.get(target).title in line  # the label in the prompt names the target


def test_same_prompt_as_inference_and_deterministic(small_catalog, retriever):
    d = dialogue("d-miss", "amelie-2001")
    r, _ = turn_examples(d, 3, small_catalog, retriever, N, seed=0)
    s = replay(d.turns[:3], small_catalog)
    assert "alien-1979" in s.rejected and s.year_min == 1980  # interpret ran on the earlier turns
    turns = [PromptTurn(t.role, t.text) for t in s.turns]
    assert r.prompt == rank_prompt(turns, [small_catalog.get(i) for i in r.candidates])
    assert "alien-1979" not in r.candidates  # rejected: retrieval excluded it, as at inference
    assert not r.retrieved  # amelie is not a horror film from the 80s: inserted, replacing the last
    again, _ = turn_examples(d, 3, small_catalog, retriever, N, seed=0)
    assert again == r
    other_seeds = {turn_examples(d, 3, small_catalog, retriever, N, seed=s)[0].label for s in range(8)}
    assert len(other_seeds) > 1  # shuffled: the answer is not always at the same label


def test_eval_examples_keep_retrieval_order(small_catalog, retriever):
    d = dialogue("d-miss", "amelie-2001")
    r, _ = turn_examples(d, 3, small_catalog, retriever, N, seed=0, train=False)
    s = replay(d.turns[:3], small_catalog)
    want = retriever.retrieve(Query(s.user_text(), tuple(s.liked), s.excluded(), s.constraints()), N)
    assert r.candidates == tuple(c.item.id for c in want) and r.label == -1


def test_reason_target_without_written_reasons_is_the_fallback(small_catalog, retriever):
    d = dialogue("d-hit", "the-shining-1980", "Any scary horror films by Stanley Kubrick?")
    _, [reason] = turn_examples(d, 1, small_catalog, retriever, N, seed=0)
    want = fallback_reason(small_catalog.get("the-shining-1980"), "Any scary horror films by Stanley Kubrick?",
                           schema=small_catalog.schema)
    assert reason.target == " " + want + "\n" and not reason.written
    assert "Stanley Kubrick" in reason.target


def test_written_reasons_are_the_targets_for_every_item_they_cover(small_catalog, retriever, tmp_path):
    d = dialogue("d-hit", "the-shining-1980", "Any scary horror films by Stanley Kubrick?")
    path = tmp_path / "reasons.jsonl"
    path.write_text(json.dumps({"dialogue": "d-hit", "turn": 1, "item": "the-shining-1980", "author": "t",
                                "reason": "You asked for Kubrick and scares: a snowbound hotel slowly turns on its keeper."})
                    + "\n" + json.dumps({"dialogue": "d-hit", "turn": 1, "item": "alien-1979", "author": "t",
                                         "reason": "Not Kubrick, but if scares are the point, Alien is a claustrophobic horror."})
                    + "\n")
    written = load_reasons([path])
    _, reasons = turn_examples(d, 1, small_catalog, retriever, N, seed=0, written=written)
    assert [r.source.rsplit(":", 1)[1] for r in reasons] == ["the-shining-1980", "alien-1979"]
    assert all(r.written and r.target.endswith(".\n") for r in reasons)
    assert "Alien" in reasons[1].prompt.splitlines()[0]  # the prompt is about the item the reason describes
    # Turns without written reasons give no reason example unless the fallback is asked for.
    other = dialogue("d-other", "the-shining-1980", "Any scary horror films by Stanley Kubrick?")
    assert len(build_examples([d, other], small_catalog, retriever, N, 0, written=written, fallback_reasons=False).reason) == 2
    with_fallback = build_examples([d, other], small_catalog, retriever, N, 0, written=written).reason
    assert len(with_fallback) == 2 + 3 and sum(r.written for r in with_fallback) == 2  # d's turn 3, other's 1 and 3


def test_unknown_target_is_skipped(small_catalog, retriever):
    ex = build_examples([dialogue("x", "no-such-film")], small_catalog, retriever, N, seed=0)
    assert len(ex) == 0 and ex.skipped == 2


def test_media_turns_are_trained_as_their_words(small_catalog, retriever):
    d = dialogue(*CASES[0])
    spoken = replace(d, turns=(replace(d.turns[0], audio="ask.wav"), *d.turns[1:]))
    r = build_examples([spoken], small_catalog, retriever, N, seed=0).rank[0]
    plain = build_examples([d], small_catalog, retriever, N, seed=0).rank[0]
    assert r.media and not plain.media and AUDIO not in r.prompt
    assert replace(r, media=False) == plain


def test_history_that_inference_refuses_skips_the_turn(small_catalog, retriever):
    d = dialogue(*CASES[0])
    # "#9" after a one-item list: inference refuses it, so training must not learn from that turn
    bad = replace(d, turns=(*d.turns[:2], Turn("user", "more like #9"), d.turns[3]))
    ex = build_examples([bad], small_catalog, retriever, N, seed=0)
    assert ex.turns_seen == 2 and ex.skipped == 1 and len(ex.rank) == 1
    # with no list at all, "#1" is ordinary text and the turn is kept
    kept = replace(d, turns=(Turn("user", "more like #1"), *d.turns[1:]))
    assert build_examples([kept], small_catalog, retriever, N, seed=0).skipped == 0


def test_bad_reason_row_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"dialogue": "d", "turn": 1, "item": "x", "reason": "ok."}\n{"dialogue": "d"}\n')
    with pytest.raises(ValueError, match=r"r.jsonl:2: not a reason row"):
        load_reasons([path])
