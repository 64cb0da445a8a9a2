"""Selection and labelling against brute-force answers and hand-built
cases."""

import numpy as np
import pytest

from fiftyone_dcd import label_noise
from fiftyone_dcd.selection import (
    AUTO_MAX_K,
    DEFAULT_DROPPED_WEIGHT,
    DEFAULT_K,
    assign_labels,
    auto_threshold,
    choose_label_strategy,
    choose_vote_rule,
    filter_signal,
    knn,
    label_selection,
    label_signal_accuracies,
    label_signal_checks,
    leave_one_out_distances,
    majority_labels,
    neighbor_vote,
    resolve_dropped_weight,
    resolve_k_threshold,
    resolve_vote_rule,
    select_nearest,
    soft_targets,
    training_targets,
)


def brute_force(queries, pool, k):
    d = np.linalg.norm(
        queries[:, None, :].astype(np.float64) - pool[None, :, :], axis=2
    )
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]

    return np.take_along_axis(d, idx, axis=1), idx


@pytest.mark.parametrize("block_size", [7, 100, 65536])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_knn_matches_brute_force(block_size, k):
    rng = np.random.default_rng(k + block_size)
    queries = rng.normal(size=(30, 12)).astype(np.float32)
    pool = rng.normal(size=(500, 12)).astype(np.float32)
    d, i = knn(queries, pool, k, block_size=block_size)
    bd, bi = brute_force(queries, pool, k)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_allclose(d, bd, rtol=1e-6)


def test_knn_with_k_beyond_pool_returns_all():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(6, 3)).astype(np.float32)
    d, i = knn(pool[:2], pool, 50)
    assert i.shape == (2, 6)
    assert i[0, 0] == 0 and i[1, 0] == 1
    assert d[0, 0] == 0.0


def test_knn_leaves_inputs_unchanged():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(4, 5)).astype(np.float32)
    p = rng.normal(size=(20, 5)).astype(np.float32)
    q0, p0 = q.copy(), p.copy()
    knn(q, p, 3, block_size=6)
    np.testing.assert_array_equal(q, q0)
    np.testing.assert_array_equal(p, p0)


def test_select_nearest_dedups_to_nearest_query():
    # two queries on a line; pool points between them
    queries = np.array([[0.0], [10.0]], dtype=np.float32)
    pool = np.array([[1.0], [4.0], [6.0], [9.5], [20.0]], dtype=np.float32)
    sel = select_nearest(queries, pool, k=3)
    got = {
        int(p): (int(q), float(d))
        for p, q, d in zip(sel.pool_index, sel.query_index, sel.distance)
    }
    # query 0 finds 1, 4, 6; query 1 finds 9.5, 6, 4 -> 4 -> q0, 6 -> q1
    assert got == {0: (0, 1.0), 1: (0, 4.0), 2: (1, 4.0), 3: (1, 0.5)}
    assert len(set(sel.pool_index.tolist())) == len(sel)


def test_select_nearest_threshold_and_budget():
    queries = np.array([[0.0], [100.0]], dtype=np.float32)
    pool = np.array([[1.0], [2.0], [3.0], [101.0], [150.0]], dtype=np.float32)
    sel = select_nearest(queries, pool, k=3, threshold=2.5)
    assert sorted(sel.pool_index.tolist()) == [0, 1, 3]

    # budget keeps each query's nearest first: ranks 0 of both queries
    sel = select_nearest(queries, pool, k=3, budget=2)
    assert sorted(sel.pool_index.tolist()) == [0, 3]
    assert sel.rank.tolist() == [0, 0]

    sel = select_nearest(queries, pool, k=3, threshold=0.5)
    assert len(sel) == 0


@pytest.mark.parametrize("bad", [{"k": 0}, {"k": -3}, {"budget": 0}])
def test_select_nearest_rejects_bad_parameters(bad):
    q = np.zeros((1, 2), dtype=np.float32)
    kwargs = {"k": 2, **bad}
    with pytest.raises(ValueError, match="k must|budget must"):
        select_nearest(q, q, **kwargs)


