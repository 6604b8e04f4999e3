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


def synthetic(n: int) -> Catalog:
    genres = ["Drama", "Comedy", "Horror", "Action", "Romance"]
    return Catalog([Item(f"i{i}", f"Title {i} {genres[i % 5]} tale", f"A story about thing {i % 37} and place {i % 11}, part {i % 101} of {i % 7}.",
                         {"year": 1950 + i % 70, "genres": [genres[i % 5], genres[(i * 7) % 5]], "director": [f"Person {i % 13}"]})
                    for i in range(n)], source="<memory>")


def test_a_large_catalog_is_embedded_in_chunks_and_resumes_after_a_crash(tmp_path, monkeypatch):
    import chatrec.retrieval as retrieval

    monkeypatch.setattr(retrieval, "_EMBED_CHUNK", 40)
    catalog = synthetic(130)
    expected = HashEmbedder().encode([it.text() for it in catalog])

    class Crashing(HashEmbedder):
        def encode(self, texts, **kw):
            if self.calls == 3:  # a probe, then two chunks of 40, then the process dies
                raise KeyboardInterrupt
            return super().encode(texts, **kw)

    with __import__("pytest").raises(KeyboardInterrupt):
        embed_catalog(catalog, Crashing(), "hash", tmp_path, progress=False)
    assert list((tmp_path / "index").glob("*.partial.npy")), "the finished chunks are on disk"
    resumed = HashEmbedder()
    vecs = embed_catalog(catalog, resumed, "hash", tmp_path, progress=False)
    np.testing.assert_allclose(vecs, expected, atol=1e-6)
    assert resumed.calls == 1 + 2  # the probe, then only the two chunks that were missing (80..119, 120..129)
    assert not list((tmp_path / "index").glob("*.partial.*"))


def test_retrieval_over_an_approximate_index_matches_exact_retrieval(tmp_path):
    catalog = synthetic(1500)
    emb = HashEmbedder()
    vecs = embed_catalog(catalog, emb, "hash", tmp_path, progress=False)
    exact = Retriever(catalog, emb, vecs, RetrievalConfig())
    ann = Retriever(catalog, emb, vecs, RetrievalConfig(index="hnsw"))
    assert (exact.dense.kind, ann.dense.kind) == ("exact", "hnsw")
    c = Constraints(exclude_genres=frozenset({"Horror"}), year_min=1990, include_genres=frozenset({"Comedy"}))
    for q in (Query("thing 5 and place 3"), Query("Drama tale", liked=("i7",), exclude=frozenset({"i9"}), constraints=c)):
        a, b = ([x.item.id for x in r.retrieve(q, 20)] for r in (exact, ann))
        # Hashed bags of words tie often, and the two indexes break ties differently: most, not all, agree.
        assert len(set(a) & set(b)) >= 15
        assert all(q.constraints.allows(catalog.get(i)) and i not in q.exclude for i in b)


def test_a_large_catalogs_bm25_index_is_saved_and_read_back(tmp_path, monkeypatch):
    import chatrec.retrieval as retrieval

    monkeypatch.setattr(retrieval, "_SAVE_BM25_FROM", 100)
    catalog = synthetic(300)
    emb = HashEmbedder()
    vecs = embed_catalog(catalog, emb, "hash", tmp_path, progress=False)
    path = tmp_path / "emb.npy"
    np.save(path, vecs)
    first = Retriever(catalog, emb, vecs, RetrievalConfig(), vectors_path=path)
    assert (path.with_suffix(".bm25") / "params.index.json").is_file()
    again = Retriever(catalog, emb, vecs, RetrievalConfig(), vectors_path=path)
    q = Query("thing 12 place 4 Comedy")
    assert first.bm25_ranking(q) == again.bm25_ranking(q) and first.bm25_ranking(q)
