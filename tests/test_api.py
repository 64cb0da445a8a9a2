"""apply_dcd end to end on a small hand-built dataset of real images, with
a real database and a model trained for a few steps."""

import numpy as np
import pytest

import fiftyone_dcd
from fiftyone_dcd.naming import RunNames
from fiftyone_dcd.runs import load_run


def brute_force_selection(queries, q_ids, pool, p_ids, k):
    """For each query its k nearest pool images; a pool image found twice
    goes to its nearest query."""
    d = np.linalg.norm(
        queries[:, None, :].astype(np.float64) - pool[None, :, :], axis=2
    )
    best = {}
    for qi in range(len(queries)):
        for pi in np.argsort(d[qi], kind="stable")[:k]:
            cand = (d[qi, pi], q_ids[qi])
            if p_ids[pi] not in best or cand < best[p_ids[pi]]:
                best[p_ids[pi]] = cand

    return best


def brute_force_vote(vectors, pool, weak, exclude=None, num_neighbors=20):
    """The majority weak label of each vector's nearest pool images, ties
    to the label with the nearest vote; ``exclude`` a pool index each."""
    out = []
    for n, v in enumerate(vectors):
        d = np.linalg.norm(pool.astype(np.float64) - v, axis=1)
        order = [
            int(i)
            for i in np.argsort(d, kind="stable")
            if exclude is None or i != exclude[n]
        ][:num_neighbors]
        counts = {}
        for rank, i in enumerate(order):
            c, first = counts.get(weak[i], (0, rank))
            counts[weak[i]] = (c + 1, first)
        out.append(min(counts, key=lambda w: (-counts[w][0], counts[w][1])))

    return out


def _beats(challenger, default):
    """More right answers by over one standard error of the paired
    difference, written out."""
    d = [float(c) - float(x) for c, x in zip(challenger, default)]
    n = len(d)
    mean = sum(d) / n
    sd = (sum((x - mean) ** 2 for x in d) / (n - 1)) ** 0.5

    return mean > sd / n**0.5


def brute_force_auto(Q, q_labels, P, weak):
    """The vote rule and strategy ``"auto"`` picks: the noise vote (its
    model refitted without each E_sample image) where it beats the
    majority vote on E_sample by over a standard error; then vote, unless
    the nearest other E_sample image's label beats the vote so. Returns
    ``(strategy, vote rule, query accuracy, vote accuracy)``."""
    from fiftyone_dcd import label_noise

    d = np.linalg.norm(Q[:, None].astype(np.float64) - Q[None], axis=2)
    np.fill_diagonal(d, np.inf)
    c_q = [q_labels[j] == lab for j, lab in zip(d.argmin(1), q_labels)]
    c_maj = [
        v == lab for v, lab in zip(brute_force_vote(Q, P, weak), q_labels)
    ]
    w = np.asarray(weak, dtype=object)
    d_p = np.linalg.norm(Q[:, None].astype(np.float64) - P[None], axis=2)
    nb = w[np.argsort(d_p, axis=1, kind="stable")[:, :20]]
    classes = np.unique(np.concatenate([w, q_labels]))
    c_noise = []
    for i, lab in enumerate(q_labels):
        rest = [j for j in range(len(q_labels)) if j != i]
        full = label_noise.fit(q_labels, nb, classes)
        alone = label_noise.fit(
            [q_labels[j] for j in rest], nb[rest], classes, prior=full.prior
        )
        c_noise.append(label_noise.vote(alone, nb[i : i + 1])[0] == lab)
    rule = "noise" if _beats(c_noise, c_maj) else "majority"
    c_v = c_noise if rule == "noise" else c_maj
    strategy = "agree" if _beats(c_q, c_v) else "vote"

    return strategy, rule, float(np.mean(c_q)), float(np.mean(c_v))


def hand_accuracy(view, pred_field):
    gt, pred = view.values(["ground_truth.label", pred_field + ".label"])
    return sum(a == b for a, b in zip(gt, pred)) / len(gt)


