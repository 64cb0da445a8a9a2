"""
Reading DCD runs back: which runs a dataset holds, a summary of one run for
display, and the views a curation team inspects after it.
"""

from fiftyone_dcd.naming import RunNames
from fiftyone_dcd.runs import load_run
from fiftyone_dcd.selection import labels_name

#: the views of a run that :func:`run_view` returns
RUN_VIEWS = ("e_sample", "heldout", "debug_train")


#: what a run's config records of how its debug-train set was selected
SELECTION_SETTINGS = (
    "embeddings_model",
    "embeddings_field",
    "k",
    "threshold",
    "chosen_automatically",
    "budget",
    "label_strategy",
    "label_strategy_used",
    "label_strategy_auto",
    "label_signal_accuracies",
    "quantile",
    "dropped_weight",
    "vote_rule",
    "vote_rule_used",
    "vote_rule_auto",
    "num_weighted",
    "rounds",
    "first_round",
    "selected_with",
    "debug_train_description",
)


def list_dcd_runs(dataset):
    """Returns the keys of the DCD runs of ``dataset``, oldest first."""
    keys = dataset.list_runs(method="dcd")

    return sorted(keys, key=lambda k: dataset.get_run_info(k).timestamp)


def summarize_run(dataset, run_key=None):
    """Returns a dict describing the DCD run ``run_key`` (the latest when
    None) of ``dataset``, or None if it has none.

    The dict holds ``run_key``; ``rows`` (one dict per method with
    ``method``, ``test acc``, ``heldout acc``, their changes and ``pool
    images added``, accuracies in [0, 1]); ``per_class`` (one dict per
    class with ``class`` and the DCD model's ``test``/``heldout`` accuracy
    ``before`` and ``after`` and their change, where the run recorded them);
    ``num_selected``; ``label_purity`` (None without true labels);
    ``selection`` (k, threshold, how they were chosen, label strategy,
    rounds) and ``timings``.
    """
    if run_key is None:
        keys = list_dcd_runs(dataset)
        if not keys:
            return None

        run_key = keys[-1]

    config, results = load_run(dataset, run_key)
    rows = results.get("rows", [])
    dcd = next(
        (r["method"] for r in rows if r["method"].startswith("DCD")), None
    )

    return {
        "run_key": run_key,
        "rows": rows,
        "per_class": _per_class_changes(results.get("per_class"), dcd),
        "num_selected": results.get("num_selected"),
        "label_purity": results.get("label_purity"),
        "selection": {k: config.get(k) for k in SELECTION_SETTINGS},
        "timings": results.get("timings", {}),
    }


def _per_class_changes(per_class, method):
    if not per_class or method not in per_class:
        return []

    before = per_class.get("before debugging", {})
    after = per_class[method]
    out = []
    for cls in sorted(
        set(after.get("test", {})) | set(after.get("heldout", {}))
    ):
        row = {"class": cls}
        for split in ("test", "heldout"):
            b = before.get(split, {}).get(cls)
            a = after.get(split, {}).get(cls)
            row[split + " before"] = b
            row[split + " after"] = a
            row[split + " change"] = None if a is None or b is None else a - b

        out.append(row)

    return out


def run_view(dataset, run_key, which):
    """Returns a view of the run ``run_key``: ``"e_sample"`` and
    ``"heldout"`` (the tagged samples) or ``"debug_train"`` (the saved
    view, nearest first).
    """
    if which not in RUN_VIEWS:
        raise ValueError(
            "Unknown run view %r; use one of %s" % (which, list(RUN_VIEWS))
        )

    names = RunNames(run_key)
    if which == "debug_train":
        if names.debug_train_view not in dataset.list_saved_views():
            raise ValueError(
                "Dataset '%s' has no debug-train view of run '%s'; run the "
                "selection first" % (dataset.name, run_key)
            )

        return dataset.load_saved_view(names.debug_train_view).sort_by(
            names.distance
        )

    tag = names.e_sample_tag if which == "e_sample" else names.heldout_tag

    return dataset.match_tags(tag)


def _pct(value):
    return "-" if value is None or value != value else "%.2f" % (100 * value)


def _signed(value):
    return "-" if value is None else "%+.2f" % (100 * value)


def summary_markdown(summary):
    """Markdown tables of a :func:`summarize_run` summary: accuracies of
    every method (percent, two decimals) and the DCD model's per-class
    changes.
    """
    sel = summary["selection"]
    lines = [
        "**Run `%s`**: %s images selected"
        % (summary["run_key"], summary["num_selected"]),
    ]
    if sel.get("threshold") is not None or sel.get("k") is not None:
        lines[0] += " (k=%s, threshold=%s, labels: %s, rounds: %s)" % (
            sel.get("k"),
            "-" if sel.get("threshold") is None else "%.4g" % sel["threshold"],
            labels_name(
                sel.get("label_strategy_used") or sel.get("label_strategy"),
                sel.get("vote_rule_used") or sel.get("vote_rule"),
            ),
            sel.get("rounds"),
        )

    if sel.get("num_weighted"):
        lines[0] += "; %d of them doubted by the vote, at weight %g" % (
            sel["num_weighted"],
            sel["dropped_weight"],
        )

    auto = [
        sel.get(k)
        for k in (
            "chosen_automatically",
            "vote_rule_auto",
            "label_strategy_auto",
        )
        if sel.get(k)
    ]
    if auto:
        lines.append("")
        lines.append("Chosen automatically: %s" % "; ".join(auto))

    if summary.get("label_purity") is not None:
        lines.append("")
        lines.append(
            "Selected images whose assigned label is correct: %s%%"
            % _pct(summary["label_purity"])
        )

    lines += [
        "",
        "| method | pool images added | test acc | heldout acc | test change "
        "| heldout change |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in summary["rows"]:
        lines.append(
            "| %s | %s | %s | %s | %s | %s |"
            % (
                r["method"],
                r.get("pool images added", ""),
                _pct(r.get("test acc")),
                _pct(r.get("heldout acc")),
                _signed(r.get("test change")),
                _signed(r.get("heldout change")),
            )
        )

    if summary["per_class"]:
        lines += [
            "",
            "Per class, the model under debug before and after DCD:",
            "",
            "| class | test before | test after | heldout before "
            "| heldout after | heldout change |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in summary["per_class"]:
            lines.append(
                "| %s | %s | %s | %s | %s | %s |"
                % (
                    r["class"],
                    _pct(r["test before"]),
                    _pct(r["test after"]),
                    _pct(r["heldout before"]),
                    _pct(r["heldout after"]),
                    _signed(r["heldout change"]),
                )
            )

    return "\n".join(lines)


def accuracy_traces(summary):
    """Plotly bar traces of a :func:`summarize_run` summary: test and
    debug-heldout accuracy (percent) per method."""
    methods = [r["method"] for r in summary["rows"]]

    return [
        {
            "type": "bar",
            "name": name,
            "x": methods,
            "y": [
                None if r.get(key) is None else round(100 * r[key], 2)
                for r in summary["rows"]
            ],
        }
        for name, key in (
            ("test", "test acc"),
            ("debug-heldout", "heldout acc"),
        )
    ]
