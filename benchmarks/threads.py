"""Torch CPU threads: the ranked-list latency with 1, 2 and all threads, on an idle and on a loaded machine,
with OpenMP's waiting threads spinning (ACTIVE, the runtime's default) and sleeping (PASSIVE, chatrec's).

A busy 2-core machine once took 88 s for one ``chatrec recommend`` with torch's default threads against 21 s
with ``model.threads=1``: between parallel regions OpenMP threads spin, and when another process holds a core
every region waits for a descheduled thread. This prints, per wait policy (each in its own process: the
policy is read when torch loads) and thread count, p50/p95 of the time to the ranked list (real packaged
models, one-turn requests, no reasons), first with nothing else running, then with one busy process per core
competing (``--load N``), and the peak RSS. ``chatrec`` sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set.

    python benchmarks/threads.py [--turns 12] [--load 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time

import numpy as np
import torch

REQUESTS = ["a tense science fiction thriller set in space", "a funny animated film for my kids",
            "a romantic drama from the 90s", "a gritty crime film about the mafia", "something scary for halloween",
            "a classic western with gunslingers"]


def _burn(stop) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31  # pure-Python work: one core, no memory traffic


def ranked_latency(rec, turns: int) -> list[float]:
    from chatrec.recommender import UserInput
    from chatrec.session import Session

    out = []
    for i in range(turns):
        t = time.perf_counter()
        rec.rank(Session(), UserInput(REQUESTS[i % len(REQUESTS)]))
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=12)
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes in the loaded runs")
    ap.add_argument("--policy", choices=["ACTIVE", "PASSIVE"], help="(internal) measure in this process")
    args = ap.parse_args()
    if args.policy is None:  # the parent: one child process per wait policy, rows printed as they come
        import subprocess
        import sys

        print("| wait policy | threads | machine | p50 | p95 |\n|---|---|---|---|---|", flush=True)
        for policy in ("ACTIVE", "PASSIVE"):
            subprocess.run([sys.executable, __file__, "--turns", str(args.turns), "--load", str(args.load),
                            "--policy", policy], env={**os.environ, "OMP_WAIT_POLICY": policy}, check=True)
        return
    measure(args)


def measure(args) -> None:

    from chatrec.config import load_config
    from chatrec.recommender import Recommender

    cfg = load_config(None, [f"data_dir={tempfile.mkdtemp()}", "generation.reasons=false"])
    rec = Recommender.from_config(cfg, progress=False)
    cores = os.cpu_count() or 1
    counts = sorted({1, 2, cores})
    print(f"<!-- {args.policy}: {cores} cores; {args.turns} one-turn requests per row; time to the ranked list "
          "(the LLM scores 10 candidates) -->", flush=True)
    results: dict[tuple[int, str], float] = {}
    for load in ("idle", f"{args.load} busy processes"):
        stop = mp.Event()
        burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.load if load != "idle" else 0)]
        for p in burners:
            p.start()
        try:
            for n in counts:
                torch.set_num_threads(n)
                ranked_latency(rec, 2)  # warm-up at this thread count
                xs = ranked_latency(rec, args.turns)
                results[(n, load)] = float(np.percentile(xs, 50))
                print(f"| {args.policy} | {n} | {load} | {np.percentile(xs, 50):.2f} s | {np.percentile(xs, 95):.2f} s |",
                      flush=True)
        finally:
            stop.set()
            for p in burners:
                p.join()
    loaded = [k for k in results if k[1] != "idle"]
    best = min(loaded, key=lambda k: results[k])
    print(f"<!-- {args.policy}: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB; best "
          f"under load {best[0]} thread(s), {results[best]:.2f} s p50 (idle {results[(best[0], 'idle')]:.2f} s) -->")


if __name__ == "__main__":
    main()
