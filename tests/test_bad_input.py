"""Bad input stops with a message naming the problem, and the dataset is
left exactly as it was."""

import pytest

import fiftyone as fo
import fiftyone.operators as foo

from conftest import snapshot

PLUGIN = "@dcd/fiftyone-dcd/"


def _apply_kwargs(**over):
    kwargs = dict(
        train="train",
        test="test",
        pool="pool",
        e_sample="e_sample",
        heldout="heldout",
        k=3,
        epochs=1,
        baselines=(),
    )
    kwargs.update(over)

    return kwargs


CASES = [
    # (id, kwargs overrides, dataset edit, expected message)
    (
        "missing label field",
        dict(label_field="gt_missing"),
        None,
        "has no field 'gt_missing'",
    ),
    (
        "missing weak label field",
        dict(weak_label_field="noisy"),
        None,
        "has no field 'noisy'",
    ),
    (
        "empty E_sample tag",
        dict(e_sample="no_such_tag"),
        None,
        "E_sample is empty",
    ),
    ("empty E_sample view", None, "empty_view", "The E_sample is empty"),
    (
        "pool without weak labels",
        None,
        "drop_weak",
        "samples have no 'weak_label' label",
    ),
    (
        "label field of wrong type",
        dict(label_field="filepath"),
        None,
        "it must hold fo.Classification",
    ),
    ("k <= 0", dict(k=0), None, "k must be an integer >= 1"),
    (
        "unknown label strategy",
        dict(label_strategy="vote"),
        None,
        "Unknown label strategy 'vote'",
    ),
    ("budget 0", dict(budget=0), None, "budget must be an integer >= 1"),
    (
        "E_sample overlaps test set",
        dict(e_sample="test"),
        None,
        "in both the E_sample and the test set",
    ),
    (
        "unknown model",
        dict(model="resnet_nope"),
        None,
        "Unknown model 'resnet_nope'",
    ),
]


def _prepare(ds, edit):
    """Applies an edit that makes the input bad; returns the kwargs
    change it implies."""
    if edit == "empty_view":
        return {"e_sample": ds.match_tags("e_sample").limit(0)}

    if edit == "drop_weak":
        pool = ds.match_tags("pool").limit(5)
        pool.set_field("weak_label", None).save()

    return {}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_apply_dcd_bad_input_leaves_dataset_unchanged(small_dataset, case):
    _, over, edit, message = case
    ds = small_dataset
    kwargs = _apply_kwargs(**(over or {}))
    kwargs.update(_prepare(ds, edit))
    model = kwargs.pop("model", "small_cnn")
    before = snapshot(ds)
    with pytest.raises(ValueError, match=message.replace("(", "\\(")):
        ds.apply_dcd(model, **kwargs)

    assert snapshot(ds) == before


def test_run_key_twice_without_overwrite_is_refused(small_dataset):
    ds = small_dataset
    config = ds.init_run(method="dcd")
    ds.register_run("dcd", config)
    before = snapshot(ds)
    with pytest.raises(ValueError, match="already has a run 'dcd'"):
        ds.apply_dcd("small_cnn", **_apply_kwargs())
    assert snapshot(ds) == before


def test_view_of_another_dataset_is_refused(small_dataset):
    other = fo.Dataset()
    other.add_sample(fo.Sample(filepath="/tmp/x.png", tags=["pool"]))
    before = snapshot(small_dataset)
    with pytest.raises(ValueError, match="is a view of dataset"):
        small_dataset.apply_dcd(
            "small_cnn", **_apply_kwargs(pool=other.view())
        )
    assert snapshot(small_dataset) == before
    other.delete()


OPERATOR_CASES = [
    (
        "select_debug_train",
        "e_sample",
        dict(
            pool="pool",
            embeddings_field="dcd_embeddings",
            label_field="ground_truth",
            weak_label_field="weak_label",
            k=3,
        ),
        "has no field 'dcd_embeddings'",
    ),
    (
        "select_debug_train",
        "e_sample",
        dict(
            pool="pool",
            embeddings_field="dcd_embeddings",
            label_field="ground_truth",
            weak_label_field="weak_missing",
            k=3,
        ),
        # the form offers only the dataset's Classification fields
        "Path: weak_label_field. Reason: Invalid enum value",
    ),
    (
        "select_debug_train",
        "nothing_tagged",
        dict(
            pool="pool",
            embeddings_field="dcd_embeddings",
            label_field="ground_truth",
            weak_label_field="weak_label",
            k=3,
        ),
        "E_sample is empty",
    ),
    (
        "tag_dcd_errors",
        "e_sample",
        dict(model="small_cnn", label_field="gt_missing"),
        "Path: label_field. Reason: Invalid enum value",
    ),
    (
        "apply_dcd",
        None,
        dict(
            model="small_cnn",
            e_sample="e_sample",
            train="train",
            test="test",
            pool="pool",
            heldout="heldout",
            label_field="ground_truth",
            weak_label_field="weak_label",
            baselines=[],
        ),
        "samples have no 'weak_label' label",
    ),
]


@pytest.mark.parametrize(
    "case",
    OPERATOR_CASES,
    ids=["%s-%d" % (c[0], i) for i, c in enumerate(OPERATOR_CASES)],
)
def test_operator_bad_input_leaves_dataset_unchanged(small_dataset, case):
    name, target_tag, params, message = case
    ds = small_dataset
    if name == "apply_dcd":
        ds.match_tags("pool").limit(3).set_field("weak_label", None).save()

    view = ds.match_tags(target_tag) if target_tag else ds.view()
    before = snapshot(ds)
    with pytest.raises(Exception) as err:
        foo.execute_operator(
            PLUGIN + name, ctx={"view": view, "params": params}
        )
    assert message in str(err.value)
    assert snapshot(ds) == before
