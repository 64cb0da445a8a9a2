"""
Embedding, selection and fine-tuning on more than one process or machine,
with torch.distributed: started by ``torchrun`` or SLURM's ``srun``, gloo
on CPU and NCCL on GPU. All processes reach the same FiftyOne database (on
a cluster a shared MongoDB, ``FIFTYONE_DATABASE_URI``)::

    torchrun --nproc_per_node 2 -m fiftyone_dcd.distributed \\
        --dataset my-dataset --model resnet18 --checkpoint model.pt \\
        --embeddings-field dcd_embeddings \\
        --pool-tag pool --query-tag e_sample -k 20 --out selection.npz

    torchrun --nproc_per_node 2 -m fiftyone_dcd.distributed finetune \\
        --dataset my-dataset --model resnet18 --checkpoint model.pt \\
        --run-key dcd --train train --e-sample e_sample --out dcd_model.pt

Each process embeds a contiguous shard of the samples and writes its own
vectors; for the selection each searches its shard of the pool exactly and
the shards' k best are merged, which is exact too. Fine-tuning runs
mmengine's Runner with its launcher: the model in DistributedDataParallel,
each process on its share of every epoch.
"""

import argparse
import logging
import os
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

import fiftyone as fo
import fiftyone.utils.torch as fout

from fiftyone_dcd import validation as val
from fiftyone_dcd.database import DatabaseError, ensure_database
from fiftyone_dcd.embeddings import (
    ensure_vector_field,
    load_embeddings,
    size_mismatch,
    write_vectors,
)
from fiftyone_dcd.inference import run_loader
from fiftyone_dcd.loaders import ImageGetItem
from fiftyone_dcd.models import build_model, get_preprocess
from fiftyone_dcd.naming import RunNames, check_run_key
from fiftyone_dcd.selection import knn
from fiftyone_dcd.steps import get_classes
from fiftyone_dcd.training import save_weights, train_classifier

logger = logging.getLogger(__name__)

LAUNCHERS = ("pytorch", "slurm")


def init_distributed(launcher="pytorch", backend=None):
    """Joins the process group that ``torchrun`` (``"pytorch"``) or SLURM
    (``"slurm"``) describes in the environment; does nothing if already
    joined. NCCL with a GPU (through mmengine's ``init_dist``, which also
    picks this process's GPU), else gloo.

    Returns:
        ``(rank, world_size)``
    """
    if launcher not in LAUNCHERS:
        raise ValueError(
            "launcher must be one of %s, got %r" % (LAUNCHERS, launcher)
        )

    if not dist.is_initialized():
        if torch.cuda.is_available():
            from mmengine.dist import init_dist

            init_dist(launcher, backend=backend or "nccl")
        else:
            if launcher == "slurm":
                _slurm_to_torch_env()

            # mmengine's init_dist selects a CUDA device, which fails here
            dist.init_process_group(backend=backend or "gloo")

    return dist.get_rank(), dist.get_world_size()


def _slurm_to_torch_env():
    # what mmengine's SLURM launcher sets, without selecting a GPU
    env = os.environ
    env.setdefault("RANK", env["SLURM_PROCID"])
    env.setdefault("WORLD_SIZE", env["SLURM_NTASKS"])
    env.setdefault("LOCAL_RANK", env.get("SLURM_LOCALID", "0"))
    env.setdefault("MASTER_PORT", "29500")
    if "MASTER_ADDR" not in env:
        nodes = subprocess.check_output(
            ["scontrol", "show", "hostnames", env["SLURM_NODELIST"]],
            text=True,
        )
        env["MASTER_ADDR"] = nodes.split()[0]


def local_process_group():
    """The group of this machine's processes, with which FiftyOne's
    ``to_torch`` shares the loaded field values through shared memory."""
    world = dist.get_world_size()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if local == world:
        return dist.group.WORLD

    # every process must take part in creating every subgroup
    group, _ = dist.new_subgroups(group_size=local)

    return group


