"""
The steps of Data-Centric Debugging on FiftyOne datasets, each usable on
its own: train a model, embed, tag errors, split E, select debug-train,
fine-tune, evaluate. :mod:`fiftyone_dcd.api` chains them.

Every function checks its input before it writes anything, and writes only
the namespaced fields, tags and saved views of its run key (see
:class:`fiftyone_dcd.naming.RunNames`).
"""

import copy
import logging
import os

import numpy as np
import torch

import fiftyone as fo

from fiftyone_dcd import journal
from fiftyone_dcd import validation as val
from fiftyone_dcd.data.fashion_mnist import default_cache_dir
from fiftyone_dcd.database import ensure_database
from fiftyone_dcd.embeddings import compute_embeddings, load_embeddings
from fiftyone_dcd.evaluation import accuracy, per_class_accuracy, predict
from fiftyone_dcd.loaders import (
    SECOND_LABEL_ATTR,
    SECOND_WEIGHT_ATTR,
    WEIGHT_ATTR,
)
from fiftyone_dcd.models import build_model
from fiftyone_dcd.naming import RunNames
from fiftyone_dcd.selection import (
    DEFAULT_VOTE_RULE,
    DEFAULT_LABEL_STRATEGY,
    label_selection,
    resolve_dropped_weight,
    resolve_k_threshold,
    select_nearest,
    training_targets,
)
from fiftyone_dcd.training import save_weights, train_classifier

logger = logging.getLogger(__name__)


def get_classes(dataset, classes=None, samples=None, label_field=None):
    """Returns the class list: ``classes``, else the dataset's default
    classes, else the sorted labels of ``samples``' ``label_field``.
    """
    classes = val.check_class_list(classes)
    if classes:
        return classes

    if dataset.default_classes:
        return list(dataset.default_classes)

    return sorted(samples.distinct(label_field + ".label"))


def default_work_dir(dataset, run_key):
    """``<cache>/runs/<dataset>/<run_key>``, the default work folder."""
    return os.path.join(default_cache_dir(), "runs", dataset.name, run_key)


def load_model(model, classes=None, checkpoint=None, pretrained=False):
    """Builds the model under debug (see
    :func:`fiftyone_dcd.models.build_model`) with one output per class.
    """
    net = build_model(
        model,
        num_classes=len(classes) if classes else None,
        checkpoint=checkpoint,
        pretrained=pretrained,
    )
    if classes:
        val.check_head(net, classes)

    return net


def train_model(
    samples,
    label_field="ground_truth",
    model="small_cnn",
    classes=None,
    work_dir=None,
    epochs=3,
    lr=0.05,
    batch_size=128,
    num_workers=0,
    seed=0,
    progress=None,
):
    """Trains a classifier on ``samples`` with an mmengine Runner and saves
    its weights as ``<work_dir>/model.pt``; ``progress(done, total)``
    receives training iterations.

    Returns:
        ``(net, checkpoint_path)``
    """
    val.check_collection(samples, "training set")
    dataset = samples._dataset
    samples = val.resolve_view(dataset, samples, "training set")
    val.check_training_params(epochs, lr, batch_size)
    val.check_work_dir(work_dir)
    val.check_label_field(samples, label_field, "training")
    val.check_media(samples, "training set")
    classes = get_classes(dataset, classes, samples, label_field)
    val.check_classes(samples, label_field, classes, "training set")
    # the seed covers the initial weights too, without touching the
    # caller's random state
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = load_model(model, classes)
    work_dir = work_dir or default_work_dir(dataset, "model")
    train_classifier(
        net,
        [(samples, label_field)],
        classes,
        work_dir,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
        progress=progress,
    )
    path = save_weights(net, os.path.join(work_dir, "model.pt"))

    return net, path


def embed(
    samples,
    model,
    embeddings_field,
    checkpoint=None,
    classes=None,
    batch_size=256,
    num_workers=0,
    device=None,
    overwrite=False,
    progress=None,
    chunk_size=4096,
):
    """Stores penultimate-layer embeddings of ``model`` on ``samples``.

    Vectors are written ``chunk_size`` samples at a time and samples that
    already have one are skipped, so an interrupted run resumes where it
    stopped; ``overwrite=True`` recomputes all.

    Returns:
        the number of samples computed
    """
    ensure_database()
    val.check_collection(samples, "samples to embed")
    val.check_field_name(embeddings_field, "embeddings_field")
    dataset = samples._dataset
    samples = val.resolve_view(dataset, samples, "samples to embed")
    val.check_media(samples, "samples to embed")
    if dataset.has_sample_field(embeddings_field):
        val.check_vector_field(dataset, embeddings_field)

    net = load_model(model, classes, checkpoint)

    return compute_embeddings(
        samples,
        net,
        embeddings_field,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        skip_existing=not overwrite,
        progress=progress,
        chunk_size=chunk_size,
    )


