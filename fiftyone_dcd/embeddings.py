"""
Penultimate-layer embeddings stored on samples.
"""

import logging

import numpy as np

import fiftyone as fo

from fiftyone_dcd.inference import run_inference

logger = logging.getLogger(__name__)


def compute_embeddings(
    samples,
    net,
    embeddings_field,
    batch_size=256,
    num_workers=0,
    device=None,
    skip_existing=True,
    progress=None,
    chunk_size=4096,
    precision=None,
    channels_last=None,
):
    """Computes the penultimate-layer embeddings of ``net`` on ``samples``
    and stores them in the ``VectorField`` ``embeddings_field``.

    Vectors are written chunk by chunk, each chunk whole, so an interrupted
    run leaves complete vectors, and a rerun with ``skip_existing=True``
    computes only the missing ones.

    Args:
        samples: a FiftyOne collection
        net: an ``nn.Module`` (see :func:`fiftyone_dcd.models.penultimate`)
        embeddings_field: the field to store vectors in
        batch_size (256): the batch size
        num_workers (0): the number of loader worker processes
        device (None): a torch device; CUDA when present by default
        skip_existing (True): whether to compute only samples whose field
            is empty
        progress (None): a callable ``progress(done, total)``
        chunk_size (4096): samples computed and written at a time
        precision (None), channels_last (None): see
            :func:`fiftyone_dcd.inference.run_inference`

    Returns:
        the number of samples computed
    """
    dataset = samples._dataset
    ensure_vector_field(dataset, embeddings_field)
    todo = samples
    if skip_existing:
        todo = samples.exists(embeddings_field, False)

    ids = todo.values("id")
    total = len(ids)
    if total == 0 and progress is not None:
        progress(0, 0)  # nothing to do is news too

    for start in range(0, total, chunk_size):
        chunk = dataset.select(ids[start : start + chunk_size], ordered=True)
        result = run_inference(
            net,
            chunk,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            logits=False,
            progress=_offset(progress, start, total),
            precision=precision,
            channels_last=channels_last,
        )
        if start == 0:
            _check_size(dataset, embeddings_field, ids, result["features"])

        write_vectors(dataset, embeddings_field, result)

    return total


def ensure_vector_field(dataset, embeddings_field):
    """Adds the ``VectorField`` ``embeddings_field`` if it is missing."""
    if not dataset.has_sample_field(embeddings_field):
        dataset.add_sample_field(embeddings_field, fo.VectorField)


def write_vectors(dataset, embeddings_field, result):
    """Stores the ``features`` of a :func:`fiftyone_dcd.inference.
    run_inference` result by sample id, in one write: a chunk is stored
    whole or not at all, so an interrupted run leaves complete vectors that
    a rerun skips."""
    values = dict(zip(result["ids"], result["features"]))
    dataset.set_values(embeddings_field, values, key_field="id")


def _offset(progress, start, total):
    if progress is None:
        return None

    return lambda done, _: progress(start + done, total)


def _check_size(dataset, embeddings_field, ids, features):
    error = size_mismatch(dataset, embeddings_field, ids, features.shape[1])
    if error:
        raise ValueError(error)


def size_mismatch(dataset, embeddings_field, ids, dim):
    """The message for vectors of ``embeddings_field`` outside ``ids``
    (which a call is about to replace) whose size is not ``dim``, or None.
    """
    existing = dataset.exists(embeddings_field).exclude(ids).limit(1)
    if not len(existing):
        return None

    have = len(existing.first()[embeddings_field])
    if have == dim:
        return None

    return (
        "Field '%s' holds %d-dimensional vectors and this model gives %d; "
        "pass another embeddings_field, or delete that field first"
        % (embeddings_field, have, dim)
    )


#: samples whose vectors are read from the database at a time
LOAD_CHUNK_SIZE = 10000

#: dtypes embeddings may be stored in memory or on disk
EMBEDDING_DTYPES = ("float32", "float16")


def load_embeddings(
    samples, embeddings_field, dtype="float32", chunk_size=LOAD_CHUNK_SIZE
):
    """Returns ``(ids, X)``: the sample ids and an ``(N, D)`` array of
    their vectors.

    Vectors are read in chunks of ``chunk_size`` from one database cursor
    into one preallocated array, so the peak memory is the array plus one
    chunk, never a Python object per vector for the whole collection.

    Args:
        samples: a FiftyOne collection
        embeddings_field: a ``VectorField``
        dtype ("float32"): ``"float32"``, or ``"float16"`` to halve the
            memory (:func:`fiftyone_dcd.selection.knn` computes in float32
            one block at a time)
        chunk_size (10000): vectors converted at a time

    Raises:
        ValueError: if a sample has no vector, vectors differ in size, a
            vector is not finite, or does not fit ``dtype``
    """
    return _read_vectors(
        samples,
        embeddings_field,
        dtype,
        chunk_size,
        lambda shape, dt: np.empty(shape, dtype=dt),
    )


