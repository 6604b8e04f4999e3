"""Checks for team-written dialogues against the catalog: every row of a published split passes them.

``python -m chatrec.evaluation.validate --targets TARGETS.txt FILE.jsonl [...]`` prints one line per
problem (file:line, dialogue id, what is wrong) and exits 1 when any row has an error.

Errors (the row is fixed or dropped):
- bad JSON, missing id / author, unknown roles, empty or over-long text, turns that do not start with the user
- an item id (targets, liked, rejected) that is not in the catalog; a target outside the split's target set
- a target whose title is not named in its assistant turn (the shown list is read from the titles named)
- a target the user already named or rejected earlier in the dialogue (nothing fresh to predict)
- "Title (YYYY)" with a year that is not the catalog year of that title
- a catalog person named in a recommending turn who is in none of the films that turn names
- "<Title> is a <genre> film" with a genre the item does not have
Warnings: liked / rejected ids whose title the user turn does not name verbatim (people say "the first one").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import Catalog, load_catalog, load_demo_catalog

MAX_TEXT = 700


def norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("&", " and ")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]+", " ", text)).strip()


def title_forms(title: str) -> set[str]:
    """The title, without a leading article, and before a colon: forms people write."""
    t = norm(title)
    forms = {t} | {t[len(a):] for a in ("the ", "a ", "an ") if t.startswith(a)}
    if ":" in title:
        forms.add(norm(title.split(":")[0]))
    return {f for f in forms if len(f) >= 2}


def names(text: str, title: str) -> bool:
    padded = f" {norm(text)} "
    return any(f" {f} " in padded for f in title_forms(title))


@dataclass
class Report:
    rows: int = 0
    errors: list[str] = field(default_factory=list)  # "file:line (id): problem"
    warnings: list[str] = field(default_factory=list)
    bad_ids: set[str] = field(default_factory=set)  # dialogues with at least one error


class CatalogIndex:
    """What the checks need from the catalog, computed once."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.people: dict[str, set[str]] = {}
        for it in catalog:
            for key in ("director", "cast"):
                for p in it.values(key):
                    self.people.setdefault(norm(p), set()).add(it.id)
        self.genres = {g.lower() for it in catalog for g in it.values("genres")}

    def named_in(self, text: str) -> set[str]:
        return {it.id for it in self.catalog if names(text, it.title)}


