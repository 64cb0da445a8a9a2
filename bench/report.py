"""
Turns the suite's results (``bench/dcd_suite.py``) into
``docs/benchmark.md`` and its plots in ``docs/benchmark/``.

Usage::

    python bench/report.py [--results PATH] [--out docs]
"""

import argparse
import json
import os
import platform
from collections import defaultdict

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import dcd_suite as S  # noqa: E402
from fiftyone_dcd.selection import DEFAULT_NUM_NEIGHBORS  # noqa: E402

#: a baseline "keeps test accuracy" when its mean test accuracy is at most
#: this far below the model's before debugging
TEST_TOLERANCE = 0.005
TARGET_GAIN = 0.15


def dcd_name(spec):
    """``DCD (<strategy>[, 2 rounds][, <rule> vote][, doubted ...])``: the
    vote rule where one is forced, the weight of doubted images where one
    is given to a two-round run (one-round rows are the filters alone)."""
    rounds = spec.get("rounds", 1)
    parts = [spec.get("strategy", "weak")]
    if rounds > 1:
        parts.append("%d rounds" % rounds)
    if spec.get("vote_rule") in ("majority", "noise"):
        parts.append("%s vote" % spec["vote_rule"])
    w = spec.get("dropped_weight")
    if rounds > 1 and w is not None:
        parts.append("doubted x%g" % w if w else "doubted dropped")

    return "DCD (%s)" % ", ".join(parts)


RANDOM = "E_sample + random pool"


def matched_random(name):
    """The random baseline's name when it matches DCD ``name``'s size."""
    if name == DEFAULT_NAME:
        return RANDOM

    return "%s [as many as %s]" % (RANDOM, name)


DEFAULT_NAME = dcd_name(S.DEFAULT_DCD)
DCD_NAMES = [dcd_name(m) for m in S.main_methods() if m["method"] == "DCD"]


def load(path, seeds=S.SEEDS, quick=False):
    """The results of the suite as now defined; results of settings the
    suite no longer runs are left out."""
    results = S.Results(path)
    rows = []
    for group, scenario, seed, methods in S.suite(seeds, quick):
        for spec in methods:
            row = results.get(S.spec_key(spec, scenario, seed, group))
            if row is not None:
                rows.append(row)

    return rows


def _label(spec):
    if spec["method"] == "DCD":
        name = dcd_name(spec)
        extra = []
        if spec.get("quantile", S.DEFAULT_QUANTILE) != S.DEFAULT_QUANTILE:
            extra.append("quantile=%s" % spec["quantile"])
    elif spec["method"] == RANDOM and dcd_name(
        spec.get("match", {})
    ) != dcd_name(S.DEFAULT_DCD):
        return matched_random(dcd_name(spec["match"]))
    else:
        name, extra = spec["method"], []
    if "features" in spec:
        extra.append("features: %s" % spec["features"])
    for k, v in sorted(spec.get("select", {}).items()):
        extra.append("%s=%s" % (k, v))
    for k, v in sorted(spec.get("recipe", {}).items()):
        extra.append("%s=%s" % (k, v))

    return name + (" [%s]" % ", ".join(extra) if extra else "")


def group_rows(rows, group):
    """``{scenario: {method name: {seed: row}}}`` for one group."""
    out = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        spec = r["spec"]
        if spec["group"] != group:
            continue
        out[spec["scenario"]][_label(spec)][spec["seed"]] = r

    return out


def stat(by_seed, field):
    v = np.array([r[field] for r in by_seed.values() if field in r], float)
    v = v[~np.isnan(v)]
    if not len(v):
        return float("nan"), float("nan"), 0

    return float(v.mean()), float(v.std()), len(v)


def pm(by_seed, field, scale=100.0, digits=2):
    m, s, n = stat(by_seed, field)
    if n == 0:
        return "-"
    return "%.*f ± %.*f" % (digits, scale * m, digits, scale * s)


