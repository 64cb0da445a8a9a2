"""
The Data-Centric Debugging scenario suite on Fashion-MNIST.

Runs every scenario over three seeds: the model under debug, the baselines
a team would try (E_sample only; E_sample + as many random pool images as
DCD selects; E_sample + all of the pool) and DCD with each label strategy,
all fine-tuned with one recipe; then the ablations on the default scenario.
Results are appended to a JSON-lines file as they come, so an interrupted
run resumes where it stopped; ``bench/report.py`` turns them into
``docs/benchmark.md`` and its plots.

The suite works on in-memory arrays rather than FiftyOne datasets: the same
images and labels the demo writes (``load_scenario_arrays``), the same
selection and labelling code, and the same mmengine fine-tuning recipe
(``train_on_loader``); what it leaves out is the dataset plumbing, which
the tests cover. The model under debug is ``SmallCNN(width=16)``, a
quarter of the demo's compute, so that the suite (~350 fine-tunes) fits in
about two hours on two CPU cores.

Usage::

    python bench/dcd_suite.py            # the suite, then the report
    python bench/dcd_suite.py --quick    # one seed, main scenarios only
"""

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fiftyone_dcd.data import fashion_mnist as fmnist
from fiftyone_dcd.data.scenario import load_scenario_arrays, scenario_config
from fiftyone_dcd.data.shifts import SHIFTS
from fiftyone_dcd.models import SmallCNN, forward_both, get_preprocess
from fiftyone_dcd.selection import (
    DEFAULT_DROPPED_WEIGHT,
    DEFAULT_LABEL_STRATEGY,
    DEFAULT_QUANTILE,
    DEFAULT_VOTE_RULE,
    FIRST_ROUND_QUANTILE,
    LABEL_STRATEGIES,
    label_selection,
    resolve_k_threshold,
    select_nearest,
    training_targets,
)
from fiftyone_dcd.training import train_on_loader

logger = logging.getLogger("dcd_suite")

SEEDS = (51, 52, 53)
#: results and the trained models they came from, kept with the code so
#: that the report can be rebuilt and a suite split over several sittings
CACHE_DIR = os.environ.get(
    "DCD_BENCH_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
)
RESULTS = os.path.join(CACHE_DIR, "results.jsonl")

MODEL = dict(width=16, num_features=64)
BASE_RECIPE = dict(epochs=8, lr=0.05)
#: the fine-tuning recipe every method gets, as in the demo
RECIPE = dict(epochs=2, lr=0.01, replay=1.0)
NUM_HELDOUT = 5000

#: the upper-body garments Fashion-MNIST models confuse with each other
UPPER_BODY = (0, 2, 4, 6)

BASELINES = ("E_sample only", "E_sample + random pool", "E_sample + all of F")

#: not a baseline but the ceiling: what a perfect selection with perfect
#: labels would give, found with the hidden shift and true labels
ORACLE = "oracle: every E image of F, true labels"
STRATEGIES = LABEL_STRATEGIES

#: the weight of each label of an image the majority vote doubts
#: (``fiftyone_dcd.selection.soft_targets``), the library's default
SOFT_WEIGHT = DEFAULT_DROPPED_WEIGHT

#: the DCD settings the ablations vary from, and whose selection size the
#: random baseline matches: the library's defaults (a spec without
#: ``dropped_weight`` takes the library's default for the vote rule used)
DEFAULT_DCD = {
    "strategy": DEFAULT_LABEL_STRATEGY,
    "quantile": DEFAULT_QUANTILE,
    "rounds": 2,
    "vote_rule": DEFAULT_VOTE_RULE,
}


def _distractors(deploy):
    others = [s for s in ("blur", "low_contrast", "occlusion") if s != deploy]
    return tuple(others[:2])


def _scenario(name, **kw):
    kw.setdefault("num_heldout", NUM_HELDOUT)
    kw.setdefault(
        "distractor_shifts", _distractors(kw.get("deployment_shift"))
    )
    return {"name": name, "config": kw}