def hand_per_class(view, pred_field):
    gt, pred = view.values(["ground_truth.label", pred_field + ".label"])
    out = {}
    for c in set(gt):
        hits = [b == c for a, b in zip(gt, pred) if a == c]
        out[c] = sum(hits) / len(hits)

    return out


def test_apply_dcd_selects_brute_force_neighbours(
    small_dataset, trained_checkpoint, tmp_path
):
    ds = small_dataset
    net = fiftyone_dcd.build_model(
        "small_cnn", num_classes=10, checkpoint=trained_checkpoint
    )
    k = 7
    result = ds.apply_dcd(
        net,
        train="train",
        test="test",
        pool="pool",
        e_sample="e_sample",
        heldout="heldout",
        true_label_field="true_label",
        k=k,
        epochs=1,
        work_dir=str(tmp_path),
        run_key="dcd",
    )
    names = RunNames("dcd")

    # two rounds (the default): selection == brute force over the features
    # of the model fine-tuned in round 1, then the filter that the "auto"
    # strategy (the default) picks
    pool = ds.match_tags("pool")
    e_sample = ds.match_tags("e_sample")
    p_ids, P, weak_all = pool.values(
        ["id", names.refined_embeddings, "weak_label.label"]
    )
    q_ids, Q, q_labels = e_sample.values(
        ["id", names.refined_embeddings, "ground_truth.label"]
    )
    P, Q = np.array(P), np.array(Q)
    _, P0 = pool.values(["id", names.embeddings])
    assert not np.allclose(P, np.array(P0))
    found = brute_force_selection(Q, q_ids, P, p_ids, k)
    weak_of = dict(zip(p_ids, weak_all))
    label_of = dict(zip(q_ids, q_labels))
    strategy, rule, a_q, a_v = brute_force_auto(Q, q_labels, P, weak_all)
    if strategy == "agree":
        signal = {i: label_of[v[1]] for i, v in found.items()}
    else:
        rows = [p_ids.index(i) for i in found]
        assert rule == "majority"  # the noise vote is checked elsewhere
        signal = dict(
            zip(found, brute_force_vote(P[rows], P, weak_all, exclude=rows))
        )
    kept = {i for i in found if weak_of[i] == signal[i]}
    assert 0 < len(kept) < len(found)
    # under the majority vote's labels the images it doubts stay at weight
    # 0.3 (the default); agree drops them
    weighted = strategy == "vote"
    expected = {i: v for i, v in found.items() if weighted or i in kept}
    config = result["config"]
    assert config["label_strategy"] == "auto"
    assert config["label_strategy_used"] == strategy
    assert config["label_signal_accuracies"] == pytest.approx(
        {"query": a_q, "vote": a_v}
    )
    assert "%.0f%%" % (100 * a_v) in config["label_strategy_auto"]
    assert config["vote_rule"] == "auto"
    assert config["vote_rule_used"] == (rule if strategy == "vote" else None)
    assert "vote rule %s" % rule in config["vote_rule_auto"]
    dcd_name = "DCD (auto: %s, 2 rounds%s)" % (
        strategy,
        ", doubted x0.3" if weighted else "",
    )
    assert config["dropped_weight"] == (0.3 if weighted else None)
    assert config["num_weighted"] == (len(found) - len(kept)) * weighted
    assert result["config"]["selected_with"] == names.refined_embeddings
    view = ds.load_saved_view(names.debug_train_view)
    got_ids, dists, queries = view.values(
        ["id", names.distance, names.query_id]
    )
    assert set(got_ids) == set(expected)
    assert result["num_selected"] == len(expected)
    for i, d, q in zip(got_ids, dists, queries):
        assert d == pytest.approx(expected[i][0], rel=1e-5)
        assert q == expected[i][1]

    assert dists == sorted(dists)

    # agree and vote: the assigned label is the weak label
    ids, weak, assigned = view.values(
        ["id", "weak_label.label", names.assigned_label + ".label"]
    )
    assert weak == assigned
    if weighted:
        weights = view.values(names.assigned_label + ".dcd_weight")
        assert weights == [1.0 if i in kept else 0.3 for i in ids]

    # accuracies in the report equal those computed from stored predictions
    rows = {r["method"]: r for r in result["rows"]}
    before, dcd = rows["before debugging"], rows[dcd_name]
    test, heldout = ds.match_tags("test"), ds.match_tags("heldout")
    assert before["test acc"] == pytest.approx(
        hand_accuracy(test, names.pred_before)
    )
    assert before["heldout acc"] == pytest.approx(
        hand_accuracy(heldout, names.pred_before)
    )
    assert dcd["test acc"] == pytest.approx(
        hand_accuracy(test, names.pred_after)
    )
    assert dcd["heldout acc"] == pytest.approx(
        hand_accuracy(heldout, names.pred_after)
    )
    assert set(rows) == {
        "before debugging",
        dcd_name,
        "E_sample only",
        "E_sample + random pool",
        "E_sample + all of F",
    }
    assert rows["E_sample + random pool"]["pool images added"] == len(expected)

    truth = view.values("true_label.label")
    assert result["label_purity"] == pytest.approx(
        np.mean([a == b for a, b in zip(truth, assigned)])
    )

    # per-class accuracies equal those computed from stored predictions,
    # and the summary the App panel shows carries the same numbers
    for split, view_ in (("test", test), ("heldout", heldout)):
        for method, field in (
            ("before debugging", names.pred_before),
            (dcd_name, names.pred_after),
        ):
            want = hand_per_class(view_, field)
            got = result["per_class"][method][split]
            assert set(got) == set(want)
            for c in want:
                assert got[c] == pytest.approx(want[c])

    assert fiftyone_dcd.list_dcd_runs(ds) == ["dcd"]
    summary = fiftyone_dcd.summarize_run(ds)
    assert summary["run_key"] == "dcd"
    assert summary["num_selected"] == len(expected)
    by_class = {r["class"]: r for r in summary["per_class"]}
    want = hand_per_class(heldout, names.pred_after)
    want0 = hand_per_class(heldout, names.pred_before)
    for c in want:
        assert by_class[c]["heldout change"] == pytest.approx(
            want[c] - want0[c]
        )

    text = fiftyone_dcd.results.summary_markdown(summary)
    assert config["vote_rule_auto"] in text
    assert config["label_strategy_auto"] in text
    for r in result["rows"]:
        assert "| %s |" % r["method"] in text
        assert "%.2f" % (100 * r["heldout acc"]) in text
        assert "%.2f" % (100 * r["test acc"]) in text

    traces = fiftyone_dcd.results.accuracy_traces(summary)
    assert traces[1]["y"] == [
        round(100 * r["heldout acc"], 2) for r in result["rows"]
    ]
    dt = fiftyone_dcd.run_view(ds, "dcd", "debug_train")
    assert set(dt.values("id")) == set(expected)
    assert dt.values(names.distance) == sorted(dt.values(names.distance))
    assert set(fiftyone_dcd.run_view(ds, "dcd", "heldout").values("id")) == (
        set(heldout.values("id"))
    )

    # the run is stored and reads back
    assert "dcd" in ds.list_runs()
    config, stored = load_run(ds, "dcd")
    assert config["k"] == k
    assert stored["table"] == result["table"]
    for a, b in zip(stored["rows"], result["rows"]):
        assert a["method"] == b["method"]
        assert a["heldout acc"] == pytest.approx(b["heldout acc"])

    # errors tagged where the model under debug was wrong on E
    e_all = ds.match_tags(["e_sample", "heldout"])
    gt, pred = e_all.values(
        ["ground_truth.label", names.pred_before + ".label"]
    )
    assert len(ds.match_tags(names.error_tag)) == sum(
        a != b for a, b in zip(gt, pred)
    )


