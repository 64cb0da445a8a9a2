"""Embedding and selection under torchrun with 2 processes (gloo) give the
same vectors and the same selection as one process."""

import os
import re
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

import fiftyone as fo
import fiftyone.core.odm.database as food

import fiftyone_dcd
from fiftyone_dcd.distributed import finetune_distributed
from fiftyone_dcd.embeddings import compute_embeddings, load_embeddings
from fiftyone_dcd.models import SmallCNN
from fiftyone_dcd.selection import knn
from fiftyone_dcd.steps import select_debug_train
from fiftyone_dcd.training import train_classifier

from conftest import build_small_dataset
from dist_jobs import RECIPE, group_norm_cnn

HERE = os.path.dirname(os.path.abspath(__file__))

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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, nproc=2):
    """Runs ``args`` (a script or ``-m module`` and its arguments) on
    ``nproc`` processes with torchrun, on this session's database."""
    host, port = food._client.address
    env = dict(
        os.environ,
        FIFTYONE_DATABASE_URI="mongodb://%s:%d" % (host, port),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_port",
        str(_free_port()),
    ] + list(args)

    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=300
    )


def first_error(stderr):
    # the first traceback, not torchrun's summary of the processes
    start = stderr.find("Traceback")
    return stderr[start : start + 4000] if start >= 0 else stderr[-4000:]


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

    out = str(tmp_path / "selection.npz")
    proc = torchrun(
        [
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
    )
    assert proc.returncode == 0, first_error(proc.stderr)

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


def test_torchrun_finetune_matches_one_process(dataset_200, tmp_path):
    """Two processes, each with half of every batch of 16, end with the
    weights of one process trained on the whole batches."""
    torch.manual_seed(0)
    net = fiftyone_dcd.build_model("small_cnn", num_classes=10)
    compute_embeddings(dataset_200, net, "emb", batch_size=64, device="cpu")
    select_debug_train(
        dataset_200.match_tags("pool"),
        dataset_200.match_tags("e_sample"),
        "emb",
        k=2,
        label_strategy="weak",
        run_key="dist",
    )
    debug_train = dataset_200.load_saved_view("dcd_dist_debug_train")
    # an even number of images, so that no process pads its share
    n_train = 20 - (len(debug_train) % 2)
    dataset_200.save_view(
        "dist_train", dataset_200.match_tags("train").limit(n_train)
    )
    assert (n_train + 20 + len(debug_train)) % 2 == 0
    out = str(tmp_path / "two.pt")
    proc = torchrun(
        [
            os.path.join(HERE, "dist_jobs.py"),
            "finetune",
            dataset_200.name,
            out,
            "16",
        ]
    )
    assert proc.returncode == 0, first_error(proc.stderr)
    two = torch.load(out, weights_only=True)

    def one_process(batch_size):
        net = group_norm_cnn()
        parts = [
            (dataset_200.load_saved_view("dist_train"), "ground_truth"),
            (dataset_200.match_tags("e_sample"), "ground_truth"),
            (debug_train, "dcd_dist_assigned_label"),
        ]
        with tempfile.TemporaryDirectory() as work_dir:
            train_classifier(
                net,
                parts,
                list(dataset_200.default_classes),
                work_dir,
                batch_size=batch_size,
                **RECIPE,
            )
        return net.state_dict()

    one = one_process(16)
    initial = group_norm_cnn().state_dict()
    assert set(two) == set(one)
    for name in one:
        np.testing.assert_allclose(
            two[name].numpy(), one[name].numpy(), rtol=1e-4, atol=1e-5
        )

    # it trained, and on global batches of 16, not 8 per process alone
    moved = max(float((one[n] - initial[n]).abs().max()) for n in one)
    half = one_process(8)
    gap = max(float((half[n] - one[n]).abs().max()) for n in one)
    assert moved > 1e-2 and gap > 1e-3


def test_torchrun_embedding_refuses_vectors_of_another_size(dataset_200):
    """Vectors of another size outside the embedded samples: every
    process stops before writing."""
    pool = dataset_200.match_tags("pool")
    pool.set_values("mixed", [[1.0, 2.0, 3.0]] * len(pool))
    proc = torchrun(
        [
            os.path.join(HERE, "dist_jobs.py"),
            "embed",
            dataset_200.name,
            "e_sample",
            "mixed",
        ]
    )
    assert proc.returncode != 0
    assert "holds 3-dimensional vectors and this model gives 128" in (
        proc.stderr
    ), first_error(proc.stderr)
    dataset_200.reload()
    assert len(dataset_200.exists("mixed")) == len(pool)
    assert len(dataset_200.match_tags("e_sample").exists("mixed")) == 0


@pytest.mark.parametrize(
    "case,message",
    [
        ("no run", "has no debug-train set of run 'nothere'"),
        ("out below a file", "cannot be created"),
        ("label outside classes", "that the model's classes"),
        ("head too small", "The model outputs 3 classes"),
    ],
)
def test_finetune_distributed_refuses_before_starting(
    dataset_200, tmp_path, case, message
):
    """Checked before the process group is joined, so these run here,
    without torchrun, and nothing is trained or written."""
    dataset_200.match_tags("pool").limit(4).set_values(
        "dcd_dist_assigned_label",
        [fo.Classification(label=dataset_200.default_classes[4])] * 4,
    )
    dataset_200.save_view(
        "dcd_dist_debug_train",
        dataset_200.match_tags("pool").limit(4),
        overwrite=True,
    )
    kw = dict(run_key="dist", out=str(tmp_path / "w.pt"))
    net = group_norm_cnn()
    if case == "no run":
        kw["run_key"] = "nothere"
    elif case == "out below a file":
        kw["out"] = os.path.join(__file__, "w.pt")
    elif case == "label outside classes":
        kw["classes"] = list(dataset_200.default_classes)[:9]
    elif case == "head too small":
        net = SmallCNN(num_classes=3)

    with pytest.raises(ValueError, match=re.escape(message)):
        finetune_distributed(dataset_200, net, "train", "e_sample", **kw)

    assert not torch.distributed.is_initialized()
    assert not os.listdir(tmp_path)
