"""Validate the authors' reasons with the claim checker and write the packaged reason files.

    python docs/data/reasons/merge.py /work/authoring/reasons/out/*.jsonl

Each row is checked against its item and against the conversation as inference sees it (the session
replayed up to the turn: the user's words and liked items): a row with any false claim, or cut off,
looping or longer than two sentences, is dropped and counted by the kind of its first failed claim.
Writes chatrec/data/reasons/{train,val}.jsonl and docs/data/reasons/validation.json.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from chatrec.catalog import load_demo_catalog
from chatrec.claims import check
from chatrec.evaluation.dialogues import load_dialogues
from chatrec.session import replay

OUT = Path("chatrec/data/reasons")


def main(paths: list[str]) -> None:
    catalog = load_demo_catalog()
    dialogues = {d.id: d for split in ("human_train", "human_val")
                 for d in load_dialogues(Path(f"chatrec/data/dialogues/{split}.jsonl"), catalog).dialogues}
    split_of = {d.id: s for s in ("train", "val")
                for d in load_dialogues(Path(f"chatrec/data/dialogues/human_{s}.jsonl"), catalog).dialogues}
    kept: dict[str, list[dict]] = {"train": [], "val": []}
    dropped: Counter[str] = Counter()
    by_author: Counter[str] = Counter()
    examples: list[dict] = []
    seen: set[str] = set()
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row["key"] in seen:
                dropped["duplicate key"] += 1
                continue
            seen.add(row["key"])
            dialogue_id, turn, item_id = row["key"].rsplit(":", 2)
            d = dialogues[dialogue_id]
            s = replay(d.turns[: int(turn)], catalog, session_id=d.id)
            liked = [catalog.get(i) for i in s.liked if i in catalog]
            item = catalog.get(item_id)
            v = check(row["reason"].strip(), item, catalog, s.user_text(), liked)
            if not v.ok:
                dropped[v.false[0].kind] += 1
                if len(examples) < 60:
                    examples.append({"key": row["key"], "reason": row["reason"], "why": v.problem()})
                continue
            by_author[row["author"]] += 1
            kept[split_of[dialogue_id]].append({"dialogue": dialogue_id, "turn": int(turn), "item": item_id,
                                                "reason": row["reason"].strip(), "author": row["author"],
                                                "about_user": v.about_user})
    OUT.mkdir(parents=True, exist_ok=True)
    for split, rows in kept.items():
        rows.sort(key=lambda r: (r["dialogue"], r["turn"], r["item"]))
        with (OUT / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    report = {"kept": {k: len(v) for k, v in kept.items()}, "dropped_by_first_false_claim": dict(dropped),
              "kept_by_author": dict(by_author),
              "about_user": sum(r["about_user"] for v in kept.values() for r in v) / max(1, sum(map(len, kept.values()))),
              "dropped_examples": examples}
    Path("docs/data/reasons/validation.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "dropped_examples"}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