def tag_errors(
    samples,
    model,
    label_field="ground_truth",
    classes=None,
    checkpoint=None,
    run_key="dcd",
    num_e_sample=None,
    seed=0,
    overwrite=False,
    batch_size=256,
    num_workers=0,
    device=None,
    progress=None,
):
    """Predicts ``samples`` with the model under debug, stores the
    predictions in ``<prefix>_pred_before``, tags the misclassified
    samples ``dcd:<run_key>:error`` and, with ``num_e_sample``, splits the
    samples into E_sample and debug-heldout (see :func:`split_e_sample`).

    Args:
        samples: the samples to check, labelled in ``label_field``
        model: the model under debug (see :func:`load_model`)
        label_field ("ground_truth"): the true labels
        classes (None): the model's classes (see :func:`get_classes`)
        checkpoint (None): a state dict file to load into ``model``
        run_key ("dcd"): the run key
        num_e_sample (None): if given, the size of E_sample drawn from
            ``samples``, a count or a fraction
        seed (0): the seed of the split

    Returns:
        a dict with ``num_errors`` (misclassified samples) and
        ``num_e_sample`` (0 without a split)
    """
    ensure_database()
    val.check_collection(samples, "error set")
    dataset = samples._dataset
    names = RunNames(run_key)
    samples = val.resolve_view(dataset, samples, "error set")
    # by id, so that clearing this run's tags cannot change the view
    samples = dataset.select(samples.values("id"))
    split_tags = []
    if num_e_sample is not None:
        val.e_sample_count(num_e_sample, len(samples))
        split_tags = [names.e_sample_tag, names.heldout_tag]

    val.check_media(samples, "error set")
    val.check_label_field(samples, label_field, "error")
    classes = get_classes(dataset, classes, samples, label_field)
    val.check_classes(samples, label_field, classes, "error view")
    net = load_model(model, classes, checkpoint)
    journal.recover(dataset, run_key)
    val.check_free(
        dataset,
        overwrite,
        fields=[names.pred_before],
        tags=[names.error_tag] + split_tags,
    )
    if overwrite:
        dataset.untag_samples([names.error_tag] + split_tags)

    with journal.writing(
        dataset,
        run_key,
        fields=[names.pred_before],
        tags=[names.error_tag] + split_tags,
    ):
        preds = predict(
            samples,
            net,
            classes,
            pred_field=names.pred_before,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            progress=progress,
        )
        num_errors = _tag_misclassified(
            samples, preds, label_field, names.error_tag
        )
        num_split = 0
        if num_e_sample is not None:
            e_sample, _ = split_e_sample(
                samples, num_e_sample, seed=seed, run_key=run_key
            )
            num_split = len(e_sample)

    return {"num_errors": num_errors, "num_e_sample": num_split}


def _tag_misclassified(samples, preds, label_field, tag):
    ids, labels = samples.values(["id", label_field + ".label"])
    wrong = [i for i, l in zip(ids, labels) if preds[i] != l]
    samples._dataset.select(wrong).tag_samples(tag)

    return len(wrong)


def split_e_sample(
    samples, num_e_sample=100, seed=0, run_key="dcd", overwrite=False
):
    """Splits the error samples into E_sample and debug-heldout, tagged
    ``dcd:<run_key>:e_sample`` and ``dcd:<run_key>:heldout``.

    Args:
        samples: the samples of the error distribution E
        num_e_sample (100): the size of E_sample, a count or a fraction in
            (0, 1)
        seed (0): the seed of the split

    Returns:
        ``(e_sample, heldout)`` views
    """
    val.check_collection(samples, "error set")
    dataset = samples._dataset
    names = RunNames(run_key)
    n = len(samples)
    count = val.e_sample_count(num_e_sample, n)
    journal.recover(dataset, run_key)
    val.check_free(
        dataset, overwrite, tags=[names.e_sample_tag, names.heldout_tag]
    )
    if overwrite:
        dataset.untag_samples([names.e_sample_tag, names.heldout_tag])

    ids = np.array(samples.values("id"))
    perm = np.random.default_rng(seed).permutation(n)
    split = [names.e_sample_tag, names.heldout_tag]
    with journal.writing(dataset, run_key, tags=split):
        dataset.select(ids[perm[:count]].tolist()).tag_samples(split[0])
        dataset.select(ids[perm[count:]].tolist()).tag_samples(split[1])

    return (
        dataset.match_tags(names.e_sample_tag),
        dataset.match_tags(names.heldout_tag),
    )


