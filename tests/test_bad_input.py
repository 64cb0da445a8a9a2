"""Bad input stops with a message naming the problem, and the dataset is
left exactly as it was."""

import os
import re

import numpy as np
import pytest
import torch

import fiftyone as fo
import fiftyone.operators as foo

from conftest import CLASSES, assert_unchanged, snapshot

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
    ("rounds 3", dict(rounds=3), None, "rounds must be 1 (select once)"),
    (
        "work_dir is a file",
        dict(work_dir=__file__),
        None,
        "is a file, not a folder",
    ),
    (
        "work_dir below a file",
        dict(work_dir=os.path.join(__file__, "sub")),
        None,
        "cannot be created",
    ),
    (
        "automatic threshold quantile out of range",
        dict(k=None, quantile=1.5),
        None,
        "quantile must be in (0, 1]",
    ),
    (
        "weight of doubted images out of range",
        dict(dropped_weight=0.8),
        None,
        "dropped_weight must be a number in [0, 0.5]",
    ),
    (
        "unknown vote rule",
        dict(vote_rule="median"),
        None,
        "Unknown vote rule 'median'",
    ),
    (
        "vote rule without the vote",
        dict(label_strategy="weak", vote_rule="noise"),
        None,
        "vote_rule applies to the 'vote' label strategy",
    ),
    (
        "weight of doubted images without the vote",
        dict(label_strategy="weak", dropped_weight=0.3),
        None,
        "dropped_weight applies to the 'vote' label strategy",
    ),
    (
        "unknown label strategy",
        dict(label_strategy="majority"),
        None,
        "Unknown label strategy 'majority'",
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
    (
        "empty training set",
        dict(train="nothing"),
        None,
        "the training set is empty",
    ),
    ("empty pool", dict(pool="nothing"), None, "the pool is empty"),
    ("empty test set", dict(test="nothing"), None, "the test set is empty"),
    (
        "label field of Detections",
        None,
        "detections",
        "is a Detections; it must hold fo.Classification",
    ),
    (
        "classes unknown to the model",
        dict(classes=CLASSES[:9]),
        None,
        "labels ['Ankle boot']",
    ),
    (
        "embeddings with NaN rows",
        dict(embeddings_field="vec"),
        "nan_vectors",
        "vectors in 'vec' hold NaN or inf",
    ),
    (
        "embeddings of another size",
        dict(embeddings_field="vec"),
        "ragged_vectors",
        "holds vectors of sizes [4, 8]",
    ),
    (
        "field of ours with another type",
        None,
        "our_field_as_string",
        "already has field dcd_distance",
    ),
    (
        "missing image files",
        None,
        "missing_files",
        "image files of the pool are missing",
    ),
    (
        "corrupt image file",
        None,
        "corrupt_file",
        "files of the pool cannot be read as images",
    ),
    (
        "images over the pixel limit",
        None,
        "huge_images",
        "larger than PIL's limit of 700 pixels",
    ),
    (
        "E_sample overlaps pool",
        None,
        "e_sample_with_pool",
        "3 samples are in both the E_sample and the pool",
    ),
    (
        "threshold that selects nothing",
        dict(threshold=1e-9),
        None,
        "The selection is empty",
    ),
    (
        "checkpoint of another architecture",
        None,
        "other_checkpoint",
        "does not fit the SmallCNN model",
    ),
    (
        "checkpoint that is not one",
        None,
        "text_checkpoint",
        "Cannot read checkpoint",
    ),
    (
        "run key with a dot",
        dict(run_key="my.run"),
        None,
        "Run key 'my.run' is invalid",
    ),
    (
        "unknown baseline",
        dict(baselines=("oracle",)),
        None,
        "Unknown baselines ['oracle']",
    ),
    ("replay of 0", dict(replay=0), None, "replay must be in (0, 1]"),
    ("errors given with E_sample", dict(errors="heldout"), None, "not both"),
    (
        "pool overlaps test set",
        None,
        "pool_with_test",
        "in both the pool and the test set",
    ),
    (
        "test set is the training set",
        dict(test="train"),
        None,
        "in both the training set and the test set",
    ),
    ("epochs 0", dict(epochs=0), None, "epochs must be an integer >= 1"),
    (
        "negative learning rate",
        dict(lr=-1),
        None,
        "lr must be a positive number",
    ),
    (
        "unknown device",
        dict(device="bogus"),
        None,
        "device 'bogus' is not a torch device",
    ),
    (
        "model head of another size",
        None,
        "five_outputs",
        "The model outputs 5 classes but there are 10 classes",
    ),
    (
        "baselines as a string",
        dict(baselines="random"),
        None,
        "baselines must be a list such as ['random']",
    ),
    (
        "classes as a string",
        dict(classes="Bag"),
        None,
        "classes must be a list of class names",
    ),
    (
        "E_sample class unknown to the model",
        None,
        "e_sample_unicorn",
        "The E_sample has labels ['Unicorn'] in 'ground_truth'",
    ),
    (
        "embeddings checkpoint without model",
        dict(embeddings_checkpoint="/x.pt"),
        None,
        "embeddings_checkpoint is given without embeddings_model",
    ),
]


