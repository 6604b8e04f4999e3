"""Dense search over the item vectors: exact below a size, approximate (FAISS HNSW or IVF) above it.

Every index answers the same question, "the k items whose vectors have the largest inner product with this
unit query", optionally among allowed positions only. The retriever over-fetches (its pool is ten times the
candidates it keeps) and filters afterwards; when a filter rules out most of a large catalog it passes the
allowed items to :meth:`FaissIndex.search`, so a strict constraint on a million items still finds its matches.

Approximate indexes take minutes to build at a million items, so they are written next to the catalog's
embeddings (same content hash, the build parameters in the file name) and read back memory-mapped, which also
lets several server processes on one machine share one copy in the page cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import RetrievalConfig

log = logging.getLogger(__name__)

# HNSW is built in batches of this many vectors so that the progress bar moves (FAISS adds without callbacks).
_BUILD_BATCH = 20_000
# A filter leaving at most this many items is searched exactly among them (gathering their vectors is the cost:
# ~30 MB at 384 dimensions, a few ms on 2 cores).
_EXACT_AMONG = 20_000


class VectorIndex(Protocol):
    """What the retriever needs from a dense index."""

    kind: str

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """query (D,) unit vector -> (positions (<=k,), scores) best first; ``allowed`` is an (N,) bool mask."""
        ...


class ExactIndex:
    """Exact inner-product search in numpy; plenty up to ~10^5 items (one matrix-vector product)."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (N, D), L2-normalised; may be a memmap

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors @ query.astype(np.float32)  # (N,)
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
            k = min(k, int(allowed.sum()))
        k = min(k, len(scores))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]


class FaissIndex:
    """A FAISS HNSW or IVF-flat index over the same vectors (inner product = cosine on unit vectors)."""

    def __init__(self, index, kind: str, cfg: RetrievalConfig, vectors: np.ndarray):
        import faiss

        self.index = index
        self.vectors = vectors  # the same vectors, for exact search among a few allowed items
        self.kind = kind
        self._faiss = faiss
        if kind == "hnsw":
            index.hnsw.efSearch = cfg.hnsw_ef_search
        else:
            index.nprobe = cfg.ivf_nprobe
        self._ef_search, self._nprobe = cfg.hnsw_ef_search, cfg.ivf_nprobe

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Among ``allowed`` items only, when given: few of them (a strict filter) are searched exactly, since a
        graph walk that must skip most nodes stops early with too few; more are searched through a bitmap
        selector (one bit a catalog item: cheap to build, one bit test per visited vector)."""
        f = self._faiss
        sel = bits = None
        if allowed is not None:
            if int(allowed.sum()) <= _EXACT_AMONG:
                return ExactIndex(self.vectors).search(query, k, allowed)
            bits = np.packbits(allowed, bitorder="little")  # kept alive until the search returns
            sel = f.IDSelectorBitmap(len(allowed), f.swig_ptr(bits))
        k = min(k, self.index.ntotal)
        if self.kind == "hnsw":
            params = f.SearchParametersHNSW(sel=sel, efSearch=max(self._ef_search, k))
        else:
            params = f.SearchParametersIVF(sel=sel, nprobe=self._nprobe)
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self.index.search(q, k, params=params)
        del bits
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]


@dataclass(frozen=True)
class IndexChoice:
    kind: str  # "exact" | "hnsw" | "ivf"
    file_suffix: str  # appended to the embeddings file's stem for an approximate index; "" for exact


def choose(n_items: int, cfg: RetrievalConfig) -> IndexChoice:
    """Which index ``cfg`` asks for at ``n_items`` items (``auto``: exact below ``ann_threshold``, HNSW above)."""
    kind = cfg.index if cfg.index != "auto" else ("exact" if n_items < cfg.ann_threshold else "hnsw")
    if kind == "hnsw":
        return IndexChoice(kind, f".hnsw-m{cfg.hnsw_m}-efc{cfg.hnsw_ef_construction}.faiss")
    if kind == "ivf":
        return IndexChoice(kind, f".ivf{_nlist(n_items, cfg)}.faiss")
    return IndexChoice("exact", "")


def _nlist(n_items: int, cfg: RetrievalConfig) -> int:
    return cfg.ivf_nlist or max(1, min(n_items // 39, int(4 * n_items ** 0.5)))  # FAISS wants >= 39 points a cell


def open_index(vectors: np.ndarray, cfg: RetrievalConfig, vectors_file: Path | None = None,
               progress: bool = True) -> VectorIndex:
    """The index ``cfg`` chooses for ``vectors``; an approximate one is read from next to ``vectors_file``
    (memory-mapped) when it was built before, else built and written there."""
    choice = choose(len(vectors), cfg)
    if choice.kind == "exact":
        return ExactIndex(vectors)
    import faiss

    path = vectors_file.with_name(vectors_file.stem + choice.file_suffix) if vectors_file is not None else None
    if path is not None and path.is_file():
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
            if index.ntotal == len(vectors) and index.d == vectors.shape[1]:
                return FaissIndex(index, choice.kind, cfg, vectors)
            log.warning("%s does not match the embeddings (%d vectors, %d expected); rebuilding",
                        path, index.ntotal, len(vectors))
        except RuntimeError as e:  # a truncated or foreign file: rebuild rather than fail the start
            log.warning("cannot read %s (%s); rebuilding", path, str(e).splitlines()[0])
    index = build(vectors, choice.kind, cfg, progress)
    if path is not None:
        try:
            tmp = path.with_name(path.name + ".tmp")
            faiss.write_index(index, str(tmp))
            tmp.replace(path)
        except (OSError, RuntimeError) as e:  # a read-only catalog folder: keep the index in memory only
            log.warning("cannot save the %s index to %s (%s)", choice.kind, path, e)
    return FaissIndex(index, choice.kind, cfg, vectors)


def build(vectors: np.ndarray, kind: str, cfg: RetrievalConfig, progress: bool = True):
    """A new FAISS index of ``kind`` over ``vectors`` (N, D), with a progress bar over the vectors added."""
    import faiss
    from tqdm.auto import tqdm

    n, d = vectors.shape
    t0 = time.perf_counter()
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
    elif kind == "ivf":
        nlist = _nlist(n, cfg)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        # k-means on a sample: 64 points a cell is what FAISS recommends as enough, and bounds the training time.
        rng = np.random.default_rng(0)
        sample = vectors[np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    with tqdm(total=n, desc=f"building the {kind} index", unit="item", disable=not progress) as bar:
        for start in range(0, n, _BUILD_BATCH):
            chunk = np.ascontiguousarray(vectors[start:start + _BUILD_BATCH], dtype=np.float32)
            index.add(chunk)
            bar.update(len(chunk))
    log.info("built a %s index over %d items in %.1f s", kind, n, time.perf_counter() - t0)
    return index
