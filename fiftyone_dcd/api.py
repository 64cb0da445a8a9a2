"""
Data-Centric Debugging in one call: :func:`apply_dcd`, and
:func:`finetune_dcd` for the fine-tune-and-compare half on its own.

Both check all their input before anything is written, and write only the
namespaced fields, tags, saved views and run of their run key (see
:class:`fiftyone_dcd.naming.RunNames`).
"""

import logging
import os
import time

import numpy as np

from fiftyone_dcd import validation as val
from fiftyone_dcd.database import ensure_database
from fiftyone_dcd.embeddings import compute_embeddings, load_embeddings
from fiftyone_dcd.evaluation import format_table, predict
from fiftyone_dcd.models import check_model_spec
from fiftyone_dcd.naming import RunNames, check_run_key
from fiftyone_dcd import journal
from fiftyone_dcd.results import SELECTION_SETTINGS
from fiftyone_dcd.runs import clear_run, load_run, save_run
from fiftyone_dcd.selection import (
    DEFAULT_LABEL_STRATEGY,
    DEFAULT_VOTE_RULE,
    FIRST_ROUND_QUANTILE,
    label_selection,
    labels_name,
    resolve_k_threshold,
    select_nearest,
)
from fiftyone_dcd.steps import (
    _tag_misclassified,
    default_work_dir,
    evaluate,
    finetune,
    get_classes,
    load_model,
    scores,
    select_debug_train,
    split_e_sample,
)
from fiftyone_dcd.training import save_weights

logger = logging.getLogger(__name__)

REPORT_COLUMNS = [
    "method",
    "pool images added",
    "test acc",
    "heldout acc",
    "test change",
    "heldout change",
]


BASELINES = ("e_sample", "random", "all_pool")


def _compare(
    net,
    classes,
    views,
    names,
    label_field,
    weak_label_field,
    baselines,
    recipe,
    say,
    predictions=None,
):
    """Fine-tunes DCD and the baselines and measures them; returns the
    report rows and timings.

    ``views`` holds the ``train``, ``test``, ``heldout``, ``e_sample``,
    ``debug_train`` and ``pool`` views; ``recipe`` the fine-tuning settings
    ``epochs``, ``lr``, ``replay``, ``batch_size``, ``num_workers``,
    ``seed``, ``work_dir`` and ``device``. ``predictions`` are the model
    under debug's ``{id: label}`` on test and heldout, predicted here when
    None.
    """
    train, test, heldout = views["train"], views["test"], views["heldout"]
    e_sample, debug_train = views["e_sample"], views["debug_train"]
    pool = views["pool"]
    epochs, lr = recipe["epochs"], recipe["lr"]
    batch_size, num_workers = recipe["batch_size"], recipe["num_workers"]
    seed, work_dir, device = (
        recipe["seed"],
        recipe["work_dir"],
        recipe["device"],
    )
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
        before = scores(predictions, test, heldout, label_field)

    timings["evaluate"] += time.time() - t

    replayed = _replayed(train, recipe)

    num_selected = len(debug_train)
    base = [(replayed, label_field), (e_sample, label_field)]
    methods = [
        ("DCD", num_selected, base + [(debug_train, names.assigned_label)])
    ]
    if "e_sample" in baselines:
        methods.append(("E_sample only", 0, base))

    if "random" in baselines:
        rand = _random_subset(pool, num_selected, seed)
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

    per_class = {"before debugging": before.pop("per class")}
    rows = [
        dict(method="before debugging", **{"pool images added": 0}, **before)
    ]
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

        per_class[method] = acc.pop("per class")
        rows.append(dict(method=method, **{"pool images added": added}, **acc))

    for row in rows:
        row["test change"] = row["test acc"] - before["test acc"]
        row["heldout change"] = row["heldout acc"] - before["heldout acc"]

    return rows, per_class, timings


def _views(train, test, heldout, e_sample, debug_train, pool):
    """The views :func:`_compare` takes, by name."""
    return dict(
        train=train,
        test=test,
        heldout=heldout,
        e_sample=e_sample,
        debug_train=debug_train,
        pool=pool,
    )


def _recipe(
    epochs, lr, replay, batch_size, num_workers, seed, work_dir, device
):
    """The fine-tuning settings every method of a run gets."""
    return dict(
        epochs=epochs,
        lr=lr,
        replay=replay,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
        work_dir=work_dir,
        device=device,
    )


