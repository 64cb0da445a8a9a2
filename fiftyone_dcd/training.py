"""
Training and fine-tuning classifiers with an mmengine ``Runner``.
"""

import hashlib
import json
import logging
import os
import time
import uuid

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from fiftyone_dcd.loaders import (
    SECOND_LABEL_ATTR,
    SECOND_WEIGHT_ATTR,
    WEIGHT_ATTR,
    has_weights,
    make_loader,
)
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


class EpochSeedHook(Hook):
    """Seeds torch's and numpy's generators at the start of every epoch
    from ``(seed, epoch)``, so that an epoch's augmentation draws do not
    depend on the epochs before it, and a run resumed from an epoch
    checkpoint continues exactly as the uninterrupted run would have.
    """

    priority = "VERY_HIGH"

    def __init__(self, seed):
        self.seed = seed

    def before_train_epoch(self, runner):
        s = (int(self.seed) * 1000003 + runner.epoch) % (2**31)
        torch.manual_seed(s)
        np.random.seed(s)


class ProgressHook(Hook):
    """Reports training iterations as ``progress(done, total)``, at most
    once per ``interval`` seconds and at the end of each epoch (progress
    callbacks may write to a database)."""

    def __init__(self, progress, interval=1.0):
        self.progress = progress
        self.interval = interval
        self._last = 0.0

    def _report(self, runner):
        self._last = time.time()
        self.progress(runner.iter, runner.max_iters)

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        if time.time() - self._last >= self.interval:
            self._report(runner)

    def after_train_epoch(self, runner):
        self._report(runner)


class PlainCheckpointHook(Hook):
    """Keeps mmengine's checkpoints readable by ``torch.load`` with
    ``weights_only=True`` (which mmengine's resume uses under torch >= 2.6):
    drops the log buffers, which pickle numpy objects, and any runtime
    value that is not plain data. Only logging history is lost on resume.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint):
        hub = checkpoint.get("message_hub", {})
        checkpoint["message_hub"] = {
            "log_scalars": {},
            "runtime_info": {
                k: v
                for k, v in hub.get("runtime_info", {}).items()
                if _plain(v)
            },
            "resumed_keys": {
                k: v
                for k, v in hub.get("resumed_keys", {}).items()
                if k in hub.get("runtime_info", {})
                and _plain(hub["runtime_info"][k])
            },
        }


def _plain(value):
    # exact types: numpy scalars subclass float but pickle as numpy objects
    if type(value) in (str, int, float, bool, type(None)):
        return True

    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)

    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())

    return False


#: the fingerprint of a training run, kept in its work folder
FINGERPRINT = "dcd_training.json"


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
    progress=None,
    launcher="none",
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
        progress (None): a callable ``progress(done, total)`` of training
            iterations
        launcher ("none"): ``"pytorch"`` (torchrun) or ``"slurm"`` to train
            with torch.distributed, see :func:`train_on_loader`

    Returns:
        ``net``, trained, in eval mode
    """
    loader = make_loader(
        parts,
        get_preprocess(net),
        classes=classes,
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
        augment=augment,
        seed=seed,
    )
    fingerprint = {
        "parts": [
            _digest(samples.values(_label_paths(samples, field)))
            for samples, field in parts
        ],
        "initial_weights": _digest_state(net),
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "augment": augment,
    }

    return train_on_loader(
        net,
        loader,
        classes,
        work_dir,
        epochs=epochs,
        lr=lr,
        seed=seed,
        fingerprint=fingerprint,
        progress=progress,
        launcher=launcher,
    )


