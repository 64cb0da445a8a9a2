"""
Checks of user input, run before anything is written.
"""

import logging
import math
import numbers
import os

import fiftyone as fo
import fiftyone.core.utils as fou
import fiftyone.core.collections as foc
import fiftyone.core.media as fom

from fiftyone_dcd.selection import (
    DEFAULT_DROPPED_WEIGHT,
    DEFAULT_VOTE_RULE,
    LABEL_STRATEGIES,
    check_vote_rule,
)

logger = logging.getLogger(__name__)


def resolve_view(dataset, spec, what, allow_none=False):
    """Returns the samples that ``spec`` names in ``dataset``.

    Args:
        dataset: a :class:`fiftyone.core.dataset.Dataset`
        spec: a view or dataset of ``dataset``, a sample tag, or the name of
            a saved view of ``dataset``
        what: what the samples are for, used in messages ("pool", ...)
        allow_none (False): whether None is allowed (returned as None)

    Raises:
        ValueError: if ``spec`` names nothing or other data, or is empty
    """
    if spec is None:
        if allow_none:
            return None

        raise ValueError(
            "No %s given; pass a view of '%s' or a sample tag"
            % (what, dataset.name)
        )

    if isinstance(spec, str):
        if spec in dataset.list_saved_views():
            view = dataset.load_saved_view(spec)
        else:
            view = dataset.match_tags(spec)
            if len(view) == 0:
                raise ValueError(
                    "No samples of '%s' are tagged '%s' and no saved view "
                    "has that name, so the %s is empty; tag the %s "
                    "samples or pass a view" % (dataset.name, spec, what, what)
                )
    elif isinstance(spec, foc.SampleCollection):
        if spec._dataset.name != dataset.name:
            raise ValueError(
                "The %s is a view of dataset '%s', not of '%s'; pass a "
                "view of '%s'"
                % (what, spec._dataset.name, dataset.name, dataset.name)
            )

        view = spec
    else:
        raise ValueError(
            "The %s must be a view, a sample tag or a saved view name; got "
            "%r" % (what, type(spec).__name__)
        )

    if len(view) == 0:
        raise ValueError("The %s is empty; it needs samples" % what)

    return view


def resolve_debug_train(dataset, names, debug_train=None):
    """Returns the debug-train set: ``debug_train`` (as
    :func:`resolve_view` takes it), else the saved view of the run that
    ``names`` (a :class:`fiftyone_dcd.naming.RunNames`) describes; raises
    ``ValueError`` unless it exists and carries the run's assigned labels.
    """
    if debug_train is None:
        if names.debug_train_view not in dataset.list_saved_views():
            raise ValueError(
                "Dataset '%s' has no debug-train set of run '%s' (saved view "
                "'%s'); run select_debug_train first, or pass debug_train"
                % (dataset.name, names.run_key, names.debug_train_view)
            )

        debug_train = names.debug_train_view

    debug_train = resolve_view(dataset, debug_train, "debug-train set")
    check_label_field(
        debug_train, names.assigned_label, "debug-train assigned"
    )

    return debug_train


def check_media(samples, what):
    """Raises ``ValueError`` if image files of ``samples`` are missing,
    cannot be opened as images, or are too large to decode.

    Reads each file's header only (PIL opens lazily); files whose pixel
    data is damaged past a valid header still fail later, and the run then
    removes what it wrote.
    """
    from PIL import Image

    paths = sorted(set(samples.values("filepath")))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(
            "%d image files of the %s are missing, e.g. %s; restore them, "
            "or leave those samples out of the view"
            % (len(missing), what, missing[0])
        )

    unreadable, huge = [], []
    limit = Image.MAX_IMAGE_PIXELS
    for path in paths:
        try:
            with Image.open(path) as img:
                w, h = img.size
        except Image.DecompressionBombError:
            huge.append((path, "over the pixel limit"))
            continue
        except Exception as e:
            unreadable.append((path, str(e).splitlines()[0][:80]))
            continue

        if limit is not None and w * h > limit:
            huge.append((path, "%dx%d" % (w, h)))

    if unreadable:
        raise ValueError(
            "%d files of the %s cannot be read as images, e.g. %s (%s); "
            "replace them, or leave those samples out of the view"
            % ((len(unreadable), what) + unreadable[0])
        )

    if huge:
        raise ValueError(
            "%d images of the %s are larger than PIL's limit of %d pixels, "
            "e.g. %s (%s); downscale them, or leave those samples out of "
            "the view" % ((len(huge), what, limit) + huge[0])
        )


