"""
Nearest-neighbour selection of pool images for a set of query images, and
the labelling strategies for what is selected.

Everything here works on arrays; :mod:`fiftyone_dcd.api` connects it to
datasets.
"""

import contextlib
from dataclasses import dataclass
from typing import Optional, Tuple

import faiss
import numpy as np

from fiftyone_dcd import label_noise

LABEL_STRATEGIES = ("weak", "query", "agree", "vote", "auto")

#: the strategies ``"auto"`` resolves to, or a user names
RESOLVED_STRATEGIES = LABEL_STRATEGIES[:-1]

#: the strategy used when none is given: ``"vote"``, or ``"agree"`` where
#: its signal predicts E_sample's own labels clearly better (see
#: :func:`choose_label_strategy`)
DEFAULT_LABEL_STRATEGY = "auto"

#: pool neighbours whose weak labels vote under the ``"vote"`` strategy
DEFAULT_NUM_NEIGHBORS = 20

#: how the ``"vote"`` strategy's neighbours vote: ``"majority"`` (the most
#: frequent weak label), ``"noise"`` (the class whose weak-label pattern,
#: estimated on E_sample, best explains them, see
#: :mod:`fiftyone_dcd.label_noise`) or ``"auto"`` (the noise vote where it
#: predicts E_sample's labels clearly better, see :func:`choose_vote_rule`)
VOTE_RULES = ("majority", "noise", "auto")
DEFAULT_VOTE_RULE = "auto"

#: under ``"vote"`` labels of the majority vote, the weight of each label
#: of an image the vote doubts (see :func:`soft_targets` and
#: :func:`resolve_dropped_weight`); measured best of the weights tried in
#: the benchmark suite (``bench/dcd_suite.py``)
DEFAULT_DROPPED_WEIGHT = 0.3

#: pool rows searched at a time: converted to float32 one block at a
#: time, so a float16 or memory-mapped pool is never copied whole
DEFAULT_BLOCK_SIZE = 65536

#: bytes of faiss's temporary (queries x pool rows) distance matrix, which
#: with one converted block is the memory the exact search needs beyond
#: the pool, whatever the pool's size
BLOCK_BYTES = 64 * 2**20

#: queries searched together; more are searched in turns
QUERY_CHUNK = 4096

#: bytes of the float64 candidate vectors re-ranked at a time
_RERANK_BYTES = 32 * 2**20

#: candidates beyond k that are re-ranked with exact distances, so that
#: float32 rounding in the fast pass cannot change the answer
_RERANK_MARGIN = 8

#: ``method`` values of :func:`knn`
KNN_METHODS = ("exact", "ivf", "hnsw")


