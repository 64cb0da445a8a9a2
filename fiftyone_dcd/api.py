"""
Data-Centric Debugging on FiftyOne datasets: each step, and
:func:`apply_dcd`, which runs them all.

Every function checks its input before it writes anything, and writes only
the namespaced fields, tags and saved views of its run key (see
:class:`fiftyone_dcd.naming.RunNames`).
"""

import copy
import logging
import os
import time

import numpy as np

from fiftyone_dcd import validation as val
from fiftyone_dcd.data.fashion_mnist import default_cache_dir
from fiftyone_dcd.database import ensure_database
from fiftyone_dcd.embeddings import compute_embeddings, load_embeddings
from fiftyone_dcd.evaluation import accuracy, format_table, predict
from fiftyone_dcd.models import build_model
from fiftyone_dcd.naming import RunNames, check_run_key
from fiftyone_dcd.runs import clear_run, save_run
from fiftyone_dcd.selection import assign_labels, select_nearest
from fiftyone_dcd.training import save_weights, train_classifier

import fiftyone as fo

logger = logging.getLogger(__name__)

REPORT_COLUMNS = [
    "method",
    "images added",
    "test acc",
    "heldout acc",
    "test change",
    "heldout change",
]


def get_classes(dataset, classes=None, samples=None, label_field=None):
    """Returns the class list: ``classes``, else the dataset's default
    classes, else the sorted labels of ``samples``' ``label_field``.
    """
    if classes:
        return list(classes)

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
    return build_model(
        model,
        num_classes=len(classes) if classes else None,
        checkpoint=checkpoint,
        pretrained=pretrained,
    )


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
):
    """Trains a classifier on ``samples`` with an mmengine Runner and saves
    its weights as ``<work_dir>/model.pt``.

    Returns:
        ``(net, checkpoint_path)``
    """
    dataset = samples._dataset
    val.check_label_field(samples, label_field, "training")
    classes = get_classes(dataset, classes, samples, label_field)
    val.check_classes(samples, label_field, classes, "training set")
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
):
    """Stores penultimate-layer embeddings of ``model`` on ``samples``.

    Samples that already have a vector are skipped, so an interrupted run
    resumes; ``overwrite=True`` recomputes all.

    Returns:
        the number of samples computed
    """
    ensure_database()
    dataset = samples._dataset
    samples = val.resolve_view(dataset, samples, "samples to embed")
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
    )