def check_dataset(dataset):
    """Raises ``ValueError`` unless ``dataset`` is a flat image dataset."""
    if dataset.media_type != fom.IMAGE:
        raise ValueError(
            "Dataset '%s' has media type '%s'; DCD works on image datasets "
            "(for a grouped dataset, pass dataset.select_group_slices("
            "media_type='image'))" % (dataset.name, dataset.media_type)
        )


def check_label_overlap(e_sample, label_field, pool, weak_label_field):
    """Raises ``ValueError`` when none of E_sample's labels occurs among
    the pool's weak labels (the two fields name classes differently), and
    logs a warning naming those that do not occur.
    """
    own = set(e_sample.distinct(label_field + ".label"))
    weak = set(pool.distinct(weak_label_field + ".label"))
    missing = sorted(own - weak, key=str)
    if own and len(missing) == len(own):
        raise ValueError(
            "None of E_sample's labels in '%s' (%s) occurs among the pool's "
            "weak labels in '%s' (%s); both fields must name the classes the "
            "same way (check spelling and case)"
            % (
                label_field,
                ", ".join(map(str, missing[:10])),
                weak_label_field,
                ", ".join(map(str, sorted(weak, key=str)[:10])),
            )
        )
    if missing:
        logger.warning(
            "E_sample labels %s never occur among the pool's weak labels "
            "('%s'); no pool image can be kept for them",
            missing,
            weak_label_field,
        )


def check_label_field(samples, field, what, allow_missing=False):
    """Raises ``ValueError`` unless ``field`` is a ``Classification`` field
    set on every sample of ``samples``.
    """
    dataset = samples._dataset
    if not isinstance(field, str) or not field:
        raise ValueError("The %s label field must be a field name" % what)

    if not dataset.has_sample_field(field):
        raise ValueError(
            "Dataset '%s' has no field '%s' (the %s labels); its fields "
            "are %s"
            % (dataset.name, field, what, sorted(dataset.get_field_schema()))
        )

    ftype = dataset.get_field(field)
    doc_type = getattr(ftype, "document_type", None)
    if doc_type is not fo.Classification:
        raise ValueError(
            "Field '%s' (the %s labels) is a %s; it must hold "
            "fo.Classification labels"
            % (
                field,
                what,
                (
                    type(ftype).__name__
                    if doc_type is None
                    else doc_type.__name__
                ),
            )
        )

    if allow_missing:
        return

    missing = len(samples.exists(field + ".label", False))
    if missing:
        raise ValueError(
            "%d of %d %s samples have no '%s' label; label them, or leave "
            "them out of the view" % (missing, len(samples), what, field)
        )


def check_vector_field(dataset, field):
    """Raises ``ValueError`` unless ``field`` is a vector field of
    ``dataset``.
    """
    if not dataset.has_sample_field(field):
        raise ValueError(
            "Dataset '%s' has no field '%s' (the embeddings); compute them "
            "first, or name a vector field among %s"
            % (
                dataset.name,
                field,
                sorted(dataset.get_field_schema(ftype=fo.VectorField)),
            )
        )

    ftype = dataset.get_field(field)
    if not isinstance(ftype, (fo.VectorField, fo.ListField)):
        raise ValueError(
            "Field '%s' is a %s, not a vector field of embeddings; name "
            "another field" % (field, type(ftype).__name__)
        )


def check_vectors_present(samples, field, what):
    """Raises ``ValueError`` if samples of ``samples`` have no vector in
    ``field``; counts in the database, without reading vectors.
    """
    missing = len(samples.exists(field, False))
    if missing:
        raise ValueError(
            "%d of %d samples of the %s have no '%s'; compute embeddings "
            "for them first" % (missing, len(samples), what, field)
        )


def check_classes(samples, field, classes, what):
    """Raises ``ValueError`` if ``samples`` hold labels outside
    ``classes``.
    """
    unknown = set(samples.distinct(field + ".label")) - set(classes)
    if unknown:
        raise ValueError(
            "The %s has labels %s in '%s' that the model's classes %s do "
            "not include; pass classes=[...] covering them"
            % (what, sorted(unknown), field, list(classes))
        )


def check_disjoint(a, b, what_a, what_b):
    """Raises ``ValueError`` if two views share samples."""
    shared = set(a.values("id")) & set(b.values("id"))
    if shared:
        raise ValueError(
            "%d samples are in both the %s and the %s; they must not "
            "overlap" % (len(shared), what_a, what_b)
        )


