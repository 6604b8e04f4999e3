"""Stage 1: candidate retrieval. Dense (sentence embeddings) + lexical (BM25), fused by reciprocal rank;
the main system adds a third ranking, items liked together with the liked ones (chatrec.collaborative).

The dialogue state shapes every query: rejected and already-mentioned items are excluded, liked items
pull the dense query towards them, and parsed constraints (genres, years) filter or boost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .catalog import Catalog, Item
from .config import RetrievalConfig

if TYPE_CHECKING:
    from .collaborative import CoOccurrence

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Candidate:
    item: Item
    score: float  # fused retrieval score (higher is better)
    sources: dict[str, int]  # retriever name -> 1-based rank in that retriever


class VectorIndex(Protocol):
    """The small interface a FAISS index could also satisfy for large catalogs."""

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class ExactIndex:
    """Exact inner-product search in numpy; plenty for thousands of items."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (N, D), L2-normalised

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """query (D,) -> (indices (k,), scores (k,)) best first."""
        scores = self.vectors @ query.astype(np.float32)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]


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


def embed_catalog(catalog: Catalog, embedder, embedder_name: str, cache: Path, progress: bool = True) -> np.ndarray:
    """(N, D) L2-normalised item embeddings; read from disk when the catalog is unchanged."""
    paths = _index_path(catalog, embedder_name, cache)
    for p in paths:
        if p.is_file():
            vecs = np.load(p, allow_pickle=False)
            if vecs.shape[0] == len(catalog):
                return vecs
    log.info("embedding %d items with %s", len(catalog), embedder_name)
    vecs = embedder.encode(
        [it.text() for it in catalog],
        batch_size=64,
        normalize_embeddings=True,
        show_progress_bar=progress,
        convert_to_numpy=True,
    ).astype(np.float32)
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


def rrf(rankings: dict[str, Sequence[int]], k: int, weights: dict[str, float] | None = None) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: sum over retrievers of w / (k + rank)."""
    fused: dict[int, float] = {}
    for name, ranking in rankings.items():
        w = (weights or {}).get(name, 1.0)
        for rank, idx in enumerate(ranking, 1):
            fused[idx] = fused.get(idx, 0.0) + w / (k + rank)
    return fused


class Retriever:
    """Dense + BM25 retrieval over one catalog, and co-occurrence when ``collab`` is given."""

    def __init__(self, catalog: Catalog, embedder, item_vectors: np.ndarray, cfg: RetrievalConfig,
                 collab: CoOccurrence | None = None):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets itself to DEBUG when imported

        self.catalog = catalog
        self.embedder = embedder
        self.cfg = cfg
        self.collab = collab  # the "collab" ranking: items liked together with the query's liked items
        self.dense: VectorIndex = ExactIndex(item_vectors)
        self.item_vectors = self.dense.vectors
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenize([it.text() for it in catalog], stopwords="en", show_progress=False),
                        show_progress=False)
        self._bm25s = bm25s
        # Popularity on any scale -> [0, 1] by log, so the prior stays mild whatever the units.
        pops = np.array([float(it.attributes.get("popularity") or 0) if isinstance(it.attributes.get("popularity"), (int, float))
                         else 0.0 for it in catalog])
        self.popularity = np.log1p(np.clip(pops, 0, None)) / max(np.log1p(pops.max()), 1e-9) if pops.any() else pops

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]

    def dense_ranking(self, query: Query) -> list[int]:
        q = self.embed_query(query.text) if query.text.strip() else np.zeros(self.item_vectors.shape[1], np.float32)
        liked = [self.catalog.position(i) for i in query.liked if i in self.catalog]
        if liked:
            q = q + self.cfg.like_weight * self.item_vectors[liked].mean(0) * max(1.0, len(liked) ** 0.5)
        if not np.any(q):
            return []
        idx, _ = self.dense.search(q / np.linalg.norm(q), self.cfg.pool)
        return idx.tolist()

    def bm25_ranking(self, query: Query) -> list[int]:
        tokens = self._bm25s.tokenize([query.text], stopwords="en", show_progress=False)
        if not query.text.strip() or not tokens.vocab:
            return []
        k = min(self.cfg.pool, len(self.catalog))
        docs, scores = self.bm25.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [int(d) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def retrieve(self, query: Query, n: int | None = None, use: Sequence[str] = ("dense", "bm25")) -> list[Candidate]:
        """Top-n candidates for the query, best first. ``use`` picks retrievers (for baselines): "dense",
        "bm25", "collab" (without a ``collab`` model or without evidence for the liked items it adds nothing)."""
        n = n or self.cfg.n_candidates
        rankings: dict[str, list[int]] = {}
        weights = {"dense": self.cfg.dense_weight, "bm25": self.cfg.bm25_weight}
        if "dense" in use:
            rankings["dense"] = self.dense_ranking(query)
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
        # Items no retriever found still qualify (e.g. a constraint-only query), at score 0.
        c = query.constraints
        out: list[Candidate] = []
        for pos, item in enumerate(self.catalog):
            if item.id in query.exclude or not c.allows(item):
                continue
            score = fused.get(pos, 0.0)
            if c.include_genres & set(item.values("genres")):
                score += self.cfg.genre_boost * len(c.include_genres & set(item.values("genres")))
            if c.people:
                score += self.cfg.people_boost * len(c.people & item.people())
            if c.preferred_era(item):
                score += self.cfg.era_boost
            score += self.cfg.popularity_weight * float(self.popularity[pos])
            out.append(Candidate(item, score, {}))
        out.sort(key=lambda cand: -cand.score)
        out = out[:n]
        ranks = {name: {pos: r for r, pos in enumerate(rk, 1)} for name, rk in rankings.items()}
        return [
            Candidate(cand.item, cand.score, {
                name: rk[self.catalog.position(cand.item.id)]
                for name, rk in ranks.items()
                if self.catalog.position(cand.item.id) in rk
            })
            for cand in out
        ]
