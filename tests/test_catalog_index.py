"""Catalog vector index: exact vs HNSW agreement, filters, atomic versions under concurrent reads, Qdrant twin."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from sketch2fashion.catalog.index import (
    HnswParams,
    IndexConfig,
    IndexReader,
    IndexWriter,
    ProductTable,
    VectorIndex,
    collect_garbage,
    open_index,
    recall_at_k,
)

CATEGORIES = ("top", "pants", "skirt", "hat")
BRANDS = ("acme", "bolt", "corto", "dune", "ember")


def clustered_catalog(n: int, d: int = 64, clusters: int = 40, seed: int = 0) -> tuple[np.ndarray, ProductTable]:
    """Mixture of Gaussians on the unit sphere, categories/brands/prices at random: like real embeddings, not uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    table = ProductTable.from_columns(
        ids=[f"p{i:06d}" for i in range(n)],
        categories=rng.choice(CATEGORIES, n),
        brands=rng.choice(BRANDS, n),
        prices=np.round(rng.uniform(5, 200, n), 2),
    )
    return x, table


def queries_near(vectors: np.ndarray, m: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = vectors[rng.integers(0, len(vectors), m)] + 0.2 * rng.normal(size=(m, vectors.shape[1])).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def brute_force(vectors: np.ndarray, table: ProductTable, q: np.ndarray, k: int, category=None, brand=None, lo=None, hi=None) -> list[str]:
    """Ground truth written independently of the index code."""
    cats = np.asarray(table.categories)[table.category_codes]
    brands = np.asarray(table.brands)[table.brand_codes]
    ok = np.ones(len(vectors), bool)
    if category is not None:
        ok &= cats == category
    if brand is not None:
        ok &= brands == brand
    if lo is not None:
        ok &= table.prices >= lo
    if hi is not None:
        ok &= table.prices <= hi
    scores = np.where(ok, vectors @ q, -np.inf)
    order = np.argsort(-scores)[: min(k, int(ok.sum()))]
    return [str(table.ids[i]) for i in order]


HNSW_SMALL = IndexConfig(exact_threshold=300, hnsw=HnswParams(M=16, ef_construction=100, ef_search=64), exact_fallback_rows=50)


@pytest.fixture(scope="module")
def catalog() -> tuple[np.ndarray, ProductTable]:
    return clustered_catalog(5000)


@pytest.fixture(scope="module")
def hnsw_index(catalog) -> VectorIndex:
    vectors, table = catalog
    index = VectorIndex.build(vectors, table, HNSW_SMALL)
    assert {p.kind for p in index.partitions.values()} == {"hnsw"}
    return index


def test_hnsw_agrees_with_exact(catalog, hnsw_index):
    vectors, table = catalog
    qs = queries_near(vectors, 100)
    for category in (None, "skirt"):
        found = [[h.id for h in hnsw_index.search(q, 10, category=category)] for q in qs]
        truth = [brute_force(vectors, table, q, 10, category=category) for q in qs]
        exact = [[h.id for h in hnsw_index.search(q, 10, category=category, exact=True)] for q in qs]
        assert exact == truth
        assert recall_at_k(found, truth, 10) >= 0.95


def test_category_filter_never_leaks(catalog, hnsw_index):
    vectors, _ = catalog
    rng = np.random.default_rng(7)
    exact_index = VectorIndex.build(*catalog, IndexConfig(exact_threshold=10**9))
    for q in queries_near(vectors, 300, seed=3):
        category = str(rng.choice(CATEGORIES))
        k = int(rng.integers(1, 60))
        brand = str(rng.choice(BRANDS)) if rng.random() < 0.3 else None
        for index in (hnsw_index, exact_index):
            hits = index.search(q, k, category=category, brand=brand)
            assert len(hits) == k
            assert all(h.category == category for h in hits)
    assert hnsw_index.search(vectors[0], 5, category="socks") == []


@pytest.mark.parametrize("brand,lo,hi", [("acme", None, None), (None, 20.0, 40.0), ("dune", 150.0, None), ("bolt", 10.0, 12.0)])
def test_brand_and_price_filters(catalog, hnsw_index, brand, lo, hi):
    vectors, table = catalog
    found, truth = [], []
    for q in queries_near(vectors, 40, seed=5):
        hits = hnsw_index.search(q, 10, category="top", brand=brand, price_min=lo, price_max=hi)
        want = brute_force(vectors, table, q, 10, category="top", brand=brand, lo=lo, hi=hi)
        assert len(hits) == len(want)  # over-fetch or exact fallback fills k whenever k rows qualify
        assert all(h.category == "top" and (brand is None or h.brand == brand) for h in hits)
        assert all((lo is None or h.price >= lo) and (hi is None or h.price <= hi) for h in hits)
        found.append([h.id for h in hits])
        truth.append(want)
    assert recall_at_k(found, truth, 10) >= 0.95
    assert hnsw_index.search(vectors[0], 5, brand="nobody") == []


@pytest.mark.parametrize("brand,lo,hi", [("acme", None, None), (None, 20.0, 40.0), ("dune", 150.0, None), ("nobody", None, None)])
def test_row_mask_admits_exactly_what_search_admits(catalog, hnsw_index, brand, lo, hi):
    vectors, _ = catalog
    every = hnsw_index.search(vectors[0], len(hnsw_index), category="top", brand=brand, price_min=lo, price_max=hi, exact=True)
    mask = hnsw_index.row_mask(category="top", brand=brand, price_min=lo, price_max=hi)
    assert set(hnsw_index.table.ids[mask]) == {h.id for h in every}
    assert not hnsw_index.row_mask(category="socks").any()


def test_persisted_index_reloads_identically(tmp_path, catalog, hnsw_index):
    IndexWriter().write(hnsw_index, tmp_path)
    reader = IndexReader(tmp_path)
    assert len(reader) == len(hnsw_index) and reader.dimension == hnsw_index.dimension
    manifest = json.loads((tmp_path / "versions" / reader.version / "manifest.json").read_text())
    assert manifest["count"] == 5000 and manifest["dimension"] == 64 and len(manifest["checksum"]) == 64
    for q in queries_near(catalog[0], 30, seed=9):
        for kw in ({}, {"category": "hat", "brand": "ember"}, {"category": "pants", "price_min": 50.0, "price_max": 90.0}):
            assert reader.search(q, 10, **kw) == hnsw_index.search(q, 10, **kw)


def test_half_written_version_is_never_served(tmp_path, catalog):
    vectors, table = catalog
    writer = IndexWriter(IndexConfig(exact_threshold=10**9))
    good = writer.build(vectors[:500], table.take(np.arange(500)), tmp_path)
    reader = IndexReader(tmp_path)
    # A newer-looking folder with data but no manifest, as if a writer died mid-way.
    broken = tmp_path / "versions" / "v99999999999999999999-dead"
    broken.mkdir()
    np.save(broken / "vectors.npy", vectors)
    assert reader.refresh() and reader.version == good
    # Even if the pointer names it (or its manifest is torn), the reader keeps the good version.
    (tmp_path / "CURRENT").write_text(broken.name)
    assert not reader.refresh() and reader.version == good
    (broken / "manifest.json").write_text('{"format": 1, "dimen')
    assert not reader.refresh() and reader.version == good
    assert len(reader.search(vectors[0], 3)) == 3
    # A fresh reader refuses to start on it rather than serving garbage.
    with pytest.raises(FileNotFoundError):
        IndexReader(tmp_path)
    # Abandoned staging folders are never versions; gc removes them but never the published pointer target.
    (tmp_path / "CURRENT").write_text(good)
    (tmp_path / "versions" / ".staging-v1-dead").mkdir()
    removed = collect_garbage(tmp_path, keep=1, stale_staging_s=0)
    assert ".staging-v1-dead" in removed and good not in removed and reader.refresh()


def test_rebuild_during_concurrent_queries_never_fails(tmp_path):
    vectors, table = clustered_catalog(3000, d=32, seed=2)
    writer = IndexWriter(IndexConfig(exact_threshold=400, hnsw=HnswParams(M=8, ef_construction=40, ef_search=32)))
    writer.build(vectors, table, tmp_path)
    reader = IndexReader(tmp_path)
    errors: list[BaseException] = []
    seen_versions: set[str] = set()
    stop = threading.Event()
    qs = queries_near(vectors, 50, seed=4)

    def query_loop(worker: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                hits = reader.search(qs[i % len(qs)], 5, category=CATEGORIES[i % 4], brand="acme" if i % 3 == 0 else None)
                assert len(hits) == 5 and all(h.category == CATEGORIES[i % 4] for h in hits)
                if worker == 0 and i % 5 == 0:
                    reader.refresh()
                    seen_versions.add(reader.version)
            except BaseException as err:  # noqa: BLE001 - any failure is the bug we test for
                errors.append(err)
                return
            i += 1

    threads = [threading.Thread(target=query_loop, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    published = []
    for round_ in range(4):
        perm = np.random.default_rng(round_).permutation(len(vectors))
        published.append(writer.build(vectors[perm], table.take(perm), tmp_path, keep=2))
    reader.refresh()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert reader.version == published[-1]
    assert len(list((tmp_path / "versions").iterdir())) <= 3


def test_qdrant_local_matches_exact_top1(tmp_path):
    pytest.importorskip("qdrant_client")
    from sketch2fashion.catalog.qdrant_index import QdrantIndex

    vectors, table = clustered_catalog(400, d=32, seed=11)
    index = QdrantIndex(":memory:", "products")
    index.build(vectors, table)
    index.build(vectors, table)  # rebuild swaps the alias and drops the old collection
    assert len(index) == 400
    assert len([c for c in index.client.get_collections().collections]) == 1
    for q in queries_near(vectors, 20, seed=12):
        for kw, bf in (({}, {}), ({"category": "pants"}, {"category": "pants"}),
                       ({"category": "top", "brand": "corto", "price_min": 30.0, "price_max": 180.0},
                        {"category": "top", "brand": "corto", "lo": 30.0, "hi": 180.0})):
            hits = index.search(q, 5, **kw)
            assert hits[0].id == brute_force(vectors, table, q, 1, **bf)[0]
            assert all(h.category == kw.get("category", h.category) for h in hits)
    index.close()


def test_open_index_dispatches_on_location(tmp_path):
    from sketch2fashion.catalog.qdrant_index import QdrantIndex

    vectors, table = clustered_catalog(200, d=16, seed=13)
    IndexWriter().build(vectors, table, tmp_path)
    assert isinstance(open_index(tmp_path), IndexReader)
    remote = open_index("http://localhost:6333", collection="shop")  # no request is made until a search
    assert isinstance(remote, QdrantIndex) and remote.alias == "shop"
