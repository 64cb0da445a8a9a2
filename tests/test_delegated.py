"""The long operators run as FiftyOne delegated operations: queued with
``request_delegation=True``, executed by FiftyOne's own service
(``fiftyone delegated launch`` in a subprocess on the same database), with
their results, vectors and progress checked against an immediate run.

In FiftyOne 1.22.1 a delegated operation keeps only its latest progress
update: ``ExecutionContext.set_progress`` calls
``DelegatedOperationService.set_progress``, whose repository ``$set``s
``status = {progress, label, updated_at}`` on the operation's document, and
``set_completed`` leaves ``status`` as it was.
"""

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import fiftyone.operators as foo
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionRunState

import fiftyone_dcd
from fiftyone_dcd.models import SmallCNN

from conftest import ROOT, build_small_dataset

PLUGIN = "@dcd/fiftyone-dcd"
BATCH = 16
LAUNCH_TIMEOUT = 240  # seconds; import of fiftyone + torch on a loaded box


@pytest.fixture
def tiny_dataset(fmnist_arrays, small_root, request):
    images, labels = fmnist_arrays
    folder = os.path.join(small_root, request.node.name)
    # e: the first 20 are tagged e_sample, the other 12 heldout
    dataset = build_small_dataset(
        folder, images, labels, n_train=4, n_test=4, n_pool=40, n_e=32
    )
    yield dataset
    DelegatedOperationService().delete_for_dataset(dataset._doc.id)
    dataset.delete()


@pytest.fixture
def seeded_checkpoint(tmp_path):
    """A SmallCNN state dict with fixed random weights: both paths load
    the same file, no training needed."""
    torch.manual_seed(0)
    net = SmallCNN(num_classes=10)
    path = str(tmp_path / "seeded_small_cnn.pt")
    torch.save(net.state_dict(), path)

    return path