def test_label_strategies_on_known_case():
    weak = ["cat", "dog", "dog", "cat"]
    query = ["cat", "cat", "dog", "dog"]
    labels, keep = assign_labels("weak", weak, query)
    assert list(labels) == weak and keep.all()
    labels, keep = assign_labels("query", weak, query)
    assert list(labels) == query and keep.all()
    labels, keep = assign_labels("agree", weak, query)
    assert keep.tolist() == [True, False, True, False]
    assert list(labels[keep]) == ["cat", "dog"]
    labels, keep = assign_labels("vote", weak, query, ["cat"] * 4)
    assert keep.tolist() == [True, False, False, True]
    assert list(labels) == weak
    with pytest.raises(ValueError, match="Unknown label strategy 'poll'"):
        assign_labels("poll", weak, query)


def test_leave_one_out_distances_on_a_line():
    # neighbours: 0->1 (1), 1->0 (1), 3->1 (2), 6->3 (3)
    q = np.array([[0.0], [1.0], [3.0], [6.0]])
    np.testing.assert_allclose(leave_one_out_distances(q), [1, 1, 2, 3])
    # numpy's linear quantile of [1, 1, 2, 3]: median 1.5, 0.75 -> 2.25
    assert auto_threshold(q, 0.5) == pytest.approx(1.5)
    assert auto_threshold(q, 0.75) == pytest.approx(2.25)
    assert auto_threshold(q, 1.0) == pytest.approx(3.0)


def test_leave_one_out_in_two_dimensions():
    # a 3-4-5 triangle plus a far point
    q = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [30.0, 40.0]])
    np.testing.assert_allclose(
        leave_one_out_distances(q), [3.0, 3.0, 4.0, np.hypot(30, 36)]
    )


def test_automatic_threshold_selects_what_lies_within_it():
    q = np.array([[0.0], [1.0], [3.0], [6.0]], dtype=np.float32)
    pool = np.array(
        [[-1.4], [0.5], [2.0], [4.6], [7.6], [10.0], [-5.0]],
        dtype=np.float32,
    )
    chosen = resolve_k_threshold(q, quantile=0.5)
    assert chosen["k"] == AUTO_MAX_K
    assert chosen["threshold"] == pytest.approx(1.5)
    assert "0.5-quantile" in chosen["auto"]
    sel = select_nearest(q, pool, chosen["k"], threshold=chosen["threshold"])
    # within 1.5 of some query: -1.4 (0), 0.5 (0/1), 2.0 (1/3), 4.6 (3/6)
    assert sorted(sel.pool_index.tolist()) == [0, 1, 2, 3]
    # 0.5 and 2.0 are as near to two queries each: ties go to the lower
    # query row; 4.6 is 1.4 from 6 and 1.6 from 3
    by_pool = dict(zip(sel.pool_index.tolist(), sel.query_index.tolist()))
    assert by_pool == {0: 0, 1: 0, 2: 1, 3: 3}


def test_resolve_k_threshold_cases():
    q = np.array([[0.0], [2.0]])
    assert resolve_k_threshold(q, k=7) == {
        "k": 7,
        "threshold": None,
        "auto": None,
    }
    assert resolve_k_threshold(q, k=7, threshold=0.5)["threshold"] == 0.5
    only_t = resolve_k_threshold(q, threshold=0.5)
    assert only_t["k"] == AUTO_MAX_K and only_t["threshold"] == 0.5
    assert resolve_k_threshold(q, quantile=1.0)["threshold"] == 2.0
    single = resolve_k_threshold(q[:1])
    assert single["k"] == DEFAULT_K and single["threshold"] is None
    assert "one E_sample image" in single["auto"]
    with pytest.raises(ValueError, match="quantile must be in"):
        auto_threshold(q, 0.0)


def _line(xs):
    return np.asarray(xs, dtype=np.float32)[:, None]