# cases detected after the run started writing, and undone
ROLLED_BACK = {"threshold that selects nothing"}


def _prepare(ds, edit, tmp_path, monkeypatch):
    """Applies an edit that makes the input bad; returns the kwargs
    change it implies."""
    if edit == "empty_view":
        return {"e_sample": ds.match_tags("e_sample").limit(0)}

    if edit == "drop_weak":
        pool = ds.match_tags("pool").limit(5)
        pool.set_field("weak_label", None).save()

    if edit == "detections":
        ds.add_sample_field(
            "boxes",
            fo.EmbeddedDocumentField,
            embedded_doc_type=fo.Detections,
        )
        return {"label_field": "boxes"}

    if edit in ("nan_vectors", "ragged_vectors"):
        rng = np.random.default_rng(0)
        vecs = [rng.normal(size=8) for _ in range(len(ds))]
        # a pool sample's vector: the pool is the third part of the dataset
        bad = ds.values("tags").index(["pool"])
        if edit == "nan_vectors":
            vecs[bad][3] = np.nan
        else:
            vecs[bad] = vecs[bad][:4]

        ds.set_values("vec", vecs)

    if edit == "our_field_as_string":
        ds.add_sample_field("dcd_distance", fo.StringField)

    if edit == "missing_files":
        sample = ds.match_tags("pool").first()
        sample.filepath = str(tmp_path / "gone.png")
        sample.save()

    if edit == "corrupt_file":
        path = tmp_path / "corrupt.png"
        path.write_bytes(b"\x89PNG not really")
        sample = ds.match_tags("pool").first()
        sample.filepath = str(path)
        sample.save()

    if edit == "e_sample_unicorn":
        sample = ds.match_tags("e_sample").first()
        sample.ground_truth = fo.Classification(label="Unicorn")
        sample.save()

    if edit == "e_sample_with_pool":
        pool = ds.match_tags("pool").limit(3)
        pool.set_values(
            "ground_truth", [fo.Classification(label=CLASSES[0])] * 3
        )
        ids = ds.match_tags("e_sample").values("id") + pool.values("id")
        return {"e_sample": ds.select(ids)}

    if edit == "huge_images":
        # PIL's decompression-bomb limit, lowered below these 28x28 images
        monkeypatch.setattr("PIL.Image.MAX_IMAGE_PIXELS", 700)

    if edit == "other_checkpoint":
        path = str(tmp_path / "linear.pt")
        torch.save(torch.nn.Linear(3, 2).state_dict(), path)
        return {"checkpoint": path}

    if edit == "pool_with_test":
        test = ds.match_tags("test").limit(3)
        test.set_values(
            "weak_label", [fo.Classification(label=CLASSES[0])] * 3
        )
        return {"pool": ds.match_tags(["pool", "test"])}

    if edit == "five_outputs":
        from fiftyone_dcd.models import SmallCNN

        return {"model": SmallCNN(num_classes=5)}

    if edit == "text_checkpoint":
        path = tmp_path / "notes.pt"
        path.write_text("weights? no")
        return {"checkpoint": str(path)}

    return {}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_apply_dcd_bad_input_leaves_dataset_unchanged(
    small_dataset, case, tmp_path, monkeypatch
):
    _, over, edit, message = case
    ds = small_dataset
    kwargs = _apply_kwargs(**(over or {}))
    kwargs.update(_prepare(ds, edit, tmp_path, monkeypatch))
    model = kwargs.pop("model", "small_cnn")
    before = snapshot(ds)
    with pytest.raises(ValueError, match=re.escape(message)):
        ds.apply_dcd(model, **kwargs)

    if case[0] in ROLLED_BACK:
        # found only after embedding: what the run wrote is removed again,
        # which FiftyOne records as a modification time
        del before["values"]["last_modified_at"]

    assert_unchanged(ds, before)


