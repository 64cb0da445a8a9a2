"""Label noise, shifts and the IDX reader."""

import gzip

import numpy as np
import pytest

from fiftyone_dcd.data import fashion_mnist as fmnist
from fiftyone_dcd.data.noise import corrupt_labels
from fiftyone_dcd.data.shifts import SHIFTS, apply_shift, register_shift


def test_symmetric_noise_changes_exactly_rate():
    labels = np.arange(1000) % 10
    noisy = corrupt_labels(
        labels, 0.4, 10, "symmetric", np.random.default_rng(0)
    )
    assert (noisy != labels).sum() == 400
    # every wrong label can land anywhere but on itself
    assert len(np.unique(noisy[noisy != labels])) == 10


def test_pair_flip_moves_to_next_class():
    labels = np.arange(1000) % 10
    noisy = corrupt_labels(
        labels, 0.25, 10, "pair_flip", np.random.default_rng(0)
    )
    changed = noisy != labels
    assert changed.sum() == 250
    np.testing.assert_array_equal(noisy[changed], (labels[changed] + 1) % 10)


def test_noise_rejects_unknown_type_and_rate():
    with pytest.raises(ValueError, match="Unknown label noise"):
        corrupt_labels([0, 1], 0.1, 2, "gaussian")
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        corrupt_labels([0, 1], 1.5, 2)


def test_shifts_keep_shape_and_dtype_and_input():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    before = images.copy()
    for name in SHIFTS:
        out = apply_shift(name, images)
        assert out.shape == images.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(images, before)

    np.testing.assert_array_equal(apply_shift("invert", images), 255 - images)
    low = apply_shift("low_contrast", images)
    assert low.max() - low.min() < 0.31 * 256


def test_new_shift_is_a_small_function():
    register_shift("zero", lambda x, rng: np.zeros_like(x))
    out = apply_shift("zero", np.full((2, 4, 4), 7, dtype=np.uint8))
    assert out.sum() == 0
    with pytest.raises(ValueError, match="Unknown shift 'nope'"):
        apply_shift("nope", out)
    del SHIFTS["zero"]


def test_idx_reader(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(
        int(n).to_bytes(4, "big") for n in data.shape
    )
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + data.tobytes())

    np.testing.assert_array_equal(fmnist._read_idx(str(path)), data)


def test_missing_data_dir_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not hold the four"):
        fmnist.ensure_data_dir(str(tmp_path), download=False)
