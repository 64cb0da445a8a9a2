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


def run_then_kill(args, ready, timeout=600, poll=0.05):
    """Starts ``python args...`` and kills it with SIGKILL as soon as
    ``ready()`` is true; fails if the child ends first."""
    child = subprocess.Popen(
        [sys.executable] + list(args),
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and not ready():
            assert child.poll() is None, "child ended before being killed"
            time.sleep(poll)

        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()


def test_kill_during_embedding_then_resume(small_dataset, tmp_path):
    import timm

    ds = small_dataset
    ds.persistent = True  # visible to the child process by name
    ref = timm.create_model("resnet10t", num_classes=10).eval()
    ckpt = str(tmp_path / "r.pt")
    torch.save(ref.state_dict(), ckpt)

    def twenty_written():
        ds.reload()  # the child adds the field
        return ds.has_sample_field("emb") and len(ds.exists("emb")) >= 20

    run_then_kill(["-c", CHILD, ds.name, ckpt], twenty_written)

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
    first = os.path.join(work, "epoch_1.pth")
    run_then_kill(
        ["-c", FINETUNE_CHILD % EPOCHS, ds.name, trained_checkpoint, work],
        lambda: os.path.isfile(os.path.join(work, "last_checkpoint")),
        poll=0.01,
    )

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


SELECT_CHILD = """
import sys, time
import fiftyone as fo
import fiftyone_dcd

def stall(*args, **kwargs):
    # killed here: fields and tags written, the view not yet saved
    open(sys.argv[2], "w").close()
    time.sleep(600)

fo.Dataset.save_view = stall
ds = fo.load_dataset(sys.argv[1])
fiftyone_dcd.select_debug_train(
    "pool", ds.match_tags("e_sample"), "vec", k=4, label_strategy="weak"
)
"""


def test_kill_during_selection_leaves_no_orphans(small_dataset, tmp_path):
    from fiftyone_dcd.naming import RunNames

    ds = small_dataset
    ds.persistent = True
    rng = np.random.default_rng(0)
    ds.set_values("vec", [rng.normal(size=6) for _ in range(len(ds))])
    names = RunNames("dcd")
    flag = str(tmp_path / "stalled")
    run_then_kill(
        ["-c", SELECT_CHILD, ds.name, flag],
        lambda: os.path.isfile(flag),
        timeout=300,
    )

    # the killed call left half a selection: fields and tags, no view
    ds.reload()
    assert ds.has_sample_field(names.distance)
    assert len(ds.match_tags(names.debug_train_tag)) > 0
    assert names.debug_train_view not in ds.list_saved_views()

    # the next call removes it first, then selects as if it never was
    view = fiftyone_dcd.select_debug_train(
        "pool", ds.match_tags("e_sample"), "vec", k=4, label_strategy="weak"
    )
    ds.persistent = False
    ids = set(view.values("id"))
    assert set(ds.match_tags(names.debug_train_tag).values("id")) == ids
    assert set(ds.exists(names.distance).values("id")) == ids

    from fiftyone_dcd.selection import select_nearest

    p_ids, P = ds.match_tags("pool").values(["id", "vec"])
    Q = np.array(ds.match_tags("e_sample").values("vec"))
    sel = select_nearest(Q, np.array(P), k=4)
    assert ids == {p_ids[i] for i in sel.pool_index}

    # a clean run leaves no journal record behind
    from fiftyone_dcd import journal

    assert journal.recover(ds, "dcd") is False