def _first_round(
    net,
    classes,
    views,
    embeddings_field,
    label_field,
    weak_label_field,
    label_strategy,
    recipe,
    vote_rule=DEFAULT_VOTE_RULE,
):
    """Fine-tunes a copy of ``net`` on the training data, E_sample and the
    pool images within an automatic threshold
    (:data:`fiftyone_dcd.selection.FIRST_ROUND_QUANTILE`) of E_sample in
    ``embeddings_field``, kept by ``label_strategy`` and trained with
    their weak labels (the labels of every strategy but ``"query"``, which
    round 1 replaces by ``"weak"``); nothing is written to the dataset.

    Returns:
        ``(copy, info)``: info has ``num_images``, ``label_strategy``,
        ``label_strategy_auto``, ``vote_rule`` and ``vote_rule_auto``
    """
    train, pool, e_sample = views["train"], views["pool"], views["e_sample"]
    pool_ids, X = load_embeddings(pool, embeddings_field)
    query_ids, Q = load_embeddings(e_sample, embeddings_field)
    chosen = resolve_k_threshold(Q, quantile=FIRST_ROUND_QUANTILE)
    sel = select_nearest(Q, X, chosen["k"], threshold=chosen["threshold"])
    weak = dict(zip(*pool.values(["id", weak_label_field + ".label"])))
    truth = dict(zip(*e_sample.values(["id", label_field + ".label"])))
    _, keep, info = label_selection(
        "weak" if label_strategy == "query" else label_strategy,
        sel,
        Q,
        [truth[i] for i in query_ids],
        X,
        [weak[i] for i in pool_ids],
        vote_rule=vote_rule,
    )
    first = pool.select([pool_ids[i] for i in sel.pool_index[keep]])
    replayed = _replayed(train, recipe)
    logger.info(
        "Round 1: fine-tuning with %d pool images (%s)",
        len(first),
        info["label_strategy_auto"] or info["label_strategy"],
    )
    tuned = finetune(
        net,
        [
            (replayed, label_field),
            (e_sample, label_field),
            (first, weak_label_field),
        ],
        classes,
        os.path.join(recipe["work_dir"], "round1"),
        epochs=recipe["epochs"],
        lr=recipe["lr"],
        batch_size=recipe["batch_size"],
        num_workers=recipe["num_workers"],
        seed=recipe["seed"],
    )
    info = dict(
        num_images=len(first),
        label_strategy=info["label_strategy"],
        label_strategy_auto=info["label_strategy_auto"],
        vote_rule=info["vote_rule"],
        vote_rule_auto=info["vote_rule_auto"],
    )

    return tuned, info


def _description(dataset, names):
    if names.debug_train_view not in dataset.list_saved_views():
        return None

    return dataset.get_saved_view_info(names.debug_train_view).get(
        "description"
    )


def _replayed(train, recipe):
    if recipe["replay"] >= 1:
        return train

    return _random_subset(
        train, int(round(recipe["replay"] * len(train))), recipe["seed"]
    )


def _random_subset(samples, size, seed):
    # drawn from the ids rather than with take(), whose choice depends on
    # per-sample random values set when the samples were added
    ids = sorted(samples.values("id"))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(ids), size=min(size, len(ids)), replace=False)

    return samples.select([ids[i] for i in sorted(chosen)])


def _selection_purity(debug_train, names, true_label_field):
    truth, assigned = debug_train.values(
        [true_label_field + ".label", names.assigned_label + ".label"]
    )

    # over the selected images whose true label is known; None if none is
    known = [(a, b) for a, b in zip(truth, assigned) if a is not None]
    if not known:
        return None

    return float(np.mean([a == b for a, b in known]))


