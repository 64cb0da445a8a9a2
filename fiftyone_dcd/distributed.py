"""
Embedding and selection on more than one process or machine, with
torch.distributed: started by ``torchrun`` or SLURM's ``srun``, gloo on CPU
and NCCL on GPU. All processes reach the same FiftyOne database (on a
cluster a shared MongoDB, ``FIFTYONE_DATABASE_URI``)::

    torchrun --nproc_per_node 2 -m fiftyone_dcd.distributed \\
        --dataset my-dataset --model resnet18 --checkpoint model.pt \\
        --embeddings-field dcd_embeddings \\
        --pool-tag pool --query-tag e_sample -k 20 --out selection.npz

Each process embeds a contiguous shard of the samples and writes its own
vectors; for the selection each searches its shard of the pool exactly and
the shards' k best are merged, which is exact too.
"""

import argparse
import logging
import os
import subprocess

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

import fiftyone.utils.torch as fout

from fiftyone_dcd.embeddings import (
    ensure_vector_field,
    load_embeddings,
    write_vectors,
)
from fiftyone_dcd.inference import run_loader
from fiftyone_dcd.loaders import ImageGetItem
from fiftyone_dcd.models import build_model, get_preprocess
from fiftyone_dcd.selection import knn

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
    channels_last=False,
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
    if len(rows):
        write_vectors(dataset, embeddings_field, result)

    dist.barrier()

    return len(rows)


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


def main(argv=None):
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
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="pytorch")
    parser.add_argument("--pool-tag", help="select from these samples")
    parser.add_argument("--query-tag", help="... nearest to these")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--out", help=".npz of the selection (rank 0)")
    args = parser.parse_args(argv)

    rank, world = init_distributed(args.launcher)
    group = local_process_group()
    dataset = fout.FiftyOneTorchDataset.distributed_init(args.dataset, group)
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
