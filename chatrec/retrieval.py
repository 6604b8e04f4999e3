"""Stage 1: candidate retrieval. Dense (sentence embeddings) + lexical (BM25), fused by reciprocal rank;
the main system adds a third ranking, items liked together with the liked ones (chatrec.collaborative).

The dialogue state shapes every query: rejected and already-mentioned items are excluded, liked items
pull the dense query towards them, and parsed constraints (genres, years) filter or boost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .catalog import Catalog, Item
from .config import RetrievalConfig
from .index import ExactIndex, VectorIndex, open_index

__all__ = ["Candidate", "Constraints", "ExactIndex", "Query", "Retriever", "VectorIndex", "embed_catalog", "rrf",
           "vectors_file"]

if TYPE_CHECKING:
    from .collaborative import CoOccurrence

log = logging.getLogger(__name__)

_EMBED_CHUNK = 8_192  # items embedded between two checkpoints of a large catalog
_MMAP_FROM = 50_000  # catalogs this large read their embeddings memory-mapped (shared by processes, no copy)
_SAVE_BM25_FROM = 50_000  # and keep their BM25 index on disk (tokenising a million texts takes minutes)


@dataclass(frozen=True)
class Constraints:
    """Hard filters and soft wishes parsed from the user's words."""

    include_genres: frozenset[str] = frozenset()  # boosted
    exclude_genres: frozenset[str] = frozenset()  # filtered out
    year_min: int | None = None  # filters (years the user wrote)
    year_max: int | None = None
    prefer_year_min: int | None = None  # boosted (time words without a number)
    prefer_year_max: int | None = None
    people: frozenset[str] = frozenset()  # boosted: catalog people the user asked for

    def preferred_era(self, item: Item) -> bool:
        y = item.year
        if y is None or (self.prefer_year_min is None and self.prefer_year_max is None):
            return False
        return (self.prefer_year_min is None or y >= self.prefer_year_min) and (
            self.prefer_year_max is None or y <= self.prefer_year_max)

    def allows(self, item: Item) -> bool:
        genres = set(item.values("genres"))
        if genres & self.exclude_genres:
            return False
        y = item.year
        if y is not None and self.year_min is not None and y < self.year_min:
            return False
        return not (y is not None and self.year_max is not None and y > self.year_max)


@dataclass(frozen=True)
class Query:
    """What retrieval needs to know about the conversation."""

    text: str  # the user's words (and transcripts), most recent last
    liked: tuple[str, ...] = ()
    exclude: frozenset[str] = frozenset()  # rejected or already mentioned
    constraints: Constraints = field(default_factory=Constraints)
    extra_scores: dict[str, float] | None = None  # other modalities' fused-score contributions
    # (N,) fused-score bonus by catalog position (the profile's: it touches most items, so an array, not a dict)
    bonus: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Candidate:
    item: Item
    score: float  # fused retrieval score (higher is better)
    sources: dict[str, int]  # retriever name -> 1-based rank in that retriever


def _index_path(catalog: Catalog, embedder_name: str, cache: Path) -> list[Path]:
    """Where the embeddings live: next to the catalog, else in the cache (packaged catalogs are read-only)."""
    slug = "".join(c if c.isalnum() else "-" for c in embedder_name).strip("-")
    name = f"{slug}-{catalog.content_hash()[:16]}.npy"
    paths = []
    if catalog.source not in ("<memory>",):
        src = Path(catalog.source)
        paths.append(src.with_name(src.name + ".index") / name)
    paths.append(cache / "index" / name)
    return paths


def vectors_file(catalog: Catalog, embedder_name: str, cache: Path) -> Path | None:
    """The embeddings file :func:`embed_catalog` wrote for this catalog, if any (other index files sit beside it)."""
    return next((p for p in _index_path(catalog, embedder_name, cache) if p.is_file()), None)


