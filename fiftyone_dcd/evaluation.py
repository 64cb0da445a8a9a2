"""
Predictions, accuracy and the report table.
"""

import numpy as np
from scipy.special import softmax
from tabulate import tabulate

import fiftyone as fo

from fiftyone_dcd.inference import run_inference


def predict(
    samples,
    net,
    classes,
    pred_field=None,
    batch_size=256,
    num_workers=0,
    device=None,
    progress=None,
):
    """Predicts ``samples`` with ``net``.

    Args:
        samples: a FiftyOne collection
        net: an ``nn.Module`` classifier over ``classes``
        classes: the class list of ``net``'s outputs
        pred_field (None): a field to store ``Classification`` predictions
            in; nothing is written when None

    Returns:
        a dict mapping sample ids to predicted labels
    """
    result = run_inference(
        net,
        samples,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        features=False,
        progress=progress,
    )
    logits = result["logits"]
    top = logits.argmax(axis=1) if len(logits) else np.zeros(0, dtype=int)
    labels = [classes[i] for i in top]
    if pred_field is not None and len(labels):
        conf = softmax(logits, axis=1).max(axis=1)
        preds = [
            fo.Classification(label=l, confidence=float(c))
            for l, c in zip(labels, conf)
        ]
        samples._dataset.set_values(
            pred_field, dict(zip(result["ids"], preds)), key_field="id"
        )

    return dict(zip(result["ids"], labels))


def accuracy(predictions, samples, label_field):
    """Returns the share of ``samples`` whose ``label_field`` label equals
    its prediction in the ``{id: label}`` dict ``predictions``, in [0, 1].
    """
    ids, labels = samples.values(["id", label_field + ".label"])
    if not ids:
        return float("nan")

    return float(np.mean([predictions[i] == l for i, l in zip(ids, labels)]))


def per_class_accuracy(predictions, samples, label_field):
    """Returns ``{class: accuracy}`` over the classes present among the
    ``label_field`` labels of ``samples``, as :func:`accuracy` computes it.
    """
    ids, labels = samples.values(["id", label_field + ".label"])
    hits = {}
    for i, label in zip(ids, labels):
        hits.setdefault(label, []).append(predictions[i] == label)

    return {c: float(np.mean(h)) for c, h in sorted(hits.items())}


def format_table(rows, columns):
    """Formats a list of dicts as a text table with the given columns;
    accuracies (floats in [0, 1]) are shown in percent.
    """

    def fmt(v):
        if isinstance(v, float):
            return "%.2f" % (100 * v) if v == v else "-"

        return v

    return tabulate(
        [[fmt(r.get(c, "")) for c in columns] for r in rows],
        headers=columns,
        tablefmt="github",
    )