#: (name, scenario settings); the first is the default the ablations use.
#: Each other scenario changes the shift and, together, the noise, its
#: rate, the E_sample size and the pool size, so that seven scenarios
#: cover every value.
SCENARIOS = [
    _scenario(
        "invert, symmetric 40%, E=100",
        deployment_shift="invert",
        noise="symmetric",
        noise_rate=0.4,
        num_e_sample=100,
    ),
    _scenario(
        "blur, pair-flip 20%, E=50",
        deployment_shift="blur",
        noise="pair_flip",
        noise_rate=0.2,
        num_e_sample=50,
    ),
    _scenario(
        "low contrast, class-conditional 40%, E=200",
        deployment_shift="low_contrast",
        noise="class_conditional",
        noise_rate=0.4,
        num_e_sample=200,
    ),
    _scenario(
        "occlusion, symmetric 60%, E=25",
        deployment_shift="occlusion",
        noise="symmetric",
        noise_rate=0.6,
        num_e_sample=25,
    ),
    _scenario(
        "Gaussian noise, symmetric 20%, E=100, pool 45k",
        deployment_shift="gaussian_noise",
        noise="symmetric",
        noise_rate=0.2,
        num_e_sample=100,
        pool_size=45000,
    ),
    _scenario(
        "invert, pair-flip 40%, E=100",
        deployment_shift="invert",
        noise="pair_flip",
        noise_rate=0.4,
        num_e_sample=100,
    ),
    # no synthetic shift: E is what the model gets wrong among upper-body
    # garments; the pool holds no image of a deployment shift
    _scenario(
        "natural: misclassified upper-body garments, symmetric 40%, E=100",
        deployment_shift="invert",
        noise="symmetric",
        noise_rate=0.4,
        num_e_sample=100,
        pool_deployment_fraction=0.0,
        natural=True,
    ),
]


# --------------------------------------------------------------- data


class ArrayDataset(Dataset):
    """Normalized image tensors and labels from uint8 arrays, in the dict
    items the training loop takes; flips at random when ``augment``.
    """

    def __init__(self, x, y, preprocess, augment=False, weights=None):
        self.x = normalize(x, preprocess)
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        if weights is not None:
            # weight * one-hot: cross-entropy with probability targets is
            # the weighted loss
            w = torch.as_tensor(np.asarray(weights, dtype=np.float32))
            self.y = (
                w[:, None]
                * torch.nn.functional.one_hot(
                    self.y, len(fmnist.CLASSES)
                ).float()
            )
        self.augment = augment

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i]
        if self.augment and torch.rand(1).item() < 0.5:
            x = x.flip(-1)

        return {"inputs": x, "labels": self.y[i], "ids": i}


def normalize(x, preprocess):
    mean, std = preprocess["mean"][0], preprocess["std"][0]
    t = torch.from_numpy(np.asarray(x, dtype=np.float32) / 255.0)

    return ((t - mean) / std).unsqueeze(1)


@torch.inference_mode()
def infer(net, x, batch_size=1024):
    """``(features, predictions)`` of ``net`` on uint8 images ``x``."""
    net.eval()
    t = normalize(x, get_preprocess(net))
    feats, preds = [], []
    for i in range(0, len(t), batch_size):
        f, z = forward_both(net, t[i : i + batch_size])
        feats.append(f.numpy())
        preds.append(z.argmax(1).numpy())

    return np.concatenate(feats), np.concatenate(preds)


