"""
Finds, fetches and reads Fashion-MNIST's IDX files.

Looks in a given folder, then Debian's ``dataset-fashion-mnist`` package
location, then this package's cache; fetches the Debian package without root
where apt exists, and falls back to torchvision's download.
"""

import glob
import gzip
import logging
import os
import shutil
import subprocess
import tempfile

import numpy as np

logger = logging.getLogger(__name__)

CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def default_cache_dir():
    """The folder where fiftyone-dcd keeps downloads and image files:
    ``$FIFTYONE_DCD_CACHE``, else ``~/.cache/fiftyone-dcd``.
    """
    return os.environ.get(
        "FIFTYONE_DCD_CACHE",
        os.path.join(os.path.expanduser("~"), ".cache", "fiftyone-dcd"),
    )


def _idx_path(folder, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path

    return None


def _has_all(folder):
    return folder is not None and all(
        _idx_path(folder, stem) is not None
        for pair in _FILES.values()
        for stem in pair
    )


def find_data_dir(data_dir=None, cache_dir=None):
    """Returns a folder holding all four Fashion-MNIST IDX files, or None."""
    cache_dir = cache_dir or default_cache_dir()
    candidates = [
        data_dir,
        DEBIAN_DIR,
        os.path.join(cache_dir, "fashion-mnist"),
        os.path.join(cache_dir, "deb") + DEBIAN_DIR,
        os.path.join(cache_dir, "torchvision", "FashionMNIST", "raw"),
    ]
    for folder in candidates:
        if _has_all(folder):
            return folder

    return None


def _fetch_debian(cache_dir):
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return None

    target = os.path.join(cache_dir, "deb")
    with tempfile.TemporaryDirectory() as tmp:
        download = ["apt-get", "download", DEBIAN_PACKAGE]
        proc = subprocess.run(
            download, cwd=tmp, capture_output=True, text=True
        )
        if proc.returncode != 0 and os.geteuid() == 0:
            # a new machine may have no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            proc = subprocess.run(
                download, cwd=tmp, capture_output=True, text=True
            )

        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if proc.returncode != 0 or not debs:
            logger.info("apt-get download failed: %s", proc.stderr.strip())
            return None

        os.makedirs(target, exist_ok=True)
        subprocess.run(["dpkg", "-x", debs[0], target], check=True)

    folder = target + DEBIAN_DIR

    return folder if _has_all(folder) else None


def _fetch_torchvision(cache_dir):
    import torchvision

    root = os.path.join(cache_dir, "torchvision")
    try:
        torchvision.datasets.FashionMNIST(root, train=True, download=True)
        torchvision.datasets.FashionMNIST(root, train=False, download=True)
    except Exception as e:  # any network failure means "not reachable"
        logger.info("torchvision download failed: %s", e)
        return None

    folder = os.path.join(root, "FashionMNIST", "raw")

    return folder if _has_all(folder) else None


def ensure_data_dir(data_dir=None, cache_dir=None, download=True):
    """Returns a folder with the Fashion-MNIST IDX files, fetching them into
    ``cache_dir`` if needed.

    Raises:
        FileNotFoundError: if the files are not found and cannot be fetched
    """
    if data_dir is not None and not _has_all(data_dir):
        raise FileNotFoundError(
            "data_dir=%r does not hold the four Fashion-MNIST IDX files "
            "(train-images-idx3-ubyte[.gz], ...). Point it at the folder "
            "that has them, or omit it to search and download." % data_dir
        )

    cache_dir = cache_dir or default_cache_dir()
    folder = find_data_dir(data_dir, cache_dir)
    if folder is None and download:
        folder = _fetch_debian(cache_dir) or _fetch_torchvision(cache_dir)

    if folder is None:
        raise FileNotFoundError(
            "Fashion-MNIST not found in %s or %s and could not be fetched. "
            "Install the Debian package (`apt-get install %s`), or pass "
            "--data-dir with the IDX files."
            % (DEBIAN_DIR, cache_dir, DEBIAN_PACKAGE)
        )

    return folder


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()

    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError("%s is not an unsigned-byte IDX file" % path)

    shape = [
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    ]
    offset = 4 + 4 * ndim

    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_split(folder, split):
    """Returns ``(images, labels)``: uint8 arrays of shape (N, 28, 28) and
    (N,) for ``split`` in ``("train", "test")``.
    """
    images_stem, labels_stem = _FILES[split]
    images = _read_idx(_idx_path(folder, images_stem))
    labels = _read_idx(_idx_path(folder, labels_stem)).astype(np.int64)

    return images, labels