def paired(by_seed, before, field):
    """Mean and std over seeds of ``row[field] - before[field]``."""
    d = [
        r[field] - before[s][field] for s, r in by_seed.items() if s in before
    ]
    if not d:
        return float("nan"), float("nan")
    return float(np.mean(d)), float(np.std(d))


def scenario_summary(methods):
    """The best test-keeping baseline and each DCD strategy's gain over it,
    per seed then averaged."""
    before = methods.get("before", {})
    out = {"best_baseline": _best_baseline(methods, DEFAULT_NAME)}
    out["gains"] = {}
    for name in DCD_NAMES:
        # the random baseline with as many images as this variant adds
        best = _best_baseline(methods, name)
        if name not in methods or best is None:
            continue
        gains = [
            r["heldout_acc"] - methods[best][s]["heldout_acc"]
            for s, r in methods[name].items()
            if s in methods[best]
        ]
        change, _ = paired(methods[name], before, "test_acc")
        strict = _best_baseline(methods, name, every_random=True)
        out["gains"][name] = {
            "gain_any_random": float(
                np.mean(
                    [
                        r["heldout_acc"] - methods[strict][s]["heldout_acc"]
                        for s, r in methods[name].items()
                        if s in methods[strict]
                    ]
                )
            ),
            "gain": float(np.mean(gains)),
            "gain_std": float(np.std(gains)),
            "test_change": change,
            "n": len(gains),
        }
    # the ceiling's own gain over the default's baseline, for scale
    best = out["best_baseline"]
    if best is not None and S.ORACLE in methods:
        out["oracle_gain"] = float(
            np.mean(
                [
                    r["heldout_acc"] - methods[best][s]["heldout_acc"]
                    for s, r in methods[S.ORACLE].items()
                    if s in methods[best]
                ]
            )
        )

    return out


def _best_baseline(methods, name, every_random=False):
    """The baseline with the best debug-heldout accuracy among those that
    keep test accuracy, its random pool as large as DCD ``name``'s, or of
    any size the suite ran with ``every_random``."""
    before = methods.get("before", {})
    keeping = []
    # sorted: equal-sized pools tie, and a set's order varies by process
    randoms = sorted(
        r for r in {matched_random(n) for n in DCD_NAMES} if r in methods
    )
    candidates = [b for b in S.BASELINES if b != RANDOM]
    if every_random:
        candidates += randoms
    elif randoms and name in methods:
        # the random pool closest in size to this variant's selection (a
        # variant without a random pool of its own, such as one round of a
        # filter, takes the nearest)
        size = stat(methods[name], "num_added")[0]
        candidates.append(
            min(
                randoms,
                key=lambda r: abs(stat(methods[r], "num_added")[0] - size),
            )
        )
    for b in candidates:
        if b not in methods:
            continue
        change, _ = paired(methods[b], before, "test_acc")
        if change >= -TEST_TOLERANCE:
            keeping.append((stat(methods[b], "heldout_acc")[0], b))

    return max(keeping)[1] if keeping else None


def _expected(seeds, quick):
    return sum(len(m) for _, _, _, m in S.suite(seeds, quick))


