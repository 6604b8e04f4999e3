"""Compare systems across evaluation runs, turn by turn, from their ``rankings.jsonl`` files.

    python -m chatrec.evaluation.compare RUN_A/rankings.jsonl RUN_B/rankings.jsonl [--main SYSTEM]

Every (system, scored turn) row of the files is read back into per-target ranks (the ids were written
after the turn's exclusions, so only the targets count). Systems are paired on the turns all of them
scored; the table gives each metric with a bootstrap interval by dialogue, and the main system minus each
other with a paired bootstrap, exactly as ``chatrec eval`` does within one run. Use it when a new
adapter is scored alone against the baselines of an earlier run on the same dialogues (they do not
depend on the adapter).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from .metrics import target_ranks
from .replay import SystemRun
from .report import differences, differences_table, markdown_table, summarize


def load_runs(paths: Sequence[Path]) -> dict[str, dict[str, dict]]:
    """system -> turn -> row; a system that appears in two files keeps the later file's rows (renamed
    'name@<file stem or parent>' when both have it)."""
    out: dict[str, dict[str, dict]] = {}
    for path in paths:
        rows = [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
        for r in rows:
            name = r["system"]
            if name in out and r["turn"] in out[name] and out[name][r["turn"]].get("_file") != str(path):
                name = f"{name}@{Path(path).parent.name}"
            out.setdefault(name, {})[r["turn"]] = {**r, "_file": str(path)}
    return out


def paired_runs(runs: dict[str, dict[str, dict]]) -> list[SystemRun]:
    """One SystemRun per system over the turns every system scored, in one turn order."""
    shared = sorted(set.intersection(*(set(t) for t in runs.values())))
    out = []
    for name, turns in runs.items():
        run = SystemRun(name)
        for turn in shared:
            row = turns[turn]
            ranks = target_ranks(row["ids"], row["targets"]).tolist()
            run.ranks += ranks
            run.groups += [row["dialogue"]] * len(ranks)
        out.append(run)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m chatrec.evaluation.compare", description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="rankings.jsonl files of one or more runs")
    ap.add_argument("--main", help="the system the others are compared with (default: the first)")
    args = ap.parse_args(argv)
    try:
        runs = load_runs(args.files)
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise SystemExit(f"compare: cannot read rankings ({type(e).__name__}: {e}); give rankings.jsonl files of chatrec eval runs") from None
    if not runs:
        raise SystemExit("compare: the files hold no rankings")
    systems = paired_runs(runs)
    if args.main:
        systems.sort(key=lambda r: r.name != args.main)
    turns = len(set.intersection(*(set(t) for t in runs.values())))
    print(f"{turns} turns scored by all {len(systems)} systems\n")
    print(markdown_table([summarize(r) for r in systems]))
    print("\nPaired bootstrap over dialogues (95% interval; * excludes 0):\n")
    print(differences_table(systems[0].name, differences(systems[0], systems[1:])))


if __name__ == "__main__":
    main()
