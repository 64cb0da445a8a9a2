"""Interrupted runs: a process killed with SIGKILL while embedding leaves
only complete vectors, and a rerun computes just the missing ones."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch

import fiftyone_dcd

from conftest import ROOT

TAGS = ["e_sample", "heldout"]  # 120 images, 6 chunks of 20

CHILD = """
TAGS = %r
import sys
import fiftyone as fo
from fiftyone_dcd.embeddings import compute_embeddings
from fiftyone_dcd.models import build_model

ds = fo.load_dataset(sys.argv[1])
net = build_model("resnet10t", num_classes=10, checkpoint=sys.argv[2])
compute_embeddings(ds.match_tags(TAGS), net, "emb", chunk_size=20)
""" % (TAGS,)


def test_kill_during_embedding_then_resume(small_dataset, tmp_path):
    import timm

    ds = small_dataset
    ds.persistent = True  # visible to the child process by name
    ref = timm.create_model("resnet10t", num_classes=10).eval()
    ckpt = str(tmp_path / "r.pt")
    torch.save(ref.state_dict(), ckpt)

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, ds.name, ckpt],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            ds.reload()  # the child adds the field
            written = 0
            if ds.has_sample_field("emb"):
                written = len(ds.exists("emb"))
            if written >= 20:
                break
            assert child.poll() is None, "child ended before being killed"
            time.sleep(0.05)

        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()

    ds.reload()
    view = ds.match_tags(TAGS)
    written = len(ds.exists("emb"))
    assert 20 <= written < len(view), written
    # every stored vector is whole
    assert {len(v) for v in ds.exists("emb").values("emb")} == {
        ref.num_features
    }

    # the rerun computes only what is missing
    n = fiftyone_dcd.embed(
        ds, "resnet10t", "emb", checkpoint=ckpt, classes=list(range(10))
    )
    assert n == len(ds) - written
    assert len(ds.exists("emb")) == len(ds)

    # and the result equals an uninterrupted computation
    fiftyone_dcd.embed(
        ds, "resnet10t", "emb_ref", checkpoint=ckpt, classes=list(range(10))
    )
    a, b = ds.values(["emb", "emb_ref"])
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-5)
    ds.persistent = False


FINETUNE_CHILD = """
import sys
import fiftyone as fo
from fiftyone_dcd.models import build_model
from fiftyone_dcd.steps import finetune

ds = fo.load_dataset(sys.argv[1])
net = build_model("small_cnn", num_classes=10, checkpoint=sys.argv[2])
parts = [(ds.match_tags(["train", "pool"]), "ground_truth_or_weak")]
finetune(net, parts, ds.default_classes, sys.argv[3], epochs=%d, lr=0.05)
"""
EPOCHS = 5


def _finetune_parts(ds):
    return [(ds.match_tags(["train", "pool"]), "ground_truth_or_weak")]


def test_kill_during_finetuning_then_resume(
    small_dataset, trained_checkpoint, tmp_path, caplog
):
    import logging

    from fiftyone_dcd.models import build_model
    from fiftyone_dcd.steps import finetune

    ds = small_dataset
    ds.persistent = True
    # one label field over train (clean) and pool (weak) images
    view = ds.match_tags(["train", "pool"])
    gt, weak = view.values(["ground_truth", "weak_label"])
    view.set_values(
        "ground_truth_or_weak",
        [g if g is not None else w for g, w in zip(gt, weak)],
    )
    work = str(tmp_path / "killed")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            FINETUNE_CHILD % EPOCHS,
            ds.name,
            trained_checkpoint,
            work,
        ],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = os.path.join(work, "epoch_1.pth")
    try:
        deadline = time.time() + 600
        while time.time() < deadline and not os.path.isfile(
            os.path.join(work, "last_checkpoint")
        ):
            assert child.poll() is None, "child ended before being killed"
            time.sleep(0.01)

        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()

    assert os.path.isfile(first)
    assert not os.path.isfile(os.path.join(work, "epoch_%d.pth" % EPOCHS))
    classes = ds.default_classes

    def fresh():
        return build_model(
            "small_cnn", num_classes=10, checkpoint=trained_checkpoint
        )

    with caplog.at_level(logging.INFO, logger="fiftyone_dcd.training"):
        resumed = finetune(
            fresh(),
            _finetune_parts(ds),
            classes,
            work,
            epochs=EPOCHS,
            lr=0.05,
        )
    assert "Resuming training from the last checkpoint" in caplog.text
    caplog.clear()
    reference = finetune(
        fresh(),
        _finetune_parts(ds),
        classes,
        str(tmp_path / "whole"),
        epochs=EPOCHS,
        lr=0.05,
    )
    a, b = resumed.state_dict(), reference.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)

    # the same metrics as the uninterrupted run
    from fiftyone_dcd.evaluation import predict

    test = ds.match_tags("test")
    assert predict(test, resumed, classes) == predict(test, reference, classes)
    ds.persistent = False