def e_sample_count(num_e_sample, n):
    """Returns how many of ``n`` error samples go to E_sample, given a count
    or a fraction; raises ``ValueError`` unless both parts get one.
    """
    if isinstance(num_e_sample, float) and 0 < num_e_sample < 1:
        count = int(round(num_e_sample * n))
    elif (
        isinstance(num_e_sample, int)
        and not isinstance(num_e_sample, bool)
        and num_e_sample >= 1
    ):
        count = num_e_sample
    else:
        raise ValueError(
            "num_e_sample must be a count >= 1 or a fraction in (0, 1); got "
            "%r" % (num_e_sample,)
        )

    if not 1 <= count < n:
        raise ValueError(
            "num_e_sample=%r leaves %d of the %d error samples for E_sample "
            "and %d for debug-heldout; both need at least one"
            % (num_e_sample, count, n, n - count)
        )

    return count


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_collection(samples, what):
    """Raises ``ValueError`` unless ``samples`` is a FiftyOne dataset or
    view.
    """
    if not isinstance(samples, foc.SampleCollection):
        raise ValueError(
            "The %s must be a FiftyOne dataset or view, got %r; for a "
            "sample tag pass dataset.match_tags(tag)" % (what, samples)
        )


def check_field_name(name, what):
    """Raises ``ValueError`` unless ``name`` can be a top-level field."""
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(
            "The %s must be a top-level field name such as "
            "'dcd_embeddings', got %r" % (what, name)
        )


def check_training_params(epochs, lr, batch_size, device=None):
    """Raises ``ValueError`` for a fine-tuning recipe that cannot run."""
    if not _is_int(epochs) or epochs < 1:
        raise ValueError("epochs must be an integer >= 1, got %r" % (epochs,))

    if not (
        isinstance(lr, numbers.Real)
        and not isinstance(lr, bool)
        and math.isfinite(lr)
        and lr > 0
    ):
        raise ValueError("lr must be a positive number, got %r" % (lr,))

    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(
            "batch_size must be an integer >= 1, got %r" % (batch_size,)
        )

    if device is not None:
        import torch

        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(
                "device %r is not a torch device (%s); use 'cpu', 'cuda' "
                "or None" % (device, e)
            ) from e

        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                "device %r asks for CUDA, which this machine lacks; pass "
                "device=None to use the CPU" % (device,)
            )


def check_class_list(classes):
    """Returns ``classes`` as a list, or None when not given; raises
    ``ValueError`` for anything but a list of class names.
    """
    if classes is None or (
        isinstance(classes, (list, tuple)) and len(classes) == 0
    ):
        return None

    if isinstance(classes, str) or not isinstance(classes, (list, tuple)):
        raise ValueError(
            "classes must be a list of class names such as ['cat', 'dog'], "
            "got %r" % (classes,)
        )

    return list(classes)


def check_baselines(baselines, allowed):
    """Returns ``baselines`` as a tuple; raises ``ValueError`` for an
    unknown one or a bare string.
    """
    if baselines is None:
        return ()

    if isinstance(baselines, str):
        raise ValueError(
            "baselines must be a list such as [%r], got the string %r"
            % (baselines, baselines)
        )

    unknown = set(baselines) - set(allowed)
    if unknown:
        raise ValueError(
            "Unknown baselines %s; use any of %s" % (sorted(unknown), allowed)
        )

    return tuple(baselines)


def check_head(net, classes):
    """Raises ``ValueError`` if ``net``'s classifier does not output one
    score per class.
    """
    from fiftyone_dcd.models import find_classifier

    try:
        fc = find_classifier(net)
    except ValueError:
        return

    if fc.out_features != len(classes):
        raise ValueError(
            "The model outputs %d classes but there are %d classes %s; "
            "pass the model's own class list as classes=[...], or a model "
            "with %d outputs"
            % (fc.out_features, len(classes), list(classes)[:10], len(classes))
        )


