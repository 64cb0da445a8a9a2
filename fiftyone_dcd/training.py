"""
Training and fine-tuning classifiers with an mmengine ``Runner``.
"""

import logging
import os
import uuid

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.runner import Runner

from fiftyone_dcd.loaders import make_loader
from fiftyone_dcd.models import get_preprocess

logger = logging.getLogger(__name__)


class Classifier(BaseModel):
    """Wraps an ``nn.Module`` classifier for mmengine: cross-entropy in
    ``"loss"`` mode, logits otherwise.
    """

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, inputs, labels=None, ids=None, mode="tensor"):
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, labels)}

        return logits


def train_classifier(
    net,
    parts,
    classes,
    work_dir,
    epochs=3,
    lr=0.05,
    batch_size=128,
    num_workers=0,
    seed=0,
    augment=True,
    device=None,
):
    """Trains ``net`` in place on the concatenation of labelled parts.

    Uses SGD with momentum and a cosine learning-rate schedule, and saves an
    mmengine checkpoint into ``work_dir`` after every epoch.

    Args:
        net: an ``nn.Module`` classifier
        parts: a list of ``(samples, label_field)`` pairs, the labels being
            ``Classification`` fields whose labels are in ``classes``
        classes: the class list of the classifier's outputs
        work_dir: the folder for checkpoints and logs
        epochs (3): the number of epochs
        lr (0.05): the peak learning rate
        batch_size (128): the batch size
        num_workers (0): the number of loader worker processes
        seed (0): the seed of shuffling and initialization
        augment (True): whether to flip images at random
        device (None): unused; mmengine places the model on CUDA when
            present

    Returns:
        ``net``, trained, in eval mode
    """
    loader = make_loader(
        parts,
        get_preprocess(net),
        classes=classes,
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=True,
        augment=augment,
        seed=seed,
    )

    return train_on_loader(
        net, loader, classes, work_dir, epochs=epochs, lr=lr, seed=seed
    )


def train_on_loader(net, loader, classes, work_dir, epochs=3, lr=0.05, seed=0):
    """Trains ``net`` in place with an mmengine ``Runner`` on a loader of
    dicts with ``inputs`` and ``labels`` (and optionally ``ids``).

    The recipe of :func:`train_classifier`, for data that is not in a
    dataset (benchmarks over in-memory arrays use it).

    Returns:
        ``net``, trained, in eval mode
    """
    os.makedirs(work_dir, exist_ok=True)
    # mmengine hands dataset metadata to its visualizer and warns without it
    loader.dataset.metainfo = {"classes": tuple(classes)}
    runner = Runner(
        model=Classifier(net),
        work_dir=work_dir,
        experiment_name="dcd_%s" % uuid.uuid4().hex[:12],
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(
            optimizer=dict(
                type="SGD",
                lr=lr,
                momentum=0.9,
                weight_decay=5e-4,
                nesterov=True,
            )
        ),
        param_scheduler=dict(
            type="CosineAnnealingLR",
            by_epoch=False,
            T_max=max(1, epochs * len(loader)),
            eta_min=lr * 0.01,
        ),
        default_hooks=dict(
            checkpoint=dict(
                type="CheckpointHook", interval=1, max_keep_ckpts=2
            ),
            logger=dict(type="LoggerHook", interval=50),
        ),
        randomness=dict(seed=seed),
        log_level=os.environ.get("DCD_MMENGINE_LOG_LEVEL", "WARNING"),
        default_scope=None,
    )
    runner.train()
    net.eval()

    return net


def save_weights(net, path):
    """Saves ``net``'s state dict, loadable with ``weights_only=True``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(state, path)

    return path
