"""Embedding and selection under torchrun with 2 processes (gloo) give the
same vectors and the same selection as one process."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import fiftyone as fo
import fiftyone.core.odm.database as food

import fiftyone_dcd
from fiftyone_dcd.embeddings import compute_embeddings, load_embeddings
from fiftyone_dcd.selection import knn

from conftest import build_small_dataset

K = 10


@pytest.fixture
def dataset_200(fmnist_arrays, small_root):
    images, labels = fmnist_arrays
    dataset = build_small_dataset(
        os.path.join(small_root, "distributed"),
        images,
        labels,
        seed=3,
        n_train=20,
        n_test=20,
        n_pool=140,
        n_e=40,
    )
    dataset.persistent = True  # other processes load it by name
    yield dataset
    dataset.delete()


def test_torchrun_two_processes_match_one(dataset_200, tmp_path):
    assert len(dataset_200) == 220
    torch.manual_seed(0)
    net = fiftyone_dcd.build_model("small_cnn", num_classes=10)
    checkpoint = str(tmp_path / "net.pt")
    torch.save(net.state_dict(), checkpoint)

    compute_embeddings(dataset_200, net, "one", batch_size=32, device="cpu")
    pool_ids, X = load_embeddings(dataset_200.match_tags("pool"), "one")
    query_ids, Q = load_embeddings(dataset_200.match_tags("e_sample"), "one")
    want_d, want_i = knn(Q, X, K)

    host, port = food._client.address
    env = dict(
        os.environ,
        FIFTYONE_DATABASE_URI="mongodb://%s:%d" % (host, port),
        OMP_NUM_THREADS="1",
    )
    out = str(tmp_path / "selection.npz")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "fiftyone_dcd.distributed",
        "--dataset",
        dataset_200.name,
        "--model",
        "small_cnn",
        "--num-classes",
        "10",
        "--checkpoint",
        checkpoint,
        "--embeddings-field",
        "two",
        "--batch-size",
        "16",
        "--pool-tag",
        "pool",
        "--query-tag",
        "e_sample",
        "-k",
        str(K),
        "--out",
        out,
    ]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    dataset_200.reload()
    ids, two = load_embeddings(dataset_200, "two")
    one = np.stack(dataset_200.values("one"))
    assert ids == dataset_200.values("id")
    # every sample was embedded once, by one of the two processes
    assert np.abs(two).sum(axis=1).min() > 0
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-5)

    got = np.load(out)
    assert got["pool_ids"].tolist() == pool_ids
    assert got["query_ids"].tolist() == query_ids
    np.testing.assert_array_equal(got["indices"], want_i)
    np.testing.assert_allclose(got["distances"], want_d, rtol=1e-4)
    assert got["indices"].shape == (20, K)
    # a wrong merge would lose the nearest: each query's first neighbour
    # is the nearest pool vector
    nearest = np.argmin(np.linalg.norm(X[None] - Q[:, None], axis=2), axis=1)
    assert (got["indices"][:, 0] == nearest).all()
    assert isinstance(fo.load_dataset(dataset_200.name), fo.Dataset)