def check_selection_params(
    k,
    threshold,
    budget,
    label_strategy,
    quantile=None,
    dropped_weight=None,
    vote_rule=DEFAULT_VOTE_RULE,
):
    """Raises ``ValueError`` for selection parameters out of range."""
    if k is not None and (not _is_int(k) or k < 1):
        raise ValueError(
            "k must be an integer >= 1, or None to choose it from E_sample; "
            "got %r" % (k,)
        )

    if quantile is not None and not (
        isinstance(quantile, numbers.Real)
        and not isinstance(quantile, bool)
        and 0 < quantile <= 1
    ):
        raise ValueError(
            "quantile must be in (0, 1] (the share of E's own images an "
            "automatic threshold aims to reach), got %r" % (quantile,)
        )

    if threshold is not None and not (
        isinstance(threshold, numbers.Real)
        and not isinstance(threshold, bool)
        and threshold > 0
    ):
        raise ValueError(
            "threshold must be a positive distance or None, got %r"
            % (threshold,)
        )

    if budget is not None and (not _is_int(budget) or budget < 1):
        raise ValueError(
            "budget must be an integer >= 1 or None (no limit), got %r"
            % (budget,)
        )

    if label_strategy not in LABEL_STRATEGIES:
        raise ValueError(
            "Unknown label strategy %r; use one of %s"
            % (label_strategy, LABEL_STRATEGIES)
        )

    check_vote_rule(vote_rule)
    if vote_rule != DEFAULT_VOTE_RULE and label_strategy not in (
        "vote",
        "auto",
    ):
        raise ValueError(
            "vote_rule applies to the 'vote' label strategy (and to 'auto' "
            "when it picks vote), not %r; leave it at its default (%r), "
            "or use label_strategy='vote'"
            % (label_strategy, DEFAULT_VOTE_RULE)
        )

    if dropped_weight is not None:
        if not (
            isinstance(dropped_weight, numbers.Real)
            and not isinstance(dropped_weight, bool)
            and 0 <= dropped_weight <= 0.5
        ):
            raise ValueError(
                "dropped_weight must be a number in [0, 0.5] (the weight of "
                "each label of an image the vote doubts; 0 keeps none, None "
                "is the default: %g under the majority vote, none under the "
                "noise vote), got %r"
                % (DEFAULT_DROPPED_WEIGHT, dropped_weight)
            )

        if dropped_weight and label_strategy not in ("vote", "auto"):
            raise ValueError(
                "dropped_weight applies to the 'vote' label strategy (and "
                "to 'auto' when it picks vote), not %r; set it to 0 or "
                "None, or use label_strategy='vote'" % (label_strategy,)
            )


def check_work_dir(work_dir):
    """Raises ``ValueError`` unless ``work_dir`` is None or a folder this
    process can create or write into; everything a run saves goes under
    it, by fixed names.
    """
    if work_dir is None:
        return

    if not isinstance(work_dir, (str, os.PathLike)) or "\0" in str(work_dir):
        raise ValueError(
            "work_dir must be a folder path, got %r" % (work_dir,)
        )

    path = os.path.abspath(os.path.expanduser(str(work_dir)))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(
            "work_dir %s is a file, not a folder; pass a folder for the "
            "run's checkpoints" % path
        )

    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)

    if not os.path.isdir(existing):
        raise ValueError(
            "work_dir %s cannot be created: %s is a file; pass a folder "
            "path" % (path, existing)
        )

    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            "work_dir %s cannot be written: no write permission on %s; "
            "pass a folder you can write to" % (path, existing)
        )


def check_rounds(rounds):
    """Raises ``ValueError`` unless ``rounds`` is 1 or 2."""
    if isinstance(rounds, bool) or rounds not in (1, 2):
        raise ValueError(
            "rounds must be 1 (select once) or 2 (select again in the "
            "features of a model fine-tuned on a first selection), got %r"
            % (rounds,)
        )


def check_free(dataset, overwrite, run_key=None, fields=(), tags=(), views=()):
    """Raises ``ValueError`` if a run key, fields, tags or saved views that
    a step would write already exist and ``overwrite`` is False.
    """
    # FiftyOne tells saved views apart by a slug of their name, so another
    # view whose name differs only in case or punctuation blocks ours
    slugs = {fou.to_slug(v): v for v in dataset.list_saved_views()}
    for v in views:
        other = slugs.get(fou.to_slug(v))
        if other is not None and other != v:
            raise ValueError(
                "Saved view '%s' of dataset '%s' blocks the name '%s' "
                "(FiftyOne compares them as '%s'); use another run_key"
                % (other, dataset.name, v, fou.to_slug(v))
            )

    if overwrite:
        return

    if run_key is not None and run_key in dataset.list_runs():
        raise ValueError(
            "Dataset '%s' already has a run '%s'; pass overwrite=True to "
            "replace it, or another run_key" % (dataset.name, run_key)
        )

    taken = ["field " + f for f in fields if dataset.has_sample_field(f)]
    taken += ["tag " + t for t in tags if len(dataset.match_tags(t))]
    taken += [
        "saved view " + v for v in views if v in dataset.list_saved_views()
    ]
    if taken:
        raise ValueError(
            "Dataset '%s' already has %s; pass overwrite=True to replace "
            "them, or another run_key" % (dataset.name, ", ".join(taken))
        )
