"""
A journal of the writes in progress, kept in FiftyOne's database.

Before a call writes, it records what it is about to write (the fields,
tags, saved view and run of one run key) in the ``dcd_journal``
collection, and it erases the record when it is done. A call that fails
removes what it wrote; a process killed mid-write leaves its record, and
the next call for that run key removes the half-written names first, so no
orphan outlives the next call. One record per dataset and run key also
stops two processes from writing the same run key at once.
"""

import contextlib
import datetime
import logging
import os
import socket

import fiftyone.core.odm as foo

logger = logging.getLogger(__name__)

COLLECTION = "dcd_journal"


def _collection():
    coll = foo.get_db_conn()[COLLECTION]
    coll.create_index([("dataset_id", 1), ("run_key", 1)], unique=True)

    return coll


def _key(dataset, run_key):
    return {"dataset_id": str(dataset._doc.id), "run_key": run_key}


def _ours(doc):
    return doc["host"] == socket.gethostname() and doc["pid"] == os.getpid()


def _alive(doc):
    if doc["host"] != socket.gethostname():
        return True  # another machine's process: it cannot be checked

    try:
        os.kill(doc["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

    return True


@contextlib.contextmanager
def writing(dataset, run_key, fields=(), tags=(), views=(), run=False):
    """Records the writes of the block, and removes them if it raises.

    Args:
        dataset: the dataset written to
        run_key: the run key the names belong to
        fields, tags, views: the sample fields, sample tags and saved views
            the block may write, all names of this run key
        run (False): whether the block registers the run ``run_key``

    Nested calls of one process for the same run key record nothing more;
    the outermost call's record covers them.
    """
    coll = _collection()
    key = _key(dataset, run_key)
    existing = coll.find_one(key)
    if existing is not None and _ours(existing):
        yield
        return

    doc = dict(
        key,
        dataset=dataset.name,
        fields=list(fields),
        tags=list(tags),
        views=list(views),
        run=bool(run),
        pid=os.getpid(),
        host=socket.gethostname(),
        started=datetime.datetime.now(datetime.timezone.utc),
    )
    try:
        coll.insert_one(doc)
    except Exception as e:
        if type(e).__name__ != "DuplicateKeyError":
            raise

        raise ValueError(
            "Run key '%s' of dataset '%s' is being written by another "
            "process; wait for it to finish, or use another run key"
            % (run_key, dataset.name)
        ) from e

    try:
        yield
    except BaseException:
        _undo(dataset, doc)
        raise
    finally:
        coll.delete_one({"_id": doc["_id"]})


def recover(dataset, run_key, force=False):
    """Removes what an interrupted call for ``run_key`` left half-written.

    Called by every DCD entry point before it checks its names, so a
    killed run does not block its run key.

    Args:
        dataset: a dataset
        run_key: a run key
        force (False): whether to recover even when the recorded process
            may still be running (it is on another machine)

    Returns:
        True if an interrupted call was cleaned up
    """
    coll = _collection()
    doc = coll.find_one(_key(dataset, run_key))
    if doc is None or _ours(doc):
        return False

    if _alive(doc) and not force:
        raise ValueError(
            "Run key '%s' of dataset '%s' is being written by process %d on "
            "%s since %s; wait for it, or, if it is gone, call "
            "fiftyone_dcd.journal.recover(dataset, %r, force=True)"
            % (
                run_key,
                dataset.name,
                doc["pid"],
                doc["host"],
                doc["started"],
                run_key,
            )
        )

    logger.warning(
        "Removing what an interrupted call (process %d) wrote for run key "
        "'%s': fields %s, tags %s, views %s",
        doc["pid"],
        run_key,
        doc["fields"],
        doc["tags"],
        doc["views"],
    )
    _undo(dataset, doc)
    coll.delete_one({"_id": doc["_id"]})

    return True


def _undo(dataset, doc):
    dataset.reload()
    if doc["run"] and doc["run_key"] in dataset.list_runs():
        dataset.delete_run(doc["run_key"])

    if doc["tags"]:
        dataset.untag_samples(doc["tags"])

    for field in doc["fields"]:
        if dataset.has_sample_field(field):
            dataset.delete_sample_field(field)

    for view in doc["views"]:
        if view in dataset.list_saved_views():
            dataset.delete_saved_view(view)
