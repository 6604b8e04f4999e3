import numpy as np
from conftest import HashEmbedder

from chatrec.catalog import Catalog, Item
from chatrec.config import RetrievalConfig
from chatrec.retrieval import Constraints, ExactIndex, Query, Retriever, embed_catalog, rrf


def make(catalog, tmp_path, **cfg):
    emb = HashEmbedder()
    vecs = embed_catalog(catalog, emb, "hash", tmp_path, progress=False)
    return Retriever(catalog, emb, vecs, RetrievalConfig(**cfg)), emb


def test_rrf_by_hand():
    # item 7: 1/(60+1) + 1/(60+2); item 3: 1/(60+2); item 9: 1/(60+1)
    fused = rrf({"a": [7, 3], "b": [9, 7]}, 60)
    assert np.isclose(fused[7], 1 / 61 + 1 / 62) and np.isclose(fused[3], 1 / 62) and np.isclose(fused[9], 1 / 61)


def test_exact_index_orders_by_inner_product():
    idx = ExactIndex(np.eye(3, dtype=np.float32))
    order, scores = idx.search(np.array([0.1, 0.9, 0.5], np.float32), 2)
    assert order.tolist() == [1, 2] and np.allclose(scores, [0.9, 0.5])


def test_text_query_finds_the_matching_item(small_catalog, tmp_path):
    r, _ = make(small_catalog, tmp_path)
    top = r.retrieve(Query("hacker simulated reality machines"), 3)
    assert top[0].item.id == "the-matrix-1999"
    assert set(top[0].sources) == {"dense", "bm25"}


def test_exclusions_and_constraints(small_catalog, tmp_path):
    r, _ = make(small_catalog, tmp_path)
    c = Constraints(exclude_genres=frozenset({"Horror"}), year_min=1990)
    got = r.retrieve(Query("space crew monster", exclude=frozenset({"the-matrix-1999"}), constraints=c), 50)
    assert got, "constraints should leave items"
    for cand in got:
        assert "Horror" not in cand.item.values("genres") and cand.item.year >= 1990
        assert cand.item.id != "the-matrix-1999"


def test_liked_items_pull_similar_ones_up(small_catalog, tmp_path):
    r, _ = make(small_catalog, tmp_path, like_weight=2.0)
    base = [c.item.id for c in r.retrieve(Query("a film"), 20)]
    liked = [c.item.id for c in r.retrieve(Query("a film", liked=("the-matrix-1999",)), 20)]
    matrix = small_catalog.get("the-matrix-1999")
    sim = r.item_vectors @ r.item_vectors[small_catalog.position("the-matrix-1999")]
    nearest = [small_catalog[i].id for i in np.argsort(-sim) if small_catalog[i].id != matrix.id][0]
    assert liked.index(nearest) < base.index(nearest) or liked.index(nearest) == 0


def test_index_is_cached_by_content_hash(small_catalog, tmp_path):
    small_catalog = Catalog(list(small_catalog), source=str(tmp_path / "films.jsonl"))
    emb = HashEmbedder()
    embed_catalog(small_catalog, emb, "hash", tmp_path, progress=False)
    embed_catalog(small_catalog, emb, "hash", tmp_path, progress=False)
    assert emb.calls == 1  # the second call read the file
    assert list((tmp_path / "films.jsonl.index").glob("hash-*.npy")), "index is stored next to the catalog"
    changed = Catalog(list(small_catalog)[:-1])
    embed_catalog(changed, emb, "hash", tmp_path, progress=False)
    assert emb.calls == 2  # a changed catalog is re-embedded


def test_cold_start_item_is_recommendable_from_content(small_catalog, tmp_path):
    new = Item("new-1", "Glacier Drift", "Two penguins sail an iceberg to find a lost volcano.", {"year": 2025, "genres": ["Animation"]})
    r, _ = make(Catalog(list(small_catalog) + [new]), tmp_path)
    assert r.retrieve(Query("penguins on an iceberg looking for a volcano"), 1)[0].item.id == "new-1"


def test_popularity_is_only_a_mild_prior(tmp_path):
    items = [Item("a", "Quiet Harbour", "fishermen storm lighthouse", {"popularity": 100}),
             Item("b", "Desert Song", "camels caravan sand dunes", {"popularity": 0})]
    r, _ = make(Catalog(items), tmp_path)
    assert r.retrieve(Query("camels and sand dunes"), 2)[0].item.id == "b"
