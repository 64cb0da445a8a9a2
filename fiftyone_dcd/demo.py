"""
The Fashion-MNIST demo: builds the scenario, trains the model under debug,
runs DCD and the baselines, and prints the table.
"""

import hashlib
import json
import logging
import os
import time

import numpy as np

import fiftyone_dcd  # noqa: F401 (adds apply_dcd to datasets)
from fiftyone_dcd.steps import default_work_dir, train_model
from fiftyone_dcd.data.scenario import build_fashion_mnist_scenario
from fiftyone_dcd.database import ensure_database
from fiftyone_dcd.models import build_model
from fiftyone_dcd.selection import DEFAULT_LABEL_STRATEGY, DEFAULT_VOTE_RULE
from fiftyone_dcd.validation import check_rounds, check_selection_params

logger = logging.getLogger(__name__)


def run_demo(
    name="dcd-fashion-mnist",
    data_dir=None,
    cache_dir=None,
    seed=51,
    train_epochs=8,
    k=None,
    label_strategy=DEFAULT_LABEL_STRATEGY,
    dropped_weight=None,
    vote_rule=DEFAULT_VOTE_RULE,
    rounds=2,
    epochs=2,
    lr=0.01,
    num_workers=1,
    run_key="dcd",
    overwrite=True,
    scenario_kwargs=None,
):
    """Runs the demo end to end; returns the result of
    :func:`fiftyone_dcd.api.apply_dcd` with ``shift_purity`` added.
    """
    # the selection settings are checked before minutes of set-up
    check_selection_params(
        k,
        None,
        None,
        label_strategy,
        dropped_weight=dropped_weight,
        vote_rule=vote_rule,
    )
    check_rounds(rounds)
    ensure_database()
    t0 = time.time()
    dataset = build_fashion_mnist_scenario(
        name=name,
        data_dir=data_dir,
        cache_dir=cache_dir,
        seed=seed,
        overwrite=True,
        **(scenario_kwargs or {}),
    )
    logger.info(
        "Scenario ready in %.1fs: %s",
        time.time() - t0,
        dataset.count_sample_tags(),
    )

    # the model under debug is trained once per scenario and recipe, and
    # reused by reruns
    recipe = dict(dataset.info["dcd_scenario"], train_epochs=train_epochs)
    digest = hashlib.sha1(
        json.dumps(recipe, sort_keys=True).encode()
    ).hexdigest()[:12]
    model_dir = default_work_dir(dataset, "model_under_debug_" + digest)
    checkpoint = os.path.join(model_dir, "model.pt")
    if not os.path.isfile(checkpoint):
        train_model(
            dataset.match_tags("train"),
            "ground_truth",
            model="small_cnn",
            work_dir=model_dir,
            epochs=train_epochs,
            lr=0.05,
            num_workers=num_workers,
            seed=seed,
        )

    net = build_model(
        "small_cnn",
        num_classes=len(dataset.default_classes),
        checkpoint=checkpoint,
    )
    result = dataset.apply_dcd(
        net,
        train="train",
        test="test",
        pool="pool",
        e_sample="e_sample",
        heldout="debug_heldout",
        true_label_field="true_label",
        k=k,
        label_strategy=label_strategy,
        dropped_weight=dropped_weight,
        vote_rule=vote_rule,
        rounds=rounds,
        epochs=epochs,
        lr=lr,
        num_workers=num_workers,
        run_key=run_key,
        seed=seed,
        overwrite=overwrite,
    )
    view = dataset.load_saved_view(result["config"]["debug_train_view"])
    shifts = np.array(view.values("shift"))
    deploy = dataset.info["dcd_scenario"]["deployment_shift"]
    result["shift_purity"] = float(np.mean(shifts == deploy))
    result["elapsed"] = time.time() - t0

    return result


def format_result(result):
    """The demo's printout."""
    rows = {r["method"]: r for r in result["rows"]}
    dcd = next(r for r in result["rows"] if r["method"].startswith("DCD"))
    lines = [
        result["table"],
        "",
        "debug-train: %d images; %.1f%% from the deployment shift, %.1f%% "
        "with a correct assigned label"
        % (
            result["num_selected"],
            100 * result["shift_purity"],
            100 * result.get("label_purity", float("nan")),
        ),
    ]
    if result["config"].get("chosen_automatically"):
        lines.append("chosen: " + result["config"]["chosen_automatically"])

    rand = rows.get("E_sample + random pool")
    if rand is not None:
        lines.append(
            "DCD vs same-size random selection on debug-heldout: %+.2f "
            "points; DCD test change: %+.2f points"
            % (
                100 * (dcd["heldout acc"] - rand["heldout acc"]),
                100 * dcd["test change"],
            )
        )

    lines.append("total time: %.0fs" % result["elapsed"])

    return "\n".join(lines)
