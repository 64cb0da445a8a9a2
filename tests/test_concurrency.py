"""Two DCD runs on one dataset at the same time, one from Python in another
process and one through the App's operator: both finish intact."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fiftyone.operators as foo

import fiftyone_dcd
from fiftyone_dcd.naming import RunNames

from conftest import ROOT

SETTINGS = dict(
    train="train",
    test="test",
    pool="pool",
    e_sample="e_sample",
    heldout="heldout",
    k=3,
    label_strategy="weak",
    rounds=1,
    epochs=1,
    baselines=[],
)

CHILD = """
import json, sys
import fiftyone as fo
import fiftyone_dcd

ds = fo.load_dataset(sys.argv[1])
ds.apply_dcd("small_cnn", checkpoint=sys.argv[2], run_key="py",
             work_dir=sys.argv[3], **json.loads(sys.argv[4]))
"""


def test_two_run_keys_at_once(small_dataset, trained_checkpoint, tmp_path):
    import json

    ds = small_dataset
    ds.persistent = True  # visible to the child process by name
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            ds.name,
            trained_checkpoint,
            str(tmp_path / "py"),
            json.dumps(SETTINGS),
        ],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        foo.execute_operator(
            "@dcd/fiftyone-dcd/apply_dcd",
            ctx={
                "view": ds.view(),
                "params": dict(
                    SETTINGS,
                    model="small_cnn",
                    checkpoint=trained_checkpoint,
                    label_field="ground_truth",
                    weak_label_field="weak_label",
                    run_key="op",
                    work_dir=str(tmp_path / "op"),
                ),
            },
        )
        _, err = child.communicate(timeout=900)
        assert child.returncode == 0, err.decode()[-2000:]
    finally:
        if child.poll() is None:
            child.kill()
        ds.persistent = False

    ds.reload()
    assert {"py", "op"} <= set(ds.list_runs())
    selections = {}
    for key in ("py", "op"):
        names = RunNames(key)
        config, results = fiftyone_dcd.load_run(ds, key)
        view = ds.load_saved_view(names.debug_train_view)
        ids = set(view.values("id"))
        assert len(ids) == results["num_selected"] > 0
        assert set(ds.match_tags(names.debug_train_tag).values("id")) == ids
        assert set(ds.exists(names.assigned_label).values("id")) == ids
        assert len(ds.exists(names.pred_after)) == len(
            ds.match_tags(["test", names.heldout_tag])
        )
        selections[key] = (ids, results["rows"])

    # same model, data and settings: the same selection and baseline
    assert selections["py"][0] == selections["op"][0]
    before_py, before_op = selections["py"][1][0], selections["op"][1][0]
    assert before_py["test acc"] == pytest.approx(before_op["test acc"])
    a, b = ds.values([RunNames(k).embeddings for k in ("py", "op")])
    np.testing.assert_allclose(
        np.array([x for x in a if x is not None]),
        np.array([x for x in b if x is not None]),
        rtol=1e-5,
        atol=1e-6,
    )

    # the same key again is refused without overwrite
    with pytest.raises(ValueError, match="already has a run 'py'"):
        ds.apply_dcd(
            "small_cnn",
            checkpoint=trained_checkpoint,
            run_key="py",
            **SETTINGS,
        )
