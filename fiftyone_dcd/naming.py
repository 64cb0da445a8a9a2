"""
Names of the fields, tags and saved views that a DCD run writes.

Everything a run writes is namespaced: fields start with ``dcd_``, tags with
``dcd:``, so that a user's own fields and tags are never touched.
"""

import re

_RUN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def check_run_key(run_key):
    """Raises ``ValueError`` unless ``run_key`` is a valid run key."""
    if not isinstance(run_key, str) or not _RUN_KEY.match(run_key):
        raise ValueError(
            "Run key %r is invalid; use letters, digits and underscores, "
            "starting with a letter (e.g. 'dcd' or 'night_shots')" % (run_key,)
        )

    return run_key


def field_prefix(run_key):
    """The prefix of a run's fields: ``dcd`` for the default run key
    ``dcd``, else ``dcd_<run_key>``; distinct run keys never share one.
    """
    check_run_key(run_key)

    return "dcd" if run_key == "dcd" else "dcd_" + run_key


ASSIGNED_LABEL_SUFFIX = "_assigned_label"


def is_assigned_label_field(name):
    """Whether ``name`` is a run's assigned-label field (see
    :class:`RunNames`), the only labels whose weights training reads."""
    return name == "dcd" + ASSIGNED_LABEL_SUFFIX or (
        name.startswith("dcd_") and name.endswith(ASSIGNED_LABEL_SUFFIX)
    )


class RunNames(object):
    """The names a DCD run with key ``run_key`` writes.

    Attributes:
        embeddings: VectorField of penultimate-layer features
        refined_embeddings: VectorField of features of the model
            fine-tuned in a first round (runs with ``rounds=2``)
        pred_before: Classification predicted by the model under debug
        pred_after: Classification predicted by the fine-tuned model
        distance: l2 distance of a selected pool image to its query
        query_id: id of the E_sample image that selected a pool image
        assigned_label: Classification used to train on a selected image
        error_tag, e_sample_tag, heldout_tag, debug_train_tag: sample tags
        debug_train_view: the saved view of the debug-train set
    """

    def __init__(self, run_key):
        p = field_prefix(run_key)
        self.run_key = run_key
        self.embeddings = p + "_embeddings"
        self.refined_embeddings = p + "_refined_embeddings"
        self.pred_before = p + "_pred_before"
        self.pred_after = p + "_pred_after"
        self.distance = p + "_distance"
        self.query_id = p + "_query_id"
        self.assigned_label = p + ASSIGNED_LABEL_SUFFIX
        self.error_tag = "dcd:%s:error" % run_key
        self.e_sample_tag = "dcd:%s:e_sample" % run_key
        self.heldout_tag = "dcd:%s:heldout" % run_key
        self.debug_train_tag = "dcd:%s:debug_train" % run_key
        self.debug_train_view = p + "_debug_train"

    @property
    def fields(self):
        """The sample fields a run may write."""
        return [
            self.embeddings,
            self.refined_embeddings,
            self.pred_before,
            self.pred_after,
            self.distance,
            self.query_id,
            self.assigned_label,
        ]

    @property
    def tags(self):
        """The sample tags a run may write."""
        return [
            self.error_tag,
            self.e_sample_tag,
            self.heldout_tag,
            self.debug_train_tag,
        ]
