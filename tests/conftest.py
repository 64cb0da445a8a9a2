"""
Shared fixtures: a real FiftyOne database in a temporary folder, real PNG
files from Fashion-MNIST, and a small model trained for a few steps.
"""

import os
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _start_test_database():
    """Starts a mongod of our own on a free port, over a temporary folder,
    and points FiftyOne at it with FIFTYONE_DATABASE_URI.

    FiftyOne's own database service is found by its command line, not by
    its folder: with a FiftyOne of the user's running (the demo, the App),
    the tests would write into the user's database, and a demo started
    while the tests run would write into theirs. A mongod named by URI is
    shared with nobody. Without a mongod binary, FiftyOne's service over a
    temporary folder is used, so that the database tests report why.
    """
    import atexit
    import importlib.util
    import shutil
    import socket
    import subprocess
    import time

    folder = tempfile.mkdtemp(prefix="dcd-test-db-")
    # fiftyone itself must not be imported before the URI is set
    spec = importlib.util.find_spec("fiftyone")
    mongod = os.path.join(os.path.dirname(spec.origin), "db", "bin", "mongod")
    if not os.access(mongod, os.X_OK):
        os.environ.setdefault("FIFTYONE_DATABASE_DIR", folder)
        return

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    log = os.path.join(folder, "mongod.log")
    proc = subprocess.Popen(
        [mongod, "--dbpath", folder, "--port", str(port)]
        + ["--bind_ip", "127.0.0.1", "--logpath", log],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(stop)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    "The tests' mongod did not start; see %s" % log
                ) from None
            time.sleep(0.2)

    os.environ["FIFTYONE_DATABASE_URI"] = "mongodb://127.0.0.1:%d" % port


# must be set before fiftyone is imported
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_PLUGINS_DIR"] = ROOT
if "FIFTYONE_DATABASE_URI" not in os.environ:
    _start_test_database()

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo

import fiftyone_dcd
from fiftyone_dcd.data import fashion_mnist as fmnist
from fiftyone_dcd.data.shifts import apply_shift

fo.config.show_progress_bars = False

CLASSES = fmnist.CLASSES


@pytest.fixture(scope="session")
def fmnist_arrays():
    folder = fmnist.ensure_data_dir()
    images, labels = fmnist.load_split(folder, "train")

    return images, labels


def write_pngs(folder, images):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = os.path.join(folder, "%05d.png" % i)
        Image.fromarray(img).save(path)
        paths.append(path)

    return paths


def build_small_dataset(
    root,
    images,
    labels,
    seed=0,
    n_train=600,
    n_test=200,
    n_pool=600,
    n_e=120,
    noise_rate=0.3,
):
    """A dataset built by hand (not by the scenario builder): clean train
    and test, a pool with weak labels and a third of it inverted, and
    inverted E samples tagged e_sample (first 20) and heldout.
    """
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(images))[: n_train + n_test + n_pool + n_e]
    parts = np.split(idx, np.cumsum([n_train, n_test, n_pool]))
    train_i, test_i, pool_i, e_i = parts
    pool_imgs = images[pool_i].copy()
    inv = rng.random(n_pool) < 1 / 3
    pool_imgs[inv] = apply_shift("invert", pool_imgs[inv])
    weak = labels[pool_i].copy()
    flip = rng.random(n_pool) < noise_rate
    weak[flip] = (weak[flip] + rng.integers(1, 10, flip.sum())) % 10

    dataset = fo.Dataset()
    dataset.default_classes = list(CLASSES)
    samples = []
    groups = [
        ("train", images[train_i], labels[train_i], None),
        ("test", images[test_i], labels[test_i], None),
        ("pool", pool_imgs, labels[pool_i], weak),
        ("e", apply_shift("invert", images[e_i]), labels[e_i], None),
    ]
    for name, imgs, labs, weak_labels in groups:
        paths = write_pngs(os.path.join(root, name), imgs)
        for j, path in enumerate(paths):
            s = fo.Sample(filepath=path)
            if name == "e":
                s.tags = ["e_sample" if j < 20 else "heldout"]
            else:
                s.tags = [name]

            if weak_labels is None:
                s["ground_truth"] = fo.Classification(label=CLASSES[labs[j]])
            else:
                s["weak_label"] = fo.Classification(
                    label=CLASSES[weak_labels[j]]
                )
                s["true_label"] = fo.Classification(label=CLASSES[labs[j]])

            samples.append(s)

    dataset.add_samples(samples)

    return dataset


@pytest.fixture(scope="session")
def small_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def trained_checkpoint(fmnist_arrays, small_root, tmp_path_factory):
    """A SmallCNN trained for one epoch on a hand-built dataset's train
    tag, saved as a state dict."""
    images, labels = fmnist_arrays
    dataset = build_small_dataset(
        os.path.join(small_root, "ckpt"), images, labels, seed=1
    )
    work_dir = str(tmp_path_factory.mktemp("model"))
    _, path = fiftyone_dcd.train_model(
        dataset.match_tags("train"),
        "ground_truth",
        model="small_cnn",
        work_dir=work_dir,
        epochs=2,
    )
    dataset.delete()

    return path


@pytest.fixture
def small_dataset(fmnist_arrays, small_root, request):
    images, labels = fmnist_arrays
    folder = os.path.join(small_root, request.node.name)
    dataset = build_small_dataset(folder, images, labels)
    yield dataset
    dataset.delete()


def snapshot(dataset):
    """Everything about a dataset that a failed call must leave as it was."""
    dataset.reload()
    schema = {k: str(v) for k, v in dataset.get_field_schema().items()}
    values = {}
    for field in schema:
        # raw documents: as exact as FiftyOne's repr, much faster
        values[field] = [repr(v) for v in dataset.values(field, _raw=True)]

    return {
        "schema": schema,
        "values": values,
        "tags": dataset.count_sample_tags(),
        "saved_views": dataset.list_saved_views(),
        "runs": dataset.list_runs(),
        "info": dict(dataset.info),
    }


def assert_unchanged(dataset, before):
    """Asserts that ``dataset`` matches a :func:`snapshot`, naming the
    first thing that differs."""
    after = snapshot(dataset)
    for key in before:
        if key == "values":
            continue
        assert after[key] == before[key], key

    for field, values in before["values"].items():
        assert after["values"][field] == values, "values of " + field
