"""
Storing DCD results as FiftyOne runs, and removing what a run wrote.
"""

import json

import numpy as np


def _jsonable(value):
    # run configs and results must be JSON; numpy scalars are not
    return json.loads(json.dumps(value, default=_convert))


def _convert(value):
    if isinstance(value, np.generic):
        return value.item()

    if isinstance(value, np.ndarray):
        return value.tolist()

    return str(value)


def save_run(dataset, run_key, config, results, overwrite=False):
    """Registers the run ``run_key`` on ``dataset`` with a JSON ``config``
    dict and a JSON ``results`` dict; both are listed by
    ``dataset.list_runs()`` and read back by :func:`load_run`.
    """
    run_config = dataset.init_run(**_jsonable(config))
    if overwrite and run_key in dataset.list_runs():
        dataset.delete_run(run_key)

    dataset.register_run(run_key, run_config)
    # "config" is the run's own attribute; the config is stored above
    results = {k: v for k, v in results.items() if k != "config"}
    run_results = dataset.init_run_results(run_key, **_jsonable(results))
    dataset.save_run_results(run_key, run_results, overwrite=True)


def load_run(dataset, run_key):
    """Returns ``(config, results)`` dicts of the DCD run ``run_key``."""
    if run_key not in dataset.list_runs():
        raise ValueError(
            "Dataset '%s' has no run '%s'; its runs are %s"
            % (dataset.name, run_key, dataset.list_runs())
        )

    info = dataset.get_run_info(run_key)
    results = dataset.load_run_results(run_key, cache=False)

    return info.config.serialize(), results.serialize()


def clear_run(dataset, names, keep_fields=()):
    """Deletes the run ``names.run_key`` and the fields, tags and saved
    view it wrote, except ``keep_fields``.
    """
    if names.run_key in dataset.list_runs():
        dataset.delete_run(names.run_key)

    dataset.untag_samples(names.tags)
    for field in names.fields:
        if field not in keep_fields and dataset.has_sample_field(field):
            dataset.delete_sample_field(field)

    if names.debug_train_view in dataset.list_saved_views():
        dataset.delete_saved_view(names.debug_train_view)
