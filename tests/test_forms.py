"""The operators' forms as the App receives them: choices built from the
dataset, and a run that cannot succeed refused in the form with the
library's message, before anything is written."""

import asyncio

import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import resolve_type
from fiftyone.operators.registry import OperatorRegistry

from fiftyone_dcd.naming import RunNames

from conftest import assert_unchanged, snapshot

PLUGIN = "@dcd/fiftyone-dcd/"

VALID = dict(
    pool="pool",
    embeddings_field="vec",
    label_field="ground_truth",
    weak_label_field="weak_label",
    k=2,
    run_key="form",
)


def _form(name, view, params):
    request = {
        "dataset_name": view._dataset.name,
        "view": view._serialize(),
        "params": params,
    }
    prop = asyncio.run(
        resolve_type(OperatorRegistry(), PLUGIN + name, request)
    )
    assert not hasattr(prop, "error"), getattr(prop, "error", None)

    return prop.to_json()["type"]["properties"]


@pytest.fixture
def form_dataset(small_dataset):
    ds = small_dataset
    rng = np.random.default_rng(0)
    ds.set_values("vec", [rng.normal(size=8) for _ in range(len(ds))])
    ds.add_sample_field("note", fo.StringField)

    return ds


def test_choices_come_from_the_dataset(form_dataset):
    ds = form_dataset
    props = _form("select_debug_train", ds.match_tags("e_sample"), VALID)
    # only vector fields for embeddings, only Classification fields for labels
    assert props["embeddings_field"]["type"]["values"] == ["vec"]
    labels = props["weak_label_field"]["type"]["values"]
    assert "weak_label" in labels and "ground_truth" in labels
    assert "note" not in labels and "vec" not in labels
    pool_choices = [c["value"] for c in props["pool"]["view"]["choices"]]
    assert set(ds.distinct("tags")) <= set(pool_choices)
    assert "problem" not in props


def test_form_refuses_a_run_key_that_exists(form_dataset):
    ds = form_dataset
    e_sample = ds.match_tags("e_sample")
    foo.execute_operator(
        PLUGIN + "select_debug_train", ctx={"view": e_sample, "params": VALID}
    )
    names = RunNames("form")
    assert names.debug_train_view in ds.list_saved_views()

    props = _form("select_debug_train", e_sample, VALID)
    problem = props["problem"]
    assert problem["invalid"] is True
    assert "pass overwrite=True" in problem["error_message"]

    before = snapshot(ds)
    with pytest.raises(Exception) as err:
        foo.execute_operator(
            PLUGIN + "select_debug_train",
            ctx={"view": e_sample, "params": VALID},
        )
    assert "Validation error" in str(err.value)
    assert "pass overwrite=True" in str(err.value)
    assert_unchanged(ds, before)

    # with overwrite the same form is valid
    props = _form("select_debug_train", e_sample, dict(VALID, overwrite=True))
    assert "problem" not in props


def test_form_refuses_missing_weak_labels_and_empty_targets(form_dataset):
    ds = form_dataset
    ds.match_tags("pool").limit(2).set_field("weak_label", None).save()
    props = _form("select_debug_train", ds.match_tags("e_sample"), VALID)
    assert "2 of" in props["problem"]["error_message"]
    assert "weak_label" in props["problem"]["error_message"]

    props = _form("select_debug_train", ds.match_tags("no_such_tag"), VALID)
    assert "E_sample is empty" in props["problem"]["error_message"]


def test_apply_form_checks_without_writing(form_dataset):
    ds = form_dataset
    params = dict(
        model="small_cnn",
        e_sample="e_sample",
        train="train",
        test="test",
        pool="pool",
        heldout="heldout",
        label_field="ground_truth",
        weak_label_field="weak_label",
        run_key="form",
    )
    before = snapshot(ds)
    props = _form("apply_dcd", ds.view(), params)
    assert "problem" not in props
    props = _form("apply_dcd", ds.view(), dict(params, model="no_such_net"))
    assert "Unknown model 'no_such_net'" in props["problem"]["error_message"]
    props = _form(
        "apply_dcd", ds.view(), dict(params, checkpoint="/no/such/file.pt")
    )
    assert "is not a file" in props["problem"]["error_message"]
    # E_sample left empty: the target view (here the current view, as
    # when samples are selected in the grid) is E_sample
    props = _form(
        "apply_dcd", ds.match_tags("e_sample"), dict(params, e_sample=None)
    )
    assert "problem" not in props
    props = _form("apply_dcd", ds.view(), dict(params, e_sample=None))
    assert "E_sample samples have no" in props["problem"]["error_message"]
    assert_unchanged(ds, before)
