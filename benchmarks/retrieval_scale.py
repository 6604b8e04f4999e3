"""Retrieval at size: synthetic catalogs of 10k, 100k and 1M items, exact against approximate (FAISS) search.

For each size, in one run: catalog load time (the streaming JSONL loader, every row validated), build time
and memory of each dense index and of BM25, p50/p95 latency of a full state-aware ``Retriever.retrieve``
(a text, liked items pulling the query, exclusions, genre/people/year constraints) for the exact index (the
baseline) and the approximate one, and recall@50 of the approximate dense ranking against the exact one.
With ``--full-turn``, also a whole turn (LLM ranking, no reasons) on the largest catalog against the demo one.

Catalog text is deterministic from ``--seed``: titles, genres, people and keywords drawn from word lists.
Item vectors are *composed*: MiniLM embeddings of an item's parts (its title words, genres, keywords and
director), weighted and normalised, because embedding a million texts with MiniLM takes about seven hours on
2 cores (42 items/s measured). They live in MiniLM's space, so real MiniLM query vectors are searched
against them, and they cluster as real catalog vectors do (uniform random vectors would flatter no one:
they are the hardest case for an approximate index). Files are cached under ``$CHATREC_CACHE/bench``.

    python benchmarks/retrieval_scale.py [--sizes 10000 100000 1000000] [--queries 100] [--full-turn]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ADJ = ("silent crimson broken hidden last golden frozen wild distant burning hollow secret iron paper velvet "
       "midnight electric lonely savage gentle bitter empty restless shattered quiet dark bright lost final "
       "northern southern endless crooked sacred stolen rising falling glass copper scarlet pale").split()
NOUN = ("river kingdom letter garden engine harbor shadow mirror storm island orchard signal tower prophet "
        "witness circus frontier lantern compass voyage ember canyon cathedral carnival courtroom highway "
        "lighthouse monastery railway submarine vineyard wedding widow wolf harvest reckoning inheritance").split()
GENRES = ("Drama Comedy Thriller Horror Romance Action Adventure Crime Mystery Fantasy Science-Fiction Animation "
          "Documentary Family War Western Music History").split()
KEYWORDS = ("heist revenge time-travel haunted-house small-town road-trip coming-of-age courtroom serial-killer "
            "space-station alien-invasion boxing chess cooking dystopia zombies vampires pirates spy survival "
            "friendship betrayal family-secret first-love divorce prison-escape bank-robbery kidnapping ghosts "
            "treasure detective journalism politics music-band dance artificial-intelligence robots dragons "
            "witchcraft submarine mountain-climbing desert jungle ocean winter christmas wedding high-school").split()
FIRST = ("Ana Ben Clara David Elena Farid Grace Hiro Ines Jonas Kofi Lena Marco Nadia Omar Petra Quinn Rosa "
         "Sami Tara Umar Vera Wen Ximena Yusuf Zoe").split()
LAST = ("Adler Brandt Costa Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Laurent Moreau Novak "
        "Okafor Petrov Quist Rossi Sato Tanaka Ueda Varga Weber Xu Yilmaz Zhang").split()

CONVERSATIONS = ["a haunted house story, scary but not gory", "a heist film with a clever twist",
                 "something romantic about a wedding, from the nineties", "space station survival, no horror",
                 "a detective mystery in a small town", "funny family adventure with pirates and treasure",
                 "a war drama about friendship and betrayal", "a dystopia with robots and artificial intelligence"]


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def synthetic_rows(n: int, seed: int):
    """``n`` catalog rows, the same for the same seed (titles repeat across items: numbered like sequels)."""
    rng = random.Random(seed)
    for i in range(n):
        adj, noun = rng.choice(ADJ), rng.choice(NOUN)
        genres = rng.sample(GENRES, rng.randint(1, 3))
        kws = rng.sample(KEYWORDS, rng.randint(2, 5))
        director, cast = person(rng), [person(rng) for _ in range(rng.randint(1, 3))]
        year = rng.randint(1930, 2025)
        yield {"id": f"s{i}", "title": f"The {adj.title()} {noun.title()}" + (f" {i % 97}" if i >= 10_000 else ""),
               "description": f"A {genres[0].lower()} about {kws[0].replace('-', ' ')} and {kws[-1].replace('-', ' ')} "
                              f"near a {noun}, directed by {director}.",
               "attributes": {"year": year, "genres": genres, "director": director, "cast": cast, "keywords": kws,
                              "popularity": round(rng.paretovariate(1.5), 2)}}


def catalog_file(n: int, seed: int, root: Path) -> Path:
    path = root / f"synthetic-{n}-seed{seed}.jsonl"
    if not path.is_file():
        from tqdm.auto import tqdm

        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            for row in tqdm(synthetic_rows(n, seed), total=n, desc=f"writing {n:,} items", unit="item"):
                f.write(json.dumps(row) + "\n")
        tmp.replace(path)
    return path


def composed_vectors(catalog, embedder) -> np.ndarray:
    """(N, D) unit vectors: a weighted sum of the MiniLM vectors of each item's parts, plus a little noise."""
    parts = sorted({w.lower() for it in catalog for w in it.title.split()[1:3]}
                   | {g for it in catalog for g in it.values("genres")}
                   | {k.replace("-", " ") for it in catalog for k in it.values("keywords")}
                   | {d for it in catalog for d in it.values("director")})
    vec = dict(zip(parts, embedder.encode(parts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True), strict=True))
    rng = np.random.default_rng(0)
    out = np.empty((len(catalog), len(next(iter(vec.values())))), np.float32)
    for i, it in enumerate(catalog):
        words = [w.lower() for w in it.title.split()[1:3]]
        v = (0.3 * (vec[words[0]] + vec[words[1]])
             + 0.4 * np.mean([vec[g] for g in it.values("genres")], 0)
             + 0.4 * np.mean([vec[k.replace("-", " ")] for k in it.values("keywords")], 0)
             + 0.15 * vec[it.values("director")[0]])
        out[i] = v
    # A little noise keeps items with the same parts apart (no exact ties) without drowning the parts:
    # its norm is ~0.2 against ~1 for the parts, as a catalog's near-duplicates sit close but not on each other.
    out += 0.01 * rng.standard_normal(out.shape, dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def queries(catalog, n: int, seed: int):
    from chatrec.retrieval import Constraints, Query

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        liked = tuple(catalog[rng.randrange(len(catalog))].id for _ in range(rng.randint(0, 2)))
        exclude = frozenset(catalog[rng.randrange(len(catalog))].id for _ in range(5))
        c = Constraints(include_genres=frozenset(rng.sample(GENRES, rng.randint(0, 1))),
                        exclude_genres=frozenset(rng.sample(GENRES, rng.randint(0, 1))),
                        year_min=rng.choice([None, None, 1990]), prefer_year_max=rng.choice([None, 1980]),
                        people=frozenset([person(rng)]) if rng.random() < 0.3 else frozenset())
        out.append(Query(rng.choice(CONVERSATIONS), liked, exclude, c))
    return out


def rss_gb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1024**3


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


@dataclass
class Row:
    n: int
    index: str  # "exact", or the approximate kind with its search breadth ("hnsw ef=128")
    load_s: float  # the catalog file read and validated (the same for every row of one size)
    build_s: float
    index_mb: float
    p50_ms: float
    p95_ms: float
    recall50: float  # approximate dense top-50 against the exact one (1.0 for exact)
    overlap20: float  # share of the 20 final candidates the exact retriever also returns


def time_retrieve(retriever, qs) -> list[float]:
    for q in qs[:5]:  # warm: first-call allocations, the encoder's first passes
        retriever.retrieve(q)
    times = []
    for q in qs:
        t = time.perf_counter()
        retriever.retrieve(q)
        times.append(time.perf_counter() - t)
    return times


def bench_size(n: int, args, embedder, cfg, root: Path) -> list[Row]:
    from chatrec import index as index_mod
    from chatrec.catalog import CatalogLimits, load_catalog
    from chatrec.retrieval import Retriever, _index_path

    path = catalog_file(n, args.seed, root)
    t = time.perf_counter()
    catalog = load_catalog(path, limits=CatalogLimits())
    load_s = time.perf_counter() - t
    vec_path = _index_path(catalog, cfg.model.embedder, root)[0]  # beside the catalog, as embed_catalog keeps it
    if vec_path.is_file():
        vectors = np.load(vec_path, mmap_mode="r")
    else:
        vectors = composed_vectors(catalog, embedder)
        vec_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(vec_path, vectors)
        vectors = np.load(vec_path, mmap_mode="r")
    print(f"\n{n:,} items: catalog loaded in {load_s:.1f} s (RSS {rss_gb():.2f} GB)", file=sys.stderr)
    qs = queries(catalog, args.queries, args.seed)
    rows, results = [], {}
    for kind in ("exact", args.ann):
        rcfg = replace(cfg.retrieval, index=kind)
        suffix = index_mod.choose(n, rcfg).file_suffix
        saved = vec_path.with_name(vec_path.stem + suffix) if suffix else None
        if saved is not None and args.rebuild and saved.exists():
            saved.unlink()
        t = time.perf_counter()
        retriever = Retriever(catalog, embedder, vectors, rcfg, vectors_path=vec_path, progress=True)
        build_s = time.perf_counter() - t
        size_mb = (saved.stat().st_size if saved is not None else vectors.nbytes) / 2**20
        results[kind] = retriever
        if kind == "exact":
            times = time_retrieve(retriever, qs)
            rows.append(Row(n, kind, load_s, build_s, size_mb, 1e3 * np.percentile(times, 50),
                            1e3 * np.percentile(times, 95), 1.0, 1.0))
    exact, ann = results["exact"], results[args.ann]
    truth = [set(exact.dense_ranking(replace(q, exclude=frozenset()))[:50]) for q in qs]
    lists = [{c.item.id for c in exact.retrieve(q)} for q in qs]
    for breadth in args.breadth:  # the search breadth is read at query time: one built index, several rows
        if args.ann == "hnsw":
            ann.dense.index.hnsw.efSearch = ann.dense._ef_search = breadth
        else:
            ann.dense.index.nprobe = ann.dense._nprobe = breadth
        times = time_retrieve(ann, qs)
        recalls = [len(t & set(ann.dense_ranking(replace(q, exclude=frozenset()))[:50])) / max(1, len(t))
                   for q, t in zip(qs, truth, strict=True)]
        overlaps = [len(e & {c.item.id for c in ann.retrieve(q)}) / 20 for q, e in zip(qs, lists, strict=True)]
        label = f"{args.ann} {'ef' if args.ann == 'hnsw' else 'nprobe'}={breadth}"
        rows.append(Row(n, label, load_s, build_s, size_mb, 1e3 * np.percentile(times, 50),
                        1e3 * np.percentile(times, 95), float(np.mean(recalls)), float(np.mean(overlaps))))
    print(f"  RSS {rss_gb():.2f} GB, peak {peak_gb():.2f} GB", file=sys.stderr)
    return rows


def full_turns(cfg_overrides: list[str], n_turns: int) -> list[float]:
    """Seconds per turn (ranked list, no reasons) over scripted conversations on the configured catalog."""
    from chatrec.config import load_config
    from chatrec.recommender import Recommender
    from chatrec.session import Session

    rec = Recommender.from_config(load_config(None, cfg_overrides + ["generation.reasons=false", "profile.enabled=false"]),
                                  progress=True)
    times = []
    session = rec.store.save(Session())
    for i in range(n_turns + 1):
        if i % 4 == 0:
            session = rec.store.save(Session())
        t = time.perf_counter()
        session = rec.respond(session, CONVERSATIONS[i % len(CONVERSATIONS)]).session
        if i:  # the first turn warms caches
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--ann", choices=["hnsw", "ivf"], default="hnsw")
    ap.add_argument("--breadth", type=int, nargs="+", default=[200, 400, 800, 1600],
                    help="HNSW efSearch (or IVF nprobe) values to time, each a row over the same index")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true", help="rebuild approximate indexes even when saved")
    ap.add_argument("--full-turn", action="store_true", help="also time whole turns on the largest catalog vs the demo")
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()

    import torch

    from chatrec.config import Config, load_config
    from chatrec.weights.packaged import load_embedder

    torch.set_num_threads(2)
    root = Config.cache() / "bench"
    root.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, [])
    embedder = load_embedder(cfg.model.embedder)
    rows: list[Row] = []
    for n in args.sizes:
        rows += bench_size(n, args, embedder, cfg, root)
    print(f"\nRetrieval at size ({os.cpu_count()} CPUs; {args.queries} state-aware queries with the MiniLM query "
          f"encoding included; ANN = {args.ann}, M {cfg.retrieval.hnsw_m}, efConstruction "
          f"{cfg.retrieval.hnsw_ef_construction}; default efSearch {cfg.retrieval.hnsw_ef_search})")
    print("| items | index | load s | build s | index MB | p50 ms | p95 ms | recall@50 | top-20 same |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.n:,} | {r.index} | {r.load_s:.1f} | {r.build_s:.1f} | {r.index_mb:.0f} | {r.p50_ms:.1f} | "
              f"{r.p95_ms:.1f} | {r.recall50:.3f} | {r.overlap20:.3f} |")
    print(f"peak RSS {peak_gb():.2f} GB")
    goals = {10_000: 30.0, 1_000_000: 100.0}
    for n, goal in goals.items():
        if n < cfg.retrieval.ann_threshold:
            got = [r for r in rows if r.n == n and r.index == "exact"]
        else:  # the default breadth's row, else the best one that reaches the recall goal
            got = [r for r in rows if r.n == n and r.index.endswith(f"={cfg.retrieval.hnsw_ef_search}")] or \
                  sorted((r for r in rows if r.n == n and r.index != "exact" and r.recall50 >= 0.95), key=lambda r: r.p50_ms)
        for r in got[:1]:
            ok = r.p50_ms <= goal and (r.index == "exact" or r.recall50 >= 0.95)
            print(f"goal at {n:,} ({r.index}): p50 <= {goal:.0f} ms" + (" and recall@50 >= 0.95" if r.index != "exact" else "")
                  + f": {'met' if ok else 'MISSED'} ({r.p50_ms:.1f} ms" + (f", {r.recall50:.3f})" if r.index != "exact" else ")"))
    out = {"rows": [r.__dict__ for r in rows]}
    if args.full_turn:
        big = catalog_file(max(args.sizes), args.seed, root)
        demo = full_turns([], args.turns)
        large = full_turns([f"catalog={big}"], args.turns)
        print(f"\nwhole turn (ranked list, no reasons): demo catalog p50 {np.median(demo):.2f} s p95 "
              f"{np.percentile(demo, 95):.2f} s; {max(args.sizes):,} items p50 {np.median(large):.2f} s p95 "
              f"{np.percentile(large, 95):.2f} s ({100 * (np.median(large) / np.median(demo) - 1):+.0f}%, goal <= +10%)")
        out["full_turn"] = {"demo": demo, "large": large}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