def test_query_and_agree_strategies_on_dataset(
    small_dataset, trained_checkpoint
):
    ds = small_dataset
    fiftyone_dcd.embed(
        ds, "small_cnn", "dcd_q_embeddings", checkpoint=trained_checkpoint
    )
    pool, e_sample = ds.match_tags("pool"), ds.match_tags("e_sample")
    view = fiftyone_dcd.select_debug_train(
        pool,
        e_sample,
        "dcd_q_embeddings",
        k=5,
        label_strategy="query",
        run_key="dcd_q",
    )
    names = RunNames("dcd_q")
    q_label = dict(zip(*e_sample.values(["id", "ground_truth.label"])))
    qids, assigned = view.values(
        [names.query_id, names.assigned_label + ".label"]
    )
    assert assigned == [q_label[q] for q in qids]

    view = fiftyone_dcd.select_debug_train(
        pool,
        e_sample,
        "dcd_q_embeddings",
        k=5,
        label_strategy="agree",
        run_key="dcd_a",
    )
    names = RunNames("dcd_a")
    weak, qids, assigned = view.values(
        ["weak_label.label", names.query_id, names.assigned_label + ".label"]
    )
    assert assigned == weak
    assert all(w == q_label[q] for w, q in zip(weak, qids))
    assert 0 < len(view) < 5 * len(e_sample)


