"""Selection at scale, tested small: float16 and memory-mapped pools,
chunked loading from the database, and the approximate faiss modes, each
against an exact brute-force answer."""

import numpy as np
import pytest

import fiftyone as fo

from fiftyone_dcd.embeddings import (
    load_embeddings,
    open_embeddings,
    save_embeddings,
)
from fiftyone_dcd.selection import knn


def brute_force(queries, pool, k):
    d = np.linalg.norm(
        queries[:, None, :].astype(np.float64)
        - np.asarray(pool, dtype=np.float64)[None, :, :],
        axis=2,
    )
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]

    return np.take_along_axis(d, idx, axis=1), idx


def clustered(n, dim, clusters, seed, num_queries=40):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    pool = centers[rng.integers(0, clusters, n)]
    pool = pool + 0.6 * rng.normal(size=(n, dim))
    queries = centers[rng.integers(0, clusters, num_queries)]
    queries = queries + 0.6 * rng.normal(size=(num_queries, dim))

    return queries.astype(np.float32), pool.astype(np.float32)


def test_knn_on_float16_pool_matches_brute_force_of_its_values():
    queries, pool = clustered(3000, 24, 20, seed=0)
    pool16 = pool.astype(np.float16)
    d, i = knn(queries, pool16, 15, block_size=500)
    bd, bi = brute_force(queries, pool16.astype(np.float32), 15)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_allclose(d, bd, rtol=1e-6)
    assert pool16.dtype == np.float16  # left as given


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_knn_on_memory_mapped_file_in_shards(tmp_path, dtype):
    queries, pool = clustered(5000, 16, 30, seed=1)
    path = str(tmp_path / "pool.npy")
    np.save(path, pool.astype(dtype))
    mapped = open_embeddings(path)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    # 700-row shards: the last one is partial
    d, i = knn(queries, mapped, 25, block_size=700)
    bd, bi = brute_force(queries, pool.astype(dtype), 25)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_allclose(d, bd, rtol=1e-6)


def test_knn_with_many_queries_searches_them_in_turns(monkeypatch):
    import fiftyone_dcd.selection as sel

    monkeypatch.setattr(sel, "QUERY_CHUNK", 7)
    queries, pool = clustered(800, 8, 10, seed=2, num_queries=30)
    d, i = knn(queries, pool, 5, block_size=100)
    bd, bi = brute_force(queries, pool, 5)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_allclose(d, bd, rtol=1e-6)


@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_approximate_knn_recall_and_exact_distances(method):
    queries, pool = clustered(20000, 32, 50, seed=3, num_queries=50)
    k = 20
    d, i = knn(queries, pool, k, method=method)
    bd, bi = brute_force(queries, pool, k)
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(i, bi))
    assert hits / bi.size >= 0.95
    # what was found carries its exact distance, sorted
    exact = np.linalg.norm(
        pool[i].astype(np.float64) - queries[:, None, :], axis=2
    )
    np.testing.assert_allclose(d, exact, rtol=1e-6)
    assert (np.diff(d, axis=1) >= 0).all()


def test_approximate_knn_with_one_probe_pads_what_it_cannot_find():
    queries, pool = clustered(2000, 8, 40, seed=4, num_queries=5)
    d, i = knn(queries, pool, 1500, method="ivf", nlist=40, nprobe=1)
    # one list of ~50 vectors cannot hold 1500 neighbours
    assert (i == -1).any() and np.isinf(d[i == -1]).all()
    found = i >= 0
    exact = np.linalg.norm(
        pool[i[found]] - np.repeat(queries, 1500, 0)[found.ravel()], axis=1
    )
    np.testing.assert_allclose(d[found], exact, rtol=1e-5)


def test_knn_restores_faiss_settings():
    import faiss

    cv = faiss.cvar

    def settings():
        return (
            cv.distance_compute_blas_threshold,
            cv.distance_compute_blas_database_bs,
        )

    before = settings()
    queries, pool = clustered(500, 8, 5, seed=6)
    knn(queries, pool, 3)
    assert settings() == before


def test_unknown_method_and_stray_options_are_refused():
    q = np.zeros((1, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="method must be one of"):
        knn(q, q, 1, method="lsh")

    with pytest.raises(TypeError, match="approximate methods only"):
        knn(q, q, 1, nprobe=3)


@pytest.fixture
def vector_dataset():
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(53, 6)).astype(np.float32)
    dataset = fo.Dataset()
    dataset.add_samples(
        [
            fo.Sample(filepath="/x/%d.png" % j, vec=v)
            for j, v in enumerate(vectors)
        ]
    )
    yield dataset, vectors
    dataset.delete()


def test_load_embeddings_in_chunks_keeps_order(vector_dataset):
    dataset, vectors = vector_dataset
    view = dataset.skip(3).sort_by("filepath", reverse=True)
    ids, X = load_embeddings(view, "vec", chunk_size=7)
    assert ids == view.values("id")
    want = np.stack(view.values("vec")).astype(np.float32)
    assert X.dtype == np.float32 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, want)

    ids16, X16 = load_embeddings(view, "vec", dtype="float16", chunk_size=7)
    assert ids16 == ids and X16.dtype == np.float16
    np.testing.assert_array_equal(X16, want.astype(np.float16))


def test_save_embeddings_to_file_and_search_it(vector_dataset, tmp_path):
    dataset, vectors = vector_dataset
    path = str(tmp_path / "vec.npy")
    ids = save_embeddings(dataset, "vec", path, chunk_size=10)
    assert ids == dataset.values("id")
    X = open_embeddings(path)
    np.testing.assert_array_equal(X, vectors)
    _, i = knn(vectors[:4], X, 3, block_size=9)
    assert i[:, 0].tolist() == [0, 1, 2, 3]


def test_load_embeddings_reports_bad_vectors_across_chunks(vector_dataset):
    dataset, vectors = vector_dataset
    samples = list(dataset.iter_samples(autosave=True))
    samples[2]["vec"] = np.full(6, np.nan, dtype=np.float32)
    samples[40]["vec"] = np.array([1, np.inf, 0, 0, 0, 0], np.float32)
    samples[45]["vec"] = np.full(6, 1e6, dtype=np.float32)
    for s in (samples[2], samples[40], samples[45]):
        s.save()

    with pytest.raises(ValueError, match="2 vectors in 'vec' hold NaN"):
        load_embeddings(dataset, "vec", chunk_size=8)

    # 1e6 is finite in float32 and overflows float16
    sub = dataset.select([samples[0].id, samples[45].id])
    assert np.isfinite(load_embeddings(sub, "vec")[1]).all()
    with pytest.raises(ValueError, match="1 vectors in 'vec' exceed"):
        load_embeddings(sub, "vec", dtype="float16")

    samples[30]["vec"] = np.zeros(4, dtype=np.float32)
    samples[31]["vec"] = None
    samples[30].save()
    samples[31].save()
    with pytest.raises(ValueError, match="1 of 53 samples have no 'vec'"):
        load_embeddings(dataset, "vec", chunk_size=8)

    samples[31]["vec"] = np.zeros(6, dtype=np.float32)
    samples[31].save()
    with pytest.raises(ValueError, match=r"sizes \[4, 6\]"):
        load_embeddings(dataset, "vec", chunk_size=8)