def write_report(results_path, out_dir, seeds=S.SEEDS, quick=False):
    rows = load(results_path, seeds, quick)
    expected = _expected(seeds, quick)
    fig_dir = os.path.join(out_dir, "benchmark")
    os.makedirs(fig_dir, exist_ok=True)
    main = group_rows(rows, "main")
    names = [s["name"] for s in S.SCENARIOS if s["name"] in main]
    lines = [
        "# Benchmark: DCD against the baselines on a scenario suite",
        "",
        "Produced by `python bench/dcd_suite.py` (results kept in "
        "`bench/results/results.jsonl` with the trained models; "
        "`python bench/report.py` rewrites this page from them). Machine: "
        "%s, %d CPU cores, no GPU; torch %s."
        % (platform.machine(), os.cpu_count(), _torch_version()),
        "",
    ]
    if len(rows) < expected:
        lines += [
            "**Incomplete: %d of the suite's %d runs are in the results; "
            "means and gains below are over the seeds and scenarios done so "
            "far (see the *seeds* column). `python bench/dcd_suite.py` "
            "resumes the rest.**" % (len(rows), expected),
            "",
        ]
    lines += [
        "Every scenario is built from Fashion-MNIST's real images by "
        "`fiftyone_dcd.data.scenario` (the same images and labels the demo "
        "writes) and run over seeds %s. The model under debug is a "
        "`SmallCNN(width=16)` trained %d epochs on 10,000 clean training "
        "images; every method is then fine-tuned the same way (%d epochs, "
        "lr %g, SGD + cosine, all training images replayed) with "
        "mmengine, on the training images + E_sample + the pool images the "
        "method adds. DCD selects by l2 distance in the penultimate layer "
        "of the model under debug; with no k or threshold given, the "
        "threshold is the %g-quantile of E_sample's leave-one-out "
        "nearest-neighbour distances (`fiftyone_dcd.selection."
        "auto_threshold`; %g in a first round). With 2 rounds, a copy of "
        "the model is fine-tuned on a first selection and DCD selects again "
        "in its features. Label strategies: `weak` trains on the pool's "
        "weak labels, `query` on the label of the E_sample image that found "
        "the image, `agree` keeps weak labels equal to that query's, `vote` "
        "keeps weak labels equal to the vote of the image's %d nearest "
        "pool images, and `auto` (the default) takes `vote` unless "
        "`agree`'s signal predicts E_sample's own labels better by more "
        "than one standard error of the paired difference (leave one out; "
        "`fiftyone_dcd.selection.choose_label_strategy`). The vote is the "
        "neighbours' majority weak label (`majority vote`), or the class "
        "whose pattern of neighbours' weak labels best explains them under "
        "a model of the label noise fitted on E_sample (`noise vote`, "
        '`fiftyone_dcd.label_noise`); by default (`vote_rule="auto"`) '
        "the noise vote where it predicts E_sample's labels better than "
        "the majority by more than one standard error "
        "(`fiftyone_dcd.selection.choose_vote_rule`), in both rounds. The "
        "one-round rows of each strategy are these filters alone. Under the "
        "majority vote, two-round runs also keep the images the vote doubts "
        "(their weak label differs from the vote), at weight %g on both "
        "their weak label and the vote's "
        "(`fiftyone_dcd.selection.training_targets`; `dropped_weight` in "
        "the API); under the noise vote they are dropped, and under "
        "`agree` nothing changes. The default is `DCD (auto, 2 rounds)`; "
        "`doubted dropped` is the default without the doubted images, "
        "`majority vote` and `noise vote` the default with that vote rule "
        "forced (the first is the previous default). "
        "Accuracies are mean ± std over seeds, in percent."
        % (
            ", ".join(map(str, S.SEEDS)),
            S.BASE_RECIPE["epochs"],
            S.RECIPE["epochs"],
            S.RECIPE["lr"],
            S.DEFAULT_QUANTILE,
            S.FIRST_ROUND_QUANTILE,
            DEFAULT_NUM_NEIGHBORS,
            S.SOFT_WEIGHT,
        ),
        "",
        "A baseline *keeps test accuracy* when its mean test accuracy is at "
        "most %.1f point below the model's before debugging. The *gain* is "
        "DCD's debug-heldout accuracy minus that of the best test-keeping "
        "baseline, seed by seed, then averaged; the random baseline is the "
        "random pool closest in size to the variant's selection: one as "
        "large, run for the default and the variants (rows *as many as "
        "...*), the nearest for the one-round rows. Purity is measured "
        "with the "
        "hidden true labels: *from E* is the share of added images that "
        "come from the deployment shift (for the natural scenario: from the "
        "upper-body classes), *label ok* the share whose assigned label is "
        "correct (weighted by the training weights where images are "
        "doubted: a doubted image counts its weak and its vote label at "
        "their weights). The *oracle* row is no baseline but the ceiling: "
        "every pool image of E with its true label, found with the hidden "
        "truth." % (100 * TEST_TOLERANCE),
        "",
    ]
    summaries = {n: scenario_summary(main[n]) for n in names}
    lines += _headline(summaries, names)
    lines += ["", "![gain per scenario](benchmark/gain_per_scenario.png)", ""]
    _plot_gains(
        summaries, names, os.path.join(fig_dir, "gain_per_scenario.png")
    )

    lines += ["## Scenarios", ""]
    for n in names:
        lines += ["### " + n, ""]
        lines += _method_table(main[n], _order(main[n]))
        s = summaries[n]
        lines += [
            "",
            "Best test-keeping baseline: %s." % (s["best_baseline"] or "none"),
        ]
        lines += _auto_choices(main[n]) + _shortfall(main[n], s) + [""]

    lines += _ablations(rows, fig_dir)
    lines += _timing(rows)
    path = os.path.join(out_dir, "benchmark.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")

    print("Wrote", path)

    return path


