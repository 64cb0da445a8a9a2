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

    Returns:
        the number of samples computed
    """
    dataset = samples._dataset
    if not dataset.has_sample_field(embeddings_field):
        dataset.add_sample_field(embeddings_field, fo.VectorField)

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
        )
        if start == 0:
            _check_size(dataset, embeddings_field, ids, result["features"])

        # each chunk is written whole, so an interrupted run leaves complete
        # vectors that a rerun skips
        values = dict(zip(result["ids"], result["features"]))
        dataset.set_values(embeddings_field, values, key_field="id")

    return total


def _offset(progress, start, total):
    if progress is None:
        return None

    return lambda done, _: progress(start + done, total)


def _check_size(dataset, embeddings_field, ids, features):
    # vectors this call does not replace must have the same size
    existing = dataset.exists(embeddings_field).exclude(ids).limit(1)
    if len(existing):
        dim = len(existing.first()[embeddings_field])
        if dim != features.shape[1]:
            raise ValueError(
                "Field '%s' holds %d-dimensional vectors and this model "
                "gives %d; pass another embeddings_field, or delete that "
                "field first" % (embeddings_field, dim, features.shape[1])
            )


def load_embeddings(samples, embeddings_field):
    """Returns ``(ids, X)``: the sample ids and a float32 ``(N, D)`` array of
    their vectors.

    Raises:
        ValueError: if a sample has no vector, vectors differ in size, or a
            vector is not finite
    """
    ids, vectors = samples.values(["id", embeddings_field])
    missing = sum(v is None for v in vectors)
    if missing:
        raise ValueError(
            "%d of %d samples have no '%s'; compute embeddings for them "
            "first" % (missing, len(ids), embeddings_field)
        )

    dims = {len(v) for v in vectors}
    if len(dims) > 1:
        raise ValueError(
            "Field '%s' holds vectors of sizes %s; recompute it with one "
            "model" % (embeddings_field, sorted(dims))
        )

    X = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise ValueError(
            "%d vectors in '%s' hold NaN or inf; recompute them"
            % (int(bad.sum()), embeddings_field)
        )

    return ids, X