def test_noise_vote_on_dataset(small_dataset, trained_checkpoint):
    from fiftyone_dcd import label_noise
    from fiftyone_dcd.embeddings import load_embeddings
    from fiftyone_dcd.selection import select_nearest

    ds = small_dataset
    fiftyone_dcd.embed(
        ds, "small_cnn", "dcd_n_embeddings", checkpoint=trained_checkpoint
    )
    pool, e_sample = ds.match_tags("pool"), ds.match_tags("e_sample")
    view, info = fiftyone_dcd.select_debug_train(
        pool,
        e_sample,
        "dcd_n_embeddings",
        k=5,
        label_strategy="vote",
        vote_rule="noise",
        run_key="dcd_n",
        return_info=True,
    )
    # the noise vote drops the images it doubts unless given a weight
    assert info["vote_rule"] == "noise"
    assert info["dropped_weight"] == 0.0 and info["num_weighted"] == 0
    names = RunNames("dcd_n")
    description = ds.get_saved_view_info(names.debug_train_view)
    assert "noise vote" in description["description"]
    assert "the images the vote doubts dropped" in description["description"]

    # brute force: the noise model of E_sample's 20 nearest pool images,
    # then each selected image's 20 nearest other pool images vote
    pool_ids, X = load_embeddings(pool, "dcd_n_embeddings")
    q_ids, Q = load_embeddings(e_sample, "dcd_n_embeddings")
    weak = dict(zip(*pool.values(["id", "weak_label.label"])))
    w = np.array([weak[i] for i in pool_ids], dtype=object)
    truth = dict(zip(*e_sample.values(["id", "ground_truth.label"])))
    q_labels = [truth[i] for i in q_ids]
    d_q = np.linalg.norm(Q[:, None] - X[None], axis=2)
    q_nb = w[np.argsort(d_q, axis=1, kind="stable")[:, :20]]
    model = label_noise.fit(
        q_labels, q_nb, np.unique(np.concatenate([w, q_labels]))
    )
    rows = select_nearest(Q, X, 5).pool_index
    d = np.linalg.norm(X[rows, None, :] - X[None, :, :], axis=2)
    d[np.arange(len(rows)), rows] = np.inf
    nb = w[np.argsort(d, axis=1, kind="stable")[:, :20]]
    votes = label_noise.vote(model, nb)
    kept = {pool_ids[r] for r, v in zip(rows, votes) if w[r] == v}
    assert kept
    # here the rule matters: some images' majority differs
    from fiftyone_dcd.selection import majority_labels

    assert np.any(majority_labels(nb) != votes)
    assert set(view.values("id")) == kept