def knn(
    queries: np.ndarray,
    pool: np.ndarray,
    k: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    method: str = "exact",
    **options,
) -> Tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by l2 distance, exact by default.

    The exact search finds float32 distances block by block from
    ``|q|^2 + |p|^2 - 2 q.p`` with faiss's matrix-product search, keeps
    each query's best candidates, then re-ranks them with distances
    computed exactly in float64. Only one block of the pool is converted
    to float32 at a time, so ``pool`` may be float16 or a memory-mapped
    array larger than memory (see
    :func:`fiftyone_dcd.embeddings.open_embeddings`); the memory used beyond
    the pool is about :data:`BLOCK_BYTES` plus that block.

    Args:
        queries: a float ``(Q, D)`` array
        pool: a float ``(N, D)`` array, possibly memory-mapped
        k: neighbours per query, ``1 <= k``; more than ``N`` gives ``N``
        block_size (65536): pool rows per block
        method ("exact"): ``"exact"``, or ``"ivf"`` / ``"hnsw"`` for an
            approximate faiss index (see
            :func:`fiftyone_dcd.ann.approximate_knn`)
        **options: options of the approximate index (``nlist``,
            ``nprobe``, ``ef_search``, ...)

    Returns:
        ``(distances, indices)``: ``(Q, min(k, N))`` arrays, each row sorted
        by increasing l2 distance, ties by index
    """
    if method != "exact":
        if method not in KNN_METHODS:
            raise ValueError(
                "method must be one of %s, got %r" % (KNN_METHODS, method)
            )

        # imported here: ann imports this module
        from fiftyone_dcd.ann import approximate_knn

        return approximate_knn(queries, pool, k, method=method, **options)

    if options:
        raise TypeError(
            "Options %s apply to approximate methods only; pass "
            "method='ivf' or 'hnsw'" % sorted(options)
        )

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    _check_vectors(queries, pool)
    n = len(pool)
    k = min(int(k), n)
    m = min(k + _RERANK_MARGIN, n)
    cand = np.zeros((len(queries), m), dtype=np.int64)
    for q0 in range(0, len(queries) if m else 0, QUERY_CHUNK):
        chunk = queries[q0 : q0 + QUERY_CHUNK]
        cand[q0 : q0 + len(chunk)] = _candidates(chunk, pool, m, block_size)

    return _rerank(queries, pool, cand, k)


def _check_vectors(queries, pool):
    # faiss fails on a size mismatch with a bare assertion, and a NaN
    # vector is nobody's neighbour: it comes back as index -1, which numpy
    # reads as the last pool row
    if queries.ndim != 2 or np.ndim(pool) != 2:
        raise ValueError(
            "Vectors must be 2-D arrays (images x dimensions), got queries "
            "of shape %s and pool of shape %s"
            % (queries.shape, np.shape(pool))
        )
    if queries.shape[1] != np.shape(pool)[1]:
        raise ValueError(
            "Query vectors have %d dimensions and pool vectors %d; compute "
            "both with the same model" % (queries.shape[1], np.shape(pool)[1])
        )
    if not np.isfinite(queries).all():
        raise ValueError(
            "Query vectors contain NaN or infinite values; recompute the "
            "embeddings of those images"
        )


def _check_block(block, start):
    if not np.isfinite(block).all():
        row = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
        raise ValueError(
            "Pool vector %d contains NaN or infinite values; recompute the "
            "embeddings of those images" % row
        )


def _candidates(queries, pool, m, block_size):
    # the m best pool rows of each query by float32 distance: faiss's
    # exhaustive search (one matrix product and a heap per query) on one
    # block of the pool at a time, only that block converted to float32,
    # merged with the best so far
    best_d = best_i = None
    with _faiss_blas(len(queries)):
        for start in range(0, len(pool), block_size):
            block = np.ascontiguousarray(
                pool[start : start + block_size], dtype=np.float32
            )
            _check_block(block, start)
            d, i = faiss.knn(queries, block, min(m, len(block)))
            i += start
            if best_d is not None:
                d = np.concatenate([best_d, d], axis=1)
                i = np.concatenate([best_i, i], axis=1)
                if d.shape[1] > m:
                    part = np.argpartition(d, m - 1, axis=1)[:, :m]
                    d = np.take_along_axis(d, part, axis=1)
                    i = np.take_along_axis(i, part, axis=1)

            best_d, best_i = d, i

    return best_i


@contextlib.contextmanager
def _faiss_blas(num_queries):
    # faiss 1.15 uses a matrix product only when queries x dim >= 128000,
    # else it computes one distance at a time, and its products cover 1024
    # pool rows each: either makes it several times slower than a plain
    # matrix product (docs/scale.md). Always a matrix product, on blocks
    # whose distance matrix is about BLOCK_BYTES. These settings are
    # process-wide; they are restored after the search
    cv = faiss.cvar
    saved = (
        cv.distance_compute_blas_threshold,
        cv.distance_compute_blas_database_bs,
    )
    rows = min(num_queries, cv.distance_compute_blas_query_bs)
    cv.distance_compute_blas_threshold = 0
    cv.distance_compute_blas_database_bs = int(
        min(65536, max(1024, BLOCK_BYTES // (4 * max(1, rows))))
    )
    try:
        yield
    finally:
        (
            cv.distance_compute_blas_threshold,
            cv.distance_compute_blas_database_bs,
        ) = saved


def _rerank(queries, pool, cand, k):
    # exact float64 distances of the candidates, in query chunks that bound
    # the gathered vectors, then the k best, ties by index
    nq, m = cand.shape
    dim = queries.shape[1] if queries.ndim == 2 else 0
    step = max(1, _RERANK_BYTES // max(1, 8 * m * dim))
    dist = np.zeros((nq, k), dtype=np.float64)
    idx = np.zeros((nq, k), dtype=np.int64)
    for q0 in range(0, nq, step):
        c = cand[q0 : q0 + step]
        diff = np.asarray(pool[c.ravel()], dtype=np.float64).reshape(
            c.shape + (dim,)
        )
        diff -= queries[q0 : q0 + step, None, :]
        exact = np.sqrt(np.einsum("qmd,qmd->qm", diff, diff))
        # -1: no candidate (an approximate index found too few)
        exact[c < 0] = np.inf
        order = np.lexsort((c, exact), axis=1)[:, :k]
        dist[q0 : q0 + step] = np.take_along_axis(exact, order, axis=1)
        idx[q0 : q0 + step] = np.take_along_axis(c, order, axis=1)

    return dist, idx


#: neighbours per query when no k is given: the cap under an automatic
#: threshold, which does the real choosing
AUTO_MAX_K = 500

#: the share of E's own images an automatic threshold is meant to reach
DEFAULT_QUANTILE = 0.95

#: the quantile of a first round's selection (see ``rounds`` in
#: :func:`fiftyone_dcd.api.apply_dcd`): narrower, since its labels are
#: filtered in features that separate E's classes less well
FIRST_ROUND_QUANTILE = 0.8


def leave_one_out_distances(queries: np.ndarray) -> np.ndarray:
    """Distance from each query to its nearest other query.

    These are distances from a draw of the error distribution to the
    nearest of the other draws, so a pool image of that distribution lies
    within their ``q``-quantile of its nearest query with probability about
    ``q``.

    Args:
        queries: a float ``(Q, D)`` array, ``Q >= 2``

    Returns:
        a float64 ``(Q,)`` array
    """
    queries = np.asarray(queries, dtype=np.float64)
    if len(queries) < 2:
        raise ValueError(
            "An automatic threshold needs at least 2 E_sample images; give "
            "k or threshold yourself"
        )

    sq = np.einsum("ij,ij->i", queries, queries)
    d2 = sq[:, None] - 2.0 * queries @ queries.T + sq[None, :]
    np.fill_diagonal(d2, np.inf)

    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def auto_threshold(queries: np.ndarray, quantile=DEFAULT_QUANTILE) -> float:
    """The ``quantile`` of the queries' leave-one-out nearest-neighbour
    distances (see :func:`leave_one_out_distances`): a distance threshold
    chosen from the queries alone, expected to keep about that share of
    the pool's images from the queries' distribution.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError("quantile must be in (0, 1], got %r" % (quantile,))

    return float(np.quantile(leave_one_out_distances(queries), quantile))


