"""
The Fashion-MNIST debugging scenario: a FiftyOne dataset with a clean
training set, the original test set, a weakly labelled pool, and a
deployment shift the model never saw.

Tags mark the parts: ``train``, ``test``, ``pool``, ``e_sample`` (the few
labelled images of the shift) and ``debug_heldout`` (the shifted test
images). Clean labels are in ``ground_truth``; the pool has ``weak_label``
(noisy) and ``true_label`` (for reporting only) and every sample a
``shift`` string.
"""

import logging
import os

import numpy as np
from PIL import Image

import fiftyone as fo
import fiftyone.core.utils as fou

from fiftyone_dcd.data import fashion_mnist as fmnist
from fiftyone_dcd.data.noise import NOISE_TYPES, corrupt_labels
from fiftyone_dcd.data.shifts import SHIFTS, apply_shift

logger = logging.getLogger(__name__)

#: shifts whose output depends on the random generator, so their image
#: files depend on the seed
RANDOM_SHIFTS = {"occlusion", "gaussian_noise"}

TAGS = ("train", "test", "pool", "e_sample", "debug_heldout")

#: the Fashion-MNIST split each part is drawn from
SPLITS = {
    "train": "train",
    "test": "test",
    "pool": "train",
    "e_sample": "train",
    "debug_heldout": "test",
}


def scenario_config(
    seed=51,
    num_train=10000,
    pool_size=30000,
    deployment_shift="invert",
    distractor_shifts=("blur", "low_contrast"),
    pool_deployment_fraction=0.1,
    pool_distractor_fraction=0.2,
    noise="symmetric",
    noise_rate=0.4,
    num_e_sample=100,
    num_heldout=None,
):
    """Returns the scenario's settings as a dict, checking them.

    Args:
        seed (51): the seed of every random choice
        num_train (10000): clean training images, from the training split
        pool_size (30000): images in the weakly labelled pool, from the
            rest of the training split
        deployment_shift ("invert"): the shift of the error distribution E
        distractor_shifts (("blur", "low_contrast")): other shifts in the
            pool
        pool_deployment_fraction (0.1): the pool's share of images under
            the deployment shift
        pool_distractor_fraction (0.2): the pool's share of images under
            the distractor shifts, split evenly among them
        noise ("symmetric"): the pool's label noise, one of
            :data:`fiftyone_dcd.data.noise.NOISE_TYPES`
        noise_rate (0.4): the share of pool labels that are wrong
        num_e_sample (100): labelled images of E, from the rest of the
            training split
        num_heldout (None): shifted test images in debug-heldout; None
            takes all 10,000

    Returns:
        a JSON-serializable dict
    """
    for shift in (deployment_shift,) + tuple(distractor_shifts):
        if shift not in SHIFTS:
            raise ValueError(
                "Unknown shift %r; available: %s" % (shift, sorted(SHIFTS))
            )

    if num_train + pool_size + num_e_sample > 60000:
        raise ValueError(
            "num_train + pool_size + num_e_sample = %d exceeds the 60,000 "
            "training images; make them smaller"
            % (num_train + pool_size + num_e_sample)
        )

    if pool_deployment_fraction + pool_distractor_fraction > 1:
        raise ValueError(
            "pool_deployment_fraction + pool_distractor_fraction must be at "
            "most 1"
        )

    if noise not in NOISE_TYPES:
        raise ValueError(
            "Unknown label noise %r; use one of %s" % (noise, NOISE_TYPES)
        )

    if num_e_sample < 1:
        raise ValueError("num_e_sample must be at least 1")

    return {
        "seed": int(seed),
        "num_train": int(num_train),
        "pool_size": int(pool_size),
        "deployment_shift": deployment_shift,
        "distractor_shifts": list(distractor_shifts),
        "pool_deployment_fraction": float(pool_deployment_fraction),
        "pool_distractor_fraction": float(pool_distractor_fraction),
        "noise": noise,
        "noise_rate": float(noise_rate),
        "num_e_sample": int(num_e_sample),
        "num_heldout": None if num_heldout is None else int(num_heldout),
    }


