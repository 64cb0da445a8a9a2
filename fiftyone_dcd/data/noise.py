"""
Label noise for weakly labelled pools.
"""

import numpy as np

NOISE_TYPES = ("symmetric", "pair_flip", "class_conditional")

#: Fashion-MNIST classes a changed label moves to under
#: ``"class_conditional"`` noise: the look-alikes annotators confuse
FASHION_MNIST_CONFUSIONS = {
    0: (6, 3, 2),  # T-shirt/top -> shirt, dress, pullover
    1: (3,),  # trouser -> dress
    2: (4, 6),  # pullover -> coat, shirt
    3: (1, 0, 4),  # dress -> trouser, T-shirt/top, coat
    4: (2, 6),  # coat -> pullover, shirt
    5: (7, 9),  # sandal -> sneaker, ankle boot
    6: (0, 2, 4),  # shirt -> T-shirt/top, pullover, coat
    7: (5, 9),  # sneaker -> sandal, ankle boot
    8: (6, 0),  # bag -> shirt, T-shirt/top
    9: (7, 5),  # ankle boot -> sneaker, sandal
}


def confusion_transition(num_classes, confusions=None):
    """Returns the ``(C, C)`` matrix of class-conditional noise: row ``c``
    spreads a changed label of class ``c`` evenly over its look-alikes.

    Args:
        num_classes: the number of classes
        confusions (None): a dict mapping each class to the classes it is
            mistaken for; None uses :data:`FASHION_MNIST_CONFUSIONS`

    Returns:
        a float ``(C, C)`` array with rows summing to 1 and a zero diagonal
    """
    confusions = confusions or FASHION_MNIST_CONFUSIONS
    t = np.zeros((num_classes, num_classes))
    for c in range(num_classes):
        targets = [j for j in confusions.get(c, ()) if j != c]
        if not targets:
            raise ValueError(
                "Class %d has no look-alike to move its labels to; give "
                "one in `confusions`" % c
            )

        t[c, targets] = 1.0 / len(targets)

    return t


def corrupt_labels(
    labels, rate, num_classes, noise="symmetric", rng=None, transition=None
):
    """Returns a noisy copy of integer ``labels``.

    Args:
        labels: an (N,) integer array of true labels
        rate: the share of labels to change, in [0, 1]
        num_classes: the number of classes
        noise ("symmetric"): ``"symmetric"`` moves a changed label to one of
            the other classes uniformly; ``"pair_flip"`` moves class ``c``
            to ``c + 1`` (mod ``num_classes``); ``"class_conditional"``
            draws it from row ``c`` of ``transition``
        rng (None): a numpy ``Generator``
        transition (None): for ``"class_conditional"``, a ``(C, C)``
            row-stochastic matrix with a zero diagonal; None uses
            :func:`confusion_transition`

    Returns:
        an (N,) int64 array; exactly ``round(rate * N)`` entries differ from
        ``labels``
    """
    if noise not in NOISE_TYPES:
        raise ValueError(
            "Unknown label noise %r; use one of %s" % (noise, NOISE_TYPES)
        )

    if not 0.0 <= rate <= 1.0:
        raise ValueError("Noise rate must be in [0, 1], got %r" % rate)

    rng = rng if rng is not None else np.random.default_rng(0)
    labels = np.asarray(labels, dtype=np.int64)
    noisy = labels.copy()
    n_flip = int(round(rate * len(labels)))
    idx = rng.choice(len(labels), size=n_flip, replace=False)
    if noise == "class_conditional":
        t = _check_transition(transition, num_classes)
        # inverse-CDF sampling of each changed label from its row
        cdf = np.cumsum(t[labels[idx]], axis=1)
        u = rng.random(n_flip)[:, None] * cdf[:, -1:]
        noisy[idx] = (u >= cdf).sum(axis=1)
        return noisy

    if noise == "symmetric":
        # an offset in [1, C-1] never maps a label onto itself
        offset = rng.integers(1, num_classes, size=n_flip)
    else:
        offset = np.ones(n_flip, dtype=np.int64)

    noisy[idx] = (labels[idx] + offset) % num_classes

    return noisy


def _check_transition(transition, num_classes):
    if transition is None:
        return confusion_transition(num_classes)

    t = np.asarray(transition, dtype=np.float64)
    if t.shape != (num_classes, num_classes):
        raise ValueError(
            "The transition matrix must be %dx%d, got shape %s"
            % (num_classes, num_classes, t.shape)
        )

    if (t < 0).any() or np.any(np.diag(t) != 0) or not np.all(t.sum(1) > 0):
        raise ValueError(
            "The transition matrix needs non-negative entries, a zero "
            "diagonal (a changed label must change) and a positive sum in "
            "every row"
        )

    return t / t.sum(axis=1, keepdims=True)
