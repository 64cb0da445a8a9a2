"""Jobs that ``tests/test_distributed.py`` starts with ``torchrun``::

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_jobs.py \\
        finetune DATASET OUT BATCH_SIZE
    ... tests/dist_jobs.py embed DATASET TAG FIELD
"""

import sys

import torch
import torch.nn as nn

import fiftyone.utils.torch as fout

from fiftyone_dcd.distributed import (
    compute_embeddings_distributed,
    finetune_distributed,
    init_distributed,
    local_process_group,
)
from fiftyone_dcd.models import SmallCNN


def group_norm_cnn():
    """``SmallCNN`` with GroupNorm for BatchNorm: its output for a sample
    does not depend on the rest of the batch, so training with a batch
    split over processes equals training with the whole batch in one."""
    torch.manual_seed(0)
    net = SmallCNN(num_classes=10, width=8, num_features=32)
    for i, layer in enumerate(net.features):
        if isinstance(layer, nn.BatchNorm2d):
            net.features[i] = nn.GroupNorm(2, layer.num_features)

    return net


#: the recipe both the distributed job and the one-process run use
RECIPE = dict(epochs=2, lr=0.05, seed=5, augment=False)


def finetune(dataset, out, batch_size):
    finetune_distributed(
        dataset,
        group_norm_cnn(),
        "dist_train",
        "e_sample",
        run_key="dist",
        out=out,
        batch_size=int(batch_size),
        **RECIPE,
    )


def embed(dataset, tag, field):
    init_distributed()
    group = local_process_group()
    # as the command line does: FiftyOne shares loaded values between the
    # processes of a machine
    dataset = fout.FiftyOneTorchDataset.distributed_init(dataset, group)
    torch.manual_seed(0)
    compute_embeddings_distributed(
        dataset.match_tags(tag), SmallCNN(num_classes=10), field, group=group
    )


if __name__ == "__main__":
    {"finetune": finetune, "embed": embed}[sys.argv[1]](*sys.argv[2:])