def test_run_key_twice_without_overwrite_is_refused(small_dataset):
    ds = small_dataset
    config = ds.init_run(method="dcd")
    ds.register_run("dcd", config)
    before = snapshot(ds)
    with pytest.raises(ValueError, match="already has a run 'dcd'"):
        ds.apply_dcd("small_cnn", **_apply_kwargs())
    assert_unchanged(ds, before)


def test_view_of_another_dataset_is_refused(small_dataset):
    other = fo.Dataset()
    other.add_sample(fo.Sample(filepath="/tmp/x.png", tags=["pool"]))
    before = snapshot(small_dataset)
    with pytest.raises(ValueError, match="is a view of dataset"):
        small_dataset.apply_dcd(
            "small_cnn", **_apply_kwargs(pool=other.view())
        )
    assert_unchanged(small_dataset, before)
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
    assert_unchanged(ds, before)


def test_every_case_is_documented():
    import os

    from conftest import ROOT

    with open(os.path.join(ROOT, "docs", "bad_input.md")) as f:
        doc = f.read()

    rows = {
        line.split("|")[1].strip()
        for line in doc.splitlines()
        if line.startswith("| ")
    }
    missing = [case[0] for case in CASES if case[0] not in rows]
    assert not missing, "add these cases to docs/bad_input.md: %s" % missing


def test_run_keys_never_share_names():
    from fiftyone_dcd.naming import RunNames

    keys = ["dcd", "x", "dcd_x", "dcdx", "X"]
    fields = [set(RunNames(k).fields) for k in keys]
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            assert not fields[i] & fields[j], (keys[i], keys[j])


def test_saved_view_slug_collision_is_refused_before_writing(small_dataset):
    import fiftyone_dcd

    ds = small_dataset
    ds.save_view("dcd_Ab_debug_train", ds.limit(1))
    ds.set_values("vec", [np.ones(4) * i for i in range(len(ds))])
    before = snapshot(ds)
    with pytest.raises(ValueError, match="blocks the name"):
        fiftyone_dcd.select_debug_train(
            "pool", ds.match_tags("e_sample"), "vec", k=2, run_key="ab"
        )
    assert_unchanged(ds, before)


def test_embeddings_of_another_size_are_not_mixed(small_dataset):
    import fiftyone_dcd

    ds = small_dataset
    pool = ds.match_tags("pool")
    pool.set_values("emb", [np.ones(8) for _ in range(len(pool))])
    before = snapshot(ds)
    with pytest.raises(ValueError, match="holds 8-dimensional vectors"):
        fiftyone_dcd.embed(ds.match_tags("e_sample"), "small_cnn", "emb")
    assert_unchanged(ds, before)


def test_tag_errors_checks_the_split_before_writing(small_dataset):
    ds = small_dataset
    before = snapshot(ds)
    with pytest.raises(Exception) as err:
        foo.execute_operator(
            PLUGIN + "tag_dcd_errors",
            ctx={
                "view": ds.match_tags("heldout"),
                "params": dict(
                    model="small_cnn",
                    label_field="ground_truth",
                    num_e_sample=1000,
                ),
            },
        )
    assert "num_e_sample=1000 leaves" in str(err.value)
    assert_unchanged(ds, before)


