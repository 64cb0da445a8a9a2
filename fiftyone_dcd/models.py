"""
Building classifiers, loading checkpoints, and reading their penultimate
layer.

A model is given as an ``nn.Module``, a timm model name
(``"resnet18"``, ``"vit_small_patch16_224.dino"``), a torchvision model
(``"torchvision:resnet18"``), or ``"small_cnn"``, this package's network for
small grayscale images.
"""

import logging
import os

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

TORCHVISION_PREFIX = "torchvision:"

IMAGENET_PREPROCESS = {
    "in_chans": 3,
    "input_size": 224,
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}


class SmallCNN(nn.Module):
    """A small convolutional classifier for 28x28 grayscale images.

    Follows timm's interface: :meth:`forward_features`, and
    :meth:`forward_head` with ``pre_logits=True`` for the penultimate layer.

    Args:
        num_classes (10): the number of classes
        in_chans (1): the number of input channels
        width (32): channels of the first convolution
        num_features (128): size of the penultimate layer
    """

    def __init__(self, num_classes=10, in_chans=1, width=32, num_features=128):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = num_features
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.pre_logits = nn.Sequential(
            nn.Linear(4 * width, num_features), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(num_features, num_classes)
        self.dcd_preprocess = {
            "in_chans": in_chans,
            "input_size": 28,
            "mean": (0.286,) * in_chans,
            "std": (0.353,) * in_chans,
        }

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits=False):
        x = self.pre_logits(x)

        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def build_model(
    model,
    num_classes=None,
    checkpoint=None,
    pretrained=False,
    in_chans=None,
):
    """Returns an ``nn.Module`` from a model or a model name.

    Args:
        model: an ``nn.Module`` (returned as is, after loading
            ``checkpoint``); ``"small_cnn"``; ``"torchvision:<name>"``; or
            any timm model name
        num_classes (None): classes of the classifier head; None keeps the
            model's default (timm: the pretrained head)
        checkpoint (None): path of a state dict to load, read with
            ``torch.load(weights_only=True)``
        pretrained (False): whether timm / torchvision load hub weights
        in_chans (None): input channels; None keeps the model's default

    Returns:
        an ``nn.Module``

    Raises:
        ValueError: for an unknown model name or a checkpoint that does not
            fit the model
    """
    if isinstance(model, nn.Module):
        net = model
    elif not isinstance(model, str) or not model:
        raise ValueError(
            "model must be an nn.Module or a model name such as "
            "'small_cnn', 'resnet18' (timm) or 'torchvision:resnet18'; got "
            "%r" % (model,)
        )
    elif model == "small_cnn":
        net = SmallCNN(num_classes=num_classes or 10, in_chans=in_chans or 1)
    elif model.startswith(TORCHVISION_PREFIX):
        net = _build_torchvision(
            model[len(TORCHVISION_PREFIX) :], num_classes, pretrained
        )
    else:
        net = _build_timm(model, num_classes, pretrained, in_chans)

    if checkpoint is not None:
        load_checkpoint(net, checkpoint)

    return net


def check_model_spec(model, checkpoint=None):
    """Raises ``ValueError`` for what :func:`build_model` would refuse
    without building anything: an unknown model name or a checkpoint path
    that is not a readable file.
    """
    if isinstance(model, nn.Module):
        pass
    elif not isinstance(model, str) or not model:
        build_model(model)  # raises its message
    elif model.startswith(TORCHVISION_PREFIX):
        import torchvision

        name = model[len(TORCHVISION_PREFIX) :]
        if name not in torchvision.models.list_models():
            _build_torchvision(name, None, False)  # raises its message
    elif model != "small_cnn":
        import timm

        if not timm.is_model(model):
            _build_timm(model, None, False, None)  # raises its message

    if checkpoint is not None:
        _check_checkpoint_path(checkpoint)


def _check_checkpoint_path(path):
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ValueError(
            "Checkpoint %r is not a file; pass the path of a state dict "
            "saved with torch.save(model.state_dict(), path)" % (path,)
        )

    if not os.access(path, os.R_OK):
        raise ValueError(
            "Checkpoint %s cannot be read (permissions); make it readable "
            "by this user" % (path,)
        )


def _build_timm(name, num_classes, pretrained, in_chans):
    import timm

    kwargs = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes

    if in_chans is not None:
        kwargs["in_chans"] = in_chans

    if not timm.is_model(name):
        raise ValueError(
            "Unknown model %r: not 'small_cnn', a 'torchvision:<name>' "
            "model, or a timm model. List timm's with "
            "timm.list_models('*%s*')" % (name, name.split(".")[0][:8])
        )

    logger.info("Creating timm model %s (pretrained=%s)", name, pretrained)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError) as e:
        if not pretrained:
            raise

        # hub downloads fail offline; a local state dict works everywhere
        raise ValueError(
            "Could not load the pretrained weights of timm model %r (%s). "
            "Offline, save them elsewhere with timm and pass the file as "
            "the checkpoint" % (name, str(e).splitlines()[0][:200])
        ) from e