#: k when the user gives none and E_sample is too small for a threshold
DEFAULT_K = 20


def resolve_k_threshold(queries, k=None, threshold=None, quantile=None):
    """Fills in what the user left out of ``k`` and ``threshold``.

    -   neither: the threshold is :func:`auto_threshold` of the queries and
        ``k`` is capped at :data:`AUTO_MAX_K` (with a single query, which
        has no leave-one-out distance, ``k`` is :data:`DEFAULT_K`);
    -   a threshold only: ``k`` is capped at :data:`AUTO_MAX_K`;
    -   ``k`` (with or without a threshold): as given.

    Args:
        queries: the ``(Q, D)`` query vectors
        k (None): neighbours per query, or None
        threshold (None): the largest distance kept, or None
        quantile (None): the quantile of an automatic threshold; None is
            :data:`DEFAULT_QUANTILE`

    Returns:
        a dict with ``k``, ``threshold``, and ``auto``: a sentence saying
        what was chosen and how, or None when nothing was
    """
    quantile = DEFAULT_QUANTILE if quantile is None else quantile
    if k is not None:
        return {"k": int(k), "threshold": threshold, "auto": None}

    if threshold is not None:
        return {
            "k": AUTO_MAX_K,
            "threshold": float(threshold),
            "auto": "k capped at %d under the given threshold" % AUTO_MAX_K,
        }

    if len(queries) < 2:
        return {
            "k": DEFAULT_K,
            "threshold": None,
            "auto": "k=%d: one E_sample image gives no distance scale for "
            "a threshold" % DEFAULT_K,
        }

    t = auto_threshold(queries, quantile)

    return {
        "k": AUTO_MAX_K,
        "threshold": t,
        "auto": "threshold %.4g: the %g-quantile of E_sample's "
        "leave-one-out nearest-neighbour distances; k capped at %d"
        % (t, quantile, AUTO_MAX_K),
    }


@dataclass
class Selection:
    """The pool images chosen for a set of queries.

    Attributes:
        pool_index: ``(S,)`` pool row of each selected image
        query_index: ``(S,)`` the query row that selected it (its nearest
            query among those that found it)
        distance: ``(S,)`` l2 distance to that query
        rank: ``(S,)`` its rank among that query's neighbours, from 0
    """

    pool_index: np.ndarray
    query_index: np.ndarray
    distance: np.ndarray
    rank: np.ndarray

    def __len__(self):
        return len(self.pool_index)