def _strategy_name(requested, used):
    return "auto: %s" % used if requested == "auto" else used


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
    epochs,
    lr,
    batch_size,
    device,
    media=True,
):
    """Resolves and checks the views and settings shared by fine-tuning
    and :func:`apply_dcd`; returns the views, the class list and the
    baselines. ``media=False`` skips opening the image files.
    """
    val.check_dataset(dataset)
    val.check_training_params(epochs, lr, batch_size, device)
    baselines = val.check_baselines(baselines, BASELINES)
    train = val.resolve_view(dataset, train, "training set")
    test = val.resolve_view(dataset, test, "test set")
    val.check_disjoint(train, test, "training set", "test set")
    for view, what in ((train, "training"), (test, "test")):
        val.check_label_field(view, label_field, what)

    classes = get_classes(dataset, classes, train, label_field)
    for view, what in ((train, "training set"), (test, "test set")):
        val.check_classes(view, label_field, classes, what)

    if pool is not None or baselines:
        pool = val.resolve_view(dataset, pool, "pool")
        val.check_disjoint(pool, test, "pool", "test set")
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
            val.check_disjoint(view, train, what, "training set")
            if pool is not None:
                val.check_disjoint(view, pool, what, "pool")

    if e_sample is not None and heldout is not None:
        val.check_disjoint(e_sample, heldout, "E_sample", "debug-heldout")

    for view, what in (
        (train, "training set"),
        (test, "test set"),
        (pool, "pool"),
        (e_sample, "E_sample"),
        (heldout, "debug-heldout set"),
    ):
        if view is not None and media:
            val.check_media(view, what)

    if not (isinstance(replay, (int, float)) and 0 < replay <= 1):
        raise ValueError("replay must be in (0, 1], got %r" % (replay,))

    return train, test, pool, classes, baselines


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
    saved view ``<prefix>_debug_train`` of the run. Fine-tuning a run again
    (``overwrite=True``) on that view keeps what the run's config recorded
    of its selection (:data:`fiftyone_dcd.results.SELECTION_SETTINGS`),
    unless the view was selected again since.

    Returns:
        the result dict described in :func:`apply_dcd`
    """
    ensure_database()
    t_start = time.time()
    dataset = samples._dataset
    names = RunNames(check_run_key(run_key))
    say = progress or (lambda fraction, label: None)
    journal.recover(dataset, run_key)
    heldout = val.resolve_view(dataset, heldout, "debug-heldout set")
    e_sample = val.resolve_view(dataset, e_sample, "E_sample")
    debug_train_arg = debug_train
    debug_train = val.resolve_debug_train(dataset, names, debug_train)
    val.check_work_dir(work_dir)
    train, test, pool, classes, baselines = _check_common(
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
        epochs,
        lr,
        batch_size,
        device,
    )
    val.check_classes(
        debug_train, names.assigned_label, classes, "debug-train set"
    )
    val.check_free(
        dataset, overwrite, run_key=run_key, fields=[names.pred_after]
    )
    net = load_model(model, classes, checkpoint)
    work_dir = work_dir or default_work_dir(dataset, run_key)
    # a failure removes what fine-tuning wrote; the selection stays
    new_run = run_key not in dataset.list_runs()
    # fine-tuning again on the run's own selection keeps its record, if
    # that selection was not replaced since (its view says how it was made)
    earlier = {}
    if not new_run and debug_train_arg in (None, names.debug_train_view):
        recorded = load_run(dataset, run_key)[0]
        if recorded.get("debug_train_description") == _description(
            dataset, names
        ):
            earlier = {
                k: v for k, v in recorded.items() if k in SELECTION_SETTINGS
            }
    with journal.writing(
        dataset, run_key, fields=[names.pred_after], run=new_run
    ):
        rows, per_class, timings = _compare(
            net,
            classes,
            _views(train, test, heldout, e_sample, debug_train, pool),
            names,
            label_field,
            weak_label_field,
            baselines,
            _recipe(
                epochs,
                lr,
                replay,
                batch_size,
                num_workers,
                seed,
                work_dir,
                device,
            ),
            say,
        )
        config = dict(
            earlier,
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
            per_class,
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
    per_class,
    timings,
    debug_train,
    true_label_field,
    config,
    overwrite,
    t_start,
):
    result = {
        "rows": rows,
        "per_class": per_class,
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
    k=None,
    threshold=None,
    budget=None,
    label_strategy=DEFAULT_LABEL_STRATEGY,
    quantile=None,
    dropped_weight=None,
    vote_rule=DEFAULT_VOTE_RULE,
    rounds=2,
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
    dry_run=False,
):
    """Runs Data-Centric Debugging on a dataset and reports the result.

    Embeds the pool and E_sample, selects for each E_sample image its ``k``
    nearest pool images (the debug-train set), fine-tunes the model under
    debug on the training data plus E_sample plus debug-train, and compares
    it, on the test set and on held-out samples of the error distribution,
    with the model before debugging and with baselines fine-tuned the same
    way.

    What it writes, all namespaced by ``run_key`` (``<prefix>`` is
    ``dcd_<run_key>``, or ``dcd`` for the default run key ``dcd``):

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
        k (None): neighbours per E_sample image; None chooses from
            E_sample (see ``threshold``)
        threshold (None): the largest l2 distance selected; with neither
            ``k`` nor ``threshold``, it is chosen from E_sample as the
            ``quantile`` of the E_sample images' distances to their nearest
            other E_sample image, and the run records what was chosen
        budget (None): the most pool images selected
        label_strategy ("auto"): how selected images are labelled:
            ``"weak"`` (their weak label), ``"query"`` (the label of the
            E_sample image that found them), ``"agree"`` (weak labels,
            only where they equal the query's), ``"vote"`` (weak labels,
            only where they equal the vote of the image's nearest pool
            images) or ``"auto"`` (``"vote"``, or ``"agree"`` where its
            signal predicts E_sample's own labels clearly better, leave
            one out; the run records the choice)
        quantile (None): for an automatic threshold, the share of E's own
            images it aims to reach; None is
            :data:`fiftyone_dcd.selection.DEFAULT_QUANTILE`
        dropped_weight (None): with vote labels, also train on the
            selected images whose weak label the vote contradicts, on both
            labels at this weight in ``[0, 0.5]`` (see
            :func:`fiftyone_dcd.steps.select_debug_train`); None is
            the vote rule's default
            (:func:`fiftyone_dcd.selection.resolve_dropped_weight`:
            :data:`fiftyone_dcd.selection.DEFAULT_DROPPED_WEIGHT` under
            the majority vote, none under the noise vote), 0 drops them
        vote_rule ("auto"): how the vote strategy's neighbours vote:
            ``"majority"`` (their most frequent weak label), ``"noise"``
            (the class whose weak-label pattern, estimated on E_sample,
            best explains them, see :mod:`fiftyone_dcd.label_noise`) or
            ``"auto"`` (the noise vote where it predicts E_sample's labels
            clearly better, see
            :func:`fiftyone_dcd.selection.choose_vote_rule`; the run
            records the choice); also in round 1
        rounds (2): 1 selects once, in the features of the model under
            debug (or ``embeddings_model``); 2 first fine-tunes a copy of
            the model on a first selection (the automatic threshold of
            :data:`fiftyone_dcd.selection.FIRST_ROUND_QUANTILE`, images
            kept by ``label_strategy``, weak labels), then selects the
            debug-train set in that copy's features (stored in
            ``<prefix>_refined_embeddings``), where images of the error
            distribution group by class
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
        dry_run (False): only check the inputs, without opening image
            files, reading vectors or loading the model, write nothing and
            return None (forms call this on every edit)

    Returns:
        a dict with ``rows`` (the report table, one dict per method),
        ``per_class`` (``{method: {"test": {class: accuracy}, "heldout":
        ...}}``), ``table`` (the rows as text), ``num_selected``,
        ``timings`` (seconds per step), ``config`` and, with
        ``true_label_field``, ``label_purity``
    """
    ensure_database()
    t_start = time.time()
    dataset = samples._dataset
    names = RunNames(check_run_key(run_key))
    say = progress or (lambda fraction, label: None)
    if not dry_run:
        journal.recover(dataset, run_key)

    # -- every check before anything is written --
    e_sample = val.resolve_view(dataset, e_sample, "E_sample", allow_none=True)
    heldout = val.resolve_view(
        dataset, heldout, "debug-heldout set", allow_none=True
    )
    errors = val.resolve_view(dataset, errors, "error set", allow_none=True)
    if errors is not None and (e_sample is not None or heldout is not None):
        raise ValueError(
            "Give e_sample and heldout, or errors to split into them (with "
            "num_e_sample), not both"
        )

    if errors is None and (e_sample is None or heldout is None):
        raise ValueError(
            "Give both e_sample and heldout, or errors to split into them"
        )

    if errors is not None:
        val.check_label_field(errors, label_field, "error")

    if embeddings_checkpoint is not None and embeddings_model is None:
        raise ValueError(
            "embeddings_checkpoint is given without embeddings_model; name "
            "the architecture it belongs to"
        )

    val.check_work_dir(work_dir)
    train, test, pool, classes, baselines = _check_common(
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
        epochs,
        lr,
        batch_size,
        device,
        media=not dry_run,
    )
    if errors is not None:
        val.check_disjoint(errors, train, "error set", "training set")
        if not dry_run:
            val.check_media(errors, "error set")

        val.e_sample_count(num_e_sample, len(errors))
        val.check_classes(errors, label_field, classes, "error set")
        val.check_disjoint(errors, pool, "error set", "pool")
        val.check_disjoint(errors, test, "error set", "test set")

    val.check_selection_params(
        k,
        threshold,
        budget,
        label_strategy,
        quantile=quantile,
        dropped_weight=dropped_weight,
        vote_rule=vote_rule,
    )
    val.check_rounds(rounds)

    embeddings_field = embeddings_field or names.embeddings
    user_embeddings = embeddings_field != names.embeddings
    if user_embeddings and dry_run:
        val.check_vector_field(dataset, embeddings_field)
        val.check_vectors_present(pool, embeddings_field, "pool")
    elif user_embeddings:
        val.check_vector_field(dataset, embeddings_field)
        # reads every vector, so bad rows stop the run before it writes
        query_source = e_sample if e_sample is not None else errors
        _, P = load_embeddings(pool, embeddings_field)
        _, Q = load_embeddings(query_source, embeddings_field)
        if P.shape[1] != Q.shape[1]:
            raise ValueError(
                "Pool and E vectors in '%s' differ in size (%d vs %d); "
                "compute both with one model"
                % (embeddings_field, P.shape[1], Q.shape[1])
            )

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
    if dry_run:
        check_model_spec(model, checkpoint)
        if embeddings_model is not None:
            check_model_spec(embeddings_model, embeddings_checkpoint)

        return None

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

    # by id, so that clearing this run's tags below cannot change them
    e_sample, heldout, errors = [
        None if v is None else dataset.select(v.values("id"))
        for v in (e_sample, heldout, errors)
    ]

    # a split this run made earlier and now takes as input stays, even if
    # the run fails
    present = set(dataset.distinct("tags"))
    input_tags = [
        t for t in (names.e_sample_tag, names.heldout_tag) if t in present
    ]

    # -- from here on, the dataset changes --
    if overwrite:
        clear_run(
            dataset,
            names,
            keep_fields=[embeddings_field] if user_embeddings else [],
        )

    # a failure (or a kill) from here on removes what this run wrote
    with journal.writing(
        dataset,
        run_key,
        fields=written,
        tags=[t for t in names.tags if t not in input_tags],
        views=[names.debug_train_view],
        run=True,
    ):
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

        recipe = _recipe(
            epochs,
            lr,
            replay,
            batch_size,
            num_workers,
            seed,
            work_dir,
            device,
        )
        select_field = embeddings_field
        first_round = None
        if rounds == 2:
            say(0.2, "Round 1: fine-tuning on a first selection")
            t = time.time()
            refined, first_round = _first_round(
                net,
                classes,
                dict(train=train, pool=pool, e_sample=e_sample),
                embeddings_field,
                label_field,
                weak_label_field,
                label_strategy,
                recipe,
                vote_rule=vote_rule,
            )
            compute_embeddings(
                pool.concat(e_sample),
                refined,
                names.refined_embeddings,
                batch_size=2 * batch_size,
                num_workers=num_workers,
                device=device,
                skip_existing=True,
            )
            select_field = names.refined_embeddings
            timings["first_round"] = time.time() - t

        say(0.25, "Selecting debug-train")
        t = time.time()
        debug_train, chosen = select_debug_train(
            pool,
            e_sample,
            select_field,
            label_field=label_field,
            weak_label_field=weak_label_field,
            k=k,
            threshold=threshold,
            budget=budget,
            label_strategy=label_strategy,
            quantile=quantile,
            dropped_weight=dropped_weight,
            vote_rule=vote_rule,
            run_key=run_key,
            return_info=True,
        )
        timings["select"] = time.time() - t

        rows, per_class, more = _compare(
            net,
            classes,
            _views(train, test, heldout, e_sample, debug_train, pool),
            names,
            label_field,
            weak_label_field,
            baselines,
            recipe,
            say,
            predictions=preds,
        )
        used = labels_name(chosen["label_strategy"], chosen["vote_rule"])
        rows[1]["method"] = "DCD (%s%s%s)" % (
            _strategy_name(label_strategy, used),
            ", 2 rounds" if rounds == 2 else "",
            (
                ", doubted x%g" % chosen["dropped_weight"]
                if chosen["num_weighted"]
                else ""
            ),
        )
        per_class[rows[1]["method"]] = per_class.pop("DCD")
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
            k=chosen["k"],
            threshold=chosen["threshold"],
            chosen_automatically=chosen["auto"],
            budget=budget,
            label_strategy=label_strategy,
            label_strategy_used=chosen["label_strategy"],
            label_strategy_auto=chosen["label_strategy_auto"],
            label_signal_accuracies=chosen["label_signal_accuracies"],
            quantile=quantile,
            dropped_weight=chosen["dropped_weight"],
            vote_rule=vote_rule,
            # no vote ran where auto picked another strategy
            vote_rule_used=(
                chosen["vote_rule"]
                if chosen["label_strategy"] == "vote"
                else None
            ),
            vote_rule_auto=chosen["vote_rule_auto"],
            num_weighted=chosen["num_weighted"],
            rounds=rounds,
            first_round=first_round,
            selected_with=select_field,
            debug_train_description=_description(dataset, names),
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
            per_class,
            timings,
            debug_train,
            true_label_field,
            config,
            overwrite,
            t_start,
        )

    say(1.0, "Done")

    return result