class Launcher(object):
    """``fiftyone delegated launch`` in a subprocess. It inherits
    ``os.environ``: FIFTYONE_DATABASE_URI (or FIFTYONE_DATABASE_DIR and,
    once this process has connected, FIFTYONE_PRIVATE_DATABASE_PORT), so
    it uses our mongod."""

    def __init__(self, log_path):
        assert "FIFTYONE_PRIVATE_DATABASE_PORT" in os.environ or (
            "FIFTYONE_DATABASE_URI" in os.environ
        ), "connect to the database before launching"
        fiftyone = os.path.join(os.path.dirname(sys.executable), "fiftyone")
        env = dict(
            os.environ,
            FIFTYONE_PLUGINS_DIR=ROOT,
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [fiftyone, "delegated", "launch", "--type", "local"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )

    def log_tail(self, n=3000):
        with open(self.log_path) as f:
            return f.read()[-n:]

    def wait(self, op_id, timeout=LAUNCH_TIMEOUT):
        """Polls the operation until it is COMPLETED or FAILED; returns
        its document and the progress labels seen on the way."""
        svc = DelegatedOperationService()
        labels = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            doc = svc.get(op_id)
            if doc.status is not None and doc.status.label:
                if not labels or labels[-1] != doc.status.label:
                    labels.append(doc.status.label)

            if doc.run_state in ExecutionRunState.TERMINAL_STATES:
                return doc, labels

            if self.proc.poll() is not None:
                pytest.fail(
                    "the launcher exited with %s while %s was %s:\n%s"
                    % (
                        self.proc.returncode,
                        op_id,
                        doc.run_state,
                        self.log_tail(),
                    )
                )

            time.sleep(0.2)

        pytest.fail(
            "%s still %s after %ds:\n%s"
            % (op_id, svc.get(op_id).run_state, timeout, self.log_tail())
        )

    def stop(self):
        # it loops until interrupted; nothing is running between polls
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

        self._log.close()


def _queue(name, view, **params):
    result = foo.execute_operator(
        "%s/%s" % (PLUGIN, name),
        ctx={"view": view, "params": params},
        request_delegation=True,
    )
    # ExecutionResult(op.__dict__, delegated=True): the queued document
    assert result.delegated
    doc = result.result
    assert doc["run_state"] == ExecutionRunState.QUEUED
    assert doc["operator"] == "%s/%s" % (PLUGIN, name)

    return doc["id"]


def _check_no_foreign_queued(svc, ours):
    # the launcher runs every queued operation of the database
    queued = svc.list_operations(run_state=ExecutionRunState.QUEUED)
    foreign = [op.id for op in queued if op.id not in ours]
    if foreign:
        pytest.skip(
            "the database holds queued operations of others (%s) that "
            "`fiftyone delegated launch` would run" % foreign
        )


def _assert_completed(doc, log_tail):
    error = doc.result.error if doc.result is not None else None
    assert doc.run_state == ExecutionRunState.COMPLETED, "%s\n%s" % (
        error,
        log_tail,
    )
    assert error is None
    assert doc.completed_at is not None


def test_delegated_embeddings_and_selection_run_by_launcher(
    tiny_dataset, seeded_checkpoint, tmp_path
):
    ds = tiny_dataset
    target = ds.match_tags(["pool", "e_sample", "heldout"])
    n = len(target)
    assert n == 72

    # the reference: the library, immediately, same weights
    ref = fiftyone_dcd.embed(
        target,
        "small_cnn",
        "ref_embeddings",
        checkpoint=seeded_checkpoint,
        batch_size=BATCH,
    )
    assert ref == n

    svc = DelegatedOperationService()
    emb_id = _queue(
        "compute_dcd_embeddings",
        target,
        model="small_cnn",
        checkpoint=seeded_checkpoint,
        embeddings_field="dcd_embeddings",
        batch_size=BATCH,
        num_workers=0,
    )
    # queued, not executed
    ds.reload()
    assert not ds.has_sample_field("dcd_embeddings")
    queued = svc.get(emb_id)
    assert queued.run_state == ExecutionRunState.QUEUED
    assert queued.dataset_id == ds._doc.id
    assert queued.status is None
    _check_no_foreign_queued(svc, {emb_id})

    launcher = Launcher(str(tmp_path / "launcher.log"))
    try:
        doc, seen = launcher.wait(emb_id)
        _assert_completed(doc, launcher.log_tail())
        assert doc.result.result == {"num_computed": n}

        # progress: only the last update is stored, "N of N" at the end
        assert doc.status is not None, "no progress stored"
        assert doc.status.label == "%d of %d" % (n, n)
        assert doc.status.progress == pytest.approx(1.0)
        assert doc.status.updated_at is not None
        for label in seen:  # whatever the polls caught on the way
            m = re.fullmatch(r"(\d+) of (\d+)", label)
            assert m and int(m.group(2)) == n and 0 < int(m.group(1)) <= n

        # the vectors written by the service are the library's
        ds.reload()
        ids, got, want = target.values(
            ["id", "dcd_embeddings", "ref_embeddings"]
        )
        assert len(ids) == n
        assert all(v is not None for v in got)
        got, want = np.array(got), np.array(want)
        assert got.shape == want.shape == (n, 128)
        assert np.allclose(got, want, rtol=1e-4, atol=1e-5)

        # a second operation, on what the first one wrote, picked up by
        # the same running service
        e_sample = ds.match_tags("e_sample")
        sel_id = _queue(
            "select_debug_train",
            e_sample,
            pool="pool",
            embeddings_field="dcd_embeddings",
            label_field="ground_truth",
            weak_label_field="weak_label",
            k=2,
            budget=15,
            label_strategy="weak",
        )
        doc, _ = launcher.wait(sel_id)
        _assert_completed(doc, launcher.log_tail())
    finally:
        launcher.stop()

    out = doc.result.result
    ds.reload()
    view = ds.load_saved_view(out["saved_view"])
    assert 0 < out["num_selected"] == len(view) <= 15

    # the same selection as the library's on the same vectors
    from fiftyone_dcd.selection import select_nearest

    pool = ds.match_tags("pool")
    p_ids, P = pool.values(["id", "dcd_embeddings"])
    Q = np.array(e_sample.values("dcd_embeddings"))
    sel = select_nearest(Q, np.array(P), k=2, budget=15)
    assert set(view.values("id")) == {p_ids[i] for i in sel.pool_index}
