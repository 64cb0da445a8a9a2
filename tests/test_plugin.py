"""The plugin: manifest, discovery by FiftyOne's CLI, and every operator
run through foo.execute_operator on real data."""

import os
import subprocess
import sys

import numpy as np
import yaml

import fiftyone.operators as foo

import fiftyone_dcd
from fiftyone_dcd.naming import RunNames

from conftest import ROOT

PLUGIN = "@dcd/fiftyone-dcd"


def _manifest():
    with open(os.path.join(ROOT, "fiftyone.yml")) as f:
        return yaml.safe_load(f)


def test_manifest_lists_exactly_the_registered_operators():
    sys.path.insert(0, ROOT)
    import operators

    registered = [cls().config.name for cls in operators.OPERATORS]
    assert sorted(_manifest()["operators"]) == sorted(registered)
    assert len(set(registered)) == len(registered)


def _cli(*args):
    fiftyone = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=ROOT)
    out = subprocess.run(
        [fiftyone, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr

    return out.stdout


def test_fiftyone_cli_lists_plugin_and_every_operator():
    assert PLUGIN in _cli("plugins", "list")
    listed = _cli("operators", "list")
    for name in _manifest()["operators"]:
        assert "%s/%s" % (PLUGIN, name) in listed


def _run(name, view, **params):
    result = foo.execute_operator(
        "%s/%s" % (PLUGIN, name), ctx={"view": view, "params": params}
    )

    return result.result


def test_step_operators_end_to_end(
    small_dataset, trained_checkpoint, tmp_path
):
    ds = small_dataset
    names = RunNames("dcd")

    out = _run(
        "train_dcd_model",
        ds.match_tags("train"),
        label_field="ground_truth",
        model="small_cnn",
        epochs=1,
        work_dir=str(tmp_path / "model"),
    )
    assert os.path.isfile(out["checkpoint"])

    target = ds.match_tags(["pool", "e_sample", "heldout"])
    out = _run(
        "compute_dcd_embeddings",
        target,
        model="small_cnn",
        checkpoint=trained_checkpoint,
        embeddings_field=names.embeddings,
    )
    assert out["num_computed"] == len(target)
    # a rerun computes only what is missing
    out = _run(
        "compute_dcd_embeddings",
        target,
        model="small_cnn",
        checkpoint=trained_checkpoint,
        embeddings_field=names.embeddings,
    )
    assert out["num_computed"] == 0

    e_all = ds.match_tags(["e_sample", "heldout"])
    out = _run(
        "tag_dcd_errors",
        e_all,
        model="small_cnn",
        checkpoint=trained_checkpoint,
        label_field="ground_truth",
        num_e_sample=20,
        seed=3,
    )
    gt, pred = e_all.values(
        ["ground_truth.label", names.pred_before + ".label"]
    )
    assert out["num_errors"] == sum(a != b for a, b in zip(gt, pred))
    assert len(ds.match_tags(names.e_sample_tag)) == 20
    assert len(ds.match_tags(names.heldout_tag)) == len(e_all) - 20

    # E_sample: the operator's target view, as if selected in the App
    e_sample = ds.match_tags(names.e_sample_tag)
    out = _run(
        "select_debug_train",
        e_sample,
        pool="pool",
        embeddings_field=names.embeddings,
        label_field="ground_truth",
        weak_label_field="weak_label",
        k=4,
        budget=50,
        label_strategy="weak",
    )
    assert out["num_selected"] == 50
    view = ds.load_saved_view(out["saved_view"])
    assert len(view) == 50

    # the same selection as the library's on the same vectors
    from fiftyone_dcd.selection import select_nearest

    pool = ds.match_tags("pool")
    p_ids, P = pool.values(["id", names.embeddings])
    Q = np.array(e_sample.values(names.embeddings))
    sel = select_nearest(Q, np.array(P), k=4, budget=50)
    assert set(view.values("id")) == {p_ids[i] for i in sel.pool_index}

    out = _run(
        "finetune_dcd",
        ds.view(),
        model="small_cnn",
        checkpoint=trained_checkpoint,
        e_sample=names.e_sample_tag,
        heldout=names.heldout_tag,
        train="train",
        test="test",
        pool="pool",
        label_field="ground_truth",
        weak_label_field="weak_label",
        baselines=["random"],
        epochs=1,
        work_dir=str(tmp_path / "ft"),
    )
    assert "E_sample + random pool" in out["table"]
    assert "dcd" in ds.list_runs()
    assert len(ds.exists(names.pred_after)) == len(
        ds.match_tags(["test", names.heldout_tag])
    )


def test_apply_dcd_operator(small_dataset, trained_checkpoint, tmp_path):
    ds = small_dataset
    out = _run(
        "apply_dcd",
        ds.view(),
        model="small_cnn",
        checkpoint=trained_checkpoint,
        e_sample="e_sample",
        heldout="heldout",
        train="train",
        test="test",
        pool="pool",
        label_field="ground_truth",
        weak_label_field="weak_label",
        k=3,
        rounds=1,
        label_strategy="weak",
        baselines=[],
        epochs=1,
        run_key="night",
        work_dir=str(tmp_path),
    )
    assert out["run_key"] == "night"
    assert "night" in ds.list_runs()
    assert out["num_selected"] == len(
        ds.load_saved_view("dcd_night_debug_train")
    )
    config, results = fiftyone_dcd.load_run(ds, "night")
    assert config["k"] == 3
    assert [r["method"] for r in results["rows"]] == [
        "before debugging",
        "DCD (weak)",
    ]

    # fine-tuning the run again keeps the record of its selection
    def finetune_again(work, **kw):
        fiftyone_dcd.finetune_dcd(
            ds,
            "small_cnn",
            checkpoint=trained_checkpoint,
            train="train",
            test="test",
            heldout="heldout",
            e_sample="e_sample",
            pool="pool",
            baselines=[],
            epochs=1,
            run_key="night",
            overwrite=True,
            work_dir=str(tmp_path / work),
            **kw,
        )
        return fiftyone_dcd.load_run(ds, "night")[0]

    again = finetune_again("again", lr=0.02)
    assert again["lr"] == 0.02
    for key in ("k", "label_strategy", "rounds", "selected_with"):
        assert again[key] == config[key], key
    assert (again["k"], again["label_strategy"], again["rounds"]) == (
        3,
        "weak",
        1,
    )

    # a selection made again since is not described by the old record
    fiftyone_dcd.select_debug_train(
        ds.match_tags("pool"),
        ds.match_tags("e_sample"),
        again["selected_with"],
        k=2,
        label_strategy="weak",
        run_key="night",
        overwrite=True,
    )
    third = finetune_again("third")
    assert "k" not in third and "label_strategy" not in third


def test_form_values_become_the_library_s_selection_arguments():
    import operators

    params = operators._selection_params
    # the form's numbers: 0 means "none", the weight's default is None
    got = params(dict(k=0, threshold=0.0, budget=0, dropped_weight=0.3))
    assert got == dict(
        k=None,
        threshold=None,
        budget=None,
        label_strategy="auto",
        dropped_weight=None,
        vote_rule="auto",
    )
    got = params(
        dict(label_strategy="vote", dropped_weight=0.0, vote_rule="noise")
    )
    assert (got["dropped_weight"], got["vote_rule"]) == (0.0, "noise")
    assert (
        params(dict(label_strategy="vote", dropped_weight=0.2))[
            "dropped_weight"
        ]
        == 0.2
    )
    # hidden for other strategies: stale form values are not passed
    got = params(
        dict(label_strategy="weak", dropped_weight=0.2, vote_rule="noise")
    )
    assert (got["dropped_weight"], got["vote_rule"]) == (None, "auto")