def test_majority_labels_breaks_ties_by_nearness():
    # one vote each: the nearer neighbour wins
    assert majority_labels(np.array([["a", "b"]])).tolist() == ["a"]
    got = majority_labels(np.array([["a", "b", "b"], ["c", "b", "c"]]))
    assert got.tolist() == ["b", "c"]
    # b and c have two votes each; c has the nearest vote
    got = majority_labels(np.array([["c", "b", "c", "b"]]))
    assert got.tolist() == ["c"]
    # a tie is decided by the nearest vote, not the sum of ranks (a: 0+4,
    # b: 1+2)
    got = majority_labels(np.array([["a", "b", "b", "c", "a"]]))
    assert got.tolist() == ["a"]


def test_neighbor_vote_excludes_the_image_itself():
    # pool 0..9 on a line, weak label "a" but for 3, which says "b"
    pool = _line(range(10))
    weak = np.array(["a"] * 10, dtype=object)
    weak[3] = "b"
    rows = np.array([3, 2, 9])
    # 3's neighbours: 2, 4, then 1 (tie with 5 goes to the lower row)
    votes = neighbor_vote(pool[rows], pool, weak, 3, exclude=rows)
    assert votes.tolist() == ["a", "a", "a"]
    # without exclusion, 3 votes for itself: b, then 2 and 4 say a
    votes = neighbor_vote(pool[rows], pool, weak, 1)
    assert votes.tolist() == ["b", "a", "a"]


def _two_clusters(weak_first):
    """Pool rows 0..9 at x = 0..9 and rows 10..19 at x = 100..109."""
    pool = _line(list(range(10)) + list(range(100, 110)))
    weak = np.array(list(weak_first) + ["b"] * 10, dtype=object)

    return pool, weak


def test_auto_chooses_vote_where_neighbours_know_better():
    # two queries, each the other's nearest: the nearest query's label is
    # always wrong (0%), the pool's vote always right (100%)
    pool, weak = _two_clusters(["a"] * 3 + ["b"] + ["a"] * 6)
    weak[15] = "a"  # a wrong weak label in the second cluster
    queries, query_labels = _line([0.2, 100.2]), ["a", "b"]
    acc = label_signal_accuracies(queries, query_labels, pool, weak, 3)
    assert acc == {"query": 0.0, "vote": 1.0}
    checks = label_signal_checks(queries, query_labels, pool, weak, 3)
    assert checks["query"].tolist() == [False, False]
    assert checks["vote"].tolist() == [True, True]
    strategy, why = choose_label_strategy(checks)
    assert strategy == "vote" and "100%" in why and "0%" in why

    sel = select_nearest(queries, pool, k=10)
    labels, keep, info = label_selection(
        "auto", sel, queries, query_labels, pool, weak, num_neighbors=3
    )
    assert info["label_strategy"] == "vote"
    assert info["label_signal_accuracies"] == acc
    # every image but the two with wrong weak labels (rows 3 and 15)
    kept = sorted(sel.pool_index[keep].tolist())
    assert kept == [r for r in range(20) if r not in (3, 15)]
    assert set(labels[keep][sel.pool_index[keep] < 10]) == {"a"}


def test_auto_chooses_agree_where_queries_know_better():
    # the first cluster's weak labels are mostly wrong ("b"), so its vote
    # misleads; each query's nearest other query has its label
    pool, weak = _two_clusters(["b"] * 3 + ["a"] + ["b"] * 6)
    queries = _line([0.2, 0.4, 100.2, 100.4])
    query_labels = ["a", "a", "b", "b"]
    acc = label_signal_accuracies(queries, query_labels, pool, weak, 3)
    assert acc == {"query": 1.0, "vote": 0.5}
    sel = select_nearest(queries, pool, k=10)
    labels, keep, info = label_selection(
        "auto", sel, queries, query_labels, pool, weak, num_neighbors=3
    )
    assert info["label_strategy"] == "agree"
    # agree: row 3 ("a" like its query) and the whole second cluster
    assert sorted(sel.pool_index[keep].tolist()) == [3] + list(range(10, 20))