def test_same_run_key_twice_is_refused_unless_overwrite(
    small_dataset, trained_checkpoint
):
    ds = small_dataset
    fiftyone_dcd.embed(
        ds, "small_cnn", "dcd_embeddings", checkpoint=trained_checkpoint
    )
    pool, e_sample = ds.match_tags("pool"), ds.match_tags("e_sample")
    kw = dict(label_strategy="weak")
    v1 = fiftyone_dcd.select_debug_train(
        pool, e_sample, "dcd_embeddings", k=3, **kw
    )
    n1 = len(v1)
    with pytest.raises(ValueError, match="already has"):
        fiftyone_dcd.select_debug_train(
            pool, e_sample, "dcd_embeddings", k=6, **kw
        )
    assert len(ds.load_saved_view("dcd_debug_train")) == n1
    v2 = fiftyone_dcd.select_debug_train(
        pool, e_sample, "dcd_embeddings", k=6, overwrite=True, **kw
    )
    assert len(v2) > n1
    assert len(ds.match_tags("dcd:dcd:debug_train")) == len(v2)
    assert len(ds.exists("dcd_distance")) == len(v2)


def test_embeddings_of_timm_model_from_local_checkpoint(
    small_dataset, tmp_path
):
    import timm
    import torch

    from fiftyone_dcd.loaders import load_image
    from fiftyone_dcd.models import get_preprocess, penultimate

    ref = timm.create_model("resnet10t", num_classes=10).eval()
    path = str(tmp_path / "resnet10t.pt")
    torch.save(ref.state_dict(), path)
    view = small_dataset.match_tags("e_sample")
    n = fiftyone_dcd.embed(
        view,
        "resnet10t",
        "dcd_t_embeddings",
        checkpoint=path,
        classes=list(range(10)),
    )
    assert n == len(view) == 20

    filepaths, vectors = view.values(["filepath", "dcd_t_embeddings"])
    assert len(vectors[0]) == ref.num_features
    # the stored vector is the penultimate layer of the same image
    x = torch.stack(
        [load_image(f, get_preprocess(ref)) for f in filepaths[:3]]
    )
    with torch.inference_mode():
        expected = penultimate(ref, x).numpy()

    np.testing.assert_allclose(
        np.array(vectors[:3]), expected, rtol=1e-4, atol=1e-5
    )


def test_apply_dcd_splits_errors_by_fraction(
    small_dataset, trained_checkpoint, tmp_path
):
    ds = small_dataset
    errors = ds.match_tags(["e_sample", "heldout"])
    result = ds.apply_dcd(
        "small_cnn",
        checkpoint=trained_checkpoint,
        train="train",
        test="test",
        pool="pool",
        errors=errors,
        num_e_sample=0.25,
        k=2,
        label_strategy="weak",
        rounds=1,
        epochs=1,
        baselines=(),
        run_key="split",
        work_dir=str(tmp_path),
    )
    names = RunNames("split")
    e_sample = ds.match_tags(names.e_sample_tag)
    heldout = ds.match_tags(names.heldout_tag)
    assert len(e_sample) == 30 and len(heldout) == 90
    assert not set(e_sample.values("id")) & set(heldout.values("id"))
    assert set(
        ds.match_tags(names.debug_train_tag).values(names.query_id)
    ) <= set(e_sample.values("id"))
    assert [r["method"] for r in result["rows"]] == [
        "before debugging",
        "DCD (weak)",
    ]


