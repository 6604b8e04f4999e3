import numpy as np
import pytest

from chatrec.config import RetrievalConfig
from chatrec.index import ExactIndex, FaissIndex, choose, open_index


def clustered(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 20 centres: neighbours exist, as in real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return len(set(approx.tolist()) & set(exact.tolist())) / len(exact)


def test_choose_is_exact_below_the_threshold_and_hnsw_above():
    cfg = RetrievalConfig(ann_threshold=1000)
    assert choose(999, cfg).kind == "exact"
    assert choose(1000, cfg).kind == "hnsw"
    assert choose(10, RetrievalConfig(index="ivf")).kind == "ivf"
    assert choose(10**6, RetrievalConfig(index="exact")).kind == "exact"
    # The file name carries the build parameters: another M is another file, never a stale index.
    assert choose(5000, RetrievalConfig(index="hnsw", hnsw_m=16)).file_suffix != choose(5000, RetrievalConfig(index="hnsw")).file_suffix


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_search_finds_most_of_the_exact_neighbours(kind):
    x = clustered(3000)
    exact = ExactIndex(x)
    ann = open_index(x, RetrievalConfig(index=kind), progress=False)
    assert isinstance(ann, FaissIndex) and ann.kind == kind
    queries = clustered(20, seed=1)
    r = np.mean([recall(ann.search(q, 50)[0], exact.search(q, 50)[0]) for q in queries])
    assert r >= 0.9
    idx, scores = ann.search(queries[0], 10)
    assert np.all(np.diff(scores) <= 1e-6)  # best first
    np.testing.assert_allclose(scores, x[idx] @ queries[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_a_strict_filter_still_returns_allowed_items_only(kind):
    x = clustered(2000)
    index = open_index(x, RetrievalConfig(index=kind), progress=False)
    q = x[0]
    allowed = np.zeros(len(x), dtype=bool)
    allowed[1500:1530] = True  # 30 items, none of them near the query in particular
    idx, _ = index.search(q, 20, allowed)
    assert len(idx) == 20 and allowed[idx].all()
    expected = ExactIndex(x).search(q, 20, allowed)[0]
    assert recall(idx, expected) >= 0.8


def test_an_approximate_index_is_saved_beside_the_embeddings_and_read_back(tmp_path):
    x = clustered(500)
    vectors_file = tmp_path / "emb.npy"
    np.save(vectors_file, x)
    cfg = RetrievalConfig(index="hnsw")
    first = open_index(x, cfg, vectors_file, progress=False)
    saved = vectors_file.with_name(vectors_file.stem + choose(len(x), cfg).file_suffix)
    assert saved.is_file()
    again = open_index(x, cfg, vectors_file, progress=False)
    np.testing.assert_array_equal(first.search(x[3], 10)[0], again.search(x[3], 10)[0])
    # A damaged file is rebuilt, not a failed start.
    saved.write_bytes(b"not an index")
    rebuilt = open_index(x, cfg, vectors_file, progress=False)
    assert rebuilt.search(x[3], 1)[0][0] == 3
    # Embeddings of another size (a changed catalog under the same name) are not answered from the old index.
    other = clustered(400, seed=5)
    assert open_index(other, cfg, vectors_file, progress=False).index.ntotal == 400


def test_exact_search_with_fewer_allowed_items_than_asked_returns_those():
    x = clustered(50)
    allowed = np.zeros(50, dtype=bool)
    allowed[[3, 7]] = True
    idx, _ = ExactIndex(x).search(x[0], 10, allowed)
    assert sorted(idx.tolist()) == [3, 7]
    assert len(ExactIndex(x).search(x[0], 10, np.zeros(50, dtype=bool))[0]) == 0


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_many_allowed_items_are_searched_through_a_bitmap_selector(kind, monkeypatch):
    import chatrec.index as index_mod

    monkeypatch.setattr(index_mod, "_EXACT_AMONG", 0)  # force FAISS's own filtered search
    x = clustered(3000)
    index = open_index(x, RetrievalConfig(index=kind, ivf_nprobe=64), progress=False)
    allowed = np.arange(len(x)) % 3 == 0  # a third of the catalog, as "from 1990 on" leaves
    idx, _ = index.search(x[1], 50, allowed)
    assert len(idx) == 50 and allowed[idx].all()
    assert recall(idx, ExactIndex(x).search(x[1], 50, allowed)[0]) >= 0.9