def _torch_version():
    import torch

    return torch.__version__


def _auto_choices(methods):
    """What the default's automatic choices were, seed by seed: the label
    strategy, and the vote rule where the vote was used."""
    by_seed = methods.get(DEFAULT_NAME, {})
    chose = [
        r.get("label_strategy")
        + (
            " (%s vote)" % r["vote_rule"]
            if r.get("label_strategy") == "vote" and r.get("vote_rule")
            else ""
        )
        for r in by_seed.values()
    ]
    if not chose or "auto" not in DEFAULT_NAME:
        return []

    counts = {c: chose.count(c) for c in sorted(set(chose), key=str)}
    return [
        "The default's `auto` choices: %s."
        % ", ".join(
            "`%s` in %d of %d seeds" % (c, k, len(chose))
            for c, k in counts.items()
        )
    ]


def _shortfall(methods, summary):
    """Why the default falls short of the target, from the numbers."""
    g = summary["gains"].get(DEFAULT_NAME)
    best = summary["best_baseline"]
    if g is None or best is None or g["gain"] >= TARGET_GAIN:
        return []

    ceiling = stat(methods.get(S.ORACLE, {}), "heldout_acc")[0]
    base = stat(methods[best], "heldout_acc")[0]
    mine = methods[DEFAULT_NAME]
    from_e = stat(mine, "shift_purity")[0]
    label_ok = stat(mine, "label_purity")[0]
    why = []
    if ceiling == ceiling and ceiling - base < TARGET_GAIN:
        why.append(
            "the best test-keeping baseline (%s, %.1f) is only %.1f points "
            "below the ceiling (oracle, %.1f), so no selection can gain "
            "+%.0f here"
            % (
                best,
                100 * base,
                100 * (ceiling - base),
                100 * ceiling,
                100 * TARGET_GAIN,
            )
        )
    if from_e == from_e and from_e < 0.5:
        why.append(
            "only %.0f%% of the selection comes from E: these features do "
            "not separate E's images from the rest of the pool"
            % (100 * from_e)
        )
    if label_ok == label_ok and label_ok < 0.85:
        why.append(
            "%.0f%% of the selected labels are right" % (100 * label_ok)
        )
    if ceiling == ceiling:
        why.append(
            "DCD reaches %.0f%% of the way from the baseline to the ceiling"
            % (
                100
                * (stat(mine, "heldout_acc")[0] - base)
                / max(ceiling - base, 1e-9)
            )
        )

    return [
        "Short of +%.0f points (%+.2f): %s."
        % (100 * TARGET_GAIN, 100 * g["gain"], "; ".join(why))
    ]


