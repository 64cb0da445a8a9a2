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
from fiftyone_dcd.results import list_dcd_runs, run_view, summarize_run
from fiftyone_dcd.runs import load_run
from fiftyone_dcd.selection import (
    assign_labels,
    knn,
    label_selection,
    select_nearest,
)

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
    "label_selection",
    "list_dcd_runs",
    "load_run",
    "run_view",
    "select_debug_train",
    "select_nearest",
    "split_e_sample",
    "summarize_run",
    "tag_errors",
    "train_model",
]

__version__ = "0.1.0"

# SampleCollection is the base of Dataset and DatasetView alike
_foc.SampleCollection.apply_dcd = apply_dcd


def _warn_if_mongod_broken():
    # FiftyOne reports a mongod that cannot run only as "failed to bind to
    # port" on first use; say the cause and the fix as early as possible
    import os
    import warnings

    from fiftyone_dcd.database import check_mongod

    if os.environ.get("FIFTYONE_DATABASE_URI"):
        return

    problem = check_mongod()
    if problem:
        warnings.warn(
            problem + ". Run `fiftyone-dcd doctor --fix`, or set "
            "FIFTYONE_DATABASE_URI to a running MongoDB",
            RuntimeWarning,
            stacklevel=3,
        )


_warn_if_mongod_broken()