def select_debug_train(
    pool,
    e_sample,
    embeddings_field,
    label_field="ground_truth",
    weak_label_field="weak_label",
    k=None,
    threshold=None,
    budget=None,
    label_strategy=DEFAULT_LABEL_STRATEGY,
    quantile=None,
    dropped_weight=None,
    vote_rule=DEFAULT_VOTE_RULE,
    run_key="dcd",
    overwrite=False,
    return_info=False,
    dry_run=False,
    progress=None,
):
    """Selects the debug-train set: for each E_sample image, its ``k``
    nearest pool images by l2 distance in ``embeddings_field``, or, when
    neither ``k`` nor ``threshold`` is given, the pool images about as near
    to an E_sample image as E_sample's images are to each other (see
    :func:`fiftyone_dcd.selection.resolve_k_threshold`).

    Writes on each selected pool sample its distance, the id of the
    E_sample image that found it, and the label it will be trained with,
    tags it ``dcd:<run_key>:debug_train``, and saves the view
    ``<prefix>_debug_train`` sorted by distance.

    Args:
        pool: the weakly labelled pool F: a view, or a sample tag or saved
            view name of ``e_sample``'s dataset
        e_sample: the labelled samples of the error distribution (a view)
        embeddings_field: a vector field set on both
        label_field ("ground_truth"): E_sample's labels
        weak_label_field ("weak_label"): the pool's weak labels
        k (None): neighbours per E_sample image; chosen from E_sample
            when None
        threshold (None): the largest l2 distance selected; chosen from
            E_sample when neither it nor ``k`` is given
        budget (None): the most images selected in total
        label_strategy ("auto"): ``"weak"``, ``"query"``, ``"agree"``,
            ``"vote"`` or ``"auto"`` (see
            :func:`fiftyone_dcd.selection.assign_labels` and
            :func:`fiftyone_dcd.selection.choose_label_strategy`)
        quantile (None): for an automatic threshold, the share of E's own
            images it aims to reach (default
            :data:`fiftyone_dcd.selection.DEFAULT_QUANTILE`)
        dropped_weight (None): with the ``"vote"`` strategy, the images
            whose weak label the vote contradicts stay, trained on their
            weak label and on the vote's, each with this weight in
            ``[0, 0.5]`` (see
            :func:`fiftyone_dcd.selection.training_targets`); None is
            the vote rule's default (see
            :func:`fiftyone_dcd.selection.resolve_dropped_weight`), 0
            drops them. Stored on the assigned label as ``dcd_weight``,
            ``dcd_second_label`` and ``dcd_second_weight``
        vote_rule ("auto"): how the ``"vote"`` strategy's neighbours
            vote: ``"majority"``, ``"noise"`` (the class whose weak-label
            pattern, estimated on E_sample, best explains them; see
            :mod:`fiftyone_dcd.label_noise`) or ``"auto"`` (see
            :func:`fiftyone_dcd.selection.choose_vote_rule`)
        run_key ("dcd"): the run key
        overwrite (False): whether to replace this run's earlier selection
        return_info (False): whether to also return what was chosen
        dry_run (False): only check the inputs, without reading the
            vectors, and write nothing (forms call this on every edit)
        progress (None): a callable ``progress(done, total)`` of E_sample
            images searched

    Returns:
        None with ``dry_run``; else the debug-train view, or
        ``(view, info)`` with ``return_info``:
        ``info`` has ``k``, ``threshold``, ``auto`` (a sentence, or None
        when nothing was chosen automatically), ``num_selected``,
        ``label_strategy`` (the one used), ``label_strategy_auto`` (why
        ``"auto"`` chose it, or None), ``label_signal_accuracies``,
        ``dropped_weight`` (the weight used, else the one given),
        ``num_weighted`` (the images the vote doubts), ``vote_rule`` (the
        one used), ``vote_rule_auto`` (why ``"auto"`` chose it, or None)
        and ``vote_rule_accuracies``
    """
    ensure_database()
    val.check_collection(e_sample, "E_sample")
    val.check_field_name(embeddings_field, "embeddings_field")
    dataset = e_sample._dataset
    names = RunNames(run_key)
    pool = val.resolve_view(dataset, pool, "pool")
    e_sample = val.resolve_view(dataset, e_sample, "E_sample")
    val.check_selection_params(
        k,
        threshold,
        budget,
        label_strategy,
        quantile=quantile,
        dropped_weight=dropped_weight,
        vote_rule=vote_rule,
    )
    val.check_label_field(e_sample, label_field, "E_sample")
    val.check_label_field(pool, weak_label_field, "pool weak")
    val.check_label_overlap(e_sample, label_field, pool, weak_label_field)
    val.check_disjoint(pool, e_sample, "pool", "E_sample")
    val.check_vector_field(dataset, embeddings_field)
    # what the selection writes
    out = dict(
        fields=[names.distance, names.query_id, names.assigned_label],
        tags=[names.debug_train_tag],
        views=[names.debug_train_view],
    )
    if dry_run:
        val.check_vectors_present(pool, embeddings_field, "pool")
        val.check_vectors_present(e_sample, embeddings_field, "E_sample")
        val.check_free(dataset, overwrite, **out)
        return None

    pool_ids, X = load_embeddings(pool, embeddings_field)
    query_ids, Q = load_embeddings(e_sample, embeddings_field)
    if X.shape[1] != Q.shape[1]:
        raise ValueError(
            "Pool and E_sample vectors in '%s' differ in size (%d vs %d); "
            "compute both with one model"
            % (embeddings_field, X.shape[1], Q.shape[1])
        )

    journal.recover(dataset, run_key)
    val.check_free(dataset, overwrite, **out)

    say = progress or (lambda done, total: None)
    say(0, len(Q))
    chosen = resolve_k_threshold(Q, k, threshold, quantile)
    k, threshold = chosen["k"], chosen["threshold"]
    sel = select_nearest(Q, X, k, threshold=threshold, budget=budget)
    weak = dict(zip(*pool.values(["id", weak_label_field + ".label"])))
    query_label = dict(zip(*e_sample.values(["id", label_field + ".label"])))
    found = [pool_ids[i] for i in sel.pool_index]
    queries = [query_ids[i] for i in sel.query_index]
    q_labels = [query_label[q] for q in query_ids]
    weak_labels = [weak[i] for i in pool_ids]
    labels, keep, strategy_info = label_selection(
        label_strategy, sel, Q, q_labels, X, weak_labels, vote_rule=vote_rule
    )
    label_strategy = strategy_info["label_strategy"]
    signal = strategy_info.pop("signal")
    # only vote labels are weighted; None is the default weight, 0 none
    used_weight = resolve_dropped_weight(
        dropped_weight, label_strategy, strategy_info["vote_rule"]
    )
    weighted = used_weight is not None
    image, target, weight = training_targets(
        label_strategy,
        sel,
        labels,
        keep,
        q_labels,
        X,
        weak_labels,
        dropped_weight=dropped_weight,
        queries=Q,
        vote_rule=strategy_info["vote_rule"],
        signal=signal,
    )
    if not len(image):
        hint = "raise k or the threshold"
        if label_strategy in ("agree", "vote"):
            hint += ", or use label_strategy='weak'"

        raise ValueError(
            "The selection is empty: %d images were found but none was "
            "kept (k=%r, threshold=%r, label_strategy=%r); %s"
            % (len(found), k, threshold, label_strategy, hint)
        )

    if overwrite:
        clear_selection(dataset, names)

    with journal.writing(dataset, run_key, **out):
        keep_idx = np.unique(image)
        ids = [found[j] for j in keep_idx]
        dataset.set_values(
            names.distance,
            {ids[n]: float(sel.distance[j]) for n, j in enumerate(keep_idx)},
            key_field="id",
        )
        dataset.set_values(
            names.query_id,
            {ids[n]: queries[j] for n, j in enumerate(keep_idx)},
            key_field="id",
        )
        dataset.set_values(
            names.assigned_label,
            _assigned_labels(found, image, target, weight, weighted),
            key_field="id",
        )
        dataset.select(ids).tag_samples(names.debug_train_tag)
        view = dataset.match_tags(names.debug_train_tag).sort_by(
            names.distance
        )
        info = dict(
            chosen,
            num_selected=len(ids),
            num_weighted=int(np.sum(weight < 1.0)) // 2,
            # under the vote, the weight used: 0 where the doubted
            # images were dropped; elsewhere as given (unused)
            dropped_weight=(
                used_weight
                if weighted
                else 0.0 if label_strategy == "vote" else dropped_weight
            ),
            **strategy_info,
        )
        dataset.save_view(
            names.debug_train_view,
            view,
            description=_describe_selection(info, label_strategy),
            overwrite=overwrite,
        )

    say(len(Q), len(Q))

    return (view, info) if return_info else view


