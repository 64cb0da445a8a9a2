"""
Batched inference: penultimate features and logits of a model over a view.
"""

import logging

import numpy as np
import torch

import fiftyone.core.utils as fou

from fiftyone_dcd.loaders import make_loader
from fiftyone_dcd.models import default_device, forward_both, get_preprocess

logger = logging.getLogger(__name__)


def run_inference(
    net,
    samples,
    batch_size=256,
    num_workers=0,
    device=None,
    features=True,
    logits=True,
    progress=None,
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

    Returns:
        a dict with ``ids`` (a list of sample ids, in the order of
        ``samples``) and, as requested, ``features`` (float32 ``(N, D)``)
        and ``logits`` (float32 ``(N, C)``)
    """
    device = torch.device(device) if device is not None else default_device()
    net = net.to(device).eval()
    loader = make_loader(
        [(samples, None)],
        get_preprocess(net),
        batch_size=batch_size,
        num_workers=num_workers,
    )
    total = len(samples)
    ids, feats, outs = [], [], []
    done = 0
    with torch.inference_mode(), fou.ProgressBar(total=total) as pb:
        for batch in loader:
            x = batch["inputs"].to(device, non_blocking=True)
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

    result = {"ids": ids}
    if features:
        result["features"] = _stack(feats)

    if logits:
        result["logits"] = _stack(outs)

    return result


def _stack(chunks):
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)

    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