@pytest.mark.parametrize("media", ["video", "group"])
def test_video_and_grouped_datasets_are_refused(media, tmp_path):
    import fiftyone_dcd

    ds = fo.Dataset()
    if media == "video":
        ds.add_sample(fo.Sample(filepath=str(tmp_path / "clip.mp4")))
        hint = "DCD works on image datasets"
    else:
        ds.add_group_field("group", default="left")
        group = fo.Group()
        ds.add_sample(
            fo.Sample(
                filepath=str(tmp_path / "a.png"), group=group.element("left")
            )
        )
        hint = "select_group_slices"

    before = snapshot(ds)
    with pytest.raises(ValueError, match=hint):
        fiftyone_dcd.apply_dcd(
            ds,
            "small_cnn",
            train=ds.view(),
            test=ds.view(),
            pool=ds.view(),
            e_sample=ds.view(),
            heldout=ds.view(),
        )
    assert_unchanged(ds, before)
    ds.delete()


def test_mixed_image_modes_and_sizes_are_converted(tmp_path):
    """Grayscale, RGB, RGBA, 16-bit, tiny and large images all load as the
    model's input: converted and resized, not refused."""
    from PIL import Image

    from fiftyone_dcd.loaders import load_image

    spec = {"in_chans": 1, "input_size": 28, "mean": (0.0,), "std": (1.0,)}
    cases = {
        "L": Image.new("L", (28, 28), 200),
        "RGB": Image.new("RGB", (5, 3), (200, 200, 200)),
        "RGBA": Image.new("RGBA", (1, 1), (200, 200, 200, 10)),
        "I;16": Image.new("I;16", (300, 280), 200 * 257),
    }
    for mode, img in cases.items():
        path = str(tmp_path / ("%s.png" % mode.replace(";", "")))
        img.save(path)
        x = load_image(path, spec)
        assert tuple(x.shape) == (1, 28, 28), mode
        np.testing.assert_allclose(x.numpy(), 200 / 255, atol=1 / 255)

    rgb = dict(spec, in_chans=3, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert tuple(load_image(str(tmp_path / "L.png"), rgb).shape) == (
        3,
        28,
        28,
    )


def test_k_beyond_the_pool_selects_the_whole_pool(small_dataset):
    """Not refused: a k larger than the pool finds every pool image, each
    once, attributed to its nearest E_sample image."""
    import fiftyone_dcd

    ds = small_dataset
    rng = np.random.default_rng(0)
    ds.set_values("vec", [rng.normal(size=4) for _ in range(len(ds))])
    pool, e_sample = ds.match_tags("pool"), ds.match_tags("e_sample")
    view = fiftyone_dcd.select_debug_train(
        pool, e_sample, "vec", k=10 * len(pool), label_strategy="weak"
    )
    assert sorted(view.values("id")) == sorted(pool.values("id"))
    P = np.array(view.values("vec"))
    q_ids, Q = e_sample.values(["id", "vec"])
    d = np.linalg.norm(P[:, None] - np.array(Q)[None], axis=2)
    nearest = [q_ids[j] for j in d.argmin(axis=1)]
    assert view.values("dcd_query_id") == nearest


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dropped_weight=0.7), "dropped_weight must be a number"),
        (dict(label_strategy="weak", dropped_weight=0.3), "applies to"),
        (dict(vote_rule="median"), "Unknown vote rule"),
        (dict(rounds=3), "rounds must be 1"),
    ],
)
def test_demo_checks_its_settings_before_the_set_up(
    monkeypatch, kwargs, match
):
    from fiftyone_dcd import demo

    def never(**_):
        raise AssertionError("the scenario was built before the check")

    monkeypatch.setattr(demo, "build_fashion_mnist_scenario", never)
    with pytest.raises(ValueError, match=match):
        demo.run_demo(**kwargs)


def test_e_sample_labels_named_unlike_the_pool_are_refused(small_dataset):
    import fiftyone_dcd

    ds = small_dataset
    ds.set_values("vec", [np.ones(4) * i for i in range(len(ds))])
    e_sample = ds.match_tags("e_sample")
    # the same classes, spelt in capitals: no E_sample label is a weak one
    e_sample.set_values(
        "ground_truth",
        [
            fo.Classification(label=c.upper())
            for c in e_sample.values("ground_truth.label")
        ],
    )
    before = snapshot(ds)
    with pytest.raises(ValueError, match="check spelling and case"):
        fiftyone_dcd.select_debug_train("pool", e_sample, "vec", k=2)
    assert_unchanged(ds, before)