def _assigned_labels(found, image, target, weight, weighted):
    """``{id: Classification}`` of the selected images from the
    ``(image, label, weight)`` targets, where an image has its first label
    and, if it has two, the second as ``dcd_second_label``; weights are
    stored only for a weighted selection."""
    out = {}
    for j, label, w in zip(image, target, weight):
        sid = found[j]
        if sid not in out:
            c = fo.Classification(label=str(label))
            if weighted:
                c[WEIGHT_ATTR] = float(w)
            out[sid] = c
        else:
            out[sid][SECOND_LABEL_ATTR] = str(label)
            out[sid][SECOND_WEIGHT_ATTR] = float(w)

    return out


def _describe_selection(info, label_strategy):
    text = "DCD debug-train: %d images, k=%d" % (
        info["num_selected"],
        info["k"],
    )
    if info["threshold"] is not None:
        text += ", threshold %.4g" % info["threshold"]

    text += ", %s labels" % label_strategy
    if label_strategy == "vote" and info.get("vote_rule") == "noise":
        text += " (noise vote)"
    if info.get("num_weighted"):
        text += ", %d images the vote doubts at weight %g" % (
            info["num_weighted"],
            info["dropped_weight"],
        )
    elif label_strategy == "vote":
        text += ", the images the vote doubts dropped"
    elif info.get("dropped_weight"):
        text += " (dropped_weight %g unused: it applies to vote labels)" % (
            info["dropped_weight"]
        )
    auto = [
        a
        for a in (
            info["auto"],
            info.get("label_strategy_auto"),
            info.get("vote_rule_auto") if label_strategy == "vote" else None,
        )
        if a
    ]
    if auto:
        text += " (chosen: %s)" % "; ".join(auto)

    return text