def test_choose_label_strategy_needs_agree_to_be_clearly_better():
    # paired checks of 20 images; the query label right on 3 images the
    # vote gets wrong and wrong on 2 it gets right: +5 points, one
    # standard error sqrt((5/20 - 0.05**2) * 20/19) / sqrt(20) = 11.4
    # points: vote
    vote = np.array([True] * 10 + [False] * 10)
    query = vote.copy()
    query[10:13] = True
    query[:2] = False
    strategy, why = choose_label_strategy({"query": query, "vote": vote})
    assert strategy == "vote"
    assert "11.4 points" in why
    # 5 and 1: +20 points against sqrt((6/20 - 0.2**2) * 20/19) /
    # sqrt(20) = 11.7: agree
    query[:2] = True
    query[13:15] = True
    query[0] = False
    assert choose_label_strategy({"query": query, "vote": vote})[0] == "agree"
    # a tie keeps the vote; a single query cannot check its own label
    assert choose_label_strategy({"query": vote, "vote": vote})[0] == "vote"
    strategy, why = choose_label_strategy({"query": None, "vote": vote[:1]})
    assert strategy == "vote" and "one E_sample image" in why


def test_label_selection_passes_other_strategies_through():
    pool, weak = _two_clusters(["a"] * 10)
    queries, query_labels = _line([0.2, 100.2]), ["b", "b"]
    sel = select_nearest(queries, pool, k=10)
    for strategy, n_kept in (("weak", 20), ("query", 20), ("agree", 10)):
        labels, keep, info = label_selection(
            strategy, sel, queries, query_labels, pool, weak
        )
        assert info["label_strategy"] == strategy
        assert info["label_signal_accuracies"] is None
        assert keep.sum() == n_kept


def test_filter_signal_is_the_vote_or_the_query_label():
    pool, weak = _two_clusters(["a"] * 3 + ["b"] + ["a"] * 6)
    queries, query_labels = _line([0.2, 100.2]), ["q1", "q2"]
    sel = select_nearest(queries, pool, k=10)
    with pytest.raises(ValueError, match="needs the E_sample vectors"):
        filter_signal("vote", sel, query_labels, pool, weak, 3)
    vote = filter_signal(
        "vote", sel, query_labels, pool, weak, 3, vote_rule="majority"
    )
    # each row's 3 nearest other rows: "a" in the first cluster, "b" in
    # the second, whatever the row's own weak label
    expected = np.where(sel.pool_index < 10, "a", "b")
    assert vote.tolist() == expected.tolist()
    agree = filter_signal("agree", sel, query_labels, pool, weak)
    assert agree.tolist() == np.where(sel.pool_index < 10, "q1", "q2").tolist()
    with pytest.raises(ValueError, match="'vote' and 'agree'"):
        filter_signal("weak", sel, query_labels, pool, weak)


def test_soft_targets_weights_dropped_labels():
    weak = np.array(["a", "b", "c", "d"], dtype=object)
    signal = np.array(["a", "x", "c", "y"], dtype=object)
    keep = weak == signal
    image, label, weight = soft_targets(weak, signal, keep, 0.3)
    # kept images once at weight 1, then each dropped image's weak label,
    # then its signal label, at 0.3
    assert image.tolist() == [0, 2, 1, 3, 1, 3]
    assert label.tolist() == ["a", "c", "b", "d", "x", "y"]
    np.testing.assert_allclose(weight, [1, 1, 0.3, 0.3, 0.3, 0.3])
    # weight 0 is the filter itself
    image, label, weight = soft_targets(weak, signal, keep, 0.0)
    assert image.tolist() == [0, 2] and weight.tolist() == [1.0, 1.0]
    for bad in (-0.1, 0.6):
        with pytest.raises(ValueError, match=r"\[0, 0.5\]"):
            soft_targets(weak, signal, keep, bad)


