"""Re-check the shown reasons of an evaluation run with the current claim checker.

    python docs/eval/rescore_reasons.py RUN_DIR/reasons.jsonl DIALOGUES.jsonl [--catalog films]

Replays each dialogue to its scored turn (as evaluation does) and prints the share of shown reasons with a
false claim, about the user, cut off or looping, and the unique-sentence ratio, overall and by source.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from chatrec.catalog import load_catalog
from chatrec.claims import check
from chatrec.evaluation.dialogues import load_dialogues
from chatrec.evaluation.report import unique_sentence_ratio
from chatrec.session import replay


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reasons")
    ap.add_argument("dialogues")
    ap.add_argument("--catalog", default="films")
    args = ap.parse_args()
    catalog = load_catalog(args.catalog)
    dialogues = {d.id: d for d in load_dialogues(Path(args.dialogues), catalog).dialogues}
    rows = [json.loads(x) for x in Path(args.reasons).read_text().splitlines() if x.strip()]
    stats: dict[str, Counter] = {"all": Counter(), "model": Counter(), "fallback": Counter()}
    false_examples = []
    for r in rows:
        did, turn = r["where"].split("#")
        s = replay(dialogues[did].turns[: int(turn)], catalog, session_id=did)
        v = check(r["shown"], catalog.get(r["item_id"]), catalog, s.user_text(), [catalog.get(i) for i in s.liked])
        broken = any(c.kind == "form" and c.why in ("cut off mid-sentence", "repeats itself") for c in v.claims)
        for key in ("all", r["source"]):
            stats[key].update(n=1, false=not v.ok, about=v.about_user, broken=broken)
        if not v.ok:
            false_examples.append((r["source"], v.problem(), r["shown"]))
    for key, c in stats.items():
        if c["n"]:
            print(f"{key:9s} n={c['n']:4d} false claims {c['false'] / c['n']:.3f}  about user {c['about'] / c['n']:.3f}  "
                  f"broken {c['broken'] / c['n']:.3f}")
    print(f"unique-sentence ratio {unique_sentence_ratio([r['shown'] for r in rows]):.3f}")
    for e in false_examples:
        print("FALSE", *e, sep=" | ")


if __name__ == "__main__":
    main()