def select_nearest(
    queries: np.ndarray,
    pool: np.ndarray,
    k: int,
    threshold: Optional[float] = None,
    budget: Optional[int] = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Selection:
    """Selects, for each query, its ``k`` nearest pool images, without
    repeats.

    A pool image found by several queries is kept once, attributed to the
    query nearest to it. With a ``threshold``, neighbours farther than it
    are dropped. With a ``budget``, images are kept in order of rank (every
    query's nearest first, then every query's second, ...), ties broken by
    distance, so that no query is starved.

    Args:
        queries: a float ``(Q, D)`` array
        pool: a float ``(N, D)`` array
        k: neighbours per query (>= 1)
        threshold (None): the largest l2 distance kept
        budget (None): the most images kept in total (>= 1)
        block_size (65536): pool rows per block of the distance computation

    Returns:
        a :class:`Selection`, in selection order
    """
    if int(k) < 1:
        raise ValueError("k must be at least 1, got %r" % (k,))

    if budget is not None and int(budget) < 1:
        raise ValueError(
            "budget must be at least 1 or None (no budget), got %r" % (budget,)
        )

    dist, idx = knn(queries, pool, k, block_size=block_size)
    q, kk = dist.shape
    rank = np.broadcast_to(np.arange(kk), (q, kk)).ravel()
    query = np.repeat(np.arange(q), kk)
    dist, idx = dist.ravel(), idx.ravel()
    if threshold is not None:
        keep = dist <= threshold
        rank, query, dist, idx = rank[keep], query[keep], dist[keep], idx[keep]

    # the nearest query wins a pool image found by several
    order = np.lexsort((query, dist, idx))
    first = np.ones(len(order), dtype=bool)
    first[1:] = idx[order][1:] != idx[order][:-1]
    uniq = order[first]

    # selection order: by rank, then distance
    uniq = uniq[np.lexsort((idx[uniq], dist[uniq], rank[uniq]))]
    if budget is not None:
        uniq = uniq[: int(budget)]

    return Selection(
        pool_index=idx[uniq],
        query_index=query[uniq],
        distance=dist[uniq],
        rank=rank[uniq],
    )


def majority_labels(neighbor_labels: np.ndarray) -> np.ndarray:
    """The most frequent label of each row of ``neighbor_labels``.

    Columns are taken to be in order of increasing distance; a tie goes to
    the tied label whose nearest vote is nearest.

    Args:
        neighbor_labels: an ``(S, K)`` array of labels, ``K >= 1``

    Returns:
        an ``(S,)`` array of labels
    """
    neighbor_labels = np.asarray(neighbor_labels)
    values, codes = _encode(neighbor_labels)
    codes = codes.reshape(neighbor_labels.shape)
    s, kk = codes.shape
    rows = np.repeat(np.arange(s), kk)
    counts = np.zeros((s, len(values)))
    np.add.at(counts, (rows, codes.ravel()), 1.0)
    first = np.full((s, len(values)), kk, dtype=np.float64)
    np.minimum.at(first, (rows, codes.ravel()), np.tile(np.arange(kk), s))
    # the rank term is below one vote, so it only breaks ties
    score = counts - first / (kk + 1.0)

    return values[score.argmax(axis=1)]


def _encode(labels):
    # labels as codes into their distinct values; labels of mixed types
    # (ints and strings) cannot be sorted, so they keep first-seen order
    try:
        return np.unique(labels, return_inverse=True)
    except TypeError:
        index = {}
        codes = np.array(
            [index.setdefault(v, len(index)) for v in labels.ravel()],
            dtype=np.int64,
        )
        values = np.empty(len(index), dtype=object)
        values[:] = list(index)

        return values, codes


def labels_name(strategy, vote_rule=DEFAULT_VOTE_RULE):
    """How a run names the labels it used: the strategy, or ``"noise
    vote"`` for the vote under the ``"noise"`` rule."""
    if strategy == "vote" and vote_rule == "noise":
        return "noise vote"

    return strategy


def check_vote_rule(vote_rule):
    """Raises ``ValueError`` unless ``vote_rule`` is one of
    :data:`VOTE_RULES`."""
    if vote_rule not in VOTE_RULES:
        raise ValueError(
            "Unknown vote rule %r; use one of %s" % (vote_rule, VOTE_RULES)
        )


def neighbor_vote(
    vectors: np.ndarray,
    pool: np.ndarray,
    pool_labels,
    num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
    exclude: Optional[np.ndarray] = None,
    noise_model=None,
) -> np.ndarray:
    """The vote of each vector's nearest pool vectors: their majority
    label, or with ``noise_model`` the class that best explains their
    labels.

    Args:
        vectors: a float ``(S, D)`` array
        pool: a float ``(N, D)`` array
        pool_labels: ``(N,)`` labels of the pool rows
        num_neighbors (20): the voting neighbours of each vector
        exclude (None): an ``(S,)`` array of the pool row of each vector,
            which does not vote for itself
        noise_model (None): a :class:`fiftyone_dcd.label_noise.NoiseModel`
            (see :func:`fit_noise_model`): the vote is then the class that
            best explains the neighbours' labels, not their majority

    Returns:
        an ``(S,)`` array of labels
    """
    idx = _vote_neighbors(vectors, pool, num_neighbors, exclude)
    labels = np.asarray(pool_labels, dtype=object)[idx]
    if noise_model is not None:
        return label_noise.vote(noise_model, labels)

    return majority_labels(labels)


def fit_noise_model(
    queries,
    query_labels,
    pool,
    pool_labels,
    num_neighbors=DEFAULT_NUM_NEIGHBORS,
):
    """The :class:`fiftyone_dcd.label_noise.NoiseModel` of the weak labels
    of the pool images nearest to E_sample (``queries``, labelled
    ``query_labels``); returns ``(model, neighbour labels of each query)``.
    """
    query_labels = np.asarray(query_labels, dtype=object)
    pool_labels = np.asarray(pool_labels, dtype=object)
    idx = _vote_neighbors(queries, pool, num_neighbors)
    try:
        classes = np.unique(np.concatenate([pool_labels, query_labels]))
    except TypeError:
        # labels of mixed types do not sort among themselves
        classes = np.array(
            sorted(set(pool_labels) | set(query_labels), key=repr),
            dtype=object,
        )
    neighbors = pool_labels[idx]

    return label_noise.fit(query_labels, neighbors, classes), neighbors


def _vote_neighbors(vectors, pool, num_neighbors, exclude=None):
    if int(num_neighbors) < 1:
        raise ValueError(
            "A neighbour vote needs at least 1 neighbour, got "
            "num_neighbors=%r" % (num_neighbors,)
        )
    kk = min(int(num_neighbors), len(pool) - (exclude is not None))
    if kk < 1:
        raise ValueError(
            "A neighbour vote needs at least 2 pool images, got %d; pass "
            "label_strategy='agree' or 'weak' (the 'vote' and 'auto' "
            "strategies vote)" % len(pool)
        )

    extra = 1 if exclude is not None else 0
    _, idx = knn(vectors, pool, kk + extra)
    if exclude is not None:
        # drop each row's own index (or, if ties hid it, its farthest)
        own = idx == np.asarray(exclude)[:, None]
        own[~own.any(axis=1), -1] = True
        idx = idx[~own].reshape(len(idx), kk)

    return idx


def vote_checks(
    queries: np.ndarray,
    query_labels,
    pool: np.ndarray,
    pool_labels,
    num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
    vote_rule: str = DEFAULT_VOTE_RULE,
) -> np.ndarray:
    """Whether the vote of each E_sample image's nearest pool images is its
    own label: a ``(Q,)`` boolean array. Under ``"noise"`` each image is
    voted on by the noise model fitted without its own neighbours
    (:func:`fiftyone_dcd.label_noise.leave_one_out_vote`), so that no
    image checks a model that has seen its answer."""
    if vote_rule not in ("majority", "noise"):
        raise ValueError(
            "vote_checks takes the 'majority' or 'noise' rule, got %r"
            % (vote_rule,)
        )

    query_labels = np.asarray(query_labels, dtype=object)
    if vote_rule == "noise":
        model, neighbors = fit_noise_model(
            queries, query_labels, pool, pool_labels, num_neighbors
        )
        votes = label_noise.leave_one_out_vote(model, query_labels, neighbors)
    else:
        votes = neighbor_vote(queries, pool, pool_labels, num_neighbors)

    return votes == query_labels


def clearly_better(challenger_checks, default_checks):
    """Whether a challenger's leave-one-out checks on E_sample beat a
    default's by more than one standard error of their paired difference;
    returns ``(bool, the standard error)``.

    Each check is whether a label signal got an E_sample image right; with
    a few dozen images a difference within the check's own noise is as
    likely luck, so the default keeps it.
    """
    c = np.asarray(challenger_checks, dtype=np.float64)
    base = np.asarray(default_checks, dtype=np.float64)
    if c.shape != base.shape:
        raise ValueError(
            "The two signals were checked on different E_sample images "
            "(%d and %d checks)" % (c.size, base.size)
        )
    d = c - base
    if len(d) < 2:
        return False, float("inf")

    se = float(d.std(ddof=1) / np.sqrt(len(d)))

    return bool(d.mean() > se), se


def choose_vote_rule(majority_checks, noise_checks):
    """``"noise"`` where the noise vote predicts E_sample's labels better
    than the majority vote by more than one standard error of the
    difference (see :func:`clearly_better`), else ``"majority"``; returns
    the rule and a sentence saying why.

    The noise model is fitted on the same few E_sample images it is
    checked on (leave-one-out), and an unneeded one costs accuracy where
    the noise is symmetric, so the simpler vote wins whatever is within
    the check's own noise.

    Args:
        majority_checks, noise_checks: ``(Q,)`` booleans of
            :func:`vote_checks` under each rule
    """
    return _choose(
        "vote rule",
        ("majority", "the majority vote", majority_checks),
        ("noise", "the noise vote", noise_checks),
    )


def _choose(kind, default, challenger):
    """The challenger where :func:`clearly_better` says so, else the
    default, and a sentence saying why; each is ``(name, what its signal
    is called, its checks)``."""
    better, se = clearly_better(challenger[2], default[2])
    choice = (challenger if better else default)[0]
    noise = (
        "one standard error of the difference: %.1f points" % (100 * se)
        if np.isfinite(se)
        else "one E_sample image: no standard error, so the default"
    )

    return choice, (
        "%s %s: on E_sample, %s is right %.0f%% of the time and %s %.0f%% "
        "(%s)"
        % (
            kind,
            choice,
            challenger[1],
            100 * np.mean(challenger[2]),
            default[1],
            100 * np.mean(default[2]),
            noise,
        )
    )


def resolve_vote_rule(
    strategy,
    vote_rule,
    queries,
    query_labels,
    pool,
    pool_labels,
    num_neighbors=DEFAULT_NUM_NEIGHBORS,
):
    """Resolves the ``"auto"`` vote rule with :func:`choose_vote_rule`
    where the strategy may vote (``"vote"``, ``"auto"``); other rules are
    returned as they are.

    Returns:
        ``(vote_rule, info)``: info has ``vote_rule``, ``vote_rule_auto``
        (a sentence, or None when nothing was chosen) and
        ``vote_rule_accuracies`` (each rule's share of E_sample it gets
        right, or None)
    """
    check_vote_rule(vote_rule)
    info = {
        "vote_rule": vote_rule,
        "vote_rule_auto": None,
        "vote_rule_accuracies": None,
    }
    if vote_rule != "auto" or strategy not in ("vote", "auto"):
        return vote_rule, info

    _check_labels(queries, query_labels, pool, pool_labels)

    checks = {
        rule: vote_checks(
            queries, query_labels, pool, pool_labels, num_neighbors, rule
        )
        for rule in ("majority", "noise")
    }
    vote_rule, why = choose_vote_rule(checks["majority"], checks["noise"])
    info.update(
        vote_rule=vote_rule,
        vote_rule_auto=why,
        vote_rule_accuracies={r: float(c.mean()) for r, c in checks.items()},
    )

    return vote_rule, info


def _resolved_rule(
    vote_rule, queries, query_labels, pool, pool_labels, num_neighbors
):
    """``vote_rule`` with ``"auto"`` resolved on E_sample (``queries``)."""
    check_vote_rule(vote_rule)
    if vote_rule == "auto" and queries is None:
        raise ValueError(
            "The %r vote rule needs the E_sample vectors" % (vote_rule,)
        )

    rule, _ = resolve_vote_rule(
        "vote",
        vote_rule,
        queries,
        query_labels,
        pool,
        pool_labels,
        num_neighbors,
    )

    return rule


def label_signal_checks(
    queries: np.ndarray,
    query_labels,
    pool: np.ndarray,
    pool_labels,
    num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
    vote_rule: str = DEFAULT_VOTE_RULE,
) -> dict:
    """Whether each of the two label signals gets each E_sample image's
    own label right.

    -   ``query``: the label of each query's nearest other query, the
        signal the ``"agree"`` strategy checks a weak label against;
    -   ``vote``: the vote of each query's nearest pool images under
        ``vote_rule`` (see :func:`vote_checks`; ``"auto"`` is resolved
        first), the signal of the ``"vote"`` strategy.

    E_sample is drawn from the distribution the selection comes from, so
    these leave-one-out checks estimate how often each signal is right
    about a selected image.

    Returns:
        a dict of ``(Q,)`` boolean arrays, ``query`` (None with a single
        query) and ``vote``
    """
    _check_labels(queries, query_labels, pool, pool_labels)
    vote_rule = _resolved_rule(
        vote_rule, queries, query_labels, pool, pool_labels, num_neighbors
    )
    query_labels = np.asarray(query_labels, dtype=object)
    out = {"query": None}
    if len(queries) >= 2:
        _, idx = knn(queries, queries, 2)
        # the nearest other query: column 0 unless a duplicate came first
        other = np.where(
            idx[:, 0] == np.arange(len(queries)), idx[:, 1], idx[:, 0]
        )
        out["query"] = query_labels[other] == query_labels

    out["vote"] = vote_checks(
        queries, query_labels, pool, pool_labels, num_neighbors, vote_rule
    )

    return out


def label_signal_accuracies(
    queries: np.ndarray,
    query_labels,
    pool: np.ndarray,
    pool_labels,
    num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
    vote_rule: str = DEFAULT_VOTE_RULE,
) -> dict:
    """The share of E_sample each label signal gets right (see
    :func:`label_signal_checks`): a dict with ``query`` (None with a
    single query) and ``vote``."""
    checks = label_signal_checks(
        queries, query_labels, pool, pool_labels, num_neighbors, vote_rule
    )

    return _accuracies(checks)


def _accuracies(checks):
    return {
        name: None if c is None else float(np.mean(c))
        for name, c in checks.items()
    }


def choose_label_strategy(checks: dict):
    """``"agree"`` where the nearest other E_sample image's label predicts
    E_sample's labels better than the pool neighbours' vote by more than
    one standard error of the difference (see :func:`clearly_better`),
    else ``"vote"``; returns the strategy and a sentence saying why.

    The vote wins what is within the check's noise: besides the images it
    keeps, it keeps those it doubts at a lower weight (see
    :func:`training_targets`), and it was the better filter in every
    synthetic shift of the benchmark suite; the query label wins where
    the pool's neighbourhoods mix classes that E tells apart.

    Args:
        checks: the ``query`` and ``vote`` checks of
            :func:`label_signal_checks`
    """
    q, v = checks["query"], checks["vote"]
    if q is None:
        return "vote", (
            "label strategy vote: one E_sample image gives no leave-one-out "
            "check of its own label"
        )

    return _choose(
        "label strategy",
        ("vote", "the pool neighbours' vote", v),
        ("agree", "the nearest other E_sample image's label", q),
    )


def resolve_label_strategy(
    strategy,
    queries,
    query_labels,
    pool,
    pool_labels,
    num_neighbors=DEFAULT_NUM_NEIGHBORS,
    vote_rule=DEFAULT_VOTE_RULE,
):
    """Resolves ``"auto"`` with :func:`choose_label_strategy`; other
    strategies are returned as they are.

    Returns:
        ``(strategy, info)``: info has ``label_strategy``,
        ``label_signal_accuracies`` and ``label_strategy_auto`` (a sentence,
        or None when nothing was chosen)
    """
    info = {
        "label_strategy": strategy,
        "label_signal_accuracies": None,
        "label_strategy_auto": None,
    }
    if strategy != "auto":
        return strategy, info

    checks = label_signal_checks(
        queries, query_labels, pool, pool_labels, num_neighbors, vote_rule
    )
    strategy, why = choose_label_strategy(checks)
    info.update(
        label_strategy=strategy,
        label_signal_accuracies=_accuracies(checks),
        label_strategy_auto=why,
    )

    return strategy, info


def assign_labels(strategy, weak_labels, query_labels, vote_labels=None):
    """Chooses the training label of each selected image.

    Args:
        strategy: ``"weak"`` (the image's own weak label), ``"query"`` (the
            label of the query image that selected it), ``"agree"`` (the
            weak label, keeping only images where it equals the query's)
            or ``"vote"`` (the weak label, keeping only images where it
            equals the majority weak label of the image's nearest pool
            images, see :func:`neighbor_vote`); ``"auto"`` is resolved
            beforehand by :func:`choose_label_strategy`
        weak_labels: ``(S,)`` weak labels of the selected images
        query_labels: ``(S,)`` labels of the queries that selected them
        vote_labels (None): ``(S,)`` neighbour votes, for ``"vote"``

    Returns:
        ``(labels, keep)``: the ``(S,)`` assigned labels and a boolean
        ``(S,)`` mask of the images kept
    """
    weak_labels = np.asarray(weak_labels, dtype=object)
    query_labels = np.asarray(query_labels, dtype=object)
    if strategy == "weak":
        return weak_labels, np.ones(len(weak_labels), dtype=bool)

    if strategy == "query":
        return query_labels, np.ones(len(query_labels), dtype=bool)

    if strategy == "agree":
        return weak_labels, weak_labels == query_labels

    if strategy == "vote":
        if vote_labels is None:
            raise ValueError("The vote strategy needs vote_labels")

        return weak_labels, weak_labels == np.asarray(
            vote_labels, dtype=object
        )

    raise ValueError(
        "Unknown label strategy %r; use one of %s"
        % (strategy, LABEL_STRATEGIES)
    )


def _check_labels(queries, query_labels, pool, pool_labels):
    # a length mismatch would otherwise broadcast or reshape into a
    # silently wrong vote
    for what, vectors, labels in (
        ("E_sample", queries, query_labels),
        ("pool", pool, pool_labels),
    ):
        if len(vectors) != len(labels):
            raise ValueError(
                "%d %s vectors but %d %s labels; pass one label per vector"
                % (len(vectors), what, len(labels), what)
            )
    if len(queries) == 0:
        raise ValueError("No E_sample vectors; pass at least one")


def label_selection(
    strategy,
    selection,
    queries,
    query_labels,
    pool,
    pool_labels,
    num_neighbors=DEFAULT_NUM_NEIGHBORS,
    vote_rule=DEFAULT_VOTE_RULE,
):
    """Labels a :class:`Selection` with a label strategy, resolving
    ``"auto"`` first (see :func:`resolve_label_strategy`).

    Args:
        strategy: one of :data:`LABEL_STRATEGIES`
        selection: a :class:`Selection` of ``pool`` rows for ``queries``
        queries: the ``(Q, D)`` query vectors
        query_labels: their ``(Q,)`` labels
        pool: the ``(N, D)`` pool vectors
        pool_labels: the ``(N,)`` weak labels of the pool
        num_neighbors (20): the voting neighbours of ``"vote"``
        vote_rule ("auto"): how they vote, one of :data:`VOTE_RULES`

    Returns:
        ``(labels, keep, info)``: see :func:`assign_labels`,
        :func:`resolve_label_strategy` and :func:`resolve_vote_rule`; info
        also has ``signal``, the labels the weak labels were checked
        against under ``"vote"`` (see :func:`filter_signal`), else None
    """
    query_labels = np.asarray(query_labels, dtype=object)
    pool_labels = np.asarray(pool_labels, dtype=object)
    _check_labels(queries, query_labels, pool, pool_labels)
    vote_rule, rule_info = resolve_vote_rule(
        strategy,
        vote_rule,
        queries,
        query_labels,
        pool,
        pool_labels,
        num_neighbors,
    )
    strategy, info = resolve_label_strategy(
        strategy,
        queries,
        query_labels,
        pool,
        pool_labels,
        num_neighbors,
        vote_rule,
    )
    rows = selection.pool_index
    votes = None
    if strategy == "vote":
        votes = filter_signal(
            "vote",
            selection,
            query_labels,
            pool,
            pool_labels,
            num_neighbors,
            queries=queries,
            vote_rule=vote_rule,
        )

    labels, keep = assign_labels(
        strategy, pool_labels[rows], query_labels[selection.query_index], votes
    )
    info.update(rule_info, signal=votes)

    return labels, keep, info


def filter_signal(
    strategy,
    selection,
    query_labels,
    pool,
    pool_labels,
    num_neighbors=DEFAULT_NUM_NEIGHBORS,
    queries=None,
    vote_rule=DEFAULT_VOTE_RULE,
):
    """The label each selected image's weak label is checked against under
    a filtering strategy: the neighbour vote (see :func:`neighbor_vote`)
    for ``"vote"``, the selecting query's label for ``"agree"``. The
    ``"noise"`` vote rule fits its model on ``queries`` (see
    :func:`fit_noise_model`), and ``"auto"`` chooses between the two on
    them (see :func:`resolve_vote_rule`).

    Returns:
        an ``(S,)`` object array of labels
    """
    rows = selection.pool_index
    if strategy == "agree":
        return np.asarray(query_labels, dtype=object)[selection.query_index]

    if strategy != "vote":
        raise ValueError(
            "Only the 'vote' and 'agree' strategies filter by a label "
            "signal, got %r" % (strategy,)
        )

    check_vote_rule(vote_rule)
    if not len(rows):
        return np.zeros(0, dtype=object)

    vote_rule = _resolved_rule(
        vote_rule, queries, query_labels, pool, pool_labels, num_neighbors
    )
    model = None
    if vote_rule == "noise":
        if queries is None:
            raise ValueError("The noise vote needs the E_sample vectors")

        model, _ = fit_noise_model(
            queries, query_labels, pool, pool_labels, num_neighbors
        )

    return neighbor_vote(
        pool[rows],
        pool,
        np.asarray(pool_labels, dtype=object),
        num_neighbors,
        exclude=rows,
        noise_model=model,
    )


def soft_targets(weak_labels, signal_labels, keep, dropped_weight):
    """Training targets that keep, at a lower weight, what a filter drops.

    A filter (``"vote"``, ``"agree"``) throws away every image whose weak
    label disagrees with its signal, although one of the two is often
    right, and drops them unevenly across classes. Here a kept image is
    trained on its weak label with weight 1, and a dropped one on its weak
    label and on the signal's label, each with weight ``dropped_weight``.

    Args:
        weak_labels: ``(S,)`` weak labels of the selected images
        signal_labels: ``(S,)`` the filter's labels (see
            :func:`filter_signal`)
        keep: the ``(S,)`` boolean mask the filter kept
        dropped_weight: the weight of each label of a dropped image, in
            ``[0, 0.5]`` (0 is the filter itself)

    Returns:
        ``(image, label, weight)``: parallel arrays of (selected image,
        label, weight) pairs, kept images first
    """
    w = float(dropped_weight)
    if not 0.0 <= w <= 0.5:
        raise ValueError(
            "dropped_weight must lie in [0, 0.5] so that no dropped label "
            "outweighs a kept one, got %r" % (dropped_weight,)
        )

    weak_labels = np.asarray(weak_labels, dtype=object)
    signal_labels = np.asarray(signal_labels, dtype=object)
    keep = np.asarray(keep, dtype=bool)
    kept, dropped = np.flatnonzero(keep), np.flatnonzero(~keep)
    if w == 0.0:
        dropped = dropped[:0]

    image = np.concatenate([kept, dropped, dropped])
    label = np.concatenate(
        [weak_labels[kept], weak_labels[dropped], signal_labels[dropped]]
    )
    weight = np.concatenate([np.ones(len(kept)), np.full(2 * len(dropped), w)])

    return image, label, weight


def resolve_dropped_weight(dropped_weight, strategy, vote_rule="majority"):
    """The weight :func:`training_targets` gives each label of an image
    the vote doubts, under the ``"vote"`` strategy: ``dropped_weight``, or
    when it is None the default of the (resolved) ``vote_rule``:
    :data:`DEFAULT_DROPPED_WEIGHT` under ``"majority"``, none under
    ``"noise"``. None (nothing weighted) under other strategies or for a
    weight of 0.

    Under the noise vote, an image is doubted where its weak label is the
    class its vote's class is commonly mistaken for, so training on both
    labels teaches the very confusion the noise makes (measured in the
    benchmark suite, pair-flip noise: heldout accuracy 1.4 points lower
    and test accuracy 0.5 lower than dropping them); under the majority
    vote the wrong one of the two labels falls on any class and averages
    out.
    """
    if strategy not in RESOLVED_STRATEGIES:
        raise ValueError(
            "resolve_dropped_weight takes a resolved label strategy, one of "
            "%s, got %r; pass the one label_selection used (its info's "
            "'label_strategy')" % (RESOLVED_STRATEGIES, strategy)
        )
    if strategy != "vote":
        return None

    if vote_rule not in ("majority", "noise"):
        raise ValueError(
            "resolve_dropped_weight takes a resolved vote rule, 'majority' "
            "or 'noise', got %r" % (vote_rule,)
        )

    w = dropped_weight
    if w is None:
        w = DEFAULT_DROPPED_WEIGHT if vote_rule == "majority" else 0.0

    return float(w) if w else None


def training_targets(
    strategy,
    selection,
    labels,
    keep,
    query_labels,
    pool,
    pool_labels,
    dropped_weight=None,
    num_neighbors=DEFAULT_NUM_NEIGHBORS,
    queries=None,
    vote_rule=DEFAULT_VOTE_RULE,
    signal=None,
):
    """The ``(image, label, weight)`` training targets of a labelled
    selection (see :func:`label_selection`).

    Under the ``"vote"`` strategy, the images the vote drops stay too, at
    ``dropped_weight`` (None: the vote rule's default, see
    :func:`resolve_dropped_weight`; 0 drops them), see
    :func:`soft_targets`; else the kept images with their labels at
    weight 1. Other strategies ignore the weight:
    under ``"agree"`` the second label would be a single E_sample image's,
    which moves the decision boundary for everything near that image
    (measured in the benchmark suite: test accuracy 1.6 points lower).

    Args:
        strategy: the resolved label strategy
        selection: the :class:`Selection`
        labels, keep: what :func:`label_selection` returned
        query_labels, pool, pool_labels: as for :func:`label_selection`
        dropped_weight (None): the weight of each label of a dropped
            image, in ``[0, 0.5]``; None is the default
        num_neighbors (20): the voting neighbours
        queries (None), vote_rule ("auto"): as for
            :func:`label_selection`; pass the rule it used (its info's
            ``vote_rule``), else ``"auto"`` is resolved again
        signal (None): the vote labels of the selection, if known (the
            ``signal`` :func:`label_selection` returns); else computed

    Returns:
        ``(image, label, weight)`` parallel arrays; ``image`` indexes the
        selection
    """
    keep = np.asarray(keep, dtype=bool)
    if strategy == "vote":
        vote_rule = _resolved_rule(
            vote_rule, queries, query_labels, pool, pool_labels, num_neighbors
        )
    dropped_weight = resolve_dropped_weight(
        dropped_weight, strategy, vote_rule
    )
    if dropped_weight is None:
        kept = np.flatnonzero(keep)
        return kept, np.asarray(labels, dtype=object)[kept], np.ones(len(kept))

    if signal is None:
        signal = filter_signal(
            strategy,
            selection,
            query_labels,
            pool,
            pool_labels,
            num_neighbors,
            queries=queries,
            vote_rule=vote_rule,
        )

    return soft_targets(labels, signal, keep, dropped_weight)
