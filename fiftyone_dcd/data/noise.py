"""
Label noise for weakly labelled pools.
"""

import numpy as np

NOISE_TYPES = ("symmetric", "pair_flip")


def corrupt_labels(labels, rate, num_classes, noise="symmetric", rng=None):
    """Returns a noisy copy of integer ``labels``.

    Args:
        labels: an (N,) integer array of true labels
        rate: the share of labels to change, in [0, 1]
        num_classes: the number of classes
        noise ("symmetric"): ``"symmetric"`` moves a changed label to one of
            the other classes uniformly; ``"pair_flip"`` moves class ``c``
            to ``c + 1`` (mod ``num_classes``)
        rng (None): a numpy ``Generator``

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
    if noise == "symmetric":
        # an offset in [1, C-1] never maps a label onto itself
        offset = rng.integers(1, num_classes, size=n_flip)
    else:
        offset = np.ones(n_flip, dtype=np.int64)

    noisy[idx] = (labels[idx] + offset) % num_classes

    return noisy