def _order(methods):
    first = ["before"] + DCD_NAMES + list(S.BASELINES) + [S.ORACLE]
    return [m for m in first if m in methods] + sorted(
        m for m in methods if m not in first
    )


def _method_table(methods, order):
    before = methods.get("before", {})
    out = [
        "| method | seeds | images added | debug-heldout | test | test "
        "change | heldout change | from E | label ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in order:
        by_seed = methods[m]
        tc = paired(by_seed, before, "test_acc")
        hc = paired(by_seed, before, "heldout_acc")
        out.append(
            "| %s | %d | %s | %s | %s | %s | %s | %s | %s |"
            % (
                m,
                len(by_seed),
                pm(by_seed, "num_added", 1, 0),
                pm(by_seed, "heldout_acc"),
                pm(by_seed, "test_acc"),
                "%+.2f" % (100 * tc[0]) if tc[0] == tc[0] else "-",
                "%+.2f" % (100 * hc[0]) if hc[0] == hc[0] else "-",
                pm(by_seed, "shift_purity", 100, 1),
                pm(by_seed, "label_purity", 100, 1),
            )
        )

    return out


def _headline(summaries, names):
    out = [
        "## Summary",
        "",
        "| scenario | best test-keeping baseline | "
        + " | ".join("gain, %s" % n for n in DCD_NAMES)
        + " | test change, %s |" % DEFAULT_NAME,
        "|---|---|" + "---:|" * (len(DCD_NAMES) + 1),
    ]
    means = defaultdict(list)
    for n in names:
        s = summaries[n]
        cells = []
        for d in DCD_NAMES:
            g = s["gains"].get(d)
            if g is None:
                cells.append("-")
                continue
            means[d].append(g["gain"])
            drifts = g["test_change"] < -TEST_TOLERANCE
            cells.append(
                "%+.2f ± %.2f%s"
                % (
                    100 * g["gain"],
                    100 * g["gain_std"],
                    " †" if drifts else "",
                )
            )
        g = s["gains"].get(DEFAULT_NAME, {})
        out.append(
            "| %s | %s | %s | %s |"
            % (
                n,
                s["best_baseline"] or "none",
                " | ".join(cells),
                "%+.2f" % (100 * g["test_change"]) if g else "-",
            )
        )

    out.append(
        "| **mean over scenarios** | | "
        + " | ".join(
            "**%+.2f**" % (100 * np.mean(means[d])) if means[d] else "-"
            for d in DCD_NAMES
        )
        + " | |"
    )
    out += [
        "",
        "† this DCD variant's mean test accuracy is more than %.1f point "
        "below the model's before debugging in that scenario."
        % (100 * TEST_TOLERANCE),
    ]
    strict = {
        d: [
            summaries[n]["gains"][d]["gain_any_random"]
            for n in names
            if d in summaries[n]["gains"]
        ]
        for d in DCD_NAMES
    }
    if len(strict) and any(len(v) for v in strict.values()):
        out += [
            "",
            "Against the best test-keeping baseline with a random pool of "
            "any size the suite ran (a stricter comparison: a larger random "
            "pool can be the better baseline), the mean gains are: %s."
            % "; ".join(
                "%s %+.2f" % (d, 100 * np.mean(v))
                for d, v in strict.items()
                if v
            ),
        ]
    if means[DEFAULT_NAME]:
        mean = float(np.mean(means[DEFAULT_NAME]))
        gains = {n: summaries[n]["gains"].get(DEFAULT_NAME, {}) for n in names}
        short = [n for n in names if gains[n].get("gain", 0) < TARGET_GAIN]
        drift = [
            n
            for n in names
            if gains[n].get("test_change", 0) < -TEST_TOLERANCE
        ]
        out += [
            "",
            "The default, **%s**, gains **%+.2f points** on debug-heldout "
            "over the best test-keeping baseline, averaged over %d "
            "scenarios (target: +%.0f)."
            % (DEFAULT_NAME, 100 * mean, len(names), 100 * TARGET_GAIN),
        ]
        ceiling = [
            summaries[n]["oracle_gain"]
            for n in names
            if "oracle_gain" in summaries[n]
        ]
        if len(ceiling) == len(names):
            out.append(
                "The ceiling (every E image of F with its true label, the "
                "*oracle* row) gains %+.2f over the same baselines, "
                "averaged; the default reaches %.0f%% of that."
                % (
                    100 * np.mean(ceiling),
                    100 * mean / max(np.mean(ceiling), 1e-9),
                )
            )
        if short:
            out.append(
                "Below +%.0f points: %s."
                % (100 * TARGET_GAIN, "; ".join(short))
            )
        if drift:
            out.append(
                "Test accuracy more than %.1f point below the model before "
                "debugging: %s." % (100 * TEST_TOLERANCE, "; ".join(drift))
            )

    return out


def _plot_gains(summaries, names, path):
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(DCD_NAMES)
    x = np.arange(len(names))
    for j, d in enumerate(DCD_NAMES):
        g = [
            100 * summaries[n]["gains"].get(d, {}).get("gain", np.nan)
            for n in names
        ]
        e = [
            100 * summaries[n]["gains"].get(d, {}).get("gain_std", 0)
            for n in names
        ]
        ax.bar(x + j * width, g, width, yerr=e, label=d)
    ax.axhline(100 * TARGET_GAIN, color="k", ls="--", lw=1, label="target")
    ax.set_xticks(x + width * (len(DCD_NAMES) - 1) / 2)
    ax.set_xticklabels(
        [n.split(",")[0] for n in names], rotation=20, ha="right"
    )
    ax.set_ylabel(
        "debug-heldout gain over best\ntest-keeping baseline " "(points)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ablations(rows, fig_dir):
    out = ["## Ablations (default scenario: %s)" % S.SCENARIOS[0]["name"], ""]
    main = group_rows(rows, "main").get(S.SCENARIOS[0]["name"], {})
    abl = group_rows(rows, "ablation").get(S.SCENARIOS[0]["name"], {})
    if not abl:
        return out + ["Not run yet.", ""]

    methods = dict(abl)
    d = DEFAULT_NAME
    for m in (
        "before",
        d,
        "E_sample + random pool",
        "E_sample only",
        "E_sample + all of F",
    ):
        methods[m] = main.get(m, {})
    sections = [
        (
            "Against the paper's setting (one round, weak labels)",
            ["before", d]
            + [m for m in abl if m.startswith("DCD (weak")]
            + ["E_sample + random pool", "E_sample only"],
        ),
        (
            "Feature model for selection",
            [d] + sorted(m for m in abl if "features:" in m),
        ),
        (
            "k (no threshold)",
            sorted(
                (m for m in abl if "[k=" in m),
                key=lambda m: int(m.split("k=")[1].rstrip("]")),
            ),
        ),
        (
            "Automatic threshold: quantile of E_sample's leave-one-out "
            "distances",
            sorted(
                [
                    m
                    for m in abl
                    if "quantile=" in m and not m.startswith("DCD (weak")
                ]
                + [d]
            ),
        ),
        (
            "Budget (automatic threshold, nearest first)",
            sorted(
                (m for m in abl if "budget=" in m),
                key=lambda m: int(m.split("budget=")[1].rstrip("]")),
            ),
        ),
        (
            "Fine-tuning recipe",
            ["before", d, "E_sample + random pool"]
            + sorted(
                m
                for m in abl
                if "epochs=" in m or "lr=" in m or "replay=" in m
            ),
        ),
    ]
    for title, order in sections:
        order = [m for m in order if m in methods and methods[m]]
        out += ["### " + title, ""] + _method_table(methods, order) + [""]
        if title.startswith("Feature"):
            out += [
                "`other_data`: a model of the same shape trained on 10,000 "
                "other clean training images; `untrained`: random weights "
                "(the floor). A timm model by name (for example "
                "`vit_small_patch16_224.dino`) needs hub weights, which "
                "this machine cannot download; its code path is tested "
                "with a local checkpoint (`tests/test_api.py`).",
                "",
            ]
        if title.startswith("Fine"):
            out += [
                "Rows with a recipe setting compare against the `before` "
                "row; each recipe row changes one setting of the default "
                "(%s)." % json.dumps(S.RECIPE),
                "",
            ]

    _plot_k(methods, os.path.join(fig_dir, "accuracy_vs_k.png"))
    _plot_purity(abl, os.path.join(fig_dir, "purity_vs_distance.png"))
    out += [
        "![accuracy vs k](benchmark/accuracy_vs_k.png)",
        "![purity vs distance](benchmark/purity_vs_distance.png)",
        "",
    ]
    e_rows = group_rows(rows, "e_size")
    if e_rows:
        out += ["### E_sample size", ""]
        for n in sorted(e_rows, key=lambda s: int(s.split()[-1])):
            out += ["#### " + n, ""]
            out += _method_table(e_rows[n], _order(e_rows[n])) + [""]

    return out


def _plot_k(methods, path):
    ks, held, test = [], [], []
    for m, by_seed in methods.items():
        if "[k=" not in m:
            continue
        ks.append(int(m.split("k=")[1].rstrip("]")))
        held.append(100 * stat(by_seed, "heldout_acc")[0])
        test.append(100 * stat(by_seed, "test_acc")[0])
    if not ks:
        return
    o = np.argsort(ks)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.array(ks)[o], np.array(held)[o], "o-", label="debug-heldout")
    ax.plot(np.array(ks)[o], np.array(test)[o], "s-", label="test")
    ax.set_xscale("log")
    ax.set_xlabel("k (neighbours per E_sample image)")
    ax.set_ylabel("accuracy after fine-tuning (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_purity(abl, path):
    """Purity of the k=100 selection against distance rank, pooled over
    seeds."""
    m = next((m for m in abl if "[k=100]" in m), None)
    if m is None:
        return
    d, in_e, ok = [], [], []
    for r in abl[m].values():
        d += r["distance"]
        in_e += r["selected_in_e"]
        ok += r["selected_label_ok"]
    d, in_e, ok = np.array(d), np.array(in_e, float), np.array(ok, float)
    edges = np.quantile(d, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, d, side="right") - 1, 0, 9)
    mid = [np.median(d[bins == b]) for b in range(10)]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        mid,
        [100 * in_e[bins == b].mean() for b in range(10)],
        "o-",
        label="from the deployment shift",
    )
    ax.plot(
        mid,
        [100 * ok[bins == b].mean() for b in range(10)],
        "s-",
        label="weak label correct",
    )
    ax.set_xlabel("l2 distance to the nearest E_sample image (deciles)")
    ax.set_ylabel("share of selected images (%)")
    ax.set_ylim(0, 102)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _timing(rows):
    steps = defaultdict(list)
    for r in rows:
        for k in ("embed_s", "round1_s", "select_s", "finetune_s", "eval_s"):
            if k in r:
                steps[k].append(r[k])
    names = {
        "embed_s": "embed pool + E_sample (penultimate layer)",
        "round1_s": "round 1: select, fine-tune a copy (2 rounds only)",
        "select_s": "selection (kNN + dedup + threshold)",
        "finetune_s": "fine-tune (mmengine Runner)",
        "eval_s": "evaluate test + debug-heldout",
    }
    out = [
        "## Wall time per step",
        "",
        "| step | mean s | runs |",
        "|---|---:|---:|",
    ]
    for k, label in names.items():
        if steps[k]:
            out.append(
                "| %s | %.2f | %d |"
                % (label, np.mean(steps[k]), len(steps[k]))
            )
    return out + [""]


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default=S.RESULTS)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    write_report(args.results, args.out)


if __name__ == "__main__":
    main()
