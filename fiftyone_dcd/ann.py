"""
Approximate k nearest neighbours with faiss, for pools too large to scan
exactly as often as needed.

:func:`fiftyone_dcd.selection.knn` with ``method="ivf"`` or ``"hnsw"``
calls :func:`approximate_knn`; the candidates an index returns are
re-ranked with exact distances, so what is returned is exact for what was
found, and only the recall is approximate.
"""

import logging
import math

import faiss
import numpy as np

logger = logging.getLogger(__name__)

#: inverted lists probed per query, as a share of all lists. On a CPU an
#: IVF search reads every probed vector once per query, where the exact
#: search reads the pool once per query batch, so it pays only while this
#: share is small; ``bench/selection_bench.py`` reports its recall@k
DEFAULT_NPROBE_SHARE = 1 / 32

#: HNSW graph degree and search breadth
DEFAULT_HNSW_M = 32
DEFAULT_EF_SEARCH = 256

#: pool rows used to train the IVF coarse quantizer per list
_TRAIN_PER_LIST = 64

#: pool rows added to an index at a time, so that a float16 or memory-mapped
#: pool is converted to float32 one piece at a time
_ADD_ROWS = 65536


def default_nlist(n):
    """The number of IVF lists for a pool of ``n`` vectors: about
    ``sqrt(n)``, so that a probed list holds about ``sqrt(n)`` vectors."""
    return max(1, min(n // 39, int(round(math.sqrt(n)))))


def build_index(pool, method="ivf", nlist=None, hnsw_m=DEFAULT_HNSW_M, seed=0):
    """Builds a faiss index of ``pool``.

    Args:
        pool: a float ``(N, D)`` array, possibly float16 or memory-mapped
        method ("ivf"): ``"ivf"`` (``IndexIVFFlat``) or ``"hnsw"``
            (``IndexHNSWFlat``)
        nlist (None): IVF lists; None is :func:`default_nlist`
        hnsw_m (32): HNSW graph degree
        seed (0): seed of the training sample

    Returns:
        a faiss index; it holds a float32 copy of the pool
    """
    n, dim = pool.shape
    if method == "ivf":
        nlist = default_nlist(n) if nlist is None else int(nlist)
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist)
        rng = np.random.default_rng(seed)
        size = min(n, nlist * _TRAIN_PER_LIST)
        sample = np.sort(rng.choice(n, size=size, replace=False))
        index.cp.seed = seed
        index.train(np.ascontiguousarray(pool[sample], dtype=np.float32))
    elif method == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(hnsw_m))
    else:
        raise ValueError("method must be 'ivf' or 'hnsw', got %r" % (method,))

    for start in range(0, n, _ADD_ROWS):
        index.add(
            np.ascontiguousarray(
                pool[start : start + _ADD_ROWS], dtype=np.float32
            )
        )

    logger.debug("Built a %s index of %d vectors", method, n)

    return index


def search_index(index, queries, m, nprobe=None, ef_search=None):
    """Returns ``(D, I)`` of ``index.search``, with the search breadth set:
    ``nprobe`` lists of an IVF index (None: :data:`DEFAULT_NPROBE_SHARE`
    of them), ``ef_search`` of an HNSW index (None:
    :data:`DEFAULT_EF_SEARCH`, at least ``m``)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if isinstance(index, faiss.IndexIVF):
        if nprobe is None:
            nprobe = math.ceil(index.nlist * DEFAULT_NPROBE_SHARE)

        index.nprobe = max(1, min(int(nprobe), index.nlist))
    elif isinstance(index, faiss.IndexHNSW):
        ef = DEFAULT_EF_SEARCH if ef_search is None else int(ef_search)
        index.hnsw.efSearch = max(ef, m)

    return index.search(queries, m)


def approximate_knn(
    queries,
    pool,
    k,
    method="ivf",
    index=None,
    nlist=None,
    nprobe=None,
    hnsw_m=DEFAULT_HNSW_M,
    ef_search=None,
    seed=0,
):
    """Approximate k nearest neighbours by l2 distance through a faiss
    index, re-ranked with exact distances.

    Args:
        queries: a float ``(Q, D)`` array
        pool: a float ``(N, D)`` array, possibly float16 or memory-mapped
        k: neighbours per query (>= 1)
        method ("ivf"): ``"ivf"`` or ``"hnsw"``
        index (None): an index of ``pool`` from :func:`build_index`, to
            reuse; built when None
        nlist, hnsw_m, seed: see :func:`build_index`
        nprobe, ef_search: see :func:`search_index`

    Returns:
        ``(distances, indices)`` as :func:`fiftyone_dcd.selection.knn`
        returns them; a row holds fewer than ``k`` valid entries only if the
        index found fewer (then padded with ``inf`` and ``-1``)
    """
    # the exact re-ranking is shared with the exact search
    from fiftyone_dcd.selection import _RERANK_MARGIN, _rerank

    if int(k) < 1:
        raise ValueError("k must be at least 1, got %r" % (k,))

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n = len(pool)
    k = min(int(k), n)
    m = min(k + _RERANK_MARGIN, n)
    if index is None:
        index = build_index(
            pool, method=method, nlist=nlist, hnsw_m=hnsw_m, seed=seed
        )

    _, cand = search_index(
        index, queries, m, nprobe=nprobe, ef_search=ef_search
    )
    missing = (cand < 0).any(axis=1)
    if missing.any():
        # too few vectors in the probed lists; the rows are padded
        logger.warning(
            "%d of %d queries found fewer than %d candidates; raise nprobe "
            "or ef_search",
            int(missing.sum()),
            len(queries),
            m,
        )

    return _rerank(queries, pool, cand, k)