def tag_errors(
    samples,
    model,
    label_field="ground_truth",
    classes=None,
    checkpoint=None,
    run_key="dcd",
    overwrite=False,
    batch_size=256,
    num_workers=0,
    device=None,
    progress=None,
):
    """Predicts ``samples`` with the model under debug, stores the
    predictions in ``<prefix>_pred_before``, and tags the misclassified
    samples ``dcd:<run_key>:error``.

    Args:
        samples: the samples to check, labelled in ``label_field``
        model: the model under debug (see :func:`load_model`)
        label_field ("ground_truth"): the true labels
        classes (None): the model's classes (see :func:`get_classes`)
        checkpoint (None): a state dict file to load into ``model``
        run_key ("dcd"): the run key

    Returns:
        the number of misclassified samples
    """
    ensure_database()
    dataset = samples._dataset
    names = RunNames(run_key)
    samples = val.resolve_view(dataset, samples, "error set")
    val.check_label_field(samples, label_field, "error")
    classes = get_classes(dataset, classes, samples, label_field)
    val.check_classes(samples, label_field, classes, "error view")
    net = load_model(model, classes, checkpoint)
    val.check_free(
        dataset, overwrite, fields=[names.pred_before], tags=[names.error_tag]
    )
    if overwrite:
        dataset.untag_samples(names.error_tag)

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

    return _tag_misclassified(samples, preds, label_field, names.error_tag)


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
    dataset = samples._dataset
    names = RunNames(run_key)
    n = len(samples)
    count = val.e_sample_count(num_e_sample, n)
    val.check_free(
        dataset, overwrite, tags=[names.e_sample_tag, names.heldout_tag]
    )
    if overwrite:
        dataset.untag_samples([names.e_sample_tag, names.heldout_tag])

    ids = np.array(samples.values("id"))
    perm = np.random.default_rng(seed).permutation(n)
    dataset.select(ids[perm[:count]].tolist()).tag_samples(names.e_sample_tag)
    dataset.select(ids[perm[count:]].tolist()).tag_samples(names.heldout_tag)

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
    k=20,
    threshold=None,
    budget=None,
    label_strategy="weak",
    run_key="dcd",
    overwrite=False,
):
    """Selects the debug-train set: for each E_sample image, its ``k``
    nearest pool images by l2 distance in ``embeddings_field``.

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
        k (20): neighbours per E_sample image
        threshold (None): the largest l2 distance selected
        budget (None): the most images selected in total
        label_strategy ("weak"): ``"weak"``, ``"query"`` or ``"agree"``
            (see :func:`fiftyone_dcd.selection.assign_labels`)
        run_key ("dcd"): the run key
        overwrite (False): whether to replace this run's earlier selection

    Returns:
        the debug-train view
    """
    ensure_database()
    dataset = e_sample._dataset if isinstance(pool, str) else pool._dataset
    names = RunNames(run_key)
    pool = val.resolve_view(dataset, pool, "pool")
    e_sample = val.resolve_view(dataset, e_sample, "E_sample")
    val.check_selection_params(k, threshold, budget, label_strategy)
    val.check_label_field(e_sample, label_field, "E_sample")
    val.check_label_field(pool, weak_label_field, "pool weak")
    val.check_disjoint(pool, e_sample, "pool", "E_sample")
    val.check_vector_field(dataset, embeddings_field)
    pool_ids, X = load_embeddings(pool, embeddings_field)
    query_ids, Q = load_embeddings(e_sample, embeddings_field)
    if X.shape[1] != Q.shape[1]:
        raise ValueError(
            "Pool and E_sample vectors in '%s' differ in size (%d vs %d); "
            "compute both with one model"
            % (embeddings_field, X.shape[1], Q.shape[1])
        )

    out_fields = [names.distance, names.query_id, names.assigned_label]
    val.check_free(
        dataset,
        overwrite,
        fields=out_fields,
        tags=[names.debug_train_tag],
        views=[names.debug_train_view],
    )

    sel = select_nearest(Q, X, k, threshold=threshold, budget=budget)
    weak = dict(zip(*pool.values(["id", weak_label_field + ".label"])))
    query_label = dict(zip(*e_sample.values(["id", label_field + ".label"])))
    chosen = [pool_ids[i] for i in sel.pool_index]
    queries = [query_ids[i] for i in sel.query_index]
    labels, keep = assign_labels(
        label_strategy,
        [weak[i] for i in chosen],
        [query_label[q] for q in queries],
    )
    if not keep.any():
        raise ValueError(
            "The selection is empty: %d images were found but none was "
            "kept (label_strategy=%r, threshold=%r); raise k or the "
            "threshold, or use label_strategy='weak'"
            % (len(chosen), label_strategy, threshold)
        )

    if overwrite:
        clear_selection(dataset, names)

    keep_idx = np.flatnonzero(keep)
    ids = [chosen[j] for j in keep_idx]
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
        {
            ids[n]: fo.Classification(label=str(labels[j]))
            for n, j in enumerate(keep_idx)
        },
        key_field="id",
    )
    dataset.select(ids).tag_samples(names.debug_train_tag)
    view = dataset.match_tags(names.debug_train_tag).sort_by(names.distance)
    dataset.save_view(names.debug_train_view, view, overwrite=overwrite)

    return view


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
    """Returns ``{"test acc": ..., "heldout acc": ...}`` of ``net``,
    storing its predictions in ``pred_field`` when given.
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

    return {
        "test acc": accuracy(preds, test, label_field),
        "heldout acc": accuracy(preds, heldout, label_field),
    }


BASELINES = ("e_sample", "random", "all_pool")


def _compare(
    net,
    classes,
    train,
    test,
    heldout,
    e_sample,
    debug_train,
    names,
    label_field,
    pool,
    weak_label_field,
    baselines,
    epochs,
    lr,
    replay,
    batch_size,
    num_workers,
    seed,
    work_dir,
    device,
    say,
    predictions=None,
):
    """Fine-tunes DCD and the baselines and measures them; returns the
    report rows and timings. ``predictions`` are the model under debug's
    ``{id: label}`` on test and heldout, predicted here when None.
    """
    timings = {"finetune": 0.0, "evaluate": 0.0}
    t = time.time()
    if predictions is None:
        before = evaluate(
            net,
            classes,
            test,
            heldout,
            label_field,
            batch_size=2 * batch_size,
            num_workers=num_workers,
            device=device,
        )
    else:
        before = {
            "test acc": accuracy(predictions, test, label_field),
            "heldout acc": accuracy(predictions, heldout, label_field),
        }

    timings["evaluate"] += time.time() - t

    replayed = train
    if replay < 1:
        replayed = train.take(int(round(replay * len(train))), seed=seed)

    num_selected = len(debug_train)
    base = [(replayed, label_field), (e_sample, label_field)]
    methods = [
        ("DCD", num_selected, base + [(debug_train, names.assigned_label)])
    ]
    if "e_sample" in baselines:
        methods.append(("E_sample only", 0, base))

    if "random" in baselines:
        rand = pool.take(num_selected, seed=seed)
        methods.append(
            (
                "E_sample + random pool",
                num_selected,
                base + [(rand, weak_label_field)],
            )
        )

    if "all_pool" in baselines:
        methods.append(
            (
                "E_sample + all of F",
                len(pool),
                base + [(pool, weak_label_field)],
            )
        )

    rows = [dict(method="before debugging", **{"images added": 0}, **before)]
    for n, (method, added, parts) in enumerate(methods):
        say(
            0.3 + 0.65 * n / len(methods),
            "Fine-tuning %d of %d: %s" % (n + 1, len(methods), method),
        )
        t = time.time()
        tuned = finetune(
            net,
            parts,
            classes,
            os.path.join(work_dir, "method%d" % n),
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        timings["finetune"] += time.time() - t
        t = time.time()
        is_dcd = n == 0
        acc = evaluate(
            tuned,
            classes,
            test,
            heldout,
            label_field,
            batch_size=2 * batch_size,
            num_workers=num_workers,
            device=device,
            pred_field=names.pred_after if is_dcd else None,
        )
        timings["evaluate"] += time.time() - t
        if is_dcd:
            save_weights(tuned, os.path.join(work_dir, "dcd_model.pt"))

        rows.append(dict(method=method, **{"images added": added}, **acc))

    for row in rows:
        row["test change"] = row["test acc"] - before["test acc"]
        row["heldout change"] = row["heldout acc"] - before["heldout acc"]

    return rows, timings


def _selection_purity(debug_train, names, true_label_field):
    truth, assigned = debug_train.values(
        [true_label_field + ".label", names.assigned_label + ".label"]
    )

    return float(np.mean([a == b for a, b in zip(truth, assigned)]))


def _describe(model):
    if model is None or isinstance(model, str):
        return model

    return type(model).__name__


def _check_common(
    dataset,
    train,
    test,
    heldout,
    e_sample,
    pool,
    label_field,
    weak_label_field,
    true_label_field,
    classes,
    baselines,
    replay,
):
    """Resolves and checks the views shared by fine-tuning and
    :func:`apply_dcd`; returns them and the class list.
    """
    val.check_dataset(dataset)
    train = val.resolve_view(dataset, train, "training set")
    test = val.resolve_view(dataset, test, "test set")
    for view, what in ((train, "training"), (test, "test")):
        val.check_label_field(view, label_field, what)

    classes = get_classes(dataset, classes, train, label_field)
    for view, what in ((train, "training set"), (test, "test set")):
        val.check_classes(view, label_field, classes, what)

    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(
            "Unknown baselines %s; use any of %s"
            % (sorted(unknown), BASELINES)
        )

    if pool is not None or baselines:
        pool = val.resolve_view(dataset, pool, "pool")
        val.check_label_field(pool, weak_label_field, "pool weak")
        val.check_classes(pool, weak_label_field, classes, "pool")
        if true_label_field is not None:
            val.check_label_field(
                pool, true_label_field, "pool true", allow_missing=True
            )

    for view, what in ((e_sample, "E_sample"), (heldout, "debug-heldout")):
        if view is not None:
            val.check_label_field(view, label_field, what)
            val.check_classes(view, label_field, classes, what)
            val.check_disjoint(view, test, what, "test set")
            if pool is not None:
                val.check_disjoint(view, pool, what, "pool")

    if e_sample is not None and heldout is not None:
        val.check_disjoint(e_sample, heldout, "E_sample", "debug-heldout")

    if not (isinstance(replay, (int, float)) and 0 < replay <= 1):
        raise ValueError("replay must be in (0, 1], got %r" % (replay,))

    return train, test, pool, classes


def finetune_dcd(
    samples,
    model,
    train,
    test,
    heldout,
    e_sample,
    pool=None,
    debug_train=None,
    label_field="ground_truth",
    weak_label_field="weak_label",
    true_label_field=None,
    classes=None,
    checkpoint=None,
    baselines=BASELINES,
    epochs=2,
    lr=0.01,
    replay=1.0,
    batch_size=128,
    num_workers=0,
    run_key="dcd",
    work_dir=None,
    seed=0,
    overwrite=False,
    device=None,
    progress=None,
):
    """Fine-tunes the model under debug on the training data, E_sample and
    the debug-train set chosen by :func:`select_debug_train`, fine-tunes the
    baselines the same way, and stores the report as the run ``run_key``.

    Arguments are as for :func:`apply_dcd`; ``debug_train`` defaults to the
    saved view ``<prefix>_debug_train`` of the run.

    Returns:
        the result dict described in :func:`apply_dcd`
    """
    ensure_database()
    t_start = time.time()
    dataset = samples._dataset
    names = RunNames(check_run_key(run_key))
    say = progress or (lambda fraction, label: None)
    heldout = val.resolve_view(dataset, heldout, "debug-heldout set")
    e_sample = val.resolve_view(dataset, e_sample, "E_sample")
    debug_train = val.resolve_view(
        dataset, debug_train or names.debug_train_view, "debug-train set"
    )
    val.check_label_field(
        debug_train, names.assigned_label, "debug-train assigned"
    )
    train, test, pool, classes = _check_common(
        dataset,
        train,
        test,
        heldout,
        e_sample,
        pool,
        label_field,
        weak_label_field,
        true_label_field,
        classes,
        baselines,
        replay,
    )
    val.check_classes(
        debug_train, names.assigned_label, classes, "debug-train set"
    )
    val.check_free(
        dataset, overwrite, run_key=run_key, fields=[names.pred_after]
    )
    net = load_model(model, classes, checkpoint)
    work_dir = work_dir or default_work_dir(dataset, run_key)

    rows, timings = _compare(
        net,
        classes,
        train,
        test,
        heldout,
        e_sample,
        debug_train,
        names,
        label_field,
        pool,
        weak_label_field,
        baselines,
        epochs,
        lr,
        replay,
        batch_size,
        num_workers,
        seed,
        work_dir,
        device,
        say,
    )
    config = dict(
        method="dcd",
        model=_describe(model),
        checkpoint=checkpoint,
        label_field=label_field,
        weak_label_field=weak_label_field,
        classes=classes,
        epochs=epochs,
        lr=lr,
        replay=replay,
        seed=seed,
        work_dir=work_dir,
        debug_train_view=names.debug_train_view,
        fields=names.fields,
        tags=names.tags,
    )
    result = _finish(
        dataset,
        names,
        rows,
        timings,
        debug_train,
        true_label_field,
        config,
        overwrite,
        t_start,
    )
    say(1.0, "Done")

    return result


def _finish(
    dataset,
    names,
    rows,
    timings,
    debug_train,
    true_label_field,
    config,
    overwrite,
    t_start,
):
    result = {
        "rows": rows,
        "table": format_table(rows, REPORT_COLUMNS),
        "num_selected": len(debug_train),
        "timings": timings,
        "config": config,
    }
    if true_label_field is not None:
        result["label_purity"] = _selection_purity(
            debug_train, names, true_label_field
        )

    timings["total"] = time.time() - t_start
    save_run(dataset, names.run_key, config, result, overwrite=overwrite)

    return result


def apply_dcd(
    samples,
    model,
    train,
    test,
    pool,
    e_sample=None,
    heldout=None,
    errors=None,
    num_e_sample=100,
    label_field="ground_truth",
    weak_label_field="weak_label",
    true_label_field=None,
    classes=None,
    checkpoint=None,
    embeddings_model=None,
    embeddings_checkpoint=None,
    embeddings_field=None,
    k=20,
    threshold=None,
    budget=None,
    label_strategy="weak",
    epochs=2,
    lr=0.01,
    replay=1.0,
    batch_size=128,
    num_workers=0,
    baselines=BASELINES,
    run_key="dcd",
    work_dir=None,
    seed=0,
    overwrite=False,
    device=None,
    progress=None,
):
    """Runs Data-Centric Debugging on a dataset and reports the result.

    Embeds the pool and E_sample, selects for each E_sample image its ``k``
    nearest pool images (the debug-train set), fine-tunes the model under
    debug on the training data plus E_sample plus debug-train, and compares
    it, on the test set and on held-out samples of the error distribution,
    with the model before debugging and with baselines fine-tuned the same
    way.

    What it writes, all namespaced by ``run_key`` (``<prefix>`` is
    ``run_key`` if that starts with ``dcd``, else ``dcd_<run_key>``):

    -   the run ``run_key`` (``dataset.list_runs()``), with the report;
    -   fields ``<prefix>_embeddings``, ``<prefix>_pred_before``,
        ``<prefix>_pred_after``, and on the selected pool images
        ``<prefix>_distance``, ``<prefix>_query_id`` and
        ``<prefix>_assigned_label``;
    -   tags ``dcd:<run_key>:e_sample``, ``dcd:<run_key>:heldout``,
        ``dcd:<run_key>:error`` (misclassified E samples) and
        ``dcd:<run_key>:debug_train``;
    -   the saved view ``<prefix>_debug_train``, sorted by distance.

    Views may also be given as a sample tag or a saved view name.

    Args:
        samples: the dataset or a view of it
        model: the model under debug: an ``nn.Module``, a timm model name,
            ``"torchvision:<name>"`` or ``"small_cnn"``
        train: the original training data (replayed during fine-tuning)
        test: the original test set
        pool: the weakly labelled pool F
        e_sample (None): the labelled samples of the error distribution E
            to debug with
        heldout (None): held-out samples of E to measure with
        errors (None): samples of E to split into ``e_sample`` and
            ``heldout`` when those are not given
        num_e_sample (100): the size of E_sample taken from ``errors``, a
            count or a fraction
        label_field ("ground_truth"): the ``Classification`` labels of
            train, test and E
        weak_label_field ("weak_label"): the pool's weak labels
        true_label_field (None): the pool's true labels, if known; used only
            to report the share of correct labels in the selection
        classes (None): the model's classes; by default the dataset's
            ``default_classes``, else the labels of ``train``
        checkpoint (None): a state dict file to load into ``model``
        embeddings_model (None): the model whose penultimate layer finds
            neighbours (e.g. ``"vit_small_patch16_224.dino"``, with its
            pretrained hub weights unless ``embeddings_checkpoint`` is
            given); by default the model under debug
        embeddings_checkpoint (None): a state dict for ``embeddings_model``
        embeddings_field (None): an existing vector field of embeddings to
            select with; by default ``<prefix>_embeddings`` is computed
        k (20): neighbours per E_sample image
        threshold (None): the largest l2 distance selected
        budget (None): the most pool images selected
        label_strategy ("weak"): how selected images are labelled:
            ``"weak"`` (their weak label), ``"query"`` (the label of the
            E_sample image that found them) or ``"agree"`` (weak labels,
            only where they equal the query's)
        epochs (2): fine-tuning epochs
        lr (0.01): the fine-tuning learning rate
        replay (1.0): the share of ``train`` replayed while fine-tuning
        batch_size (128): the batch size
        num_workers (0): the number of data loader workers
        baselines (("e_sample", "random", "all_pool")): the baselines to
            fine-tune: E_sample only, E_sample plus as many random pool
            images as DCD selected, E_sample plus the whole pool
        run_key ("dcd"): the key of the run
        work_dir (None): where checkpoints go; by default
            ``~/.cache/fiftyone-dcd/runs/<dataset>/<run_key>``
        seed (0): the seed of every random choice
        overwrite (False): whether to replace an earlier run ``run_key``
            and everything it wrote
        device (None): a torch device; CUDA when present by default
        progress (None): a callable ``progress(fraction, label)``

    Returns:
        a dict with ``rows`` (the report table, one dict per method),
        ``table`` (it as text), ``num_selected``, ``timings`` (seconds per
        step), ``config`` and, with ``true_label_field``, ``label_purity``
    """
    ensure_database()
    t_start = time.time()
    dataset = samples._dataset
    names = RunNames(check_run_key(run_key))
    say = progress or (lambda fraction, label: None)

    # -- every check before anything is written --
    e_sample = val.resolve_view(dataset, e_sample, "E_sample", allow_none=True)
    heldout = val.resolve_view(
        dataset, heldout, "debug-heldout set", allow_none=True
    )
    errors = val.resolve_view(dataset, errors, "error set", allow_none=True)
    if e_sample is None or heldout is None:
        if errors is None:
            raise ValueError(
                "Give e_sample and heldout, or errors to split into them"
            )

        val.check_label_field(errors, label_field, "error")
        e_sample = heldout = None

    train, test, pool, classes = _check_common(
        dataset,
        train,
        test,
        heldout,
        e_sample,
        pool,
        label_field,
        weak_label_field,
        true_label_field,
        classes,
        baselines,
        replay,
    )
    if errors is not None:
        val.e_sample_count(num_e_sample, len(errors))
        val.check_classes(errors, label_field, classes, "error set")
        val.check_disjoint(errors, pool, "error set", "pool")
        val.check_disjoint(errors, test, "error set", "test set")

    val.check_selection_params(k, threshold, budget, label_strategy)
    embeddings_field = embeddings_field or names.embeddings
    user_embeddings = embeddings_field != names.embeddings
    if user_embeddings:
        val.check_vector_field(dataset, embeddings_field)

    written = [
        f for f in names.fields if f != names.embeddings or not user_embeddings
    ]
    val.check_free(
        dataset,
        overwrite,
        run_key=run_key,
        fields=written,
        tags=names.tags,
        views=[names.debug_train_view],
    )

    net = load_model(model, classes, checkpoint)
    embed_net = net
    if embeddings_model is not None:
        # a feature model named without a checkpoint comes with its
        # pretrained weights (timm / torchvision hubs)
        embed_net = load_model(
            embeddings_model,
            None,
            embeddings_checkpoint,
            pretrained=isinstance(embeddings_model, str)
            and embeddings_checkpoint is None,
        )

    # -- from here on, the dataset changes --
    if overwrite:
        clear_run(
            dataset,
            names,
            keep_fields=[embeddings_field] if user_embeddings else [],
        )

    work_dir = work_dir or default_work_dir(dataset, run_key)
    if e_sample is None:
        e_sample, heldout = split_e_sample(
            errors, num_e_sample, seed=seed, run_key=run_key
        )
    else:
        e_sample.tag_samples(names.e_sample_tag)
        heldout.tag_samples(names.heldout_tag)

    timings = {}
    say(0.05, "Embedding pool and E_sample")
    t = time.time()
    compute_embeddings(
        pool.concat(e_sample),
        embed_net,
        embeddings_field,
        batch_size=2 * batch_size,
        num_workers=num_workers,
        device=device,
        skip_existing=True,
    )
    timings["embed"] = time.time() - t

    say(0.15, "Predicting with the model under debug")
    t = time.time()
    preds = predict(
        test.concat(heldout).concat(e_sample),
        net,
        classes,
        pred_field=names.pred_before,
        batch_size=2 * batch_size,
        num_workers=num_workers,
        device=device,
    )
    _tag_misclassified(
        heldout.concat(e_sample), preds, label_field, names.error_tag
    )
    timings["predict"] = time.time() - t

    say(0.25, "Selecting debug-train")
    t = time.time()
    debug_train = select_debug_train(
        pool,
        e_sample,
        embeddings_field,
        label_field=label_field,
        weak_label_field=weak_label_field,
        k=k,
        threshold=threshold,
        budget=budget,
        label_strategy=label_strategy,
        run_key=run_key,
    )
    timings["select"] = time.time() - t

    rows, more = _compare(
        net,
        classes,
        train,
        test,
        heldout,
        e_sample,
        debug_train,
        names,
        label_field,
        pool,
        weak_label_field,
        baselines,
        epochs,
        lr,
        replay,
        batch_size,
        num_workers,
        seed,
        work_dir,
        device,
        say,
        predictions=preds,
    )
    rows[1]["method"] = "DCD (%s)" % label_strategy
    timings.update(more)
    config = dict(
        method="dcd",
        model=_describe(model),
        checkpoint=checkpoint,
        embeddings_model=_describe(embeddings_model),
        embeddings_field=embeddings_field,
        label_field=label_field,
        weak_label_field=weak_label_field,
        classes=classes,
        k=k,
        threshold=threshold,
        budget=budget,
        label_strategy=label_strategy,
        epochs=epochs,
        lr=lr,
        replay=replay,
        seed=seed,
        work_dir=work_dir,
        fields=written,
        tags=names.tags,
        debug_train_view=names.debug_train_view,
    )
    result = _finish(
        dataset,
        names,
        rows,
        timings,
        debug_train,
        true_label_field,
        config,
        overwrite,
        t_start,
    )
    say(1.0, "Done")

    return result
