"""How well the turn interpreter reads people's mentions: the session's liked / rejected items after each user
turn of the team-written dialogues, against the items the authors annotated on that turn.

    python benchmarks/linking_quality.py [--split test]

Prints precision and recall of liked and of rejected items (pooled over turns) and the number of spurious
year filters (a year_min/year_max set on a turn whose text has no digits). No models are loaded.
"""

from __future__ import annotations

import argparse
import re

from chatrec.catalog import load_demo_catalog
from chatrec.evaluation.dialogues import load_dialogues
from chatrec.evaluation.replay import DATA
from chatrec.session import InputError, Session, TurnRecord, interpret, shown_items


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    args = ap.parse_args()
    catalog = load_demo_catalog()
    dialogues = load_dialogues(DATA / f"human_{args.split}.jsonl", catalog).dialogues
    counts = {k: [0, 0, 0] for k in ("liked", "rejected")}  # true positives, predicted, annotated
    refused = spurious_years = turns = 0
    for d in dialogues:
        s = Session()
        for t in d.turns:
            if t.role == "assistant":
                s.turns.append(TurnRecord("assistant", t.text, items=shown_items(t.text, catalog)))
                continue
            turns += 1
            try:
                new = interpret(s, t.text, catalog)
            except InputError:
                refused += 1
                new = s.copy()
            for key in counts:
                got = set(getattr(new, key)) - set(getattr(s, key))
                want = set(getattr(t, key))
                counts[key][0] += len(got & want)
                counts[key][1] += len(got)
                counts[key][2] += len(want)
            hard = (new.year_min, new.year_max) != (s.year_min, s.year_max)
            spurious_years += hard and not re.search(r"\d", t.text)
            new.turns.append(TurnRecord("user", t.text))
            s = new
    print(f"{args.split}: {len(dialogues)} dialogues, {turns} user turns, {refused} refused")
    for key, (tp, pred, gold) in counts.items():
        print(f"{key:9s} precision {tp / max(pred, 1):.3f} ({tp}/{pred})  recall {tp / max(gold, 1):.3f} ({tp}/{gold})")
    print(f"year filters set by words without numbers: {spurious_years}")


if __name__ == "__main__":
    main()