def test_training_targets_weigh_doubted_images_by_default_under_vote():
    pool, weak = _two_clusters(["a"] * 3 + ["b"] + ["a"] * 6)
    queries, query_labels = _line([0.2, 100.2]), ["q1", "q2"]
    sel = select_nearest(queries, pool, k=10)
    labels, keep, info = label_selection(
        "vote", sel, queries, query_labels, pool, weak, 3
    )
    assert info["vote_rule"] == "majority"
    doubted = np.flatnonzero(~keep)
    assert len(doubted) and keep.any()
    args = (sel, labels, keep, query_labels, pool, weak)
    # None is the default weight; 0 is the filter alone
    for w, expected in ((None, DEFAULT_DROPPED_WEIGHT), (0.2, 0.2)):
        image, _, weight = training_targets(
            "vote",
            *args,
            dropped_weight=w,
            num_neighbors=3,
            vote_rule="majority",
        )
        assert sorted(image.tolist()) == sorted(
            np.flatnonzero(keep).tolist() + 2 * doubted.tolist()
        )
        np.testing.assert_allclose(
            np.sort(weight)[: 2 * len(doubted)], expected
        )
    assert DEFAULT_DROPPED_WEIGHT == 0.3
    image, _, weight = training_targets(
        "vote", *args, dropped_weight=0, num_neighbors=3, vote_rule="majority"
    )
    assert image.tolist() == np.flatnonzero(keep).tolist()
    # "auto" is resolved (here to the majority) on the E_sample vectors
    image, _, weight = training_targets(
        "vote", *args, num_neighbors=3, queries=queries
    )
    assert len(image) == keep.sum() + 2 * len(doubted)
    # the noise vote drops doubted images unless given a weight
    assert resolve_dropped_weight(None, "vote", "noise") is None
    assert resolve_dropped_weight(0.2, "vote", "noise") == 0.2
    assert resolve_dropped_weight(None, "vote", "majority") == 0.3
    with pytest.raises(ValueError, match="resolved vote rule"):
        resolve_dropped_weight(None, "vote", "auto")
    # other strategies ignore the weight
    for s in ("agree", "weak"):
        assert resolve_dropped_weight(None, s) is None
        assert resolve_dropped_weight(0.3, s) is None
    assert resolve_dropped_weight(0, "vote") is None


def _pair_flip_sample():
    # class x's neighbours carry x 60% of the time and the next class 40%
    classes = ["a", "b", "c"]
    nxt = {"a": "b", "b": "c", "c": "a"}
    query_labels, neighbors = [], []
    for c in classes:
        for _ in range(4):
            query_labels.append(c)
            neighbors.append([c] * 6 + [nxt[c]] * 4)
    return classes, query_labels, np.array(neighbors, dtype=object)