def embed_catalog(catalog: Catalog, embedder, embedder_name: str, cache: Path, progress: bool = True) -> np.ndarray:
    """(N, D) L2-normalised item embeddings; read from disk when the catalog is unchanged.

    Large catalogs are embedded in chunks written to a ``.partial.npy`` file as they finish, so an interrupted
    run (hours at a million items on 2 cores) resumes where it stopped; their embeddings are read memory-mapped.
    """
    paths = _index_path(catalog, embedder_name, cache)
    for p in paths:
        if p.is_file():
            vecs = np.load(p, allow_pickle=False, mmap_mode="r" if len(catalog) >= _MMAP_FROM else None)
            if vecs.shape[0] == len(catalog):
                return vecs
    log.info("embedding %d items with %s", len(catalog), embedder_name)
    if len(catalog) > _EMBED_CHUNK:
        for p in paths:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                return _embed_resumable(catalog, embedder, p, progress)
            except OSError:
                continue
    vecs = _encode(embedder, [it.text() for it in catalog], progress)
    for p in paths:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(".tmp.npy")
            np.save(tmp, vecs)
            tmp.replace(p)
            break
        except OSError:
            continue
    return vecs


def _encode(embedder, texts: list[str], progress: bool) -> np.ndarray:
    return embedder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=progress,
                           convert_to_numpy=True).astype(np.float32)


def _embed_resumable(catalog: Catalog, embedder, path: Path, progress: bool) -> np.ndarray:
    """Embed chunk by chunk into ``<path>.partial.npy``, recording the items done in ``<path>.partial.json``."""
    import json

    from tqdm.auto import tqdm

    partial, done_file = path.with_suffix(".partial.npy"), path.with_suffix(".partial.json")
    done = 0
    first = _encode(embedder, [catalog[0].text()], False)
    shape = (len(catalog), first.shape[1])
    if partial.is_file() and done_file.is_file():
        try:
            out = np.lib.format.open_memmap(partial, mode="r+")
            done = int(json.loads(done_file.read_text())["done"]) if out.shape == shape else 0
        except (OSError, ValueError, KeyError):
            done = 0
    if done == 0:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
    elif progress:
        log.warning("resuming the embedding of %s at item %d of %d", catalog.source, done, len(catalog))
    with tqdm(total=len(catalog), initial=done, desc="embedding the catalog", unit="item", disable=not progress) as bar:
        for start in range(done, len(catalog), _EMBED_CHUNK):
            stop = min(start + _EMBED_CHUNK, len(catalog))
            out[start:stop] = _encode(embedder, [catalog[i].text() for i in range(start, stop)], False)
            out.flush()
            done_file.write_text(json.dumps({"done": stop}))  # after the flush: a crash never skips a chunk
            bar.update(stop - start)
    del out
    partial.replace(path)
    done_file.unlink(missing_ok=True)
    return np.load(path, allow_pickle=False, mmap_mode="r" if len(catalog) >= _MMAP_FROM else None)


