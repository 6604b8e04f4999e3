"""Cross-check catalog facts written by two independent authors; keep only what they agree on.

    python -m chatrec.evaluation.crosscheck --full A.jsonl [...] --facts B.jsonl [...] --keys K.json [...] \\
        --out items.jsonl --report report.json

Author A writes whole records (premise, keywords and the facts); author B, who never sees A's file,
writes the year, director(s), lead cast and genres of the same films, keyed by an opaque id so that
the record's id (which holds the year) does not leak. An item ships only where:

- the years are equal and the director sets are the same (names compared after accent and case folding,
  with rapidfuzz forgiving spelling variants such as "Kenji Mizoguchi" / "Kenji Mizoguchi");
- at least two of A's three leads are among B's leads (the shipped cast is the agreed names, A's order);
- at least one genre is shared (the shipped genres are the shared ones, A's order).

Anything else, and every film B marked unknown, is dropped and counted by reason.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

NAME_MATCH = 90.0  # rapidfuzz ratio at which two spellings name the same person
MIN_CAST = 2  # agreed leads an item needs


@dataclass
class CrossCheck:
    kept: list[dict[str, Any]] = field(default_factory=list)  # catalog rows with only the agreed facts
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> items dropped
    trimmed: Counter[str] = field(default_factory=Counter)  # field -> items kept with some values removed
    drops: list[tuple[str, str]] = field(default_factory=list)  # (item id, reason)


def fold(name: str) -> str:
    n = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return " ".join(n.replace(".", " ").replace("-", " ").split())


def same_person(a: str, b: str) -> bool:
    return fold(a) == fold(b) or fuzz.ratio(fold(a), fold(b)) >= NAME_MATCH


def agreed(mine: Sequence[str], theirs: Sequence[str]) -> list[str]:
    """Names of ``mine`` that ``theirs`` also lists, in ``mine``'s order."""
    return [m for m in mine if any(same_person(m, t) for t in theirs)]


@dataclass(frozen=True)
class Rules:
    """What two authors must agree on for one kind of catalog."""

    creator: str = "director"  # people who made the item: the sets must be equal
    cast: str | None = "cast"  # leads: at least MIN_CAST of A's must be among B's (None: no such field)


KINDS = {"films": Rules(), "books": Rules("author", None)}


def compare(full: Mapping[str, Any], facts: Mapping[str, Any] | None,
            rules: Rules = Rules()) -> tuple[dict[str, Any] | None, str, list[str]]:
    """(row to ship or None, drop reason, fields trimmed) for one item."""
    if facts is None:
        return None, "no second author", []
    if facts.get("unknown"):
        return None, "second author did not know it", []
    a = full["attributes"]
    if a["year"] != facts["year"]:
        return None, "year", []
    mine, theirs = a[rules.creator], facts[rules.creator]
    if len(agreed(mine, theirs)) != len(mine) or len(agreed(theirs, mine)) != len(theirs):
        return None, rules.creator, []
    kept: dict[str, list[str]] = {}
    if rules.cast:
        kept[rules.cast] = agreed(a[rules.cast], facts[rules.cast])
        if len(kept[rules.cast]) < MIN_CAST:
            return None, "lead cast", []
    kept["genres"] = [g for g in a["genres"] if g in facts["genres"]]
    if not kept["genres"]:
        return None, "genres", []
    trimmed = [k for k, v in kept.items() if len(v) < len(a[k])]
    attrs = {"year": a["year"], "genres": kept["genres"], rules.creator: list(mine)}
    if rules.cast:
        attrs[rules.cast] = kept[rules.cast]
    attrs["keywords"] = list(a["keywords"])
    row = {"id": full["id"], "title": full["title"], "description": full["description"], "attributes": attrs}
    return row, "", trimmed


def crosscheck(full_rows: Iterable[Mapping[str, Any]], fact_rows: Iterable[Mapping[str, Any]],
               keys: Mapping[str, str], rules: Rules = Rules()) -> CrossCheck:
    """Compare every full record with the second author's facts (``keys``: opaque key -> record id;
    rows may also carry the shared opaque key as ``key``)."""
    facts = {keys.get(r.get("id") or r["key"], r.get("id") or r["key"]): r for r in fact_rows}
    out = CrossCheck()
    for full in full_rows:
        row, reason, trimmed = compare(full, facts.get(full["id"]) or facts.get(full.get("key", "")), rules)
        if row is None:
            out.dropped[reason] += 1
            out.drops.append((full["id"], reason))
            continue
        out.kept.append(row)
        out.trimmed.update(trimmed)
    return out


def _jsonl(paths: Sequence[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for p in paths for line in Path(p).read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", nargs="+", required=True, help="author A files: whole records")
    ap.add_argument("--facts", nargs="+", required=True, help="author B files: facts keyed by opaque keys")
    ap.add_argument("--keys", nargs="*", default=[], help="JSON maps from opaque key to record id")
    ap.add_argument("--out", required=True, help="catalog rows that passed (JSONL)")
    ap.add_argument("--report", help="counts and every dropped id (JSON)")
    ap.add_argument("--kind", choices=sorted(KINDS), default="films", help="which facts must agree")
    args = ap.parse_args(argv)
    keys: dict[str, str] = {}
    for k in args.keys:
        keys.update(json.loads(Path(k).read_text(encoding="utf-8")))
    result = crosscheck([r for r in _jsonl(args.full) if not r.get("unknown")], _jsonl(args.facts), keys, KINDS[args.kind])
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.kept), encoding="utf-8")
    summary = {"kept": len(result.kept), "dropped": dict(result.dropped), "trimmed": dict(result.trimmed),
               "drops": result.drops}
    if args.report:
        Path(args.report).write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"kept {len(result.kept)}, dropped {sum(result.dropped.values())} {dict(result.dropped)}, "
          f"trimmed {dict(result.trimmed)}")


if __name__ == "__main__":
    main()