def save_embeddings(
    samples, embeddings_field, path, dtype="float32", chunk_size=None
):
    """Writes the vectors of ``samples`` to the ``.npy`` file ``path``
    chunk by chunk, for pools larger than memory; search it with
    :func:`open_embeddings` and :func:`fiftyone_dcd.selection.knn`.

    Args and errors as :func:`load_embeddings`.

    Returns:
        the sample ids, in the rows' order
    """
    chunk_size = LOAD_CHUNK_SIZE if chunk_size is None else chunk_size
    ids, X = _read_vectors(
        samples,
        embeddings_field,
        dtype,
        chunk_size,
        lambda shape, dt: np.lib.format.open_memmap(
            path, mode="w+", dtype=dt, shape=shape
        ),
    )
    if isinstance(X, np.memmap):
        X.flush()

    return ids


def open_embeddings(path):
    """Opens an ``.npy`` file of embeddings read-only as a memory map: the
    operating system pages rows in as :func:`fiftyone_dcd.selection.knn`
    reads them block by block, so the pool may exceed memory.
    """
    X = np.load(path, mmap_mode="r", allow_pickle=False)
    if X.ndim != 2 or X.dtype.name not in EMBEDDING_DTYPES:
        raise ValueError(
            "%s holds a %s array of shape %s; expected a 2D array of one "
            "of %s" % (path, X.dtype, X.shape, EMBEDDING_DTYPES)
        )

    return X


def _read_vectors(samples, embeddings_field, dtype, chunk_size, alloc):
    dtype = np.dtype(dtype)
    if dtype.name not in EMBEDDING_DTYPES:
        raise ValueError(
            "dtype must be one of %s, got %r" % (EMBEDDING_DTYPES, dtype.name)
        )

    n = len(samples)
    # undeclared (dynamic) vectors are stored as a VectorField stores them
    field = samples.get_field(embeddings_field) or fo.VectorField()
    db_field = embeddings_field
    # one cursor over the raw documents, in the collection's order; values()
    # would build a Python list of every vector first
    cursor = samples._aggregate(
        post_pipeline=[{"$project": {"_id": True, db_field: True}}]
    )
    X = None
    ids, missing, bad, overflow, dims = [], 0, 0, 0, set()
    chunk, row = [], 0
    for doc in _chain(cursor, [None]):
        if doc is not None:
            ids.append(str(doc["_id"]))
            v = doc
            for key in db_field.split("."):
                v = v.get(key) if isinstance(v, dict) else None

            v = None if v is None else field.to_python(v)
            if v is None:
                missing += 1
            else:
                dims.add(len(v))

            chunk.append(v)
            if len(chunk) < chunk_size:
                continue

        if len(ids) > n:
            raise ValueError(
                "Samples were added while '%s' was read; load again"
                % embeddings_field
            )

        if X is None and dims:
            X = alloc((n, min(dims)), dtype)

        if chunk and missing == 0 and len(dims) == 1:
            block = np.asarray(chunk, dtype=np.float32).reshape(len(chunk), -1)
            finite = np.isfinite(block).all(axis=1)
            bad += int((~finite).sum())
            with np.errstate(over="ignore"):  # counted just below
                out = block.astype(dtype)

            overflow += int((finite & ~np.isfinite(out).all(axis=1)).sum())
            X[row : row + len(chunk)] = out

        row += len(chunk)
        chunk = []

    if missing:
        raise ValueError(
            "%d of %d samples have no '%s'; compute embeddings for them "
            "first" % (missing, len(ids), embeddings_field)
        )

    if len(dims) > 1:
        raise ValueError(
            "Field '%s' holds vectors of sizes %s; recompute it with one "
            "model" % (embeddings_field, sorted(dims))
        )

    if bad:
        raise ValueError(
            "%d vectors in '%s' hold NaN or inf; recompute them"
            % (bad, embeddings_field)
        )

    if overflow:
        raise ValueError(
            "%d vectors in '%s' exceed the range of %s; load them as "
            "float32" % (overflow, embeddings_field, dtype.name)
        )

    if X is None:
        X = alloc((0, 0), dtype)
    elif len(ids) < n:
        raise ValueError(
            "Samples were deleted while '%s' was read; load again"
            % embeddings_field
        )

    return ids, X


def _chain(*iterables):
    for iterable in iterables:
        yield from iterable