def train_on_loader(
    net,
    loader,
    classes,
    work_dir,
    epochs=3,
    lr=0.05,
    seed=0,
    fingerprint=None,
    progress=None,
    launcher="none",
):
    """Trains ``net`` in place with an mmengine ``Runner`` on a loader of
    dicts with ``inputs`` and ``labels`` (and optionally ``ids``).

    With ``launcher="pytorch"`` (every process started by ``torchrun``) or
    ``"slurm"`` (by ``srun``), all processes call this with the same
    arguments: mmengine wraps the model in ``DistributedDataParallel``
    (gloo on CPU, NCCL on GPU) and each process trains on its share of
    every epoch, so a batch of ``loader.batch_size`` per process makes a
    global batch of that times the number of processes. Checkpoints are
    written by rank 0 into ``work_dir``, which all processes must see.

    The loader is rebuilt with a seeded :class:`mmengine.dataset.
    DefaultSampler`, so that each epoch's order depends only on the seed
    and the epoch. With a ``fingerprint`` (a JSON-serializable description
    of the data and the recipe), a run killed after an epoch resumes from
    its last checkpoint in ``work_dir`` when rerun with the same
    fingerprint, and ends with the weights of an uninterrupted run.
    ``progress(done, total)`` receives training iterations.

    Returns:
        ``net``, trained, in eval mode
    """
    distributed = launcher != "none"
    if distributed:
        # before the sampler is built: it reads the rank and world size
        from fiftyone_dcd.distributed import init_distributed

        init_distributed(launcher)

    os.makedirs(work_dir, exist_ok=True)
    dataset = loader.dataset
    # mmengine hands dataset metadata to its visualizer and warns without it
    dataset.metainfo = {"classes": tuple(classes)}
    loader = DataLoader(
        dataset,
        batch_size=loader.batch_size,
        sampler=DefaultSampler(dataset, shuffle=True, seed=seed),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        drop_last=False,
    )
    resume = _resumable_everywhere(work_dir, fingerprint, distributed)
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
        custom_hooks=[EpochSeedHook(seed), PlainCheckpointHook()]
        + ([ProgressHook(progress)] if progress else []),
        randomness=dict(seed=seed),
        launcher=launcher,
        # mmengine reads how to wrap the model from its config
        cfg=dict(model_wrapper_cfg=_ddp_config()) if distributed else None,
        resume=resume,
        log_level=os.environ.get("DCD_MMENGINE_LOG_LEVEL", "WARNING"),
        default_scope=None,
    )
    if resume:
        logger.info(
            "Resuming training from the last checkpoint in %s", work_dir
        )

    runner.train()

    net.eval()

    return net


def _label_paths(samples, field):
    paths = ["id", field + ".label"]
    if has_weights(samples, field):
        attrs = (WEIGHT_ATTR, SECOND_LABEL_ATTR, SECOND_WEIGHT_ATTR)
        paths += ["%s.%s" % (field, a) for a in attrs]

    return paths


def _digest(obj):
    return hashlib.sha1(
        json.dumps(obj, sort_keys=True, default=str).encode()
    ).hexdigest()


def _digest_state(net):
    h = hashlib.sha1()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())

    return h.hexdigest()


def _ddp_config():
    if torch.cuda.is_available():
        return None  # mmengine's default: DDP on this process's GPU

    # a CPU module takes no device ids, and mmengine passes the local rank
    return dict(type="MMDistributedDataParallel", device_ids=None)


def _resumable_everywhere(work_dir, fingerprint, distributed):
    """:func:`_resumable`, decided by rank 0 for every process."""
    if not distributed:
        return _resumable(work_dir, fingerprint)

    import torch.distributed as dist

    answer = [
        _resumable(work_dir, fingerprint) if dist.get_rank() == 0 else None
    ]
    dist.broadcast_object_list(answer, src=0)

    return answer[0]


def _resumable(work_dir, fingerprint):
    """Whether ``work_dir`` holds checkpoints of a run with this
    fingerprint; records the fingerprint for the run about to start."""
    if fingerprint is None:
        return False

    path = os.path.join(work_dir, FINGERPRINT)
    same = False
    if os.path.isfile(path):
        with open(path) as f:
            same = json.load(f) == json.loads(json.dumps(fingerprint))

    has_checkpoint = os.path.isfile(os.path.join(work_dir, "last_checkpoint"))
    if not same:
        # checkpoints of another run must not be resumed
        if has_checkpoint:
            os.remove(os.path.join(work_dir, "last_checkpoint"))

        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(fingerprint, f)

        os.replace(tmp, path)

    return same and has_checkpoint


def save_weights(net, path):
    """Saves ``net``'s state dict, loadable with ``weights_only=True``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(state, path)

    return path