def check_dialogue(row: dict, index: CatalogIndex, allowed: Collection[str], split: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of one dialogue row."""
    catalog = index.catalog
    errs: list[str] = []
    warns: list[str] = []
    if row.get("split") != split:
        errs.append(f"split must be {split!r}")
    if not (row.get("meta") or {}).get("author"):
        errs.append("meta.author missing")
    turns = row.get("turns") or []
    if len(turns) < 2 or turns[0].get("role") != "user":
        errs.append("needs at least 2 turns, starting with the user")
    mentioned: set[str] = set()
    rejected: set[str] = set()
    recommending = 0
    for i, t in enumerate(turns):
        role, text = t.get("role"), t.get("text", "")
        if role not in ("user", "assistant"):
            errs.append(f"turn {i}: role {role!r}")
            continue
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            errs.append(f"turn {i}: empty or over {MAX_TEXT} characters")
            continue
        for key in ("targets", "liked", "rejected"):
            errs += [f"turn {i}: {key} id {x!r} not in the catalog" for x in t.get(key, []) if x not in catalog]
        errs += _year_errors(text, catalog, i)
        if role == "user":
            if t.get("targets"):
                errs.append(f"turn {i}: user turns have no targets")
            warns += [f"turn {i}: {key} {x} not named verbatim" for key in ("liked", "rejected")
                      for x in t.get(key, []) if x in catalog and not names(text, catalog.get(x).title)]
            mentioned |= set(t.get("liked", [])) | set(t.get("rejected", []))
            rejected |= set(t.get("rejected", []))
            continue
        if t.get("liked") or t.get("rejected"):
            errs.append(f"turn {i}: assistant turns carry targets only")
        targets = [x for x in t.get("targets", []) if x in catalog]
        if not targets:
            continue
        recommending += 1
        errs += _target_errors(text, targets, allowed, mentioned, rejected, index, i)
        mentioned |= set(targets)
    if not recommending:
        errs.append("no assistant turn with targets")
    return errs, warns


def _year_errors(text: str, catalog: Catalog, i: int) -> list[str]:
    out = []
    for m in re.finditer(r"([A-Z0-9][^()\n]{0,80}?)\s*\((\d{4})\)", text):
        before = norm(m.group(1))
        same = [it for it in catalog if norm(it.title) and before.endswith(norm(it.title))]
        if same and not any(str(it.year) == m.group(2) for it in same):
            out.append(f"turn {i}: {same[0].title!r} is from {same[0].year}, not {m.group(2)}")
    return out


def _target_errors(text: str, targets: list[str], allowed: Collection[str], mentioned: set[str], rejected: set[str],
                   index: CatalogIndex, i: int) -> list[str]:
    catalog = index.catalog
    errs = []
    for x in targets:
        title = catalog.get(x).title
        if x not in allowed:
            errs.append(f"turn {i}: target {x} is not in this split's target set")
        if not names(text, title):
            errs.append(f"turn {i}: target {x} ({title!r}) is not named in the turn")
        if x in rejected:
            errs.append(f"turn {i}: target {x} was rejected by the user earlier")
        own = {g.lower() for g in catalog.get(x).values("genres")}
        for form in title_forms(title):
            for m in re.finditer(rf"{re.escape(form)} (?:is|s) an? ([a-z ]+?) (?:film|movie)", norm(text)):
                bad = [w for w in m.group(1).split() if w in index.genres and w not in own]
                if bad:
                    errs.append(f"turn {i}: calls {title!r} {bad}, its genres are {sorted(own)}")
    if all(x in mentioned for x in targets):
        errs.append(f"turn {i}: every target was already named by the user")
    here = index.named_in(text)
    padded = f" {norm(text)} "
    errs += [f"turn {i}: names {p!r}, who is in none of the films this turn names"
             for p, films in index.people.items() if len(p.split()) >= 2 and f" {p} " in padded and not films & here]
    return errs


def validate_files(paths: list[Path], catalog: Catalog, allowed: Collection[str], split: str) -> Report:
    index, report, seen = CatalogIndex(catalog), Report(), set()
    for path in paths:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            report.rows += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                report.errors.append(f"{path}:{n}: bad JSON ({e})")
                continue
            did = row.get("id")
            errs, warns = check_dialogue(row, index, allowed, split)
            if not did or did in seen:
                errs.append(f"missing or duplicate id {did!r}")
            seen.add(did)
            report.errors += [f"{path}:{n} ({did}): {e}" for e in errs]
            report.warnings += [f"{path}:{n} ({did}): {w}" for w in warns]
            if errs:
                report.bad_ids.add(did)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chatrec.evaluation.validate", description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--split", required=True, choices=["train", "val", "test"])
    ap.add_argument("--targets", type=Path, help="allowed target ids, one per line (default: any catalog item)")
    ap.add_argument("--catalog", help="catalog file (default: the packaged demo films)")
    args = ap.parse_args(argv)
    catalog = load_catalog(args.catalog) if args.catalog else load_demo_catalog()
    allowed = set(args.targets.read_text().split()) if args.targets else {it.id for it in catalog}
    report = validate_files(args.files, catalog, allowed, args.split)
    for line in report.errors:
        print("ERROR", line)
    for line in report.warnings:
        print("warn ", line)
    print(f"{report.rows} dialogues, {len(report.errors)} errors in {len(report.bad_ids)} dialogues, "
          f"{len(report.warnings)} warnings")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