def test_noise_model_counts_and_vote_against_a_hand_computation():
    classes, query_labels, neighbors = _pair_flip_sample()
    model = label_noise.fit(query_labels, neighbors, classes)
    np.testing.assert_array_equal(
        model.counts, [[24, 16, 0], [0, 24, 16], [16, 0, 24]]
    )
    # the prior: 100 votes per class, 60% (E_sample's share of own
    # labels) on the diagonal, the rest even
    s = 100.0
    prior = np.array([[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])
    np.testing.assert_allclose(model.prior, s * prior)
    rows = model.counts + s * prior
    np.testing.assert_allclose(
        np.exp(model.log_likelihood), rows / rows.sum(1, keepdims=True)
    )

    # 9 "a" and 11 "b": the majority says b, but "a" is a class whose
    # neighbours often say "b", and "b" one whose neighbours rarely say
    # "a"
    votes = np.array([["a"] * 9 + ["b"] * 11], dtype=object)
    assert majority_labels(votes).tolist() == ["b"]
    like = rows / rows.sum(1, keepdims=True)
    by_hand = [
        9 * np.log(like[c, 0]) + 11 * np.log(like[c, 1]) for c in range(3)
    ]
    assert classes[int(np.argmax(by_hand))] == "a"
    assert label_noise.vote(model, votes).tolist() == ["a"]


def test_noise_vote_leave_one_out_refits_without_the_image():
    classes, query_labels, neighbors = _pair_flip_sample()
    # make one image's neighbours odd, so that leaving it out matters
    neighbors[0] = ["c"] * 10
    model = label_noise.fit(query_labels, neighbors, classes)
    loo = label_noise.leave_one_out_vote(model, query_labels, neighbors)
    for i in range(len(query_labels)):
        rest = [j for j in range(len(query_labels)) if j != i]
        alone = label_noise.fit(
            [query_labels[j] for j in rest],
            neighbors[rest],
            classes,
            prior=model.prior,
        )
        assert loo[i] == label_noise.vote(alone, neighbors[i : i + 1])[0]


def test_noise_vote_rule_through_filter_signal_and_the_auto_check():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(300, 4))
    weak = np.array(rng.choice(["a", "b", "c"], size=300), dtype=object)
    queries = rng.normal(size=(12, 4))
    query_labels = ["a", "b", "c"] * 4
    sel = select_nearest(queries, pool, k=5)
    got = filter_signal(
        "vote",
        sel,
        query_labels,
        pool,
        weak,
        7,
        queries=queries,
        vote_rule="noise",
    )
    # brute force: 7 nearest pool rows of each query fit the model, each
    # selected row's 7 nearest other rows vote
    d_q = np.linalg.norm(queries[:, None] - pool[None], axis=2)
    q_nb = weak[np.argsort(d_q, axis=1, kind="stable")[:, :7]]
    model = label_noise.fit(query_labels, q_nb, ["a", "b", "c"])
    rows = sel.pool_index
    d = np.linalg.norm(pool[rows, None] - pool[None], axis=2)
    d[np.arange(len(rows)), rows] = np.inf
    nb = weak[np.argsort(d, axis=1, kind="stable")[:, :7]]
    assert got.tolist() == label_noise.vote(model, nb).tolist()
    acc = label_signal_accuracies(
        queries, query_labels, pool, weak, 7, vote_rule="noise"
    )
    loo = label_noise.leave_one_out_vote(model, query_labels, q_nb)
    assert acc["vote"] == pytest.approx(
        np.mean(loo == np.array(query_labels, dtype=object))
    )
    with pytest.raises(ValueError, match="Unknown vote rule"):
        filter_signal("vote", sel, query_labels, pool, weak, vote_rule="x")
    with pytest.raises(ValueError, match="Unknown vote rule"):
        label_selection(
            "auto", sel, queries, query_labels, pool, weak, vote_rule="x"
        )
    # labels of mixed types, which do not sort together, still vote
    labels, keep, _ = label_selection(
        "vote", sel, queries, [0, 1, 2] * 4, pool, weak, 7, vote_rule="noise"
    )
    assert len(labels) == len(keep) == len(rows)


def test_choose_vote_rule_needs_more_than_one_standard_error():
    # paired checks of 100 images: the noise vote right where the
    # majority is wrong ("wins") and the other way round ("losses")
    def checks(wins, losses):
        m = np.zeros(100, dtype=bool)
        n = np.zeros(100, dtype=bool)
        m[:50] = n[:50] = True
        n[50 : 50 + wins] = True
        m[50 + wins : 50 + wins + losses] = True
        return m, n

    # 10 wins, 8 losses: +2 points, one standard error
    # sqrt((18/100 - 0.02**2) * 100/99) / 10 = 4.26 points: majority
    rule, why = choose_vote_rule(*checks(10, 8))
    assert rule == "majority"
    assert "noise vote is right 60%" in why and "majority vote 58%" in why
    assert "4.3 points" in why
    # 15 wins, 2 losses: +13 points against 3.9: noise
    assert choose_vote_rule(*checks(15, 2))[0] == "noise"
    # never better: majority; one image gives no check
    assert choose_vote_rule(*checks(0, 0))[0] == "majority"
    assert choose_vote_rule([False], [True])[0] == "majority"


def _clusters(a_own_share):
    """Three tight clusters of 60 pool images and 10 queries each, the
    queries labelled by cluster; the pool's weak labels are the cluster's
    own except in cluster a, where only ``a_own_share`` of them are "a"
    and the rest "b" (structured noise) or spread over b and c."""
    rng = np.random.default_rng(3)
    centers = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    pool = np.concatenate([c + rng.normal(size=(60, 2)) for c in centers])
    queries = np.concatenate([c + rng.normal(size=(10, 2)) for c in centers])
    weak = np.array(["a"] * 60 + ["b"] * 60 + ["c"] * 60, dtype=object)
    n_other = 60 - int(round(a_own_share * 60))
    weak[rng.permutation(60)[:n_other]] = "b"
    return queries, ["a"] * 10 + ["b"] * 10 + ["c"] * 10, pool, weak


