"""A seeded sample of shown reasons from an evaluation run, with what a reader needs to judge them.

    python docs/eval/make_audit_sheet.py RUN_DIR/reasons.jsonl DIALOGUES.jsonl OUT.jsonl [--n 100] [--seed 0]

Each row: the conversation up to the scored turn, the item's catalog card, the reason shown and whether
the model or the fallback wrote it. The reader adds "true", "natural", "about_user" (yes/no) and a note.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from chatrec.catalog import load_catalog


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reasons")
    ap.add_argument("dialogues")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--catalog", default="films")
    args = ap.parse_args()
    catalog = load_catalog(args.catalog)
    dialogues = {d["id"]: d for d in map(json.loads, Path(args.dialogues).read_text().splitlines()) if d}
    rows = [json.loads(x) for x in Path(args.reasons).read_text().splitlines() if x.strip()]
    sample = random.Random(args.seed).sample(rows, min(args.n, len(rows)))
    with Path(args.out).open("w", encoding="utf-8") as f:
        for n, r in enumerate(sample, 1):
            did, turn = r["where"].split("#")
            item = catalog.get(r["item_id"])
            conv = [{"role": t["role"], "text": t["text"]} for t in dialogues[did]["turns"][: int(turn)]]
            f.write(json.dumps({"n": n, "where": r["where"], "conversation": conv,
                                "item": {"title": item.title, "year": item.year, **item.attributes,
                                         "premise": item.description},
                                "reason": r["shown"], "source": r["source"]}, ensure_ascii=False) + "\n")
    print(f"{len(sample)} rows -> {args.out}")


if __name__ == "__main__":
    main()