def shard(n, rank, world_size):
    """The contiguous ``range`` of ``n`` rows that ``rank`` handles; the
    shards in rank order are the rows in order."""
    return range(rank * n // world_size, (rank + 1) * n // world_size)


def compute_embeddings_distributed(
    samples,
    net,
    embeddings_field,
    batch_size=256,
    num_workers=0,
    device=None,
    precision=None,
    channels_last=None,
    group=None,
):
    """Every process embeds its shard of ``samples`` and writes its vectors
    to ``embeddings_field``; call it in all processes with the same
    arguments (see :func:`fiftyone_dcd.embeddings.compute_embeddings` for
    them).

    Args:
        group (None): the local process group; None is
            :func:`local_process_group`

    Returns:
        the number of samples this process embedded
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    if device is None:
        device = (
            torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            if torch.cuda.is_available()
            else torch.device("cpu")
        )

    dataset = samples._dataset
    if rank == 0:
        ensure_vector_field(dataset, embeddings_field)

    dist.barrier()
    dataset.reload()
    group = local_process_group() if group is None else group
    # one process per machine reads the ids and file paths; the others get
    # them through shared memory
    torch_dataset = samples.to_torch(
        ImageGetItem(get_preprocess(net)),
        vectorize=True,
        local_process_group=group,
    )
    rows = shard(len(torch_dataset), rank, world)
    loader = DataLoader(
        Subset(torch_dataset, rows),
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
    )
    result = run_loader(
        net,
        loader,
        len(rows),
        torch.device(device),
        logits=False,
        precision=precision,
        channels_last=channels_last,
    )
    _check_sizes_agree(samples, embeddings_field, result, len(rows))
    if len(rows):
        write_vectors(dataset, embeddings_field, result)

    dist.barrier()

    return len(rows)


def _check_sizes_agree(samples, embeddings_field, result, num_rows):
    """Raises in every process, before any writes, when the field holds
    vectors of another size outside ``samples``."""
    dim = result["features"].shape[1] if num_rows else -1
    dims = [None] * dist.get_world_size()
    dist.all_gather_object(dims, dim)
    dim = max(dims)
    error = [None]
    if dist.get_rank() == 0 and dim > 0:
        error[0] = size_mismatch(
            samples._dataset, embeddings_field, samples.values("id"), dim
        )

    dist.broadcast_object_list(error, src=0)
    if error[0]:
        raise ValueError(error[0])


def finetune_distributed(
    dataset,
    net,
    train,
    e_sample,
    run_key="dcd",
    debug_train=None,
    label_field="ground_truth",
    classes=None,
    out=None,
    epochs=2,
    lr=0.01,
    batch_size=128,
    num_workers=0,
    seed=0,
    augment=True,
    work_dir=None,
    launcher="pytorch",
):
    """Fine-tunes ``net`` as DCD does, on ``train`` + ``e_sample`` (labels
    in ``label_field``) + the debug-train set of run ``run_key`` (its
    saved view, or ``debug_train``, with the run's assigned labels), with
    every process of the job; call it in all processes with the same
    arguments.

    The processes share each batch: ``batch_size`` is the global batch,
    each process takes ``batch_size // world_size``, so the recipe is that
    of one process with ``batch_size``. Rank 0 saves the weights to
    ``out``.

    Args:
        dataset: the dataset, or its name
        net: the model under debug, an ``nn.Module``
        train, e_sample: views of ``dataset``, sample tags or saved view
            names
        classes (None): the model's class list; None is the dataset's
            default classes, else the labels of ``train``
        work_dir (None): checkpoints, seen by all processes; None is
            ``<out>.work``, next to ``out``, which must be writable too
        launcher ("pytorch"): ``"pytorch"`` (torchrun) or ``"slurm"``

    Returns:
        ``net``, trained, in eval mode
    """
    if isinstance(dataset, str):
        dataset = fo.load_dataset(dataset)

    names = RunNames(check_run_key(run_key))
    train = val.resolve_view(dataset, train, "training data")
    e_sample = val.resolve_view(dataset, e_sample, "E_sample")
    debug_train = val.resolve_debug_train(dataset, names, debug_train)
    val.check_label_field(train, label_field, "training")
    val.check_label_field(e_sample, label_field, "E_sample")
    classes = get_classes(dataset, classes, train, label_field)
    for samples, field, what in (
        (train, label_field, "training data"),
        (e_sample, label_field, "E_sample"),
        (debug_train, names.assigned_label, "debug-train set"),
    ):
        val.check_classes(samples, field, classes, what)

    val.check_head(net, classes)
    val.check_training_params(epochs, lr, batch_size)
    if out is None and work_dir is None:
        raise ValueError("Pass out (the weights' path) or work_dir")

    work_dir = work_dir or str(out) + ".work"
    val.check_work_dir(work_dir)
    if out is not None:
        val.check_work_dir(os.path.dirname(os.path.abspath(str(out))))
    _, world = init_distributed(launcher)
    if batch_size % world:
        raise ValueError(
            "batch_size %d is not a multiple of the %d processes; pass a "
            "multiple so that the global batch stays %d"
            % (batch_size, world, batch_size)
        )

    train_classifier(
        net,
        [
            (train, label_field),
            (e_sample, label_field),
            (debug_train, names.assigned_label),
        ],
        classes,
        work_dir,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size // world,
        num_workers=num_workers,
        seed=seed,
        augment=augment,
        launcher=launcher,
    )
    if out is not None and dist.get_rank() == 0:
        save_weights(net, out)

    dist.barrier()

    return net


def knn_distributed(queries, pool, k, **kwargs):
    """Exact :func:`fiftyone_dcd.selection.knn` over a pool split across
    processes: each searches its contiguous shard of ``pool`` (an array or
    a memory map; only the shard is read), the k best of every shard are
    gathered and merged. Every process gets the whole answer.

    Returns:
        ``(distances, indices)`` as :func:`fiftyone_dcd.selection.knn`
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    n = len(pool)
    k = min(int(k), n)
    rows = shard(n, rank, world)
    d, i = knn(queries, pool[rows.start : rows.stop], k, **kwargs)
    i = i + rows.start
    parts = [None] * world
    dist.all_gather_object(parts, (d, i))
    d = np.concatenate([p[0] for p in parts], axis=1)
    i = np.concatenate([p[1] for p in parts], axis=1)
    # the same order as one process: distance, then index
    order = np.lexsort((i, d), axis=1)[:, :k]

    return np.take_along_axis(d, order, axis=1), np.take_along_axis(
        i, order, axis=1
    )


def finetune_main(argv):
    parser = argparse.ArgumentParser(
        prog="fiftyone_dcd.distributed finetune",
        description="Fine-tunes the model under debug on the training "
        "data, E_sample and a DCD run's debug-train set, on all processes "
        "of a torchrun or SLURM job",
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--num-classes", type=int)
    parser.add_argument("--run-key", default="dcd")
    parser.add_argument("--train", required=True, help="tag or saved view")
    parser.add_argument("--e-sample", required=True, help="tag or view")
    parser.add_argument(
        "--debug-train",
        help="tag or saved view (default: the run's saved view)",
    )
    parser.add_argument("--label-field", default="ground_truth")
    parser.add_argument(
        "--classes",
        help="the model's classes, comma-separated (default: the "
        "dataset's default classes)",
    )
    parser.add_argument("--out", required=True, help="weights (rank 0)")
    parser.add_argument(
        "--work-dir",
        help="checkpoints, seen by every process (default: <out>.work)",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--launcher", choices=LAUNCHERS, default="pytorch")
    args = parser.parse_args(argv)

    init_distributed(args.launcher)
    dataset = _load_dataset(args.dataset)
    net = build_model(
        args.model, num_classes=args.num_classes, checkpoint=args.checkpoint
    )
    finetune_distributed(
        dataset,
        net,
        args.train,
        args.e_sample,
        run_key=args.run_key,
        debug_train=args.debug_train,
        label_field=args.label_field,
        classes=args.classes.split(",") if args.classes else None,
        out=args.out,
        work_dir=args.work_dir,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        seed=args.seed,
        launcher=args.launcher,
    )
    if dist.get_rank() == 0:
        print("Saved the fine-tuned weights to %s" % args.out)

    dist.destroy_process_group()


def _load_dataset(name, group=None):
    """Loads a dataset in every process with FiftyOne's
    ``distributed_init`` (one process of a machine after the other), after
    the first process of each machine checked the database, so that a
    broken or unreachable one is named, not met as a timeout.
    """
    group = local_process_group() if group is None else group
    if dist.get_rank(group) == 0:
        ensure_database()

    dist.barrier()

    return fout.FiftyOneTorchDataset.distributed_init(name, group)


def _exit_with_message(fn):
    """Runs a command line ``fn``: input errors end it with one line per
    process and exit status 2, not a traceback from every process (a
    missing dataset is a ``ValueError`` too)."""
    try:
        fn()
    except (ValueError, DatabaseError) as e:
        rank = dist.get_rank() if dist.is_initialized() else 0
        print("error (rank %d): %s" % (rank, e), file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["finetune"]:
        return _exit_with_message(lambda: finetune_main(argv[1:]))

    return _exit_with_message(lambda: embed_main(argv))


def embed_main(argv):
    parser = argparse.ArgumentParser(
        description="Embeds a dataset and selects from its pool on all "
        "processes of a torchrun or SLURM job"
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--num-classes", type=int)
    parser.add_argument("--embeddings-field", required=True)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--precision", choices=("float32", "bfloat16"))
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="default: when the model has 2-D convolutions",
    )
    parser.add_argument("--launcher", choices=LAUNCHERS, default="pytorch")
    parser.add_argument("--pool-tag", help="select from these samples")
    parser.add_argument("--query-tag", help="... nearest to these")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--out", help=".npz of the selection (rank 0)")
    args = parser.parse_args(argv)

    rank, world = init_distributed(args.launcher)
    group = local_process_group()
    dataset = _load_dataset(args.dataset, group)
    net = build_model(
        args.model, num_classes=args.num_classes, checkpoint=args.checkpoint
    )
    n = compute_embeddings_distributed(
        dataset,
        net,
        args.embeddings_field,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        precision=args.precision,
        channels_last=args.channels_last,
        group=group,
    )
    logger.info("rank %d of %d embedded %d samples", rank, world, n)
    if args.pool_tag and args.query_tag:
        pool_ids, X = load_embeddings(
            dataset.match_tags(args.pool_tag), args.embeddings_field
        )
        query_ids, Q = load_embeddings(
            dataset.match_tags(args.query_tag), args.embeddings_field
        )
        d, i = knn_distributed(Q, X, args.k)
        if rank == 0 and args.out:
            np.savez(
                args.out,
                distances=d,
                indices=i,
                pool_ids=np.array(pool_ids),
                query_ids=np.array(query_ids),
            )

    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
