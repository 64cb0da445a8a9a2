"""
A model of the pool's label noise near the error distribution, estimated
on E_sample, and the neighbour vote it gives.

A majority vote over an image's nearest pool images assumes that a wrong
weak label could be any other class. Real noise is structured: a class is
mistaken for a few others (pair flips, a confusion matrix), so a vote of
12 "shirt" and 8 "T-shirt" may well be a shirt whose neighbours are half
mislabelled, or a T-shirt. E_sample holds true labels, so the weak labels
of its images' pool neighbours show, class by class, which weak labels
surround an image of that class. The noise vote picks the class whose
pattern best explains the neighbours' weak labels.
"""

from dataclasses import dataclass

import numpy as np

#: how many neighbour votes the prior is worth in each class: the
#: estimate of a class starts as "the E_sample-wide share of neighbours
#: that carry the class's own label, the rest spread evenly" (the
#: majority vote's assumption) and moves away from it only as that many
#: votes of the class are seen (5 E_sample images' 20 neighbours)
PRIOR_STRENGTH = 100.0


@dataclass
class NoiseModel:
    """``log_likelihood[c, w]``: the log of the share of weak label
    ``classes[w]`` among the pool neighbours of an image of class
    ``classes[c]``; ``counts`` are the neighbour votes it came from."""

    classes: np.ndarray
    counts: np.ndarray
    log_likelihood: np.ndarray
    prior: np.ndarray


def _codes(classes, labels):
    labels = np.asarray(labels, dtype=object)
    index = {c: i for i, c in enumerate(classes)}
    return np.vectorize(index.__getitem__, otypes=[np.int64])(labels)


def _prior(counts, strength):
    num_classes = len(counts)
    total = counts.sum()
    own = np.trace(counts) / total if total else 1.0
    # never certain: every weak label stays possible for every class
    own = min(max(own, 1.0 / num_classes), 1.0 - 1e-3)
    prior = np.full(
        (num_classes, num_classes), (1.0 - own) / max(num_classes - 1, 1)
    )
    np.fill_diagonal(prior, own)

    return strength * prior


def _log_likelihood(counts, prior):
    rows = counts + prior
    return np.log(rows / rows.sum(axis=1, keepdims=True))


def fit(
    query_labels,
    neighbor_labels,
    classes,
    strength=PRIOR_STRENGTH,
    prior=None,
):
    """Estimates the noise model from E_sample.

    Args:
        query_labels: ``(Q,)`` true labels of the E_sample images
        neighbor_labels: ``(Q, K)`` weak labels of each one's ``K`` nearest
            pool images
        classes: every label that may occur, in a fixed order
        strength (100): the prior's weight, in neighbour votes per class
        prior (None): a ``(C, C)`` prior in neighbour votes, instead of
            the one estimated from these counts

    Returns:
        a :class:`NoiseModel`
    """
    classes = np.asarray(classes, dtype=object)
    q = _codes(classes, query_labels)
    hist = _histogram(classes, np.reshape(neighbor_labels, (len(q), -1)))
    counts = np.zeros((len(classes), len(classes)))
    np.add.at(counts, q, hist)
    if prior is None:
        prior = _prior(counts, strength)

    return NoiseModel(classes, counts, _log_likelihood(counts, prior), prior)


def vote(model, neighbor_labels):
    """For each row of ``neighbor_labels`` (``(S, K)`` weak labels), the
    class that makes them most probable under ``model``."""
    hist = _histogram(model.classes, neighbor_labels)

    return model.classes[(hist @ model.log_likelihood.T).argmax(axis=1)]


def _histogram(classes, neighbor_labels):
    """``(S, C)`` counts of each class among each row's labels."""
    w = _codes(classes, neighbor_labels)
    hist = np.zeros((len(w), len(classes)))
    np.add.at(hist, (np.repeat(np.arange(len(w)), w.shape[1]), w.ravel()), 1)

    return hist


def leave_one_out_vote(model, query_labels, neighbor_labels):
    """Each E_sample image's vote under the model fitted without it: its
    own neighbours' votes are taken out of its class's counts, so that
    its accuracy is not that of a model that has seen the answer."""
    q = _codes(model.classes, query_labels)
    hist = _histogram(model.classes, neighbor_labels)
    scores = hist @ model.log_likelihood.T
    # the row of each image's own class without its votes; the prior,
    # fitted on all of E_sample, is kept (one number, the share of
    # neighbours with their own class's label, that one image barely
    # moves; refitting it per image would cost C^2 per image)
    own = model.counts[q] - hist + model.prior[q]
    own = np.log(own / own.sum(axis=1, keepdims=True))
    scores[np.arange(len(q)), q] = np.sum(hist * own, axis=1)

    return model.classes[scores.argmax(axis=1)]