def clear_selection(dataset, names):
    """Removes an earlier selection of the run ``names`` describes."""
    dataset.untag_samples(names.debug_train_tag)
    for field in (names.distance, names.query_id, names.assigned_label):
        if dataset.has_sample_field(field):
            dataset.delete_sample_field(field)

    if names.debug_train_view in dataset.list_saved_views():
        dataset.delete_saved_view(names.debug_train_view)


def finetune(
    net,
    parts,
    classes,
    work_dir,
    epochs=2,
    lr=0.01,
    batch_size=128,
    num_workers=0,
    seed=0,
):
    """Fine-tunes a copy of ``net`` on ``parts``, a list of
    ``(samples, label_field)`` pairs; returns the copy.
    """
    net = copy.deepcopy(net)

    return train_classifier(
        net,
        parts,
        classes,
        work_dir,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
    )


def evaluate(
    net,
    classes,
    test,
    heldout,
    label_field,
    batch_size=256,
    num_workers=0,
    device=None,
    pred_field=None,
):
    """Returns ``{"test acc": ..., "heldout acc": ..., "per class": ...}``
    of ``net``, where ``per class`` maps ``"test"`` and ``"heldout"`` to
    ``{class: accuracy}``; stores the predictions in ``pred_field`` when
    given.
    """
    preds = predict(
        test.concat(heldout),
        net,
        classes,
        pred_field=pred_field,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
    )

    return scores(preds, test, heldout, label_field)


def scores(predictions, test, heldout, label_field):
    """Accuracies of the ``{id: label}`` ``predictions`` as
    :func:`evaluate` returns them."""
    return {
        "test acc": accuracy(predictions, test, label_field),
        "heldout acc": accuracy(predictions, heldout, label_field),
        "per class": {
            "test": per_class_accuracy(predictions, test, label_field),
            "heldout": per_class_accuracy(predictions, heldout, label_field),
        },
    }