def test_overwrite_keeps_a_split_made_by_this_run(
    small_dataset, trained_checkpoint, tmp_path
):
    """tag_errors splits E into the run's tags; apply_dcd(overwrite=True)
    on those tags must not lose them when it clears the run."""
    ds = small_dataset
    names = RunNames("dcd")
    out = fiftyone_dcd.tag_errors(
        ds.match_tags(["e_sample", "heldout"]),
        "small_cnn",
        checkpoint=trained_checkpoint,
        num_e_sample=20,
        seed=1,
    )
    assert out["num_e_sample"] == 20
    e_ids = set(ds.match_tags(names.e_sample_tag).values("id"))
    ds.apply_dcd(
        "small_cnn",
        checkpoint=trained_checkpoint,
        train="train",
        test="test",
        pool="pool",
        e_sample=names.e_sample_tag,
        heldout=names.heldout_tag,
        k=2,
        rounds=1,
        epochs=1,
        baselines=(),
        overwrite=True,
        work_dir=str(tmp_path),
    )
    assert set(ds.match_tags(names.e_sample_tag).values("id")) == e_ids
    assert len(ds.match_tags(names.heldout_tag)) == 100


def test_apply_dcd_chooses_the_threshold_from_e_sample(
    small_dataset, trained_checkpoint, tmp_path
):
    ds = small_dataset
    result = ds.apply_dcd(
        "small_cnn",
        checkpoint=trained_checkpoint,
        train="train",
        test="test",
        pool="pool",
        e_sample="e_sample",
        heldout="heldout",
        label_strategy="weak",
        rounds=1,
        quantile=0.6,
        epochs=1,
        baselines=(),
        run_key="auto",
        work_dir=str(tmp_path),
    )
    names = RunNames("auto")
    p_ids, P = ds.match_tags("pool").values(["id", names.embeddings])
    Q = np.array(ds.match_tags("e_sample").values(names.embeddings))
    P = np.array(P)

    # by hand: each E_sample image's distance to its nearest other one
    dq = np.linalg.norm(Q[:, None] - Q[None], axis=2)
    np.fill_diagonal(dq, np.inf)
    t = np.quantile(dq.min(axis=1), 0.6)
    config = result["config"]
    assert config["threshold"] == pytest.approx(t, rel=1e-6)
    assert "0.6-quantile" in config["chosen_automatically"]

    # selected: exactly the pool images within t of some E_sample image
    nearest = np.linalg.norm(P[:, None] - Q[None], axis=2).min(axis=1)
    expected = {i for i, d in zip(p_ids, nearest) if d <= t}
    got = set(ds.load_saved_view(names.debug_train_view).values("id"))
    assert got == expected and 0 < len(got) < len(p_ids)
    assert "chosen: threshold" in ds.get_saved_view_info(
        names.debug_train_view
    ).get("description", "")