def train(net, x, y, epochs, lr, seed, weights=None):
    loader = DataLoader(
        ArrayDataset(x, y, get_preprocess(net), augment=True, weights=weights),
        batch_size=128,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    with tempfile.TemporaryDirectory() as work_dir:
        return train_on_loader(
            net,
            loader,
            fmnist.CLASSES,
            work_dir,
            epochs=epochs,
            lr=lr,
            seed=seed,
        )


# ------------------------------------------------------------- models


def _digest(obj):
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def cached_model(key, build):
    """Trains a model once per ``key`` and keeps its weights."""
    path = os.path.join(CACHE_DIR, "models", _digest(key)[:16] + ".pt")
    net = SmallCNN(num_classes=10, **MODEL)
    if os.path.isfile(path):
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()

    torch.manual_seed(key["seed"])
    net = build(SmallCNN(num_classes=10, **MODEL))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(net.state_dict(), path + ".tmp")
    os.replace(path + ".tmp", path)

    return net.eval()


def model_under_debug(data, seed):
    """The model trained on the scenario's clean training images."""
    train_set = data["train"]
    key = {
        "role": "under_debug",
        "seed": seed,
        "train": _digest(train_set["index"].tolist()),
        "model": MODEL,
        "recipe": BASE_RECIPE,
    }

    return cached_model(
        key,
        lambda net: train(
            net, train_set["x"], train_set["y"], seed=seed, **BASE_RECIPE
        ),
    )


def second_model(data, seed):
    """A model of the same shape trained on other clean images: the
    training-split images that no part of the scenario uses.
    """
    x, y = data["unused"]["x"][:10000], data["unused"]["y"][:10000]
    key = {
        "role": "other_data",
        "seed": seed,
        "train": _digest(data["unused"]["index"][:10000].tolist()),
        "model": MODEL,
        "recipe": BASE_RECIPE,
    }

    return cached_model(
        key, lambda net: train(net, x, y, seed=seed + 1000, **BASE_RECIPE)
    )


def untrained_model(seed):
    torch.manual_seed(seed + 2000)

    return SmallCNN(num_classes=10, **MODEL).eval()


# ----------------------------------------------------------- scenarios


def load_scenario(scenario, seed):
    """The scenario's arrays, with ``E`` marking the pool images of the
    error distribution (for purity) and, for the natural scenario, E_sample
    and debug-heldout replaced by what the model gets wrong.
    """
    kw = dict(scenario["config"])
    natural = kw.pop("natural", False)
    config = scenario_config(seed=seed, **kw)
    data = load_scenario_arrays(config)
    data["config"] = config
    train_x, train_y = fmnist.load_split(
        fmnist.ensure_data_dir(None, fmnist.default_cache_dir()), "train"
    )
    used = np.concatenate(
        [data[t]["index"] for t in ("train", "pool", "e_sample")]
    )
    unused = np.setdiff1d(np.arange(len(train_x)), used)
    unused = np.random.default_rng(seed).permutation(unused)
    data["unused"] = {
        "x": train_x[unused],
        "y": train_y[unused],
        "index": unused,
    }
    data["pool"]["in_e"] = data["pool"]["shift"] == config["deployment_shift"]
    if not natural:
        return data

    net = model_under_debug(data, seed)
    # E_sample: the first misclassified upper-body images among those that
    # no other part uses; debug-heldout: the misclassified test ones
    pool_y = data["unused"]["y"]
    _, pred = infer(net, data["unused"]["x"])
    wrong = np.flatnonzero(np.isin(pool_y, UPPER_BODY) & (pred != pool_y))
    pick = wrong[: config["num_e_sample"]]
    data["e_sample"] = {
        "x": data["unused"]["x"][pick],
        "y": pool_y[pick],
        "index": data["unused"]["index"][pick],
    }
    keep = np.ones(len(pool_y), dtype=bool)
    keep[pick] = False
    data["unused"] = {k: v[keep] for k, v in data["unused"].items()}
    _, pred = infer(net, data["test"]["x"])
    test_y = data["test"]["y"]
    held = np.flatnonzero(np.isin(test_y, UPPER_BODY) & (pred != test_y))
    data["debug_heldout"] = {
        "x": data["test"]["x"][held],
        "y": test_y[held],
        "index": held,
    }
    data["pool"]["in_e"] = np.isin(data["pool"]["y"], UPPER_BODY)

    return data


# ------------------------------------------------------------- methods


def select(data, feats, k=None, threshold=None, quantile=None, budget=None):
    """Runs DCD's selection on precomputed features, choosing k and the
    threshold as the library does; returns the selection and the choice.
    """
    chosen = resolve_k_threshold(feats["e_sample"], k, threshold, quantile)
    sel = select_nearest(
        feats["e_sample"],
        feats["pool"],
        k=chosen["k"],
        threshold=chosen["threshold"],
        budget=budget,
    )

    return sel, chosen


def added_images(
    data, sel, strategy, feats, dropped_weight=None, vote_rule="majority"
):
    """The pool rows DCD adds and their labels under ``strategy``, as the
    library labels them; purity is measured with the hidden true labels.

    With ``dropped_weight``, the images the vote drops stay at that weight
    (see :func:`fiftyone_dcd.selection.training_targets`): rows may then
    repeat, the weights are returned in ``purity["weights"]`` (None when
    all are 1) and label purity is weighted.
    """
    pool = data["pool"]
    labels, keep, info = label_selection(
        strategy,
        sel,
        feats["e_sample"],
        data["e_sample"]["y"],
        feats["pool"],
        pool["weak"],
        vote_rule=vote_rule,
    )
    image, labels, weights = training_targets(
        info["label_strategy"],
        sel,
        labels,
        keep,
        data["e_sample"]["y"],
        feats["pool"],
        pool["weak"],
        dropped_weight=dropped_weight,
        queries=feats["e_sample"],
        vote_rule=info["vote_rule"],
        signal=info["signal"],
    )
    rows = sel.pool_index[image]
    if np.all(weights == 1.0):
        weights = None  # plain labels: the same loss, without soft targets

    labels = np.asarray(labels, dtype=np.int64)
    ok = labels == pool["y"][rows]
    purity = {
        "num_added": int(len(np.unique(rows))),
        "shift_purity": _mean(pool["in_e"][np.unique(rows)]),
        "label_purity": (
            _mean(ok) if weights is None else _weighted_mean(ok, weights)
        ),
        "label_strategy": info["label_strategy"],
        "label_signal_accuracies": info["label_signal_accuracies"],
        "vote_rule": info["vote_rule"],
        "vote_rule_accuracies": info["vote_rule_accuracies"],
        "weights": weights,
    }

    return rows, labels, purity


def _weighted_mean(x, w):
    return float(np.sum(w * x) / np.sum(w)) if np.sum(w) else float("nan")


def _mean(x):
    return float(np.mean(x)) if len(x) else float("nan")


def finetune_and_score(net, data, rows, labels, recipe, seed, weights=None):
    """Fine-tunes a copy of ``net`` on the replayed training images,
    E_sample and the given pool rows (with ``weights``, each pool row's
    loss weight); returns accuracies and times.
    """
    import copy

    train_set, e = data["train"], data["e_sample"]
    n_replay = int(round(recipe["replay"] * len(train_set["x"])))
    replay = np.sort(
        np.random.default_rng(seed).permutation(len(train_set["x"]))[:n_replay]
    )
    x = np.concatenate(
        [train_set["x"][replay], e["x"], data["pool"]["x"][rows]]
    )
    y = np.concatenate([train_set["y"][replay], e["y"], labels])
    if weights is not None:
        weights = np.concatenate([np.ones(len(y) - len(rows)), weights])
    t0 = time.time()
    tuned = train(
        copy.deepcopy(net),
        x,
        y,
        epochs=recipe["epochs"],
        lr=recipe["lr"],
        seed=seed,
        weights=weights,
    )
    t1 = time.time()
    scores = score(tuned, data)
    scores.update(finetune_s=t1 - t0, eval_s=time.time() - t1)

    return scores


def score(net, data):
    out = {}
    for tag, name in (("test", "test_acc"), ("debug_heldout", "heldout_acc")):
        _, pred = infer(net, data[tag]["x"])
        out[name] = _mean(pred == data[tag]["y"])

    return out


# --------------------------------------------------------------- runner


class Results:
    """Results keyed by what produced them, appended to a JSON-lines file
    as they come."""

    def __init__(self, path):
        self.path = path
        self.rows = {}
        if os.path.isfile(path):
            with open(path) as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        # the last line of a run killed while writing
                        continue

                    self.rows[row["key"]] = row

    def get(self, key):
        return self.rows.get(_digest(key))

    def put(self, key, row):
        row = dict(row, key=_digest(key), **{"spec": key})
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

        self.rows[row["key"]] = row

        return row


#: the version of the library's automatic label choices (the ``"auto"``
#: strategy and vote rule, ``fiftyone_dcd.selection.choose_label_strategy``
#: and ``choose_vote_rule``): part of the key of every result that relies
#: on them, so that a change of the rules runs exactly those again
AUTO_VERSION = 2


def _uses_auto(spec):
    spec = spec.get("match", spec)
    return spec.get("strategy") == "auto" or spec.get("vote_rule") == "auto"


def spec_key(spec, scenario, seed, group):
    key = dict(
        spec, scenario=scenario["name"], seed=seed, group=group, model=MODEL
    )
    if _uses_auto(spec):
        key["auto_version"] = AUTO_VERSION

    return key


def run_methods(results, scenario, seed, methods, group):
    """Runs each method spec not yet in ``results`` on one scenario and
    seed. A spec is a dict with ``method`` (a baseline, ``"before"`` or
    ``"DCD"``) and its settings: ``strategy``, ``quantile`` or ``select``
    (k, threshold, budget), ``rounds``, ``features``, ``recipe``; the
    random baseline has ``match``, the DCD settings whose selection size it
    takes.
    """
    todo = [
        (spec, spec_key(spec, scenario, seed, group))
        for spec in methods
        if results.get(spec_key(spec, scenario, seed, group)) is None
    ]
    if not todo:
        return

    data = load_scenario(scenario, seed)
    net = model_under_debug(data, seed)
    ctx = {"data": data, "net": net, "seed": seed, "feats": {}, "nets": {}}
    for spec, key in todo:
        t0 = time.time()
        method = spec["method"]
        recipe = dict(RECIPE, **spec.get("recipe", {}))
        if method == "before":
            row = score(net, data)
            row["num_added"] = 0
            results.put(key, row)
            continue

        extra, weights = {}, None
        if method == "DCD":
            sel, rows, labels, extra = dcd_selection(ctx, spec)
            weights = extra.pop("weights")
            if "k" in spec.get("select", {}):
                # per image, for the purity-vs-distance plot of the k
                # ablation
                extra["distance"] = np.round(sel.distance, 5).tolist()
                extra["selected_in_e"] = data["pool"]["in_e"][
                    sel.pool_index
                ].tolist()
                extra["selected_label_ok"] = (
                    data["pool"]["weak"][sel.pool_index]
                    == data["pool"]["y"][sel.pool_index]
                ).tolist()
        elif method == "E_sample + random pool":
            # as many random pool images as DCD adds, with weak labels
            _, dcd_rows, _, _ = dcd_selection(ctx, spec["match"])
            rng = np.random.default_rng(seed + 7)
            rows = np.sort(
                rng.choice(
                    len(data["pool"]["x"]),
                    len(np.unique(dcd_rows)),
                    replace=False,
                )
            )
            labels = data["pool"]["weak"][rows]
            extra.update(
                num_added=int(len(rows)),
                shift_purity=_mean(data["pool"]["in_e"][rows]),
                label_purity=_mean(labels == data["pool"]["y"][rows]),
            )
        elif method == "E_sample + all of F":
            rows = np.arange(len(data["pool"]["x"]))
            labels = data["pool"]["weak"]
            extra["num_added"] = int(len(rows))
        elif method == ORACLE:
            rows = np.flatnonzero(data["pool"]["in_e"])
            labels = data["pool"]["y"][rows]
            extra.update(
                num_added=int(len(rows)), shift_purity=1.0, label_purity=1.0
            )
        elif method == "E_sample only":
            rows, labels = np.zeros(0, np.int64), np.zeros(0, np.int64)
            extra["num_added"] = 0
        else:
            raise ValueError("Unknown method %r" % method)

        row = finetune_and_score(
            net, data, rows, labels, recipe, seed, weights=weights
        )
        row.update(extra)
        row["total_s"] = time.time() - t0
        results.put(key, row)
        logger.info(
            "%s | seed %d | %s: test %.2f heldout %.2f (+%d images) %.0fs",
            scenario["name"],
            seed,
            _label(spec),
            100 * row["test_acc"],
            100 * row["heldout_acc"],
            row.get("num_added", 0),
            row["total_s"],
        )


def _features(ctx, name, net=None):
    """Pool and E_sample features of a feature model, computed once."""
    if name not in ctx["feats"]:
        data, seed = ctx["data"], ctx["seed"]
        if net is None:
            net = {
                "under_debug": lambda: ctx["net"],
                "other_data": lambda: second_model(data, seed),
                "untrained": lambda: untrained_model(seed),
            }[name]()
        t = time.time()
        ctx["feats"][name] = {
            tag: infer(net, data[tag]["x"])[0] for tag in ("pool", "e_sample")
        }
        ctx["feats"][name]["seconds"] = time.time() - t

    return ctx["feats"][name]


def dcd_selection(ctx, spec):
    """DCD's selection and labels for a spec; with ``rounds=2``, the second
    round selects in the features of the model fine-tuned on the first
    round's selection, as the library does (the first round's threshold,
    the spec's label strategy with ``"query"`` replaced by ``"weak"``,
    weak labels).

    Returns:
        ``(selection, pool rows added, their labels, details)``
    """
    data, seed = ctx["data"], ctx["seed"]
    fname = spec.get("features", "under_debug")
    feats = _features(ctx, fname)
    select_kw = dict(spec.get("select", {}))
    if "quantile" in spec:
        select_kw["quantile"] = spec["quantile"]

    extra = {"embed_s": feats["seconds"]}
    if spec.get("rounds", 1) == 2:
        strategy1 = spec.get("strategy", "weak")
        strategy1 = "weak" if strategy1 == "query" else strategy1
        vote_rule = spec.get("vote_rule", DEFAULT_VOTE_RULE)
        first = ("round1", fname, strategy1, vote_rule)
        if first not in ctx["nets"]:
            t = time.time()
            sel1, _ = select(data, feats, quantile=FIRST_ROUND_QUANTILE)
            # round 1 trains on the images the filter keeps, as the library
            rows1, _, _ = added_images(
                data,
                sel1,
                strategy1,
                feats,
                dropped_weight=0,
                vote_rule=vote_rule,
            )
            labels1 = data["pool"]["weak"][rows1]
            x = np.concatenate(
                [
                    data["train"]["x"],
                    data["e_sample"]["x"],
                    data["pool"]["x"][rows1],
                ]
            )
            y = np.concatenate(
                [data["train"]["y"], data["e_sample"]["y"], labels1]
            )
            import copy

            ctx["nets"][first] = train(
                copy.deepcopy(ctx["net"]),
                x,
                y,
                epochs=RECIPE["epochs"],
                lr=RECIPE["lr"],
                seed=seed,
            )
            ctx["nets"][first + ("seconds",)] = time.time() - t

        feats = _features(
            ctx, "round2:%s:%s:%s" % first[1:], ctx["nets"][first]
        )
        extra["round1_s"] = ctx["nets"][first + ("seconds",)]
        extra["embed_s"] += feats["seconds"]

    t = time.time()
    sel, chosen = select(data, feats, **select_kw)
    extra["select_s"] = time.time() - t
    extra["chosen"] = chosen
    rows, labels, purity = added_images(
        data,
        sel,
        spec.get("strategy", "weak"),
        feats,
        # a spec without the key takes the library's default
        dropped_weight=spec.get("dropped_weight"),
        vote_rule=spec.get("vote_rule", DEFAULT_VOTE_RULE),
    )
    extra.update(purity)

    return sel, rows, labels, extra


def _label(spec):
    parts = [spec["method"]]
    for k in (
        "strategy",
        "quantile",
        "rounds",
        "features",
        "dropped_weight",
        "vote_rule",
    ):
        if k in spec:
            parts.append("%s=%s" % (k, spec[k]))
    for k in ("select", "recipe"):
        if spec.get(k):
            parts.append(json.dumps(spec[k], sort_keys=True))
    return " ".join(parts)


def _dcd(**over):
    """A DCD spec: :data:`DEFAULT_DCD` with ``over``; a setting given as
    None is left out (no ``dropped_weight``: the library's default), and
    so are the vote's settings under strategies that do not vote."""
    spec = dict({"method": "DCD"}, **dict(DEFAULT_DCD, **over))
    if spec.get("strategy") not in ("vote", "auto"):
        spec.pop("vote_rule", None)
        spec.pop("dropped_weight", None)
    return {k: v for k, v in spec.items() if v is not None}


def _settings(spec):
    return {k: v for k, v in spec.items() if k != "method"}


#: the default without the images the vote doubts: the filter alone
FILTER_ONLY = _dcd(dropped_weight=0)

#: the default with each vote rule forced, each with its default weight
#: of doubted images (0.3 under the majority vote, none under the noise
#: vote, ``fiftyone_dcd.selection.resolve_dropped_weight``)
MAJORITY_VOTE = _dcd(vote_rule="majority")
NOISE_VOTE = _dcd(vote_rule="noise")

#: the two-round variants, each against a random pool of as many images
VARIANTS = (FILTER_ONLY, MAJORITY_VOTE, NOISE_VOTE)


def main_methods():
    return (
        [{"method": "before"}]
        # each strategy in one round, as a filter; two rounds for the
        # default and its variants
        + [_dcd(strategy=s, rounds=1, dropped_weight=0) for s in STRATEGIES]
        + [_dcd()]
        + [
            {"method": "E_sample only"},
            {"method": "E_sample + random pool", "match": _dcd()},
            {"method": "E_sample + all of F"},
            {"method": ORACLE},
        ]
        + [
            spec
            for variant in VARIANTS
            for spec in (
                variant,
                {
                    "method": "E_sample + random pool",
                    "match": _settings(variant),
                },
            )
        ]
    )


def ablation_methods():
    """Method specs of the ablations, all on the default scenario; each
    changes one setting of :data:`DEFAULT_DCD`."""
    # near the paper
    out = [_dcd(rounds=1, strategy="weak", quantile=0.5)]
    for f in ("other_data", "untrained"):
        out.append(_dcd(features=f))
    for k in (10, 20, 50, 100):
        out.append(_dcd(select={"k": k}))
    for q in (0.5, 0.65, 0.8, 1.0):
        out.append(_dcd(quantile=q))
    for b in (250, 500, 1000):
        out.append(_dcd(select={"budget": b}))
    for r in ({"epochs": 1}, {"epochs": 4}, {"lr": 0.03}, {"replay": 0.3}):
        out.append(_dcd(recipe=r))
        out.append(
            {
                "method": "E_sample + random pool",
                "match": DEFAULT_DCD,
                "recipe": r,
            }
        )

    return out


def e_size_scenarios():
    base = SCENARIOS[0]
    return [
        _scenario("E size %d" % n, **dict(base["config"], num_e_sample=n))
        for n in (25, 50, 200)
    ]


E_SIZE_METHODS = [
    {"method": "before"},
    _dcd(),
    {"method": "E_sample only"},
    {"method": "E_sample + random pool", "match": DEFAULT_DCD},
]


def suite(seeds=SEEDS, quick=False):
    """``(group, scenario, seed, methods)`` of every run, in order: the
    main scenarios seed by seed, then the ablations."""
    out = [
        (("main", sc, seed, main_methods()))
        for seed in seeds
        for sc in SCENARIOS
    ]
    if not quick:
        for seed in seeds:
            out.append(("ablation", SCENARIOS[0], seed, ablation_methods()))
            for sc in e_size_scenarios():
                out.append(("e_size", sc, seed, E_SIZE_METHODS))

    return out


def run_suite(seeds=SEEDS, quick=False, results_path=RESULTS):
    results = Results(results_path)
    t0 = time.time()
    for group, scenario, seed, methods in suite(seeds, quick):
        run_methods(results, scenario, seed, methods, group)

    logger.info("Suite done in %.0fs", time.time() - t0)

    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one seed, the main scenarios only",
    )
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(os.cpu_count() or 1)
    assert set(s["config"]["deployment_shift"] for s in SCENARIOS) <= set(
        SHIFTS
    )
    if not args.report_only:
        run_suite(SEEDS[:1] if args.quick else SEEDS, args.quick, args.results)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import report

    report.write_report(
        args.results, args.out, SEEDS[:1] if args.quick else SEEDS, args.quick
    )


if __name__ == "__main__":
    main()
