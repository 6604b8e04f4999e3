"""Build the reason-writing sheets: one row per (recommendation turn, item) of the human train/val splits.

    python docs/data/reasons/make_sheets.py OUT_DIR

For every recommendation turn the session is replayed as inference sees it (``replay``), and the rows are
the turn's first target plus, on train turns, one or two items that retrieval put next to it but that are
not targets ("other" rows): reasons must be true of whichever item they describe, not only of the answer.
Each row shows the conversation so far, what the user liked, and the item's catalog facts. Rows are split
round-robin by dialogue over the authors, so every author sees whole dialogues.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from chatrec.catalog import load_demo_catalog
from chatrec.config import Config
from chatrec.evaluation.dialogues import load_dialogues
from chatrec.retrieval import Query, Retriever, embed_catalog
from chatrec.session import InputError, replay
from chatrec.weights.packaged import load_embedder

DIALOGUES = Path("chatrec/data/dialogues")
AUTHORS = ("rae", "sol", "tam", "uma", "vic", "wes")


def item_card(item) -> dict:
    a = item.attributes
    return {k: v for k, v in {
        "title": item.title, "year": item.year, "genres": a.get("genres"), "director": a.get("director"),
        "cast": a.get("cast"), "keywords": a.get("keywords"), "premise": item.description}.items() if v}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    catalog = load_demo_catalog()
    embedder = load_embedder(cfg.model.embedder)
    retriever = Retriever(catalog, embedder, embed_catalog(catalog, embedder, cfg.model.embedder, cfg.cache(),
                                                           progress=False), cfg.retrieval)
    sheets: dict[str, list[dict]] = {a: [] for a in AUTHORS}
    for split in ("human_train", "human_val"):
        dialogues = load_dialogues(DIALOGUES / f"{split}.jsonl", catalog).dialogues
        for n, d in enumerate(dialogues):
            author = AUTHORS[n % len(AUTHORS)]
            for i in d.recommendation_turns():
                targets = [t for t in d.turns[i].targets if t in catalog]
                if not targets:
                    continue
                try:
                    s = replay(d.turns[:i], catalog, session_id=d.id)
                except InputError:
                    continue
                rng = random.Random(f"reasons:{d.id}:{i}")
                rows = [(targets[0], "target")]
                if split == "human_train":
                    query = Query(s.user_text(), tuple(s.liked), s.excluded(), s.constraints())
                    others = [c.item.id for c in retriever.retrieve(query, 10) if c.item.id not in d.turns[i].targets]
                    k = 2 if rng.random() < 0.25 else 1
                    rows += [(o, "other") for o in rng.sample(others[:6], min(k, len(others[:6])))]
                conv = [{"role": t.role, "text": t.text} for t in d.turns[:i]]
                liked = [catalog.get(x).title for x in s.liked if x in catalog]
                for item_id, kind in rows:
                    sheets[author].append({
                        "key": f"{d.id}:{i}:{item_id}", "split": split.removeprefix("human_"), "kind": kind,
                        "conversation": conv, "liked": liked, "item": item_card(catalog.get(item_id))})
    for a, rows in sheets.items():
        with (out / f"sheet_{a}.jsonl").open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(a, len(rows), sum(r["split"] == "train" for r in rows))


if __name__ == "__main__":
    main(sys.argv[1])
