"""
Batched inference: penultimate features and logits of a model over a view.
"""

import contextlib
import logging

import numpy as np
import torch

import fiftyone.core.utils as fou

from fiftyone_dcd.loaders import make_loader
from fiftyone_dcd.models import default_device, forward_both, get_preprocess

logger = logging.getLogger(__name__)


#: ``precision`` values of :func:`run_inference`
PRECISIONS = ("float32", "bfloat16", "float16")


def run_inference(
    net,
    samples,
    batch_size=256,
    num_workers=0,
    device=None,
    features=True,
    logits=True,
    progress=None,
    precision=None,
    channels_last=None,
):
    """Runs ``net`` in eval mode over ``samples``.

    Args:
        net: an ``nn.Module``
        samples: a FiftyOne collection of images
        batch_size (256): the batch size
        num_workers (0): the number of loader worker processes
        device (None): a torch device; CUDA when present by default
        features (True): whether to return penultimate-layer features
        logits (True): whether to return logits
        progress (None): a callable ``progress(done, total)`` called after
            each batch, in addition to FiftyOne's progress bar
        precision (None): ``"float32"`` (None), or ``"bfloat16"`` /
            ``"float16"`` autocast; outputs are float32 either way.
            ``bench/embedding_bench.py`` reports speed and error of each
        channels_last (None): whether to run convolutions in the
            channels-last memory format; None: when ``net`` has 2-D
            convolutions (1.4-1.8x faster on this project's CPU for
            ``small_cnn``, ResNet-10t and ResNet-18, vectors equal to
            1e-6, see ``docs/scale.md``)

    Returns:
        a dict with ``ids`` (a list of sample ids, in the order of
        ``samples``) and, as requested, ``features`` (float32 ``(N, D)``)
        and ``logits`` (float32 ``(N, C)``)
    """
    device = torch.device(device) if device is not None else default_device()
    loader = make_loader(
        [(samples, None)],
        get_preprocess(net),
        batch_size=batch_size,
        num_workers=num_workers,
    )

    return run_loader(
        net,
        loader,
        len(samples),
        device,
        features=features,
        logits=logits,
        progress=progress,
        precision=precision,
        channels_last=channels_last,
    )


def run_loader(
    net,
    loader,
    total,
    device,
    features=True,
    logits=True,
    progress=None,
    precision=None,
    channels_last=None,
):
    """The loop of :func:`run_inference` over any loader of dicts with
    ``inputs`` and ``ids``; ``total`` is the number of images it yields.
    ``net`` is put back in the contiguous (default) memory format
    afterwards when this loop changed it."""
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise ValueError(
            "precision must be one of %s, got %r" % (PRECISIONS, precision)
        )

    net = net.to(device).eval()
    fmt = torch.preserve_format
    if channels_last is None:
        channels_last = has_conv2d(net)

    if channels_last:
        fmt = torch.channels_last
        net = net.to(memory_format=fmt)

    if precision == "float32":
        autocast = contextlib.nullcontext()
    else:
        autocast = torch.autocast(device.type, dtype=getattr(torch, precision))

    ids, feats, outs = [], [], []
    done = 0
    with torch.inference_mode(), autocast, fou.ProgressBar(total=total) as pb:
        for batch in loader:
            x = batch["inputs"].to(device, non_blocking=True)
            if x.dim() == 4:
                x = x.contiguous(memory_format=fmt)

            f, z = forward_both(net, x)
            ids.extend(batch["ids"])
            if features:
                feats.append(f.float().cpu().numpy())

            if logits:
                outs.append(z.float().cpu().numpy())

            done += len(x)
            pb.update(len(x))
            if progress is not None:
                progress(done, total)

    if channels_last:
        # the caller's model may be trained next, in the default format
        net.to(memory_format=torch.contiguous_format)

    result = {"ids": ids}
    if features:
        result["features"] = _stack(feats)

    if logits:
        result["logits"] = _stack(outs)

    return result


def has_conv2d(net):
    """Whether ``net`` has a 2-D convolution, which the channels-last
    memory format speeds up."""
    return any(isinstance(m, torch.nn.Conv2d) for m in net.modules())


def _stack(chunks):
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)

    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