def test_vote_keeps_doubted_images_at_a_weight(
    small_dataset, trained_checkpoint, tmp_path
):
    import torch
    import torch.nn.functional as F

    from fiftyone_dcd.embeddings import load_embeddings
    from fiftyone_dcd.loaders import make_loader
    from fiftyone_dcd.models import build_model, get_preprocess
    from fiftyone_dcd.selection import majority_labels, select_nearest
    from fiftyone_dcd.training import Classifier, train_classifier

    ds = small_dataset
    fiftyone_dcd.embed(
        ds, "small_cnn", "dcd_w_embeddings", checkpoint=trained_checkpoint
    )
    pool, e_sample = ds.match_tags("pool"), ds.match_tags("e_sample")
    kw = dict(k=5, label_strategy="vote", vote_rule="majority")
    # 0: the filter alone; the default: the doubted images at weight 0.3
    plain = fiftyone_dcd.select_debug_train(
        pool,
        e_sample,
        "dcd_w_embeddings",
        run_key="dcd_v",
        dropped_weight=0,
        **kw,
    )
    view = fiftyone_dcd.select_debug_train(
        pool, e_sample, "dcd_w_embeddings", run_key="dcd_w", **kw
    )

    # the expected answer by brute force: every selected image, its weak
    # label and the majority weak label of its 20 nearest other pool images
    pool_ids, X = load_embeddings(pool, "dcd_w_embeddings")
    _, Q = load_embeddings(e_sample, "dcd_w_embeddings")
    weak = dict(zip(*pool.values(["id", "weak_label.label"])))
    w = np.array([weak[i] for i in pool_ids], dtype=object)
    rows = select_nearest(Q, X, 5).pool_index
    d = np.linalg.norm(X[rows, None, :] - X[None, :, :], axis=2)
    d[np.arange(len(rows)), rows] = np.inf
    votes = majority_labels(w[np.argsort(d, axis=1, kind="stable")[:, :20]])
    kept = {pool_ids[r] for r, v in zip(rows, votes) if w[r] == v}
    doubted = {pool_ids[r]: v for r, v in zip(rows, votes) if w[r] != v}
    assert kept and doubted
    assert set(plain.values("id")) == kept
    assert set(view.values("id")) == kept | set(doubted)

    names = RunNames("dcd_w")
    for sid, label in zip(*view.values(["id", names.assigned_label])):
        assert label.label == weak[sid]
        if sid in kept:
            assert label["dcd_weight"] == 1.0
            assert not label.has_field("dcd_second_label")
        else:
            assert label["dcd_weight"] == pytest.approx(0.3)
            assert label["dcd_second_label"] == doubted[sid]
            assert label["dcd_second_weight"] == pytest.approx(0.3)

    # the loader's targets: weighted labels for debug-train, one-hot for
    # E_sample, whose own labels' attributes of the same names are not
    # read; the loss is each label's cross-entropy times its weight
    own = e_sample.first()
    own["ground_truth"]["dcd_weight"] = 0.0
    own["ground_truth"]["dcd_second_label"] = "no such class"
    own.save()
    classes = ds.default_classes
    net = build_model("small_cnn", len(classes))
    loader = make_loader(
        [(view, names.assigned_label), (e_sample, "ground_truth")],
        get_preprocess(net),
        classes=classes,
        batch_size=len(view) + len(e_sample),
    )
    batch = next(iter(loader))
    targets = dict(zip(batch["ids"], batch["labels"]))
    c = {name: i for i, name in enumerate(classes)}
    for sid in list(doubted)[:3] + list(kept)[:3]:
        expected = torch.zeros(len(classes))
        if sid in doubted:
            expected[c[weak[sid]]] += 0.3
            expected[c[doubted[sid]]] += 0.3
        else:
            expected[c[weak[sid]]] = 1.0
        assert torch.equal(targets[sid], expected)
    gt = dict(zip(*e_sample.values(["id", "ground_truth.label"])))
    for sid, label in gt.items():
        assert targets[sid].tolist() == [float(n == label) for n in classes]

    logits = torch.randn(4, len(classes))
    first, second = torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8])
    soft = torch.zeros(4, len(classes))
    soft[range(4), first] = torch.tensor([1.0, 0.3, 1.0, 0.3])
    soft[range(4), second] += torch.tensor([0.0, 0.3, 0.0, 0.3])
    by_hand = (
        F.cross_entropy(logits, first, reduction="none")
        * torch.tensor([1.0, 0.3, 1.0, 0.3])
        + F.cross_entropy(logits, second, reduction="none")
        * torch.tensor([0.0, 0.3, 0.0, 0.3])
    ).mean()
    model = Classifier(torch.nn.Identity())
    loss = model(logits, soft, mode="loss")["loss"]
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)

    # fine-tuning on the weighted parts runs and moves the weights
    start = {k: v.clone() for k, v in net.state_dict().items()}
    train_classifier(
        net,
        [(view, names.assigned_label), (e_sample, "ground_truth")],
        classes,
        str(tmp_path / "work"),
        epochs=1,
        lr=0.01,
    )
    moved = max(
        (net.state_dict()[k].float() - v.float()).abs().max().item()
        for k, v in start.items()
    )
    assert moved > 1e-3


def test_train_model_is_reproducible_from_its_seed(small_dataset, tmp_path):
    import torch

    train = small_dataset.match_tags("train")
    nets = [
        fiftyone_dcd.train_model(
            train, epochs=1, seed=seed, work_dir=str(tmp_path / str(n))
        )[0]
        for n, seed in enumerate((3, 3, 4))
    ]
    a, b, c = (n.state_dict() for n in nets)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