def test_auto_vote_rule_chooses_the_noise_vote_only_where_it_is_needed():
    # cluster a's images are labelled "b" 60% of the time: the majority
    # calls a's queries b, the noise model (class a: 40% a, 60% b;
    # class b: all b) calls them a
    queries, q_labels, pool, weak = _clusters(0.4)
    sel = select_nearest(queries, pool, k=5)
    rule, info = resolve_vote_rule(
        "auto", "auto", queries, q_labels, pool, weak, 20
    )
    assert rule == "noise"
    assert info["vote_rule_accuracies"] == {
        "majority": pytest.approx(2 / 3),
        "noise": 1.0,
    }
    labels, keep, info = label_selection(
        "vote", sel, queries, q_labels, pool, weak, 20, vote_rule="auto"
    )
    assert info["vote_rule"] == "noise"
    assert "vote rule noise" in info["vote_rule_auto"]
    expected = filter_signal(
        "vote", sel, q_labels, pool, weak, 20, queries, vote_rule="noise"
    )
    assert info["signal"].tolist() == expected.tolist()
    # selected images of cluster a are voted "a" and keep only "a" labels
    in_a = sel.pool_index < 60
    assert set(info["signal"][in_a]) == {"a"}
    assert set(labels[keep & in_a]) == {"a"}

    # mostly right labels everywhere: both votes are right, majority stays
    queries, q_labels, pool, weak = _clusters(0.9)
    rule, info = resolve_vote_rule(
        "vote", "auto", queries, q_labels, pool, weak, 20
    )
    assert rule == "majority"
    assert info["vote_rule_accuracies"] == {"majority": 1.0, "noise": 1.0}
    # given rules, and strategies that do not vote, choose nothing
    for strategy, given in (("vote", "noise"), ("agree", "auto")):
        rule, info = resolve_vote_rule(
            strategy, given, queries, q_labels, pool, weak, 20
        )
        assert rule == given and info["vote_rule_auto"] is None


def test_vectors_that_cannot_be_searched_are_refused():
    rng = np.random.default_rng(0)
    q, p = rng.normal(size=(3, 4)), rng.normal(size=(50, 4))
    with pytest.raises(ValueError, match="4 dimensions and pool vectors 3"):
        knn(q, p[:, :3], 5)
    bad = q.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="Query vectors contain NaN"):
        select_nearest(bad, p, 3)
    bad = p.copy()
    bad[37, 0] = np.inf
    # found in the second block of the pool: the row number is the pool's
    with pytest.raises(ValueError, match="Pool vector 37 contains NaN"):
        knn(q, bad, 3, block_size=16)


def test_label_arrays_must_match_their_vectors():
    rng = np.random.default_rng(0)
    q, p = rng.normal(size=(10, 4)), rng.normal(size=(60, 4))
    ql = np.array(["a", "b"] * 5, dtype=object)
    pl = np.array(["a", "b", "c"] * 20, dtype=object)
    sel = select_nearest(q, p, 5)
    for args, what in (
        ((q, np.concatenate([ql, ql]), p, pl), "10 E_sample vectors but 20"),
        ((q, ql, p, pl[:-1]), "60 pool vectors but 59"),
        ((q[:0], ql[:0], p, pl), "No E_sample vectors"),
    ):
        with pytest.raises(ValueError, match=what):
            label_selection("vote", sel, *args, vote_rule="noise")
    with pytest.raises(ValueError, match="different E_sample images"):
        choose_vote_rule([True, False, True], [True])
    with pytest.raises(ValueError, match="resolved label strategy"):
        training_targets("auto", sel, pl[sel.pool_index], None, ql, p, pl)


def test_majority_vote_of_mixed_label_types():
    # an int among string labels cannot be sorted; the vote still counts
    votes = majority_labels(
        np.array([["a", 1, 1], ["a", "a", 1], [1, "b", "b"]], dtype=object)
    )
    assert list(votes) == [1, "a", "b"]