def build_fashion_mnist_scenario(
    name="dcd-fashion-mnist",
    data_dir=None,
    cache_dir=None,
    overwrite=False,
    download=True,
    **kwargs,
):
    """Builds, or loads if already built, the scenario dataset.

    Args:
        name ("dcd-fashion-mnist"): the name of the persistent dataset
        data_dir (None): a folder with Fashion-MNIST's IDX files; searched
            for and fetched when None
        cache_dir (None): where fetched files and PNG images are kept
        overwrite (False): whether to replace an existing dataset ``name``
            built with other settings
        download (True): whether to fetch Fashion-MNIST if not found
        **kwargs: settings for :func:`scenario_config`

    Returns:
        a :class:`fiftyone.core.dataset.Dataset`
    """
    config = scenario_config(**kwargs)
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        if dataset.info.get("dcd_scenario") == config:
            logger.info("Reusing scenario dataset '%s'", name)
            return dataset

        if not overwrite:
            raise ValueError(
                "Dataset '%s' exists with other contents; pass "
                "overwrite=True (--overwrite) to replace it, or another "
                "name" % name
            )

        dataset.delete()

    cache_dir = cache_dir or fmnist.default_cache_dir()
    folder = fmnist.ensure_data_dir(data_dir, cache_dir, download=download)
    train_x, train_y = fmnist.load_split(folder, "train")
    test_x, test_y = fmnist.load_split(folder, "test")
    image_dir = os.path.join(cache_dir, "images", "fashion-mnist")
    classes = fmnist.CLASSES
    parts = scenario_parts(config, train_y, len(test_x), len(classes))
    splits = {"train": (train_x, train_y), "test": (test_x, test_y)}
    groups = [
        # (tag, split, images, labels, indices, shifts)
        (tag, SPLITS[tag])
        + splits[SPLITS[tag]]
        + (parts[tag + "_idx"], parts[tag + "_shift"])
        for tag in TAGS
    ]
    weak = parts["pool_weak"]

    dataset = fo.Dataset(name)
    dataset.default_classes = list(classes)
    samples = []
    for tag, split, images, labels, idx, shifts in groups:
        paths = _write_images(
            image_dir, split, images, idx, shifts, config["seed"], tag
        )
        for j, (i, path) in enumerate(zip(idx, paths)):
            sample = fo.Sample(
                filepath=path,
                tags=[tag],
                shift=str(shifts[j]),
                source_index=int(i),
            )
            label = classes[labels[i]]
            if tag == "pool":
                sample["weak_label"] = fo.Classification(
                    label=classes[weak[j]]
                )
                sample["true_label"] = fo.Classification(label=label)
            else:
                sample["ground_truth"] = fo.Classification(label=label)

            samples.append(sample)

    dataset.add_samples(samples)
    dataset.info["dcd_scenario"] = config
    dataset.save()
    dataset.persistent = True

    return dataset


def scenario_parts(config, train_y, num_test, num_classes):
    """Draws the scenario's parts from the Fashion-MNIST splits.

    Args:
        config: a dict from :func:`scenario_config`
        train_y: the labels of the training split
        num_test: the number of test images
        num_classes: the number of classes

    Returns:
        a dict with, for each tag in :data:`TAGS`, ``<tag>_idx`` (rows of
        its split) and ``<tag>_shift`` (an object array of shift names),
        and ``pool_weak``, the pool's noisy label indices
    """
    rng = np.random.default_rng(config["seed"])
    perm = rng.permutation(len(train_y))
    n_train, n_pool = config["num_train"], config["pool_size"]
    e_end = n_train + n_pool + config["num_e_sample"]
    heldout_idx = np.arange(num_test)
    if config["num_heldout"] is not None:
        heldout_idx = np.sort(
            rng.choice(num_test, config["num_heldout"], replace=False)
        )

    pool_idx = np.sort(perm[n_train : n_train + n_pool])
    pool_shift = _pool_shifts(config, rng)
    weak = corrupt_labels(
        train_y[pool_idx],
        config["noise_rate"],
        num_classes,
        noise=config["noise"],
        rng=rng,
    )
    parts = {
        "train_idx": np.sort(perm[:n_train]),
        "test_idx": np.arange(num_test),
        "pool_idx": pool_idx,
        "e_sample_idx": np.sort(perm[n_train + n_pool : e_end]),
        "debug_heldout_idx": heldout_idx,
        "pool_shift": pool_shift,
        "pool_weak": weak,
    }
    deploy = config["deployment_shift"]
    for tag, shift in (
        ("train", "none"),
        ("test", "none"),
        ("e_sample", deploy),
        ("debug_heldout", deploy),
    ):
        parts[tag + "_shift"] = np.full(
            len(parts[tag + "_idx"]), shift, dtype=object
        )

    return parts


