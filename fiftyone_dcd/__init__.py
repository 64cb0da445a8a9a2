"""
fiftyone-dcd: Data-Centric Debugging of image classifiers with FiftyOne.

Importing this package adds :func:`fiftyone_dcd.api.apply_dcd` to every
FiftyOne dataset and view as ``samples.apply_dcd(model, train=..., ...)``.
"""

import fiftyone.core.collections as _foc

from fiftyone_dcd.api import apply_dcd, finetune_dcd
from fiftyone_dcd.steps import (
    embed,
    evaluate,
    finetune,
    select_debug_train,
    split_e_sample,
    tag_errors,
    train_model,
)
from fiftyone_dcd.database import DatabaseError, ensure_database
from fiftyone_dcd.models import SmallCNN, build_model
from fiftyone_dcd.naming import RunNames
from fiftyone_dcd.runs import load_run
from fiftyone_dcd.selection import assign_labels, knn, select_nearest

__all__ = [
    "DatabaseError",
    "RunNames",
    "SmallCNN",
    "apply_dcd",
    "assign_labels",
    "build_model",
    "embed",
    "ensure_database",
    "evaluate",
    "finetune",
    "finetune_dcd",
    "knn",
    "load_run",
    "select_debug_train",
    "select_nearest",
    "split_e_sample",
    "tag_errors",
    "train_model",
]

__version__ = "0.1.0"

# SampleCollection is the base of Dataset and DatasetView alike
_foc.SampleCollection.apply_dcd = apply_dcd