def _build_torchvision(name, num_classes, pretrained):
    import torchvision

    if name not in torchvision.models.list_models():
        raise ValueError(
            "Unknown torchvision model %r; see "
            "torchvision.models.list_models()" % name
        )

    kwargs = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes

    weights = "DEFAULT" if pretrained else None
    if pretrained and num_classes is not None:
        net = torchvision.models.get_model(name, weights=weights)
        _replace_classifier(net, num_classes)

        return net

    return torchvision.models.get_model(name, weights=weights, **kwargs)


def _replace_classifier(net, num_classes):
    name, fc = find_classifier(net, return_name=True)
    parent = net
    *path, last = name.split(".")
    for part in path:
        parent = getattr(parent, part)

    setattr(parent, last, nn.Linear(fc.in_features, num_classes))


def load_checkpoint(net, path):
    """Loads the state dict at ``path`` into ``net``, never unpickling
    arbitrary objects.

    Accepts a bare state dict or a dict holding one under ``state_dict``
    or ``model`` (mmengine and common training scripts); prefixes added by
    wrappers (``net.``, ``module.``) are removed.
    """
    _check_checkpoint_path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            "Cannot read checkpoint %s as tensors (%s). Pass a state dict "
            "saved with torch.save(model.state_dict(), path); objects that "
            "need unpickling are refused" % (path, str(e).splitlines()[0])
        ) from e

    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break

    if not isinstance(state, dict) or not all(
        torch.is_tensor(v) for v in state.values()
    ):
        raise ValueError(
            "Checkpoint %s holds no state dict of tensors; pass one saved "
            "with torch.save(model.state_dict(), path)" % path
        )

    state = _strip_prefixes(state, net.state_dict().keys())
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            "Checkpoint %s does not fit the %s model: %s. Pass the "
            "architecture and num_classes it was saved from"
            % (
                path,
                type(net).__name__,
                "; ".join(l.strip() for l in str(e).splitlines()[1:3]),
            )
        ) from e

    return net


def _strip_prefixes(state, expected):
    expected = set(expected)
    for prefix in ("net.", "module.", "model."):
        if not expected & state.keys() and all(
            k.startswith(prefix) for k in state
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}

    return state


def find_classifier(net, return_name=False):
    """Returns the final linear layer of ``net`` (timm's
    ``get_classifier()`` where available, else the last ``nn.Linear``).
    """
    if hasattr(net, "get_classifier"):
        fc = net.get_classifier()
        for name, module in net.named_modules():
            if module is fc and isinstance(fc, nn.Linear):
                return (name, fc) if return_name else fc

    found = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            found = (name, module)

    if found is None:
        raise ValueError(
            "Model %s has no nn.Linear classifier, so its penultimate layer "
            "is unknown; give it forward_features() and "
            "forward_head(x, pre_logits=True) as timm models have"
            % type(net).__name__
        )

    return found if return_name else found[1]


def penultimate(net, x):
    """Returns the penultimate-layer activations of ``net`` on ``x``, an
    ``(N, D)`` tensor: timm's ``forward_head(pre_logits=True)`` where the
    model has it, else the input of its final linear layer.
    """
    return forward_both(net, x)[0]


def forward_both(net, x):
    """Returns ``(features, logits)`` of ``net`` on ``x`` from one forward
    pass; see :func:`penultimate`.
    """
    if hasattr(net, "forward_head") and hasattr(net, "forward_features"):
        feats = net.forward_head(net.forward_features(x), pre_logits=True)
        fc = find_classifier(net)

        return feats, fc(feats)

    captured = []
    fc = find_classifier(net)
    handle = fc.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0])
    )
    try:
        logits = net(x)
    finally:
        handle.remove()

    return captured[-1].flatten(1), logits


def get_preprocess(net):
    """Returns the input spec of ``net``: a dict with ``in_chans``,
    ``input_size``, ``mean`` and ``std``.

    Uses ``net.dcd_preprocess`` if set, else timm's data config for timm
    models, else ImageNet's 3x224.
    """
    spec = getattr(net, "dcd_preprocess", None)
    if spec is not None:
        return dict(spec)

    if hasattr(net, "pretrained_cfg"):
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=net)
        chans, _, size = cfg["input_size"]

        return {
            "in_chans": chans,
            "input_size": size,
            "mean": tuple(cfg["mean"]),
            "std": tuple(cfg["std"]),
        }

    return dict(IMAGENET_PREPROCESS)


def default_device():
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
