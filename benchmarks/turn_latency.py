"""Turn latency on the real packaged models: p50/p95 over scripted turns, peak RSS, start times.

Prints, for >= 20 turns: time to the ranked list, to the first reason token, to the full answer.
Baselines in the same run: ranking with full-prompt logits (no ``logits_to_keep``), reasons
generated one at a time instead of batched, without n-gram blocking, and with the whole 262k-row
output layer instead of the reason vocabulary (``generation.restrict_vocab``; with the share of
reasons whose text differs).

    python benchmarks/turn_latency.py [--turns 20] [--cold]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch

CONVERSATIONS = [
    ["I want a tense science fiction thriller set in space", "not that one", "something older", "more like #2", "no horror"],
    ["a funny animated film for my kids", "more like the first one", "something newer", "not #3", "with talking animals"],
    ["a romantic drama from the 90s", "not that one", "more like #2", "something with a great soundtrack", "no war films"],
    ["a gritty crime film about the mafia", "more like #1", "something older", "not that one", "by Martin Scorsese"],
]

TARGETS = {"ranked": 1.5, "first_token": 2.0, "total": 6.0, "reasons": 3.0, "warm_start": 10.0, "peak_rss_gb": 3.0}


def pct(xs: list[float]) -> str:
    return f"p50 {np.percentile(xs, 50):6.2f} s   p95 {np.percentile(xs, 95):6.2f} s   (n={len(xs)})"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def start_time(cache: str | None) -> float:
    """Seconds for a fresh process to build the Recommender (cold when ``cache`` is an empty dir)."""
    env = dict(os.environ, **({"CHATREC_CACHE": cache} if cache else {}))
    code = ("import time,torch;torch.set_num_threads(2);t=time.perf_counter();"
            "from chatrec.config import load_config;from chatrec.recommender import Recommender;"
            "Recommender.from_config(load_config(None,['data_dir=" + tempfile.mkdtemp() + "']),progress=False);"
            "print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_turns(rec, n_turns: int) -> dict[str, list[float]]:
    from chatrec.session import Session

    times: dict[str, list] = {"ranked": [], "first_token": [], "total": [], "reasons": [], "model_shown": [], "raw": []}
    done = 0
    while done < n_turns:
        for convo in CONVERSATIONS:
            session = Session()
            for text in convo:
                ans = rec.respond(session, text)
                session = ans.session
                for k in ("ranked", "first_token", "total"):
                    times[k].append(ans.timings[k])
                times["reasons"].append(ans.timings["total"] - ans.timings["ranked"])  # five reasons after the list
                recs = ans.recommendations
                times["model_shown"].append(sum(r.reason_source == "model" for r in recs) / max(1, len(recs)))
                times["raw"].append([r.reason_raw for r in recs])
                done += 1
                if done >= n_turns:
                    return times
    return times


def full_logits_ranking(rec, n: int = 5) -> tuple[list[float], list[float]]:
    """Baseline: the same ranking prompt with logits for every position vs. only at the candidates' <fit> marks."""
    from chatrec.prompting import PromptTurn, rank_prompt
    from chatrec.retrieval import Query

    text = CONVERSATIONS[0][0]
    cands = rec.retriever.retrieve(Query(text), rec.cfg.retrieval.n_candidates)
    prompt = rank_prompt([PromptTurn("user", text)], [c.item for c in cands])
    emb = rec.lm.embed([prompt])
    full, last = [], []
    with torch.no_grad():
        for _ in range(n):
            t = time.perf_counter()
            rec.lm.lm(inputs_embeds=emb.embeds, attention_mask=emb.mask, position_ids=emb.positions, use_cache=False)
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            rec.lm.rank(prompt, len(cands))
            last.append(time.perf_counter() - t)
    print(f"ranking prompt: {emb.embeds.shape[1]} tokens, {len(cands)} candidates")
    return full, last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--baseline-turns", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="also time a start with an empty model cache (~1 min)")
    args = ap.parse_args()
    torch.set_num_threads(2)

    from chatrec.config import load_config
    from chatrec.recommender import Recommender

    warm = [start_time(None) for _ in range(2)]
    cold = start_time(tempfile.mkdtemp()) if args.cold else None
    data = tempfile.mkdtemp()
    # Profiles off: the baselines replay the same conversations after the main turns, and a profile built from
    # those would change their lists (and the reasons compared).
    rec = Recommender.from_config(load_config(None, [f"data_dir={data}", "profile.enabled=false"]), progress=False)
    times = run_turns(rec, args.turns)
    rss = peak_rss_gb()  # before the baselines: full-prompt logits alone allocate ~0.5 GB
    full, last = full_logits_ranking(rec)
    seq_cfg = replace(rec.cfg, generation=replace(rec.cfg.generation, batch_reasons=False))
    seq = Recommender(seq_cfg, rec.catalog, rec.retriever, rec.lm, rec.store)
    seq_times = run_turns(seq, args.baseline_turns)
    free_cfg = replace(rec.cfg, generation=replace(rec.cfg.generation, no_repeat_ngram=0))
    free = Recommender(free_cfg, rec.catalog, rec.retriever, rec.lm, rec.store)
    free_times = run_turns(free, args.baseline_turns)
    whole_cfg = replace(rec.cfg, generation=replace(rec.cfg.generation, restrict_vocab=False))
    whole = Recommender(whole_cfg, rec.catalog, rec.retriever, rec.lm, rec.store)
    whole_times = run_turns(whole, args.baseline_turns)
    pairs = [(a, b) for ta, tb in zip(times["raw"], whole_times["raw"], strict=False)  # the first turns of each
             for a, b in zip(ta, tb, strict=True)]

    print("\n== chatrec turn latency (Gemma 3 270M fp32, MiniLM, 2 threads) ==")
    for k, label in (("ranked", "ranked list"), ("first_token", "first reason token"), ("total", "full answer (5 reasons)"),
                     ("reasons", "5 reasons after the list")):
        print(f"{label:26s} {pct(times[k])}   target <= {TARGETS[k]} s")
    print(f"{'model reasons shown':26s} {np.mean(times['model_shown']):6.2f} (share that passed the claim checks)")
    print(f"{'warm start':26s} {np.mean(warm):6.2f} s (mean of {len(warm)} fresh processes)   target <= {TARGETS['warm_start']} s")
    if cold is not None:
        print(f"{'cold start':26s} {cold:6.2f} s (empty cache: dequantise + index)")
    print(f"{'peak RSS':26s} {rss:6.2f} GB   target <= {TARGETS['peak_rss_gb']} GB (chatrec turns only)")
    print(f"{'peak RSS with baselines':26s} {peak_rss_gb():6.2f} GB")
    print("\n== baselines, same run ==")
    print(f"{'rank, logits at <fit> marks':26s} {pct(last)}")
    print(f"{'rank, full-prompt logits':26s} {pct(full)}")
    print(f"{'answer, batched reasons':26s} {pct(times['total'][: args.baseline_turns])}")
    print(f"{'answer, one reason a time':26s} {pct(seq_times['total'])}")
    print(f"{'reasons, 4-gram blocking':26s} {pct(times['reasons'][: args.baseline_turns])}")
    print(f"{'reasons, no n-gram block':26s} {pct(free_times['reasons'])}   "
          f"model reasons shown {np.mean(free_times['model_shown']):.2f} vs {np.mean(times['model_shown'][: args.baseline_turns]):.2f}")
    print(f"{'reasons, reason vocabulary':26s} {pct(times['reasons'][: args.baseline_turns])}   "
          f"{len(rec.reason_vocab() if rec.reason_vocab() is not None else [])} of {len(rec.lm.tok)} tokens")
    print(f"{'reasons, whole vocabulary':26s} {pct(whole_times['reasons'])}   "
          f"same text {sum(a == b for a, b in pairs)}/{len(pairs)} reasons")


if __name__ == "__main__":
    main()