def load_scenario_arrays(config, data_dir=None, cache_dir=None, download=True):
    """The scenario in memory, without a dataset: the same images and
    labels that :func:`build_fashion_mnist_scenario` writes.

    Args:
        config: a dict from :func:`scenario_config`
        data_dir (None): a folder with Fashion-MNIST's IDX files
        cache_dir (None): where fetched files are kept
        download (True): whether to fetch Fashion-MNIST if not found

    Returns:
        a dict mapping each tag in :data:`TAGS` to a dict with ``x`` (uint8
        ``(N, 28, 28)``), ``y`` (true label indices), ``shift`` and
        ``index``; the pool also has ``weak`` (noisy label indices)
    """
    cache_dir = cache_dir or fmnist.default_cache_dir()
    folder = fmnist.ensure_data_dir(data_dir, cache_dir, download=download)
    splits = {
        "train": fmnist.load_split(folder, "train"),
        "test": fmnist.load_split(folder, "test"),
    }
    parts = scenario_parts(
        config, splits["train"][1], len(splits["test"][0]), 10
    )
    out = {}
    for tag in TAGS:
        images, labels = splits[SPLITS[tag]]
        idx, shifts = parts[tag + "_idx"], parts[tag + "_shift"]
        out[tag] = {
            "x": shifted_images(images, idx, shifts, config["seed"], tag),
            "y": labels[idx].astype(np.int64),
            "shift": shifts,
            "index": idx,
        }

    out["pool"]["weak"] = parts["pool_weak"]

    return out


def _pool_shifts(config, rng):
    n = config["pool_size"]
    n_deploy = int(round(config["pool_deployment_fraction"] * n))
    n_distract = int(round(config["pool_distractor_fraction"] * n))
    shifts = np.full(n, "none", dtype=object)
    order = rng.permutation(n)
    shifts[order[:n_deploy]] = config["deployment_shift"]
    distractors = config["distractor_shifts"]
    if distractors:
        chunk = order[n_deploy : n_deploy + n_distract]
        for j, shift in enumerate(distractors):
            shifts[chunk[j :: len(distractors)]] = shift

    return shifts


def shifted_images(images, idx, shifts, seed, tag):
    """Returns ``images[idx]`` with each row under its shift in
    ``shifts``; random shifts draw from a generator seeded by ``seed``, one
    per shift, so a part's images depend only on the scenario.
    """
    out = images[idx].copy()
    for shift in np.unique(shifts):
        if shift == "none":
            continue

        rows = np.flatnonzero(shifts == shift)
        out[rows] = apply_shift(
            shift, images[idx[rows]], np.random.default_rng(seed)
        )

    return out


def _write_images(image_dir, split, images, idx, shifts, seed, tag):
    """Writes the PNG file of each image under its shift, once; returns
    the paths.
    """
    paths = np.empty(len(idx), dtype=object)
    for shift in np.unique(shifts):
        rows = np.flatnonzero(shifts == shift)
        folder = shift
        if shift in RANDOM_SHIFTS:
            folder = "%s-seed%d-%s" % (shift, seed, tag)

        out_dir = os.path.join(image_dir, split, folder)
        os.makedirs(out_dir, exist_ok=True)
        paths[rows] = [
            os.path.join(out_dir, "%05d.png" % idx[r]) for r in rows
        ]

    todo = [r for r, p in enumerate(paths) if not os.path.isfile(p)]
    if todo:
        logger.info("Writing %d %s images (%s)", len(todo), split, tag)
        # the whole part is shifted, so that random shifts do not depend
        # on which files an interrupted run left behind
        src = shifted_images(images, idx, shifts, seed, tag)
        with fou.ProgressBar(total=len(todo)) as pb:
            for r in pb(todo):
                _save_png(src[r], paths[r])

    return list(paths)


def _save_png(img, path):
    # written under a temporary name, so an interrupted run never leaves a
    # truncated file behind under the real one
    tmp = path + ".tmp"
    Image.fromarray(np.ascontiguousarray(img)).save(
        tmp, format="PNG", compress_level=1
    )
    os.replace(tmp, path)
