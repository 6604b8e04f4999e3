#!/usr/bin/env python3
"""Check an author's catalog file. Usage: check_rows.py --role full|facts FILE [--years LO HI]

Prints one ERROR line per bad row and a summary line. Fix or delete every ERROR row.
"""
import argparse
import json
import re
import sys
import unicodedata
from pathlib import Path

GENRES = {"Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama", "Family",
          "Fantasy", "History", "Horror", "Music", "Musical", "Mystery", "Romance", "Science Fiction", "Sport",
          "Thriller", "War", "Western"}
HERE = Path(__file__).parent


def norm(title: str) -> str:
    t = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    t = re.sub(r"[^a-z0-9 ]+", " ", t)
    t = re.sub(r"^(the|a|an) ", "", t.strip())
    return " ".join(t.split())


def slug(title: str, year: int) -> str:
    t = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", t).strip("-") + f"-{year}"


def existing() -> set[str]:
    out = set()
    for line in (HERE / "existing_titles.txt").read_text().splitlines():
        m = re.match(r"(.*) \((\d{4})\)$", line)
        if m:
            out.add(norm(m.group(1)))
    return out


def names(v, what, errs, lo=1, hi=6):
    if not isinstance(v, list) or not (lo <= len(v) <= hi) or not all(isinstance(x, str) and x.strip() for x in v):
        errs.append(f"{what} must be a list of {lo}-{hi} non-empty strings")


def check_full(r, errs, years):
    for k in ("id", "title", "description", "attributes", "meta"):
        if k not in r:
            errs.append(f"missing {k}")
    if errs:
        return
    a = r["attributes"]
    if set(a) != {"year", "genres", "director", "cast", "keywords"}:
        errs.append(f"attributes must be exactly year, genres, director, cast, keywords (got {sorted(a)})")
        return
    if not isinstance(a["year"], int) or not (years[0] <= a["year"] <= years[1]):
        errs.append(f"year must be an int in {years[0]}-{years[1]}")
    elif r["id"] != slug(r["title"], a["year"]):
        errs.append(f"id must be {slug(r['title'], a['year'])!r}")
    names(a["director"], "director", errs, 1, 3)
    names(a["cast"], "cast", errs, 3, 3)
    names(a["keywords"], "keywords", errs, 5, 5)
    if any(k != k.lower() for k in a["keywords"] if isinstance(k, str)):
        errs.append("keywords are lower case")
    if not isinstance(a["genres"], list) or not (1 <= len(a["genres"]) <= 3) or set(a["genres"]) - GENRES:
        errs.append(f"genres: 1-3 of {sorted(GENRES)}")
    d = r["description"]
    if not isinstance(d, str) or not (60 <= len(d) <= 260):
        errs.append("description: one or two sentences, 60-260 characters")
    elif norm(r["title"]) in norm(d) and len(norm(r["title"])) > 3:
        errs.append("description must not repeat the title")
    m = r["meta"]
    if not isinstance(m, dict) or not m.get("author") or not m.get("country"):
        errs.append('meta needs "author" and "country"')


def check_facts(r, errs, years):
    if r.get("unknown") is True:
        return
    for k in ("id", "title", "year", "director", "cast", "genres", "author"):
        if k not in r:
            errs.append(f"missing {k}")
    if errs:
        return
    if not isinstance(r["year"], int) or not (1900 <= r["year"] <= 2026):
        errs.append("year must be an int")
    names(r["director"], "director", errs, 1, 3)
    names(r["cast"], "cast", errs, 2, 5)
    if not isinstance(r["genres"], list) or not (1 <= len(r["genres"]) <= 3) or set(r["genres"]) - GENRES:
        errs.append(f"genres: 1-3 of {sorted(GENRES)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=["full", "facts"], required=True)
    ap.add_argument("--years", nargs=2, type=int, default=[1900, 2026])
    ap.add_argument("file")
    args = ap.parse_args()
    taken = existing()
    seen_ids, seen_titles = set(), set()
    ok = bad = 0
    for n, line in enumerate(Path(args.file).read_text().splitlines(), 1):
        if not line.strip():
            continue
        errs: list[str] = []
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"ERROR line {n}: not JSON ({e})")
            bad += 1
            continue
        (check_full if args.role == "full" else check_facts)(r, errs, args.years)
        if not errs:
            if r["id"] in seen_ids:
                errs.append("duplicate id in this file")
            if args.role == "full":
                key = norm(r["title"]) + str(r["attributes"]["year"])
                if norm(r["title"]) in taken:
                    errs.append("title already in the catalog (existing_titles.txt)")
                if key in seen_titles:
                    errs.append("duplicate film in this file")
                seen_titles.add(key)
            seen_ids.add(r["id"])
        if errs:
            bad += 1
            print(f"ERROR line {n} ({r.get('id', '?') if isinstance(r, dict) else '?'}): " + "; ".join(errs))
        else:
            ok += 1
    print(f"SUMMARY {args.file}: {ok} valid rows, {bad} with errors")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
