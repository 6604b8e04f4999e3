"""The packaged team-written reasons: well formed, on train/val dialogues only, and true claim by claim."""

import json
import random
from pathlib import Path

import pytest

from chatrec.catalog import load_demo_catalog
from chatrec.claims import check
from chatrec.evaluation.dialogues import load_dialogues
from chatrec.session import replay

DATA = Path(__file__).resolve().parents[2] / "chatrec" / "data"


@pytest.fixture(scope="module")
def catalog():
    return load_demo_catalog()


def rows(split):
    return [json.loads(x) for x in (DATA / "reasons" / f"{split}.jsonl").read_text().splitlines() if x.strip()]


@pytest.mark.parametrize("split", ["train", "val"])
def test_written_reasons_cover_only_their_own_split(catalog, split):
    dialogues = {d.id: d for d in load_dialogues(DATA / "dialogues" / f"human_{split}.jsonl", catalog).dialogues}
    test_ids = {d.id for d in load_dialogues(DATA / "dialogues" / "human_test.jsonl", catalog).dialogues}
    data = rows(split)
    assert len(data) >= (2900 if split == "train" else 250)
    assert len({r["author"] for r in data}) >= 5  # several independent authors
    for r in data:
        assert set(r) == {"dialogue", "turn", "item", "reason", "author", "about_user"}
        assert r["dialogue"] in dialogues and r["dialogue"] not in test_ids  # never tuned on the test split
        assert dialogues[r["dialogue"]].turns[r["turn"]].role == "assistant" and r["item"] in catalog


def test_a_seeded_sample_passes_the_claim_checker(catalog):
    """The rows passed the checker of the day they were validated; the checker has since learnt two stricter
    rules (a cast member's part, denials of the card) that about 3% of the rows break. The adapter was trained
    on these rows, so they stay as they were; most of them must still pass."""
    dialogues = {d.id: d for d in load_dialogues(DATA / "dialogues" / "human_train.jsonl", catalog).dialogues}
    failed = []
    for r in random.Random(0).sample(rows("train"), 120):
        d = dialogues[r["dialogue"]]
        s = replay(d.turns[: r["turn"]], catalog, session_id=d.id)
        v = check(r["reason"], catalog.get(r["item"]), catalog, s.user_text(), [catalog.get(i) for i in s.liked])
        if not v.ok:
            failed.append((r["reason"], v.problem()))
            assert v.false[0].kind in ("role", "denial"), failed[-1]  # only the two newer rules
    assert len(failed) <= 12, failed