def rrf(rankings: dict[str, Sequence[int]], k: int, weights: dict[str, float] | None = None) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: sum over retrievers of w / (k + rank)."""
    fused: dict[int, float] = {}
    for name, ranking in rankings.items():
        w = (weights or {}).get(name, 1.0)
        for rank, idx in enumerate(ranking, 1):
            fused[idx] = fused.get(idx, 0.0) + w / (k + rank)
    return fused


class Retriever:
    """Dense + BM25 retrieval over one catalog, and co-occurrence when ``collab`` is given.

    Per-item facts the final scoring needs (genres, people, years, popularity) are held as arrays, so a
    query costs a few vector operations over the catalog instead of a Python loop over its items: the
    difference between milliseconds and seconds at a million items.
    """

    def __init__(self, catalog: Catalog, embedder, item_vectors: np.ndarray, cfg: RetrievalConfig,
                 collab: CoOccurrence | None = None, vectors_path: Path | None = None, progress: bool = False):
        self.catalog = catalog
        self.embedder = embedder
        self.cfg = cfg
        self.collab = collab  # the "collab" ranking: items liked together with the query's liked items
        # ``vectors_path``: the embeddings file; an approximate index and a large catalog's BM25 are kept beside it.
        self.dense: VectorIndex = open_index(item_vectors, cfg, vectors_path, progress)
        self.item_vectors = getattr(self.dense, "vectors", item_vectors)
        self.bm25 = self._bm25(vectors_path, progress)
        self.genres, self._genre_col = _membership([it.values("genres") for it in catalog])
        self.people, self._person_col = _membership([it.people() for it in catalog])
        self.years = np.array([np.nan if it.year is None else it.year for it in catalog], dtype=np.float64)
        # Popularity on any scale -> [0, 1] by log, so the prior stays mild whatever the units.
        pops = np.array([float(it.attributes.get("popularity") or 0) if isinstance(it.attributes.get("popularity"), (int, float))
                         else 0.0 for it in catalog])
        self.popularity = np.log1p(np.clip(pops, 0, None)) / max(np.log1p(pops.max()), 1e-9) if pops.any() else pops

    def _bm25(self, vectors_path: Path | None, progress: bool):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets itself to DEBUG when imported
        self._bm25s = bm25s
        folder = vectors_path.with_suffix(".bm25") if vectors_path is not None else None
        if folder is not None and (folder / "params.index.json").is_file():
            try:
                return bm25s.BM25.load(folder, mmap=True, show_progress=False)
            except (OSError, ValueError, KeyError) as e:
                log.warning("cannot read the BM25 index %s (%s); rebuilding", folder, e)
        big = len(self.catalog) >= _SAVE_BM25_FROM
        bm25 = bm25s.BM25()
        bm25.index(bm25s.tokenize([it.text() for it in self.catalog], stopwords="en", show_progress=progress and big),
                   show_progress=progress and big)
        if folder is not None and big:
            try:
                bm25.save(folder, show_progress=False)
            except OSError as e:
                log.warning("cannot save the BM25 index to %s (%s)", folder, e)
        return bm25

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]

    def dense_ranking(self, query: Query, allowed: np.ndarray | None = None) -> list[int]:
        q = self.embed_query(query.text) if query.text.strip() else np.zeros(self.item_vectors.shape[1], np.float32)
        liked = [self.catalog.position(i) for i in query.liked if i in self.catalog]
        if liked:
            q = q + self.cfg.like_weight * self.item_vectors[liked].mean(0) * max(1.0, len(liked) ** 0.5)
        if not np.any(q):
            return []
        idx, _ = self.dense.search(q / np.linalg.norm(q), self.cfg.pool, allowed)
        return idx.tolist()

    def bm25_ranking(self, query: Query) -> list[int]:
        tokens = self._bm25s.tokenize([query.text], stopwords="en", show_progress=False)
        if not query.text.strip() or not tokens.vocab:
            return []
        k = min(self.cfg.pool, len(self.catalog))
        docs, scores = self.bm25.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [int(d) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def allowed(self, query: Query) -> np.ndarray:
        """(N,) bool: items the query's exclusions and hard constraints leave (as :meth:`Constraints.allows`)."""
        c = query.constraints
        ok = np.ones(len(self.catalog), dtype=bool)
        if cols := [self._genre_col[g] for g in c.exclude_genres if g in self._genre_col]:
            ok &= np.asarray(self.genres[:, cols].sum(axis=1)).ravel() == 0
        with np.errstate(invalid="ignore"):  # unknown years (NaN) compare False: never filtered
            if c.year_min is not None:
                ok &= ~(self.years < c.year_min)
            if c.year_max is not None:
                ok &= ~(self.years > c.year_max)
        ok[[self.catalog.position(i) for i in query.exclude if i in self.catalog]] = False
        return ok

    def retrieve(self, query: Query, n: int | None = None, use: Sequence[str] = ("dense", "bm25")) -> list[Candidate]:
        """Top-n candidates for the query, best first. ``use`` picks retrievers (for baselines): "dense",
        "bm25", "collab" (without a ``collab`` model or without evidence for the liked items it adds nothing)."""
        n = n or self.cfg.n_candidates
        allowed = self.allowed(query)
        rankings: dict[str, list[int]] = {}
        weights = {"dense": self.cfg.dense_weight, "bm25": self.cfg.bm25_weight}
        if "dense" in use:
            # An approximate index over a large catalog is searched among the allowed items when most are ruled
            # out (the pool's over-fetch would come back nearly empty); otherwise, and always for the exact
            # index, the ranking is the plain nearest-neighbour list and the filter applies after fusion.
            strict = self.dense.kind != "exact" and allowed.mean() < 0.5
            rankings["dense"] = self.dense_ranking(query, allowed if strict else None)
        if "bm25" in use:
            rankings["bm25"] = self.bm25_ranking(query)
        if "collab" in use and self.collab is not None and (collab := self.collab.ranking(query, self.cfg.pool)):
            rankings["collab"] = collab
            weights["collab"] = self.collab.weight(query)  # scaled by the evidence behind the liked items
        fused = rrf(rankings, self.cfg.rrf_k, weights)
        for item_id, bonus in (query.extra_scores or {}).items():
            if item_id in self.catalog:
                pos = self.catalog.position(item_id)
                fused[pos] = fused.get(pos, 0.0) + bonus
        # Items no retriever found still qualify (e.g. a constraint-only query), at their boosts alone.
        score = self._scores(fused, query.constraints, query.bonus)
        top = _top(np.where(allowed, score, -np.inf), n)
        ranks = {name: {pos: r for r, pos in enumerate(rk, 1)} for name, rk in rankings.items()}
        return [Candidate(self.catalog[pos], float(score[pos]),
                          {name: rk[pos] for name, rk in ranks.items() if pos in rk}) for pos in top]

    def _scores(self, fused: dict[int, float], c: Constraints, bonus: np.ndarray | None = None) -> np.ndarray:
        """(N,) fused score plus genre, people, era, profile and popularity boosts, in this order for every item."""
        score = np.zeros(len(self.catalog), dtype=np.float64)
        if fused:
            score[np.fromiter(fused.keys(), np.int64, len(fused))] = np.fromiter(fused.values(), np.float64, len(fused))
        if c.include_genres:
            score += self.cfg.genre_boost * self.attribute_sum("genres", dict.fromkeys(c.include_genres, 1.0))
        if c.people:
            score += self.cfg.people_boost * self.attribute_sum("people", dict.fromkeys(c.people, 1.0))
        if c.prefer_year_min is not None or c.prefer_year_max is not None:
            score += self.cfg.era_boost * self.in_years(c.prefer_year_min, c.prefer_year_max)
        if bonus is not None:
            score += bonus
        return score + self.cfg.popularity_weight * self.popularity

    def attribute_sum(self, kind: str, weights: dict[str, float]) -> np.ndarray:
        """(N,) sum over each item's distinct genres ("genres") or people ("people") of their ``weights``."""
        matrix, col = (self.genres, self._genre_col) if kind == "genres" else (self.people, self._person_col)
        known = [(col[v], w) for v, w in weights.items() if v in col]
        if not known:
            return np.zeros(len(self.catalog), dtype=np.float64)
        cols, w = zip(*known, strict=True)
        return np.asarray(matrix[:, list(cols)] @ np.array(w, dtype=np.float64)).ravel()

    def in_years(self, lo: int | None, hi: int | None) -> np.ndarray:
        """(N,) 1.0 for items whose year lies in [lo, hi] (either end open), else 0.0 (unknown years too)."""
        with np.errstate(invalid="ignore"):
            return ((self.years >= (-np.inf if lo is None else lo)) & (self.years <= (np.inf if hi is None else hi))).astype(np.float64)


def _membership(values: Sequence[Iterable[str]]):
    """(N, V) 0/1 CSC matrix of which items have which value (each distinct value once), and value -> column."""
    from scipy import sparse

    col: dict[str, int] = {}
    rows, cols = [], []
    for i, vals in enumerate(values):
        for v in dict.fromkeys(vals):
            rows.append(i)
            cols.append(col.setdefault(v, len(col)))
    data = np.ones(len(rows), dtype=np.float64)
    return sparse.csc_matrix((data, (rows, cols)), shape=(len(values), max(1, len(col)))), col


def _top(score: np.ndarray, n: int) -> list[int]:
    """Positions of the ``n`` best finite scores, best first, ties in catalog order (a stable sort's order)."""
    finite = int(np.isfinite(score).sum())
    n = min(n, finite)
    if n <= 0:
        return []
    # Everything at least as good as the n-th best, so that ties at the cut keep catalog order.
    cut = np.partition(score, len(score) - n)[len(score) - n]
    pool = np.flatnonzero(score >= cut)
    return pool[np.argsort(-score[pool], kind="stable")][:n].tolist()
